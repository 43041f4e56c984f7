"""History store: down-sampling and pruning on a synthetic 40-day data set, queries, events."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gateway.publishers.history.store import (
    DAY_S,
    PACK_SERIES,
    CellRow,
    HistoryStore,
    SeriesError,
    StoredEvent,
    check_series,
)

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
DAYS = 40
PACK_STEP = 10.0  # the last RECENT_DAYS, as the writer stores them
CELL_STEP = 60.0
OLD_PACK_STEP = 60.0  # older synthetic rows are sparser, to keep the test fast
OLD_CELL_STEP = 300.0
RECENT_DAYS = 3


def voltage_at(ts: float) -> float:
    """A synthetic pack voltage: a slow daily wave."""
    return 52.0 + math.sin((ts - START) / DAY_S * 2 * math.pi)


def cell_at(ts: float, board: int, cell: int) -> float:
    return round(3.3 + 0.001 * cell + 0.01 * board + 0.05 * math.sin((ts - START) / 3600), 4)


def times(start: float, end: float, step: float) -> list[float]:
    return [start + i * step for i in range(round((end - start) / step))]


def pack_row(ts: float) -> dict[str, float | None]:
    v = voltage_at(ts)
    return {
        **dict.fromkeys(PACK_SERIES),
        "voltage": v,
        "current": 10.0,
        "cell_voltage_min": v / 16 - 0.01,
        "cell_voltage_max": v / 16 + 0.01,
    }


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[HistoryStore, dict[str, int]]:
    """40 days: pack rows (10 s for the last 3 days, 60 s before), cell rows (1 min, 5 min
    before), an event every hour; then one maintenance pass at the end of day 40."""
    store = HistoryStore(tmp_path_factory.mktemp("history") / "h.sqlite3")
    end = START + DAYS * DAY_S
    recent = end - RECENT_DAYS * DAY_S
    pack = [(ts, pack_row(ts)) for ts in times(START, recent, OLD_PACK_STEP)]
    store.write(pack, pack_step_s=OLD_PACK_STEP)
    pack = [(ts, pack_row(ts)) for ts in times(recent, end, PACK_STEP)]
    cell_times = [(ts, OLD_CELL_STEP) for ts in times(START, recent, OLD_CELL_STEP)]
    cell_times += [(ts, CELL_STEP) for ts in times(recent, end, CELL_STEP)]
    cells = [
        CellRow(
            ts,
            step,
            (1, 2),
            *(
                tuple(tuple(cell_at(ts, b, c) + d for c in range(1, 5)) for b in (1, 2))
                for d in (-0.002, 0.002, 0.0)
            ),
        )
        for ts, step in cell_times
    ]
    events = [
        StoredEvent(n + 1, START + n * 3600.0, {"type": "tick", "seq": n + 1, "n": n})
        for n in range(DAYS * 24)
    ]
    store.write(pack, cells, events, pack_step_s=PACK_STEP)
    counts = store.maintain(end, retention_days=30, full_resolution_days=2, coarse_s=600)
    return store, counts


def test_pruning_keeps_exactly_the_retention(filled: tuple[HistoryStore, dict[str, int]]) -> None:
    store, counts = filled
    end = START + DAYS * DAY_S
    span = store.span()
    assert span is not None
    oldest, newest = span
    assert oldest >= end - 30 * DAY_S
    assert oldest < end - 30 * DAY_S + 600  # the first kept coarse bucket
    assert newest == end - PACK_STEP
    assert counts["pack_pruned"] == 10 * 1440  # 10 days of 60 s rows
    kept = [e.seq for e in store.events_after(0, 10_000)]
    assert kept[0] == 10 * 24 + 1 and kept[-1] == DAYS * 24


def test_old_rows_are_down_sampled_recent_rows_keep_full_resolution(
    filled: tuple[HistoryStore, dict[str, int]],
) -> None:
    store, _ = filled
    end = START + DAYS * DAY_S
    cutoff = end - 2 * DAY_S
    rows = list(store.pack_rows(end - 30 * DAY_S, end))
    old = [(ts, step) for ts, step, _ in rows if ts < cutoff]
    new = [(ts, step) for ts, step, _ in rows if ts >= cutoff]
    assert {step for _, step in old} == {600.0}
    assert all(ts % 600 == 0 for ts, _ in old)
    assert {step for _, step in new} == {PACK_STEP}
    assert len(new) == 2 * 8640
    assert len(old) == 28 * 144


def test_a_coarse_row_is_the_mean_or_extreme_of_its_fine_rows(
    filled: tuple[HistoryStore, dict[str, int]],
) -> None:
    store, _ = filled
    end = START + DAYS * DAY_S
    ts0 = end - 10 * DAY_S  # a bucket start, well inside the down-sampled part
    (ts, step, values), *_ = store.pack_rows(ts0, ts0 + 600)
    fine = [pack_row(ts0 + i * OLD_PACK_STEP) for i in range(10)]
    assert (ts, step) == (ts0, 600.0)
    assert values["voltage"] == pytest.approx(sum(r["voltage"] or 0 for r in fine) / 10)
    assert values["cell_voltage_min"] == pytest.approx(
        min(r["cell_voltage_min"] or 0 for r in fine)
    )
    assert values["cell_voltage_max"] == pytest.approx(
        max(r["cell_voltage_max"] or 0 for r in fine)
    )
    assert values["soc"] is None


def test_cells_are_down_sampled_min_of_min_max_of_max(
    filled: tuple[HistoryStore, dict[str, int]],
) -> None:
    store, _ = filled
    end = START + DAYS * DAY_S
    ts0 = end - 10 * DAY_S
    series = store.query(["cell.2.3.min", "cell.2.3.max", "cell.2.3"], ts0, ts0 + 600, 600)
    assert series.times == [ts0]
    fine = [cell_at(ts0 + i * OLD_CELL_STEP, 2, 3) for i in range(2)]
    assert series.values["cell.2.3.min"] == [pytest.approx(min(fine) - 0.002)]
    assert series.values["cell.2.3.max"] == [pytest.approx(max(fine) + 0.002)]
    assert series.values["cell.2.3"] == [pytest.approx(sum(fine) / 2, abs=1e-4)]
    recent = store.query(["cell.1.1"], end - 600, end, 60)
    assert recent.times == [end - 600 + 60 * i for i in range(10)]


def test_query_returns_the_requested_range_and_resolution(
    filled: tuple[HistoryStore, dict[str, int]],
) -> None:
    store, _ = filled
    end = START + DAYS * DAY_S
    hour = store.query(["voltage", "current"], end - 3600, end, 60)
    assert hour.step_s == 60
    assert hour.times == [end - 3600 + 60 * i for i in range(60)]
    assert hour.values["current"] == [10.0] * 60
    month = store.query(["voltage"], end - 30 * DAY_S, end, 3600)
    assert len(month.times) == 30 * 24
    assert all(t % 3600 == 0 for t in month.times)
    too_fine = store.query(["voltage"], end - 30 * DAY_S, end, 1)
    assert len(too_fine.times) <= 5000


def test_unknown_series_are_refused() -> None:
    assert check_series(["voltage", "cell.1.16.max"]) == ["voltage", "cell.1.16.max"]
    for bad in ("volts", "cell.1", "cell.1.2.avg", "voltage; DROP TABLE pack"):
        with pytest.raises(SeriesError):
            check_series([bad])


def test_a_full_disk_is_an_error_not_a_corruption(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "h.sqlite3", max_pages=16)
    rows = [(START + i, pack_row(START + i)) for i in range(50)]
    store.write(rows)
    big = [(START + 100 + i, pack_row(START + 100 + i)) for i in range(20_000)]
    with pytest.raises(Exception, match="full"):
        store.write(big)
    assert len(list(store.pack_rows(0, 2e9))) == 50  # the failed batch left nothing behind


def test_export_prints_csv_and_jsonl(
    filled: tuple[HistoryStore, dict[str, int]], capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    store, _ = filled
    end = START + DAYS * DAY_S
    args = ["history", "export", "--file", str(store.path), "--from", str(end - 60), "--to"]
    assert main([*args, str(end), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:3] == ["time", "step_s", "voltage"]
    assert len(lines) == 1 + 6  # six 10 s rows in the last minute
    assert lines[-1].startswith("2026-02-09T23:59:50Z,10.0,")
    assert main([*args, "2026-02-10T00:00:00Z", "--format", "jsonl", "--what", "cells"]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(rows) == 2 * 4  # one minute row: 2 boards x 4 cells
    assert rows[0]["min"] <= rows[0]["mean"] <= rows[0]["max"]
    assert main([*args, str(end), "--what", "events", "--format", "jsonl"]) == 0
    assert capsys.readouterr().out == ""  # the hourly events are not in the last minute
    assert main(["history", "export", "--file", "/nonexistent/h.sqlite3"]) == 1
