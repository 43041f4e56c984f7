"""The event journal: numbers every notice once, keeps the latest in memory, fans them out.

Every notice on the bus becomes its `events` message (`gateway.publishers.payloads.
event_message`) with a `seq` that continues from the history store's last one, so numbers
stay unique across restarts while the history is kept. The web API pages through them by
`seq`; the history writer stores them; live listeners (the dashboard's stream) wake up.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

from gateway.core.bus import EventBus, Overflow
from gateway.core.clock import Clock
from gateway.core.events import Notice
from gateway.publishers.payloads import event_message

RECENT = 1000  # events kept in memory for the API and the live stream

Sink = Callable[[int, float, dict[str, Any]], None]


class EventJournal:
    """Numbers notices and keeps the most recent `RECENT` of them."""

    def __init__(self, bus: EventBus, clock: Clock) -> None:
        self._clock = clock
        self._sub = bus.subscribe("journal", Notice, overflow=Overflow.NEVER_DROP)
        self.seq = 0
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self._sinks: list[Sink] = []
        self._changed = asyncio.Event()

    def add_sink(self, sink: Sink) -> None:
        """Call `sink(seq, wall_ts, message)` for every new event (must not block)."""
        self._sinks.append(sink)

    async def run(self) -> None:
        """Take notices off the bus forever."""
        async for notice in self._sub:
            self.record(notice)

    def record(self, notice: Notice) -> dict[str, Any]:
        """Number one notice and hand it to the sinks and listeners."""
        self.seq += 1
        message = event_message(notice, self.seq, self._clock)
        self.recent.append(message)
        ts = self._clock.wall(notice.at_s).timestamp()
        for sink in self._sinks:
            sink(self.seq, ts, message)
        self._changed.set()
        self._changed = asyncio.Event()
        return message

    def after(self, seq: int, limit: int) -> list[dict[str, Any]]:
        """The in-memory events with seq > `seq`, oldest first, at most `limit`."""
        return [m for m in self.recent if m["seq"] > seq][:limit]

    @property
    def oldest_seq(self) -> int | None:
        """Seq of the oldest event still in memory."""
        return self.recent[0]["seq"] if self.recent else None

    async def wait_newer(self, seq: int) -> None:
        """Return once an event with seq > `seq` exists."""
        while self.seq <= seq:
            await self._changed.wait()
