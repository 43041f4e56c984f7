"""The history writer: samples the state, batches rows, writes them off the control path.

- every `history.pack_interval_s`: one pack row from the `state` message;
- every `history.cell_interval_s`: per-cell min/max/mean of every scan in the period
  (from `BoardScanned`, keep-latest: a dropped scan only thins the statistics);
- every event from the journal;
- every `history.flush_interval_s`: one transaction in the writer's own thread;
- every hour (and at start): down-sampling and pruning (`HistoryStore.maintain`).

A write that fails (disk full, read-only, damaged file) never stops anything: the rows stay
pending (up to `MAX_PENDING` per kind, oldest dropped and counted) and are retried at the
next flush; the first failure of an outage is a `history_write_failed` event and an error
log, the recovery a `history_write_recovered` event. Metrics: `bms_history_writes_total`,
`bms_history_write_failures_total`, `bms_history_rows_dropped_total`, `bms_history_ok`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from gateway.core.bus import Overflow
from gateway.core.events import BoardScanned, Notice
from gateway.publishers.history.store import (
    PACK_SERIES,
    CellRow,
    HistoryStore,
    StoredEvent,
    bucket,
)
from gateway.publishers.payloads import state_message

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext

log = logging.getLogger(__name__)

MAX_PENDING = 20_000  # rows of one kind kept while the disk refuses writes
MAINTAIN_INTERVAL_S = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryWriteFailed(Notice):
    """The history store refused a write (disk full, read-only, damaged file)."""

    path: str
    detail: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "history_write_failed", "path": self.path, "detail": self.detail}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryWriteRecovered(Notice):
    """The history store accepts writes again."""

    path: str
    dropped: int

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "history_write_recovered", "path": self.path, "dropped": self.dropped}


def pack_values(state: dict[str, Any]) -> dict[str, float | None]:
    """The pack series of one `state` message."""
    limits = state.get("limits", {})
    return {k: state.get(k, limits.get(k)) for k in PACK_SERIES}


class CellStats:
    """Running per-cell min/max/sum over one period."""

    def __init__(self) -> None:
        self._boards: dict[int, tuple[list[float], list[float], list[float], list[int]]] = {}

    def add(self, board: int, voltages_v: tuple[float, ...]) -> None:
        """Fold one scan of a board in."""
        n = len(voltages_v)
        acc = self._boards.get(board)
        if acc is None or len(acc[0]) != n:
            acc = ([float("inf")] * n, [float("-inf")] * n, [0.0] * n, [0] * n)
            self._boards[board] = acc
        vmin, vmax, vsum, count = acc
        for i, v in enumerate(voltages_v):
            vmin[i] = min(vmin[i], v)
            vmax[i] = max(vmax[i], v)
            vsum[i] += v
            count[i] += 1

    def take(self, ts: float, step_s: float) -> CellRow | None:
        """Return the period's row (None when no scan arrived) and start a new period."""
        if not self._boards:
            return None
        boards = tuple(sorted(self._boards))
        accs = [self._boards[b] for b in boards]
        self._boards = {}

        def r(v: float) -> float:
            return round(v, 4)

        return CellRow(
            ts,
            step_s,
            boards,
            tuple(tuple(r(v) for v in a[0]) for a in accs),
            tuple(tuple(r(v) for v in a[1]) for a in accs),
            tuple(
                tuple(r(s / c) if c else None for s, c in zip(a[2], a[3], strict=True))
                for a in accs
            ),
        )


