"""The persistent events outbox: SQLite in WAL mode, bounded, delivered in `seq` order.

Every notice for MQTT `events` is numbered and written here before it is sent; a row is
deleted only after the broker acknowledged it (QoS 1 PUBACK). `seq` is assigned inside the
writing transaction and the last one is kept in the database, so numbering continues across
restarts and a crash can never reuse a number. The rows always form one contiguous range
`low..last`: delivery deletes from the low end, an overflow drops from the low end.

`Outbox` is plain blocking code; `OutboxWorker` runs it on one dedicated thread so the event
loop (and the control path on it) never waits for the disk.

Durability: `synchronous=NORMAL` in WAL mode: a committed event survives the process being
killed (SIGKILL, crash); after a power cut the last transactions may be missing, never
corrupt. When the file cannot be opened or written, the outbox carries on in memory (logged,
counted) so delivery continues until the next restart.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

OUTBOX_FILE = "mqtt_outbox.sqlite3"
MEMORY = ":memory:"
T = TypeVar("T")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, payload BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)


def encode_event(body: dict[str, Any]) -> bytes:
    """Serialise one event body as compact strict JSON (the same rules as `payloads.encode`)."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Dropped:
    """Rows dropped by one append because the outbox was full (`first..last` by seq)."""

    count: int
    first_seq: int
    last_seq: int


DroppedBody = Callable[[Dropped], dict[str, Any]]


