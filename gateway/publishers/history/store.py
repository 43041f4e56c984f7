"""The history store: one SQLite file in WAL mode, synchronous (run it in a thread).

Tables (times are UNIX seconds, UTC):
- `pack(ts, step_s, <PACK_SERIES>)`: the pack series, one row per `history.pack_interval_s`,
  down-sampled to `history.coarse_interval_s` rows after `history.full_resolution_days`;
- `cells(ts, step_s, data)`: per-cell min/max/mean over `history.cell_interval_s`, as JSON
  `{"boards": [1, 2], "min": [[…], […]], "max": …, "mean": …}`, down-sampled the same way;
- `events(seq, ts, type, body)`: every notice, `body` being its `events` JSON message.
Everything older than `history.retention_days` is deleted by `maintain`.

A series name is a pack key (`voltage`, `soc`, … as in the MQTT `state` message) or a cell:
`cell.<board>.<cell>` (mean), `cell.<board>.<cell>.min`, `cell.<board>.<cell>.max`.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# name -> how rows are merged when a bucket holds several (down-sampling, coarse queries)
PACK_SERIES: dict[str, str] = {
    "voltage": "AVG",
    "current": "AVG",
    "power": "AVG",
    "soc": "AVG",
    "cell_voltage_min": "MIN",
    "cell_voltage_max": "MAX",
    "cell_voltage_delta": "MAX",
    "temperature_min": "MIN",
    "temperature_max": "MAX",
    "humidity": "AVG",
    "charge_voltage_limit": "AVG",
    "charge_current_limit": "AVG",
    "discharge_current_limit": "AVG",
}
CELL_SERIES = re.compile(r"^cell\.(\d{1,2})\.(\d{1,2})(?:\.(min|max|mean))?$")
DAY_S = 86400.0
MAX_POINTS = 5000  # a query never returns more buckets than this (step is raised instead)

_COLS = ", ".join(PACK_SERIES)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS pack (
    ts REAL NOT NULL, step_s REAL NOT NULL, {", ".join(f"{c} REAL" for c in PACK_SERIES)},
    PRIMARY KEY (ts, step_s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cells (
    ts REAL NOT NULL, step_s REAL NOT NULL, data TEXT NOT NULL, PRIMARY KEY (ts, step_s)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, ts REAL NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
"""


class SeriesError(ValueError):
    """A series name that is neither a pack series nor `cell.B.C[.min|.max|.mean]`."""


