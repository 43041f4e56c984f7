"""Task helpers for tests: stubborn cancellation, components running for one block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from gateway.core.supervise import cancel_and_wait

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext


async def cancel_for_sure(task: asyncio.Task[Any], retry_s: float = 0.5) -> int:
    """Cancel and await a task, repeating the cancel while it was swallowed.

    On Python 3.11, `asyncio.wait_for` (used by aiomqtt's QoS 1 publish and pymodbus) can
    drop a cancellation that races with the reply. Returns how many cancels it took.
    """
    attempts = await cancel_and_wait(task, retry_s)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return attempts


@contextlib.asynccontextmanager
async def running(ctx: GatewayContext, *components: Any) -> AsyncIterator[None]:
    """Run the state store and `components` while the block runs; cancel them after."""
    tasks = [asyncio.create_task(ctx.store.run())]
    tasks += [asyncio.create_task(c.run(), name=c.name) for c in components]
    try:
        yield
    finally:
        for t in tasks:
            await cancel_for_sure(t, retry_s=0.1)