class Outbox:
    """A bounded FIFO of encoded events keyed by `seq` (blocking; one thread at a time)."""

    def __init__(self, path: Path | None, max_events: int) -> None:
        if max_events < 2:
            raise ValueError("max_events must be at least 2")
        self.max_events = max_events
        self.path = path
        self.persistent = False
        self.errors = 0
        self.last_seq = 0
        self.low_seq = 1  # lowest seq that may still be stored
        self._db = self._open(path)

    # --- opening ----------------------------------------------------------------------

    def _open(self, path: Path | None) -> sqlite3.Connection:
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    db = self._connect(str(path))
                except sqlite3.DatabaseError as err:
                    if isinstance(err, sqlite3.OperationalError):
                        raise  # locked, read-only, no space: not the file's fault
                    db = self._connect(str(self._set_aside(path, err)))
            except (OSError, sqlite3.Error) as err:
                self.errors += 1
                log.error(
                    "MQTT outbox %s cannot be opened (%s): events are kept in memory only and "
                    "are lost on restart; check gateway.state_dir",
                    path,
                    err,
                )
            else:
                self.persistent = True
                return db
        return self._connect(MEMORY)

    def _set_aside(self, path: Path, err: sqlite3.Error) -> Path:
        """Rename a damaged database out of the way (kept for inspection); return `path`."""
        self.errors += 1
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            part = Path(f"{path}{suffix}")
            if part.exists():
                part.replace(Path(f"{aside}{suffix}"))
        log.error(
            "MQTT outbox %s is damaged (%s): moved to %s and started empty; events stored "
            "in it are not delivered, and seq restarts at 1 (the boot_id tells the runs apart)",
            path,
            err,
            aside,
        )
        return path

    def _connect(self, where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, isolation_level=None, check_same_thread=False)
        try:
            if where != MEMORY:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"journal_mode is {mode}, not wal")
                db.execute("PRAGMA synchronous=NORMAL")
            for stmt in _SCHEMA:
                db.execute(stmt)
            row = db.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
            last = int(row[0]) if row else 0
            low_row = db.execute("SELECT MIN(seq), MAX(seq) FROM events").fetchone()
        except (sqlite3.Error, TypeError, ValueError):
            db.close()
            raise
        if low_row[1] is not None:
            last = max(last, int(low_row[1]))
        self.last_seq = last
        self.low_seq = int(low_row[0]) if low_row[0] is not None else last + 1
        return db

    def _fall_back_to_memory(self, err: sqlite3.Error) -> None:
        """Keep going in memory after a write failed on disk (disk full, read-only)."""
        self.errors += 1
        log.error(
            "MQTT outbox %s failed (%s): events are kept in memory from now on and are lost "
            "on restart; check gateway.state_dir (space, permissions)",
            self.path,
            err,
        )
        old, low, last = self._db, self.low_seq, self.last_seq
        rows: list[tuple[int, bytes]] = []
        with contextlib.suppress(sqlite3.Error):
            rows = [(int(s), bytes(p)) for s, p in old.execute("SELECT seq, payload FROM events")]
        with contextlib.suppress(sqlite3.Error):
            old.close()
        self._db = self._connect(MEMORY)
        self._db.executemany("INSERT INTO events (seq, payload) VALUES (?, ?)", rows)
        self.persistent = False
        self.low_seq = min([low, *(s for s, _ in rows)]) if rows else last + 1
        self.last_seq = last

    # --- operations -------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Events stored and not yet acknowledged."""
        return self.last_seq - self.low_seq + 1

    def append(self, bodies: list[dict[str, Any]], dropped_body: DroppedBody) -> Dropped | None:
        """Number, encode and store `bodies` in order; drop the oldest rows beyond the bound.

        A body that cannot be encoded (NaN, unknown type) raises ValueError/TypeError before
        anything is written. When rows are dropped, one more event built by `dropped_body`
        is stored after the new ones (it reports the gap). Returns what was dropped, if any.
        """
        try:
            return self._append(bodies, dropped_body)
        except sqlite3.Error as err:
            if not self.persistent:
                raise
            self._fall_back_to_memory(err)
            return self._append(bodies, dropped_body)

    def _append(self, bodies: list[dict[str, Any]], dropped_body: DroppedBody) -> Dropped | None:
        seq = self.last_seq
        rows: list[tuple[int, bytes]] = []
        for body in bodies:
            seq += 1
            rows.append((seq, encode_event({**body, "seq": seq})))
        dropped: Dropped | None = None
        # Room for the new rows (and one drop report) within max_events.
        excess = (seq - self.low_seq + 1) - self.max_events
        if excess > 0:
            excess += 1
            first = self.low_seq
            dropped = Dropped(count=excess, first_seq=first, last_seq=first + excess - 1)
            seq += 1
            rows.append((seq, encode_event({**dropped_body(dropped), "seq": seq})))
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if dropped is not None:
                db.execute("DELETE FROM events WHERE seq <= ?", (dropped.last_seq,))
                # Rows dropped may include ones not yet written (more new rows than room).
                rows = [r for r in rows if r[0] > dropped.last_seq]
            db.executemany("INSERT INTO events (seq, payload) VALUES (?, ?)", rows)
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (seq,),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        self.last_seq = seq
        if dropped is not None:
            self.low_seq = dropped.last_seq + 1
        return dropped

    def read(self, after_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Return up to `limit` stored rows with seq > `after_seq`, in seq order."""
        cur = self._db.execute(
            "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [(int(s), bytes(p)) for s, p in cur]

    def delete_through(self, seq: int) -> None:
        """Forget every row with seq <= `seq` (acknowledged by the broker)."""
        if seq < self.low_seq:
            return
        try:
            self._db.execute("DELETE FROM events WHERE seq <= ?", (seq,))
        except sqlite3.Error as err:
            if not self.persistent:
                raise
            self._fall_back_to_memory(err)
            self._db.execute("DELETE FROM events WHERE seq <= ?", (seq,))
        self.low_seq = min(seq, self.last_seq) + 1

    def close(self) -> None:
        """Close the database (a checkpoint folds the WAL back into the file)."""
        try:
            self._db.close()
        except sqlite3.Error as err:
            log.warning("MQTT outbox close failed: %s", err)


class OutboxWorker:
    """Runs an `Outbox` on one dedicated thread; every call is awaited off the event loop."""

    def __init__(self, outbox: Outbox, executor: concurrent.futures.ThreadPoolExecutor) -> None:
        self.outbox = outbox
        self.closed = False
        self._executor = executor

    @classmethod
    async def open(cls, path: Path | None, max_events: int) -> OutboxWorker:
        """Open (or create) the outbox on a new thread of its own."""
        executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="mqtt-outbox"
        )
        loop = asyncio.get_running_loop()
        outbox = await loop.run_in_executor(executor, Outbox, path, max_events)
        return cls(outbox, executor)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the outbox thread (one at a time, in call order)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def call_blocking(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on the outbox thread and wait (for shutdown, off any loop)."""
        return self._executor.submit(fn, *args).result()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue `fn(*args)` on the outbox thread without waiting (it must not raise).

        After `close` the call is dropped: what it would have done (forget acknowledged
        events) is redone after the next start, which sends those events again.
        """
        if self.closed:
            log.debug("MQTT outbox closed: %s dropped", getattr(fn, "__name__", fn))
            return
        self._executor.submit(fn, *args)

    def close(self) -> None:
        """Close the database and stop the thread (pending calls finish first)."""
        if self.closed:
            return
        self.closed = True
        self._executor.submit(self.outbox.close)
        self._executor.shutdown(wait=True)