@dataclass(frozen=True, slots=True)
class CellRow:
    """Per-cell statistics of one period: lists per board, cell 1 first (None = no data)."""

    ts: float
    step_s: float
    boards: tuple[int, ...]
    vmin: tuple[tuple[float | None, ...], ...]
    vmax: tuple[tuple[float | None, ...], ...]
    vmean: tuple[tuple[float | None, ...], ...]

    def to_json(self) -> str:
        """Serialise the statistics (not ts/step_s, which are columns)."""
        return json.dumps(
            {"boards": self.boards, "min": self.vmin, "max": self.vmax, "mean": self.vmean},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, ts: float, step_s: float, text: str) -> CellRow:
        """Parse a stored row."""
        d = json.loads(text)
        return cls(
            ts,
            step_s,
            tuple(d["boards"]),
            tuple(tuple(b) for b in d["min"]),
            tuple(tuple(b) for b in d["max"]),
            tuple(tuple(b) for b in d["mean"]),
        )


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event as stored: its `events` message (which holds `seq` and `timestamp`)."""

    seq: int
    ts: float
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Series:
    """A query result: bucket start times and one list of values per series."""

    step_s: float
    times: list[float]
    values: dict[str, list[float | None]]


def check_series(names: Iterable[str]) -> list[str]:
    """Return the names, or raise `SeriesError` naming the first unknown one."""
    out = []
    for name in names:
        if name not in PACK_SERIES and not CELL_SERIES.match(name):
            raise SeriesError(
                f"unknown series {name!r}: use one of {', '.join(PACK_SERIES)} or "
                "cell.<board>.<cell>[.min|.max|.mean]"
            )
        out.append(name)
    return out


def bucket(ts: float, step_s: float) -> float:
    """Start of the period of `step_s` that holds `ts`."""
    return math.floor(ts / step_s) * step_s


def _merge(values: Sequence[float | None], how: str) -> float | None:
    known = [v for v in values if v is not None]
    if not known:
        return None
    if how == "MIN":
        return min(known)
    if how == "MAX":
        return max(known)
    return sum(known) / len(known)


class HistoryStore:
    """Opens (creating) the SQLite file; every method runs synchronously."""

    def __init__(self, path: Path, *, max_pages: int | None = None) -> None:
        """Open the store; `max_pages` caps the file size (tests: a disk that fills up)."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if max_pages is not None:
            self._db.execute(f"PRAGMA max_page_count={int(max_pages)}")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # SQLite may have rolled back already (disk full)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # --- writing ----------------------------------------------------------------------

    def write(
        self,
        pack: Sequence[tuple[float, dict[str, float | None]]] = (),
        cells: Sequence[CellRow] = (),
        events: Sequence[StoredEvent] = (),
        pack_step_s: float = 10.0,
    ) -> None:
        """Write one batch in one transaction (all or nothing).

        Raises:
            sqlite3.Error: the disk is full or read-only, the file is damaged, …
        """
        marks = ", ".join("?" for _ in PACK_SERIES)
        with self._transaction() as db:
            db.executemany(
                f"INSERT OR REPLACE INTO pack (ts, step_s, {_COLS}) VALUES (?, ?, {marks})",
                [(ts, pack_step_s, *(row.get(c) for c in PACK_SERIES)) for ts, row in pack],
            )
            db.executemany(
                "INSERT OR REPLACE INTO cells (ts, step_s, data) VALUES (?, ?, ?)",
                [(c.ts, c.step_s, c.to_json()) for c in cells],
            )
            db.executemany(
                "INSERT OR REPLACE INTO events (seq, ts, type, body) VALUES (?, ?, ?, ?)",
                [(e.seq, e.ts, str(e.body.get("type", "")), json.dumps(e.body)) for e in events],
            )

    def last_seq(self) -> int:
        """The highest stored event number (0 when there is none)."""
        row = self._db.execute("SELECT MAX(seq) FROM events").fetchone()
        return int(row[0] or 0)

    # --- maintenance --------------------------------------------------------------------

    def maintain(
        self, now_ts: float, retention_days: float, full_resolution_days: float, coarse_s: float
    ) -> dict[str, int]:
        """Down-sample rows older than `full_resolution_days`, delete those past retention.

        Returns the number of rows deleted/created per table (for logs and tests).
        """
        keep_from = now_ts - retention_days * DAY_S
        cutoff = bucket(now_ts - full_resolution_days * DAY_S, coarse_s)
        counts: dict[str, int] = {}
        aggs = ", ".join(f"{how}({c})" for c, how in PACK_SERIES.items())
        with self._transaction() as db:
            for table in ("pack", "cells", "events"):
                cur = db.execute(f"DELETE FROM {table} WHERE ts < ?", (keep_from,))
                counts[f"{table}_pruned"] = cur.rowcount
            cur = db.execute(
                f"INSERT OR REPLACE INTO pack (ts, step_s, {_COLS}) "
                f"SELECT CAST(ts / ? AS INTEGER) * ?, ?, {aggs} FROM pack "
                "WHERE step_s < ? AND ts < ? GROUP BY CAST(ts / ? AS INTEGER)",
                (coarse_s, coarse_s, coarse_s, coarse_s, cutoff, coarse_s),
            )
            counts["pack_coarse"] = cur.rowcount
            cur = db.execute("DELETE FROM pack WHERE step_s < ? AND ts < ?", (coarse_s, cutoff))
            counts["pack_fine_removed"] = cur.rowcount
            fine = [
                CellRow.from_json(ts, step, data)
                for ts, step, data in db.execute(
                    "SELECT ts, step_s, data FROM cells WHERE step_s < ? AND ts < ? ORDER BY ts",
                    (coarse_s, cutoff),
                )
            ]
            merged = merge_cell_rows(fine, coarse_s)
            db.executemany(
                "INSERT OR REPLACE INTO cells (ts, step_s, data) VALUES (?, ?, ?)",
                [(c.ts, c.step_s, c.to_json()) for c in merged],
            )
            counts["cells_coarse"] = len(merged)
            cur = db.execute("DELETE FROM cells WHERE step_s < ? AND ts < ?", (coarse_s, cutoff))
            counts["cells_fine_removed"] = cur.rowcount
        return counts

    # --- reading ------------------------------------------------------------------------

    def span(self) -> tuple[float, float] | None:
        """Oldest and newest pack row time, or None when empty."""
        lo, hi = self._db.execute("SELECT MIN(ts), MAX(ts) FROM pack").fetchone()
        return None if lo is None else (float(lo), float(hi))

    def query(self, names: Sequence[str], from_ts: float, to_ts: float, step_s: float) -> Series:
        """Return every series over [from_ts, to_ts), one value per `step_s` bucket.

        Buckets without data are left out; several rows in one bucket are merged (mean, or
        min/max for the extreme series). `step_s` is raised so that at most `MAX_POINTS`
        buckets come back.
        """
        names = check_series(names)
        step_s = max(step_s, (to_ts - from_ts) / MAX_POINTS, 1e-3)
        table: dict[float, dict[str, float | None]] = {}
        pack = [n for n in names if n in PACK_SERIES]
        if pack:
            cols = ", ".join(f"{PACK_SERIES[c]}({c})" for c in pack)
            rows = self._db.execute(
                f"SELECT CAST(ts / ? AS INTEGER) AS b, {cols} FROM pack "
                "WHERE ts >= ? AND ts < ? GROUP BY b ORDER BY b",
                (step_s, from_ts, to_ts),
            )
            for b, *vals in rows:
                table.setdefault(b * step_s, {}).update(zip(pack, vals, strict=True))
        cells = [n for n in names if n not in PACK_SERIES]
        if cells:
            for ts, values in self._cell_values(cells, from_ts, to_ts, step_s):
                table.setdefault(ts, {}).update(values)
        times = sorted(table)
        return Series(step_s, times, {n: [table[t].get(n) for t in times] for n in names})

    def _cell_values(
        self, names: Sequence[str], from_ts: float, to_ts: float, step_s: float
    ) -> Iterator[tuple[float, dict[str, float | None]]]:
        wanted = []
        for n in names:
            m = CELL_SERIES.match(n)
            assert m is not None
            wanted.append((n, int(m[1]), int(m[2]) - 1, m[3] or "mean"))
        rows = [
            CellRow.from_json(ts, step, data)
            for ts, step, data in self._db.execute(
                "SELECT ts, step_s, data FROM cells WHERE ts >= ? AND ts < ? ORDER BY ts",
                (from_ts, to_ts),
            )
        ]
        for row in merge_cell_rows(rows, step_s):
            out: dict[str, float | None] = {}
            for name, board, cell, stat in wanted:
                per_board = {"min": row.vmin, "max": row.vmax, "mean": row.vmean}[stat]
                try:
                    out[name] = per_board[row.boards.index(board)][cell]
                except (ValueError, IndexError):
                    out[name] = None
            yield row.ts, out

    def events_after(self, after_seq: int, limit: int) -> list[StoredEvent]:
        """Events with seq > after_seq, oldest first, at most `limit`."""
        rows = self._db.execute(
            "SELECT seq, ts, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [StoredEvent(s, t, json.loads(b)) for s, t, b in rows]

    def latest_events(self, limit: int) -> list[StoredEvent]:
        """The newest `limit` events, oldest first."""
        rows = self._db.execute(
            "SELECT seq, ts, body FROM events ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [StoredEvent(s, t, json.loads(b)) for s, t, b in reversed(rows)]

    def events_between(self, from_ts: float, to_ts: float) -> Iterator[StoredEvent]:
        """Every event in [from_ts, to_ts), oldest first."""
        rows = self._db.execute(
            "SELECT seq, ts, body FROM events WHERE ts >= ? AND ts < ? ORDER BY seq",
            (from_ts, to_ts),
        )
        for s, t, b in rows:
            yield StoredEvent(s, t, json.loads(b))

    def cell_rows(self, from_ts: float, to_ts: float) -> Iterator[tuple[float, float, CellRow]]:
        """Every stored cell row in [from_ts, to_ts): (ts, step_s, row), by time."""
        rows = self._db.execute(
            "SELECT ts, step_s, data FROM cells WHERE ts >= ? AND ts < ? ORDER BY ts",
            (from_ts, to_ts),
        )
        for ts, step, data in rows:
            yield ts, step, CellRow.from_json(ts, step, data)

    def pack_rows(
        self, from_ts: float, to_ts: float
    ) -> Iterator[tuple[float, float, dict[str, float | None]]]:
        """Every stored pack row in [from_ts, to_ts): (ts, step_s, values), by time."""
        rows = self._db.execute(
            f"SELECT ts, step_s, {_COLS} FROM pack WHERE ts >= ? AND ts < ? ORDER BY ts",
            (from_ts, to_ts),
        )
        for ts, step, *vals in rows:
            yield ts, step, dict(zip(PACK_SERIES, vals, strict=True))


def merge_cell_rows(rows: Sequence[CellRow], step_s: float) -> list[CellRow]:
    """Merge rows into one row per `step_s` bucket (min of mins, max of maxes, mean of means).

    Rows of a bucket with a different board layout than the bucket's first row are skipped.
    """
    groups: dict[float, list[CellRow]] = {}
    for r in rows:
        groups.setdefault(bucket(r.ts, step_s), []).append(r)
    out = []
    for ts, group in sorted(groups.items()):
        first = group[0]
        same = [g for g in group if g.boards == first.boards and _shape(g) == _shape(first)]
        if len(same) == 1:
            out.append(CellRow(ts, step_s, first.boards, first.vmin, first.vmax, first.vmean))
            continue

        def combine(
            pick: str, how: str, same: list[CellRow] = same, first: CellRow = first
        ) -> tuple[tuple[float | None, ...], ...]:
            return tuple(
                tuple(
                    _merge([getattr(g, pick)[b][c] for g in same], how)
                    for c in range(len(first.vmean[b]))
                )
                for b in range(len(first.boards))
            )

        out.append(
            CellRow(
                ts,
                step_s,
                first.boards,
                combine("vmin", "MIN"),
                combine("vmax", "MAX"),
                combine("vmean", "AVG"),
            )
        )
    return out


def _shape(row: CellRow) -> tuple[int, ...]:
    return tuple(len(b) for b in row.vmean)
