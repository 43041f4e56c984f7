"""One clock for every timer, period, timeout and timestamp.

`RealClock` follows the event loop's monotonic time; `VirtualClock` only moves when told
to, so scenarios run hours of battery life in seconds and tests never sleep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """What every timing user needs from a clock."""

    def now(self) -> float:
        """Return monotonic seconds."""
        ...

    def wall(self, monotonic_s: float | None = None) -> datetime:
        """Return the UTC wall time of `monotonic_s` (default: now)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""
        ...

    async def sleep_until(self, deadline_s: float) -> None:
        """Sleep until the monotonic time `deadline_s`."""
        ...


class RealClock:
    """The event loop's monotonic clock, with wall time derived from one offset."""

    def __init__(self) -> None:
        self._offset_s = time.time() - time.monotonic()

    def now(self) -> float:
        """Return monotonic seconds (the same base as the event loop's time)."""
        return time.monotonic()

    def wall(self, monotonic_s: float | None = None) -> datetime:
        """Return the UTC wall time of a monotonic instant."""
        t = self.now() if monotonic_s is None else monotonic_s
        return datetime.fromtimestamp(t + self._offset_s, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        await asyncio.sleep(max(0.0, seconds))

    async def sleep_until(self, deadline_s: float) -> None:
        """Sleep until a monotonic deadline."""
        await asyncio.sleep(max(0.0, deadline_s - self.now()))


class VirtualClock:
    """A clock that moves only through `advance`; sleepers wake in deadline order."""

    def __init__(self, start_s: float = 0.0, wall_epoch_s: float = 1_767_225_600.0) -> None:
        self._now_s = start_s
        self._wall_epoch_s = wall_epoch_s  # 2026-01-01T00:00:00Z for reproducible output
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        """Return virtual monotonic seconds."""
        return self._now_s

    def wall(self, monotonic_s: float | None = None) -> datetime:
        """Return the virtual UTC wall time."""
        t = self._now_s if monotonic_s is None else monotonic_s
        return datetime.fromtimestamp(self._wall_epoch_s + t, tz=UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of virtual time."""
        await self.sleep_until(self._now_s + max(0.0, seconds))

    async def sleep_until(self, deadline_s: float) -> None:
        """Wait until `advance` moves the clock to `deadline_s`."""
        if deadline_s <= self._now_s:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline_s, next(self._seq), fut))
        await fut

    def next_deadline(self) -> float | None:
        """Return the earliest pending wake-up, if any."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    async def settle(self, rounds: int = 20) -> None:
        """Let every runnable task run until the loop is idle (bounded)."""
        for _ in range(rounds):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, waking each sleeper at its own deadline."""
        await self.advance_to(self._now_s + seconds)

    async def advance_to(self, target_s: float) -> None:
        """Move time forward to `target_s`, waking sleepers in order."""
        await self.settle()
        while True:
            deadline = self.next_deadline()
            if deadline is None or deadline > target_s:
                break
            _, _, fut = heapq.heappop(self._sleepers)
            self._now_s = max(self._now_s, deadline)
            if not fut.done():
                fut.set_result(None)
            await self.settle()
        self._now_s = max(self._now_s, target_s)
        await self.settle()
