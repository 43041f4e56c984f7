"""An independent MQTT client that records what the gateway publishes."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiomqtt

from tests.support.broker import Broker


@contextlib.asynccontextmanager
async def watching(broker: Broker, topic: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect every JSON message on `topic` (QoS 1) while the block runs."""
    got: list[dict[str, Any]] = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)

        async def receive() -> None:
            async for m in client.messages:
                assert isinstance(m.payload, bytes)
                got.append(json.loads(m.payload))

        task = asyncio.create_task(receive())
        try:
            yield got
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