class HistoryWriter:
    """Owns the store (opened by `open`) and the sampling, flush and maintenance loops."""

    name = "history"

    def __init__(self, ctx: GatewayContext, *, max_pages: int | None = None) -> None:
        self._ctx = ctx
        self.cfg = ctx.config.history
        self.path = self.cfg.file(ctx.config.gateway.state_dir)
        self._max_pages = max_pages
        self.store: HistoryStore | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "history-writer")
        self._scans = ctx.bus.subscribe(
            "history-cells", BoardScanned, overflow=Overflow.KEEP_LATEST, maxsize=1024
        )
        self._pack: list[tuple[float, dict[str, float | None]]] = []
        self._cells: list[CellRow] = []
        self._events: list[StoredEvent] = []
        self._stats = CellStats()
        self.failing = False
        self._dropped_in_outage = 0
        reg = ctx.registry
        self.writes = Counter(
            "bms_history_writes", "Batches written to the history store.", registry=reg
        )
        self.failures = Counter(
            "bms_history_write_failures",
            "Batches the history store refused (disk full, read-only, damaged file).",
            registry=reg,
        )
        self.dropped = Counter(
            "bms_history_rows_dropped",
            "History rows dropped because writes kept failing.",
            registry=reg,
        )
        self.ok = Gauge("bms_history_ok", "1 while the history store accepts writes.", registry=reg)

    async def open(self) -> HistoryStore | None:
        """Open the store in the writer thread; None (logged, an event) when it cannot.

        Called at every (re)start of the component: a restart after a crash gets a new thread.
        """
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "history-writer")
        try:
            self.store = await self._in_thread(HistoryStore, self.path, max_pages=self._max_pages)
        except (sqlite3.Error, OSError) as err:
            self._failed(err, "cannot open the history store")
            return None
        self.ok.set(1)
        return self.store

    def add_event(self, seq: int, ts: float, message: dict[str, Any]) -> None:
        """Journal sink: queue one event for the next flush (nothing without a store)."""
        if self.store is None:
            return
        self._events.append(StoredEvent(seq, ts, message))
        self._trim(self._events)

    async def run(self) -> None:
        """Sample, flush and maintain until cancelled (then a last flush, not awaited)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._sample_pack(), name="history:pack")
                tg.create_task(self._sample_cells(), name="history:cells")
                tg.create_task(self._take_scans(), name="history:scans")
                tg.create_task(self._flush_loop(), name="history:flush")
                tg.create_task(self._maintain_loop(), name="history:maintain")
        finally:
            batch = self._take_batch()
            store = self.store
            if store is not None:
                self._executor.submit(_last_write, store, batch, self.cfg.pack_interval_s)
            self._executor.shutdown(wait=False)

    # --- sampling -----------------------------------------------------------------------

    def _now_ts(self) -> float:
        return self._ctx.clock.wall().timestamp()

    async def _sample_pack(self) -> None:
        step = self.cfg.pack_interval_s
        while True:
            await self._ctx.clock.sleep(step)
            state = state_message(self._ctx.store.state, self._ctx.clock, self._ctx.config)
            values = pack_values(state)
            if any(v is not None for v in values.values()):
                self._pack.append((bucket(self._now_ts(), step), values))
                self._trim(self._pack)

    async def _take_scans(self) -> None:
        async for scan in self._scans:
            self._stats.add(scan.board, scan.cell_voltages_v)

    async def _sample_cells(self) -> None:
        step = self.cfg.cell_interval_s
        while True:
            await self._ctx.clock.sleep(step)
            row = self._stats.take(bucket(self._now_ts() - step / 2, step), step)
            if row is not None:
                self._cells.append(row)
                self._trim(self._cells)

    def _trim(self, rows: list[Any]) -> None:
        if len(rows) > MAX_PENDING:
            extra = len(rows) - MAX_PENDING
            del rows[:extra]
            self.dropped.inc(extra)
            self._dropped_in_outage += extra

    # --- writing ------------------------------------------------------------------------

    def _take_batch(self) -> tuple[list[Any], list[CellRow], list[StoredEvent]]:
        batch = (self._pack, self._cells, self._events)
        self._pack, self._cells, self._events = [], [], []
        return batch

    async def flush(self) -> bool:
        """Write everything pending in one transaction; False when the store refused it."""
        store = self.store
        if store is None or not (self._pack or self._cells or self._events):
            return store is not None
        pack, cells, events = self._take_batch()
        try:
            await self._in_thread(store.write, pack, cells, events, self.cfg.pack_interval_s)
        except (sqlite3.Error, OSError) as err:
            # Put the rows back in front of anything that arrived meanwhile, then bound them.
            self._pack[:0], self._cells[:0], self._events[:0] = pack, cells, events
            for rows in (self._pack, self._cells, self._events):
                self._trim(rows)
            self._failed(err, "history write failed")
            return False
        self.writes.inc()
        if self.failing:
            self.failing = False
            self.ok.set(1)
            log.info(
                "history store %s writable again (%d rows were dropped meanwhile)",
                self.path,
                self._dropped_in_outage,
            )
            self._ctx.bus.publish(
                HistoryWriteRecovered(
                    at_s=self._ctx.clock.now(), path=str(self.path), dropped=self._dropped_in_outage
                )
            )
            self._dropped_in_outage = 0
        return True

    def _failed(self, err: BaseException, what: str) -> None:
        self.failures.inc()
        self.ok.set(0)
        if self.failing:
            log.debug("%s again: %s", what, err)
            return
        self.failing = True
        log.error(
            "%s (%s: %s); the gateway keeps running, rows are kept in memory and retried. "
            "Check the free space and permissions of %s (history.path)",
            what,
            type(err).__name__,
            err,
            self.path,
        )
        self._ctx.bus.publish(
            HistoryWriteFailed(at_s=self._ctx.clock.now(), path=str(self.path), detail=str(err))
        )

    async def _flush_loop(self) -> None:
        while True:
            await self._ctx.clock.sleep(self.cfg.flush_interval_s)
            await self.flush()

    async def maintain(self) -> dict[str, int] | None:
        """Down-sample and prune now (in the writer thread)."""
        store = self.store
        if store is None:
            return None
        c = self.cfg
        try:
            counts: dict[str, int] = await self._in_thread(
                store.maintain,
                self._now_ts(),
                c.retention_days,
                c.full_resolution_days,
                c.coarse_interval_s,
            )
        except (sqlite3.Error, OSError) as err:
            self._failed(err, "history maintenance failed")
            return None
        return counts

    async def _maintain_loop(self) -> None:
        while True:
            counts = await self.maintain()
            if counts and any(counts.values()):
                log.debug("history maintenance: %s", counts)
            await self._ctx.clock.sleep(MAINTAIN_INTERVAL_S)

    async def _in_thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args, **kwargs))

    async def read(self, fn: Any, *args: Any) -> Any:
        """Run a read (`HistoryStore` method) in the writer thread, in order with writes."""
        return await self._in_thread(fn, *args)


def _last_write(
    store: HistoryStore,
    batch: tuple[list[Any], list[CellRow], list[StoredEvent]],
    pack_step_s: float,
) -> None:
    try:
        store.write(*batch, pack_step_s=pack_step_s)
    except (sqlite3.Error, OSError) as err:
        log.warning("history: last rows not written at shutdown: %s", err)
    finally:
        store.close()
