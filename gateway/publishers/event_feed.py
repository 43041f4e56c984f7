"""The `events` side of the MQTT publisher: bus → persistent outbox → broker, in `seq` order.

`EventFeed.run` takes notices off the bus as they arrive and writes them in batches to the
outbox (`outbox.py`, on its own thread), which numbers them; `EventFeed.send` publishes the
stored events in `seq` order on a connection and forgets each once the broker acknowledged
it. Every event carries the `boot_id` of the process that raised it. Nothing here runs on the
control path: the bus subscription never blocks a publisher of notices.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.core.bus import EventBus, Overflow
from gateway.core.clock import Clock
from gateway.core.events import Notice
from gateway.publishers.outbox import Dropped, OutboxWorker
from gateway.publishers.payloads import encode, isotime

log = logging.getLogger(__name__)

WRITE_BATCH = 500  # notices written to the outbox in one transaction (at most)
SEND_BATCH = 100  # outbox rows read at once by the sender
SEND_WINDOW = 16  # events published and not yet acknowledged, at most

Publish = Callable[[bytes], Coroutine[Any, Any, None]]


class EventFeed:
    """Bus subscription, outbox and sender of the `events` topic."""

    def __init__(
        self,
        bus: EventBus,
        clock: Clock,
        registry: CollectorRegistry,
        *,
        path: Path | None,
        max_events: int,
        boot_id: str,
        failures: Counter,
    ) -> None:
        """`failures`: the publisher's `bms_mqtt_publish_failures` (label `topic`)."""
        self._clock = clock
        self._path = path
        self._max_events = max_events
        self.boot_id = boot_id
        self._ready = asyncio.Event()
        self._acked_seq = 0  # highest seq the broker acknowledged on this run
        self.dropped_count = 0
        self._worker: OutboxWorker | None = None  # opened by `run`
        # Subscribe now, so notices raised before `run` starts are not missed.
        self._notices = bus.subscribe("mqtt", Notice, overflow=Overflow.NEVER_DROP)
        self._dropped = Counter(
            "bms_mqtt_events_dropped",
            "Events dropped because the outbox was full (broker away too long).",
            registry=registry,
        )
        self._backlog = Gauge(
            "bms_mqtt_events_backlog",
            "Events in the outbox waiting for the broker's acknowledgement.",
            registry=registry,
        )
        self._persistent = Gauge(
            "bms_mqtt_outbox_persistent",
            "1 while the events outbox is on disk, 0 when it fell back to memory.",
            registry=registry,
        )
        self._errors = Counter(
            "bms_mqtt_outbox_errors",
            "Failures of the events outbox (open, write, encoding).",
            registry=registry,
        )
        self._failures = failures

    @property
    def _outbox(self) -> OutboxWorker:
        assert self._worker is not None, "the outbox is open only while `run` runs"
        return self._worker

    @property
    def backlog(self) -> int:
        """Events in the outbox not yet acknowledged by the broker."""
        return 0 if self._worker is None else self._worker.outbox.count

    @property
    def last_seq(self) -> int:
        """The newest `seq` given to an event (continued across restarts)."""
        return 0 if self._worker is None else self._worker.outbox.last_seq

    @property
    def open(self) -> bool:
        """True while `run` has the outbox open."""
        return self._worker is not None and not self._worker.closed

    # --- bus → outbox -----------------------------------------------------------------

    async def run(self) -> None:
        """Open the outbox and store every notice until cancelled (then flush; `close` closes)."""
        self._worker = await OutboxWorker.open(self._path, self._max_events)
        self._acked_seq = 0
        self._errors.inc(self._worker.outbox.errors)
        self._sync_metrics()
        self._ready.set()
        batch: list[dict[str, Any]] = []
        try:
            while True:
                notice = await self._notices.get()
                self._add(batch, notice)
                while len(batch) < WRITE_BATCH and (more := self._notices.get_nowait()):
                    self._add(batch, more)
                await self._outbox.call(self._write, batch)
                self._ready.set()
        finally:
            # Cancelled (shutdown): what was taken off the bus still goes to disk. On the
            # outbox thread, after any write still running; `_write` empties the batch it
            # committed, so nothing is written twice.
            while more := self._notices.get_nowait():
                self._add(batch, more)
            if batch:
                self._outbox.call_blocking(self._write, batch)

    def close(self) -> None:
        """Close the outbox; its owner calls this once `run` and `send` have both ended.

        (Closing it in `run` raced with `send`: an acknowledgement arriving after the close
        failed the sender, which the connection loop took for a lost broker during shutdown.)
        """
        if self._worker is not None:
            self._worker.close()

    def _body(self, notice: Notice) -> dict[str, Any]:
        body = dict(notice.payload())
        body["timestamp"] = isotime(self._clock.wall(notice.at_s))
        body["boot_id"] = self.boot_id
        return body

    def _dropped_body(self, dropped: Dropped) -> dict[str, Any]:
        return {
            "type": "events_dropped",
            "count": dropped.count,
            "first_seq": dropped.first_seq,
            "last_seq": dropped.last_seq,
            "timestamp": isotime(self._clock.wall()),
            "boot_id": self.boot_id,
        }

    def _add(self, batch: list[dict[str, Any]], notice: Notice) -> None:
        try:
            body = self._body(notice)
            encode(body)  # fail here, not in the outbox transaction
        except (ValueError, TypeError, NotImplementedError):
            self._failures.labels(topic="events").inc()
            log.exception("MQTT event %s could not be encoded; dropped", type(notice).__name__)
            return
        batch.append(body)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        """Store `batch` (runs on the outbox thread) and empty it once committed."""
        outbox = self._outbox.outbox
        errors = outbox.errors
        try:
            dropped = outbox.append(batch, self._dropped_body)
        except Exception:  # the in-memory fallback failed too: nothing more we can do
            self._errors.inc()
            log.exception("MQTT outbox write failed; %d event(s) lost", len(batch))
            batch.clear()
            return
        batch.clear()
        self._errors.inc(outbox.errors - errors)
        if dropped is not None:
            self._dropped.inc(dropped.count)
            self.dropped_count += dropped.count
            log.error(
                "MQTT events outbox full (mqtt.outbox_max_events = %d): dropped seq %d..%d "
                "(%d event(s)); %d dropped since start",
                outbox.max_events,
                dropped.first_seq,
                dropped.last_seq,
                dropped.count,
                self.dropped_count,
            )
        self._sync_metrics()

    def _sync_metrics(self) -> None:
        outbox = self._outbox.outbox
        self._backlog.set(outbox.count)
        self._persistent.set(1 if outbox.persistent else 0)

    # --- outbox → broker --------------------------------------------------------------

    async def send(self, publish: Publish) -> None:
        """Publish stored events in `seq` order with `publish` (QoS 1) until it raises.

        Up to `SEND_WINDOW` publishes are in flight at once, started in `seq` order (one
        connection: the broker receives and acknowledges them in that order); an event is
        forgotten only when it and every event before it were acknowledged.
        """
        await self._ready.wait()  # the outbox is open
        outbox = self._outbox.outbox
        inflight: collections.deque[tuple[int, asyncio.Task[None]]] = collections.deque()
        try:
            while True:
                self._ready.clear()  # before reading: a write after the read sets it
                after = inflight[-1][0] if inflight else self._acked_seq
                rows = await self._outbox.call(outbox.read, after, SEND_BATCH)
                if not rows:
                    if inflight:
                        await self._acknowledged(inflight.popleft())
                    else:
                        await self._ready.wait()
                    continue
                for seq, payload in rows:
                    while len(inflight) >= SEND_WINDOW:
                        await self._acknowledged(inflight.popleft())
                    task = asyncio.create_task(publish(payload), name=f"mqtt:event:{seq}")
                    inflight.append((seq, task))
        finally:
            for _, task in inflight:
                task.cancel()
            await asyncio.gather(*(t for _, t in inflight), return_exceptions=True)

    async def _acknowledged(self, item: tuple[int, asyncio.Task[None]]) -> None:
        seq, task = item
        await task  # raises when the connection dropped
        self._acked_seq = seq
        # Forgotten at once (in order, on the outbox thread): after a crash only the events
        # in flight are sent again.
        self._outbox.submit(self._forget, seq)

    def _forget(self, seq: int) -> None:
        """Delete acknowledged rows (runs on the outbox thread)."""
        try:
            self._outbox.outbox.delete_through(seq)
        except Exception:
            self._errors.inc()
            log.exception("MQTT outbox delete failed (seq %d)", seq)
        self._sync_metrics()
