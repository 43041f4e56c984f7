"""Why a device path cannot be opened, in words a user can act on (no `[Errno N]` reprs)."""

from __future__ import annotations

import errno
import os
from pathlib import Path


def device_problem(path: str) -> str | None:
    """Say why a device path cannot be opened read/write, in words (None: it can)."""
    if "://" in path:  # pyserial URL (socket://, rfc2217://): nothing to check locally
        return None
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        return f"{path} does not exist (is the adapter plugged in? see `ls /dev/serial/by-id/`)"
    except OSError as err:
        return f"{path}: {err.strerror or err}"
    if not os.access(p, os.R_OK | os.W_OK):
        return (
            f"{path}: permission denied; add the user to the device's group "
            "(`sudo usermod -aG dialout $USER` for serial ports, `gpio` for GPIO chips) "
            "and log in again"
        )
    return None


def os_reason(err: BaseException, path: str = "") -> str:
    """An OS error as words with what to check (no `[Errno N]` reprs)."""
    code = getattr(err, "errno", None)
    what = getattr(err, "strerror", None) or str(err) or type(err).__name__
    if code == errno.ENOENT:
        return f"{path or 'device'}: no such file or device (is the adapter plugged in?)"
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"{path or 'device'}: permission denied (add the user to the `dialout` group: "
            "`sudo usermod -aG dialout $USER`, then log in again)"
        )
    if code == errno.EBUSY:
        return f"{path or 'device'}: busy (another program, or a running gateway, has it open)"
    return f"{path}: {what}" if path else what
