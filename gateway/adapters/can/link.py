"""The python-can bus owner: open with backoff, a reader thread feeding the loop, sends.

Reception never blocks the event loop: a daemon thread calls the (blocking) `bus.recv` and
hands frames to the loop in batches. A failure of the bus (open error, receive or send
error, bus-off error frame) closes it; `run` reopens it with a doubling delay. Transitions
are logged once each way and reported through `on_state`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

import can

from gateway.adapters.can.config import CanSection
from gateway.adapters.can.dbc import Frame
from gateway.adapters.can.metrics import CanMetrics
from gateway.core.clock import Clock

log = logging.getLogger(__name__)

BusFactory = Callable[[], can.BusABC]
SOCKETCAN_ERR_BUSOFF = 0x40  # linux/can/error.h CAN_ERR_BUSOFF, in an error frame's id
TX_FAILURES_BEFORE_REOPEN = 10
BATCH = 1000


def bus_from_config(cfg: CanSection) -> BusFactory:
    """Return a factory opening the configured python-can bus."""

    def open_bus() -> can.BusABC:
        kwargs: dict[str, Any] = {"bitrate": cfg.bitrate, **cfg.options}
        bus: can.BusABC = can.Bus(interface=cfg.interface, channel=cfg.channel, **kwargs)
        return bus

    return open_bus


class _Reader(threading.Thread):
    """Reads one bus until stopped or failed, then shuts the bus down."""

    def __init__(
        self,
        bus: can.BusABC,
        loop: asyncio.AbstractEventLoop,
        wake: Callable[[], None],
        maxlen: int,
        on_drop: Callable[[], None],
    ) -> None:
        super().__init__(name="can-reader", daemon=True)
        self.bus = bus
        self.frames: collections.deque[can.Message] = collections.deque()
        self.failure: BaseException | None = None
        self.stopping = threading.Event()
        self.pending = False
        self.received = 0
        self._loop = loop
        self._wake = wake
        self._maxlen = maxlen
        self._on_drop = on_drop

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                msg = self.bus.recv(timeout=0.1)
                if msg is None:
                    continue
                if len(self.frames) >= self._maxlen:
                    self._on_drop()
                    continue
                self.frames.append(msg)
                self.received += 1
                if not self.pending:
                    self.pending = True
                    self._notify()
        except BaseException as err:  # any receive failure ends this bus; run() reopens
            if not self.stopping.is_set():
                self.failure = err
                self._notify()
        finally:
            try:
                self.bus.shutdown()
            except Exception:  # closing a broken bus may fail too; it is gone either way
                log.debug("CAN bus shutdown failed", exc_info=True)

    def _notify(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the gateway is stopping
            self.stopping.set()


class CanLink:
    """Owns the python-can bus of one CAN port."""

    def __init__(
        self,
        cfg: CanSection,
        clock: Clock,
        metrics: CanMetrics,
        bus_factory: BusFactory | None = None,
        on_state: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.clock = clock
        self.metrics = metrics
        self.bus_factory = bus_factory or bus_from_config(cfg)
        self.on_state = on_state or (lambda up, reason: None)
        self.up = False
        self._reader: _Reader | None = None
        self._event = asyncio.Event()
        self._handled = asyncio.Event()  # replaced (after being set) each time frames are handled
        self._failure: str | None = None
        self._tx_failures = 0
        self._down_logged = False

    @property
    def rx_seen(self) -> int:
        """Frames the current reader thread has queued for the loop (scenario sync point)."""
        reader = self._reader
        return 0 if reader is None else reader.received

    async def handled_beyond(self, count: int) -> None:
        """Wait until the loop has handled a frame beyond the first `count` the reader queued."""
        while self.rx_seen <= count:
            await self._handled.wait()

    def _describe(self) -> str:
        return f"{self.cfg.interface}:{self.cfg.channel}"

    async def run(self, on_frames: Callable[[list[can.Message]], None]) -> None:
        """Open, serve and reopen the bus until cancelled."""
        delay = self.cfg.reopen_min_s
        while True:
            try:
                bus = self.bus_factory()
            except Exception as err:  # any driver's open failure: log it and retry
                self._went_down(f"cannot open: {type(err).__name__}: {err}", delay)
            else:
                delay = self.cfg.reopen_min_s
                reason = await self._serve(bus, on_frames)
                self._went_down(reason, delay)
            await self.clock.sleep(delay)
            delay = min(delay * 2, self.cfg.reopen_max_s)
            self.metrics.reopens.inc()

    def _went_down(self, reason: str, retry_s: float) -> None:
        self.metrics.bus_errors.inc()
        was_up = self.up
        self.up = False
        self.metrics.up.set(0)
        if was_up or not self._down_logged:
            log.error(
                "CAN bus %s down (%s); retrying every %.3g s or more",
                self._describe(),
                reason,
                retry_s,
            )
            self._down_logged = True
            self.on_state(False, reason)

    async def _serve(self, bus: can.BusABC, on_frames: Callable[[list[can.Message]], None]) -> str:
        loop = asyncio.get_running_loop()
        self._failure = None
        self._tx_failures = 0
        self._event.clear()
        reader = _Reader(bus, loop, self._event.set, self.cfg.rx_queue, self.metrics.rx_dropped.inc)
        self._reader = reader
        reader.start()
        self.up = True
        self.metrics.up.set(1)
        log.info("CAN bus %s open (%d bit/s)", self._describe(), self.cfg.bitrate)
        self._down_logged = False
        self.on_state(True, "")
        try:
            while True:
                await self._event.wait()
                self._event.clear()
                reader.pending = False
                frames = reader.frames
                while frames:
                    n = min(len(frames), BATCH)
                    batch = [frames.popleft() for _ in range(n)]
                    on_frames(batch)
                    if frames:
                        await asyncio.sleep(0)
                handled, self._handled = self._handled, asyncio.Event()
                handled.set()
                if reader.failure is not None:
                    return f"receive failed: {reader.failure!r}"
                if self._failure is not None:
                    return self._failure
        finally:
            self._reader = None
            reader.stopping.set()  # the thread shuts the bus down within its recv timeout

    def fail(self, reason: str) -> None:
        """Close the bus now and reopen it (bus-off seen, repeated send failures)."""
        if self._reader is not None and self._failure is None:
            self._failure = reason
            self._event.set()

    def send(self, frame: Frame) -> bool:
        """Send one frame without waiting; False (counted) when it could not be sent."""
        reader = self._reader
        if reader is None or self._failure is not None:
            self.metrics.tx_errors.inc()
            return False
        msg = can.Message(
            arbitration_id=frame.arbitration_id,
            data=frame.data,
            is_extended_id=frame.is_extended_id,
        )
        try:
            reader.bus.send(msg, timeout=0)
        except (can.CanError, OSError, ValueError) as err:
            self.metrics.tx_errors.inc()
            self._tx_failures += 1
            if self._tx_failures == 1:
                log.warning("CAN send failed: %s", err)
            if self._tx_failures >= TX_FAILURES_BEFORE_REOPEN:
                self.fail(f"{self._tx_failures} sends failed in a row: {err}")
            return False
        self._tx_failures = 0
        self.metrics.tx_frames.inc()
        return True
