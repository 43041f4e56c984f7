"""Durable, atomic writes of the engine's state files, off the control path.

The engine `submit`s the new content of a file (latched errors, persisted go-safe
requests) and carries on: opening relays never waits for a disk. A writer task (`run`,
owned by the engine component) writes each file in a worker thread as
write-temporary → fsync → rename → fsync(directory), so a crash or power cut leaves the
old or the new file, never a torn one. Releasing relays does wait: the engine applies an
acknowledgement or a go-safe release only once `durable(file, ticket)` says the file
without that latch/request is on disk.

A failed write sets `fault` (the file and the OS reason); the engine raises the critical
error `state_persistence_fault` from it, keeping every relay open, and the writer retries
with backoff until the write succeeds.

Before the task runs (scenarios, tests, start-up) and after it stops, the writer is
`inline`: `submit` writes at once on the caller's thread, and `poll` retries a failed
write on the next engine step.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.hal.backend import describe_error

if TYPE_CHECKING:
    from gateway.core.clock import Clock

log = logging.getLogger(__name__)

CRITICAL_NOTE = "; every relay stays open until it is written (state_persistence_fault)"
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


class FileOps(Protocol):
    """The OS-call seam: write one file durably (tests inject ENOSPC/EROFS here)."""

    def write_durably(self, path: Path, data: bytes) -> None:
        """Replace `path` by `data` atomically and durably; raise OSError on failure."""
        ...


class PosixFileOps:
    """write(tmp) → fsync(tmp) → rename(tmp, path) → fsync(directory)."""

    def write_durably(self, path: Path, data: bytes) -> None:
        """Replace `path` by `data` atomically and durably."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink_quietly(tmp)
            raise
        os.close(fd)
        try:
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def encode(data: Any) -> bytes:
    """The on-disk form of a state file."""
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


class StateWriter:
    """Latest content per file, written durably by one task; tickets say what is on disk."""

    def __init__(self, state_dir: Path, ops: FileOps | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.ops: FileOps = ops or PosixFileOps()
        self.inline = True
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._seq = 0
        self._pending: dict[str, tuple[int, bytes]] = {}  # file -> (ticket, content)
        self._durable: dict[str, int] = {}  # file -> newest ticket on disk
        self._failures: dict[str, str] = {}  # file -> reason of its last failed write
        self._minor: set[str] = set()  # files whose failure is not a fault
        self._wake: asyncio.Event | None = None
        self.writes = 0
        self.write_failures = 0

    # --- the engine's side (its own task) ---------------------------------------------

    def submit(self, name: str, data: Any, *, critical: bool = True) -> int:
        """Queue the new content of `name`; return its ticket (see `durable`).

        A failed write of a `critical` file (latches, go-safe) is the `fault`; of another
        (the SOC) it is logged and retried only.
        """
        content = encode(data)
        with self._lock:
            if not critical:
                self._minor.add(name)
            self._seq += 1
            ticket = self._seq
            self._pending[name] = (ticket, content)
        if self.inline:
            self._write_pending()
        elif self._wake is not None:
            self._wake.set()
        return ticket

    def durable(self, name: str, ticket: int) -> bool:
        """True once `name` holds the content of `ticket` (or newer) on disk."""
        with self._lock:
            return self._durable.get(name, 0) >= ticket

    @property
    def fault(self) -> str | None:
        """Why some state is not on disk (None: everything submitted is written)."""
        with self._lock:
            failures = sorted((n, r) for n, r in self._failures.items() if n not in self._minor)
        if not failures:
            return None
        name, reason = failures[0]
        return f"cannot write {self.state_dir / name}: {reason}"

    def poll(self) -> None:
        """Inline mode: retry failed writes (called every engine step)."""
        if self.inline and self._pending:
            self._write_pending()

    # --- the writer ---------------------------------------------------------------------

    def _write_pending(self) -> bool:
        """Write every pending file once; return True when all succeeded."""
        with self._io_lock:  # one writer at a time (a cancelled worker may still be writing)
            return self._write_pending_locked()

    def _write_pending_locked(self) -> bool:
        with self._lock:
            batch = dict(self._pending)
        ok = True
        for name, (ticket, content) in sorted(batch.items()):
            try:
                self.ops.write_durably(self.state_dir / name, content)
            except Exception as err:  # OSError: ENOSPC, EROFS, EACCES, EIO...
                ok = False
                reason = describe_error(err)
                with self._lock:
                    self.write_failures += 1
                    first = name not in self._failures
                    self._failures[name] = reason
                if first:
                    log.error(
                        "cannot write %s: %s%s",
                        self.state_dir / name,
                        reason,
                        "" if name in self._minor else CRITICAL_NOTE,
                    )
                continue
            with self._lock:
                self.writes += 1
                self._durable[name] = max(self._durable.get(name, 0), ticket)
                if self._pending.get(name, (0,))[0] == ticket:
                    del self._pending[name]
                if self._failures.pop(name, None) is not None:
                    log.warning("%s written again: state is on disk", self.state_dir / name)
        return ok

    async def run(self, clock: Clock) -> None:
        """Write submitted files in a worker thread until cancelled; retry with backoff."""
        self._wake = asyncio.Event()
        self.inline = False
        backoff = 0.0
        try:
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                if await asyncio.to_thread(self._write_pending):
                    backoff = 0.0
                    continue
                backoff = min(RETRY_MAX_S, max(RETRY_MIN_S, 2 * backoff))
                await clock.sleep(backoff)
        finally:
            self.inline = True
            self._wake = None
            if self._pending:
                self._write_pending()  # last attempt on the way out
