"""`<state_dir>/gateway.lock`: held (flock) by a running gateway, so offline tools can tell.

`bms-gateway ack` edits the latch file only while no gateway holds the lock: a running
gateway would overwrite the edit, so the user is pointed at the MQTT command instead.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = "gateway.lock"


@contextlib.contextmanager
def hold(state_dir: Path) -> Iterator[bool]:
    """Hold the run lock while the gateway runs; yields False when it could not be taken.

    A state directory that cannot be created or a lock held by another gateway does not stop
    this one (it logs elsewhere); the caller decides.
    """
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def holder(state_dir: Path) -> int | None:
    """The pid of the gateway running on `state_dir` (0 if unknown), or None when none runs."""
    try:
        fd = os.open(state_dir / LOCK_FILE, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 32).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
