"""Asyncio publish/subscribe bus with one bounded queue per subscriber.

`publish` never blocks and never awaits: a slow or dead subscriber only fills its own queue.
Each subscription has an explicit overflow policy:

- `Overflow.KEEP_LATEST` (measurements): when full, the oldest item is dropped and counted.
- `Overflow.NEVER_DROP` (notices): the queue grows up to `hard_limit` items so nothing is
  lost to a burst; past that the subscriber is broken, and the drop is counted and logged
  as an error rather than letting memory grow without bound.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import AsyncIterator, Callable
from typing import Generic, TypeVar

from gateway.core.events import Event

log = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


class Overflow(enum.Enum):
    """What a full subscriber queue does with a new item."""

    KEEP_LATEST = "keep_latest"
    NEVER_DROP = "never_drop"


class Subscription(Generic[E]):
    """One subscriber's queue; iterate it or call `get`."""

    def __init__(
        self,
        name: str,
        types: tuple[type[E], ...],
        overflow: Overflow,
        maxsize: int,
        hard_limit: int,
        on_drop: Callable[[str], None],
    ) -> None:
        self.name = name
        self.types = types
        self.overflow = overflow
        self.maxsize = maxsize
        self.hard_limit = hard_limit
        self.dropped = 0
        self._items: collections.deque[E] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._on_drop = on_drop

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, event: E) -> None:
        """Queue an event without blocking, applying the overflow policy."""
        limit = self.maxsize if self.overflow is Overflow.KEEP_LATEST else self.hard_limit
        if len(self._items) >= limit:
            self.dropped += 1
            self._on_drop(self.name)
            if self.overflow is Overflow.KEEP_LATEST:
                self._items.popleft()
            else:
                if self.dropped == 1 or self.dropped % 1000 == 0:
                    log.error(
                        "subscriber %s is %d notices behind; dropped %d so far",
                        self.name,
                        len(self._items),
                        self.dropped,
                    )
                return
        self._items.append(event)
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> E | None:
        """Return the next queued event, or None."""
        return self._items.popleft() if self._items else None

    async def get(self) -> E:
        """Wait for the next event."""
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.popleft()

    def __aiter__(self) -> AsyncIterator[E]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[E]:
        while True:
            yield await self.get()


class EventBus:
    """Fan events out to subscribers by type (an event matches its base classes too)."""

    def __init__(self) -> None:
        self._subs: list[Subscription[Event]] = []
        self.published = 0
        self.drop_counts: collections.Counter[str] = collections.Counter()
        self._drop_listeners: list[Callable[[str], None]] = []
        self._subscribe_listeners: list[Callable[[str], None]] = []

    def subscribe(
        self,
        name: str,
        *types: type[E],
        overflow: Overflow = Overflow.KEEP_LATEST,
        maxsize: int = 256,
        hard_limit: int = 100_000,
    ) -> Subscription[E]:
        """Register a subscriber for events of `types` (and their subclasses)."""
        if not types:
            raise ValueError("subscribe needs at least one event type")
        sub: Subscription[E] = Subscription(
            name, types, overflow, maxsize, hard_limit, self._count_drop
        )
        self._subs.append(sub)  # type: ignore[arg-type]
        for listener in self._subscribe_listeners:
            listener(name)
        return sub

    def add_subscribe_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(subscriber_name)` for every subscriber, now and later (metrics)."""
        self._subscribe_listeners.append(listener)
        for sub in self._subs:
            listener(sub.name)

    def add_drop_listener(self, listener: Callable[[str], None]) -> None:
        """Call `listener(subscriber_name)` on every drop (used by metrics)."""
        self._drop_listeners.append(listener)

    def _count_drop(self, name: str) -> None:
        self.drop_counts[name] += 1
        for listener in self._drop_listeners:
            listener(name)

    def publish(self, event: Event) -> None:
        """Deliver `event` to every matching subscriber; never blocks."""
        self.published += 1
        for sub in self._subs:
            if isinstance(event, sub.types):
                sub.offer(event)
