"""Task helpers for tests."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any


async def cancel_for_sure(task: asyncio.Task[Any], retry_s: float = 0.5) -> int:
    """Cancel and await a task, repeating the cancel while it was swallowed.

    On Python 3.11, `asyncio.wait_for` (used by aiomqtt's QoS 1 publish) can drop a
    cancellation that races with the PUBACK. Returns how many cancels it took.
    """
    attempts = 0
    while not task.done():
        task.cancel()
        attempts += 1
        await asyncio.wait({task}, timeout=retry_s)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return attempts
