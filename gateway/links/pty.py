"""A pseudo-terminal pair in raw mode: a serial cable with two ends inside one machine.

The *device* end (`device_path`, e.g. `/dev/pts/7`) is what a serial client opens, as it
would open `/dev/ttyUSB0`. The *controller* end (`controller_fd`) is what a simulator reads
requests from and writes replies to. A pty does not emulate baud-rate timing.
"""

from __future__ import annotations

import contextlib
import os
import tty
from dataclasses import dataclass


@dataclass
class PtyPair:
    """Both ends of one pty. `close()` is idempotent."""

    controller_fd: int
    device_fd: int
    device_path: str
    _closed: bool = False

    def close(self) -> None:
        """Close both ends (a client on `device_path` then sees the line drop)."""
        if self._closed:
            return
        self._closed = True
        for fd in (self.controller_fd, self.device_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> PtyPair:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_pty_pair() -> PtyPair:
    """Create a raw, non-blocking pty pair.

    The device end stays open here too, so the controller end never sees a hang-up while a
    client closes and reopens the port.
    """
    controller_fd, device_fd = os.openpty()
    tty.setraw(device_fd)
    os.set_blocking(controller_fd, False)
    return PtyPair(controller_fd, device_fd, os.ttyname(device_fd))
