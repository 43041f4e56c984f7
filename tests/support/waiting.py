"""Poll-with-timeout for conditions that real I/O (sockets, threads, a broker) makes true."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

import pytest


async def until(
    predicate: Callable[[], bool | Awaitable[bool]],
    what: str,
    timeout_s: float = 15.0,
    poll_s: float = 0.02,
) -> None:
    """Poll `predicate` until it is true; fail the test naming `what` after `timeout_s`.

    The predicate may be a coroutine function (e.g. one that asks an HTTP API).
    """
    deadline = time.monotonic() + timeout_s

    async def holds() -> bool:
        result = predicate()
        return bool(await result) if inspect.isawaitable(result) else bool(result)

    while not await holds():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(poll_s)


def until_sync(
    predicate: Callable[[], bool], what: str, timeout_s: float = 30.0, poll_s: float = 0.02
) -> None:
    """`until` for threads and subprocess tests that have no event loop to yield to."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(poll_s)
