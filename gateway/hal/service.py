"""The driver service (adapter entry point `hal`): owns the drivers' lifetime.

It runs the background loop of every driver that has one (`async run(clock)`, e.g. the
Modbus I/O driver's sync loop), checks the relay lease every `drivers.lease_check_interval_s`
so the relays open even when the engine has died, and closes every driver (relays open)
when the gateway stops, however it stops.

The lease is also checked from a thread, which keeps running while the event loop is
blocked: `open_all()` from that thread writes the relays itself (sim and GPIO inline; the
Modbus driver writes its coils synchronously on its shared link from the calling thread,
see `gateway.hal.modbus_io.Polled._poke`), so no step of it needs the loop. Nothing here
helps when the whole process is frozen or killed: that is the relay module's own watchdog
or the GPIO wiring (docs/hardware.md).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext

log = logging.getLogger(__name__)


class DriverService:
    """Background loops, the lease watchdog and the fail-safe close of `ctx.drivers`."""

    name = "hal"

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.fault_gauge = Gauge(
            "bms_relay_driver_fault",
            "1 while the relay driver reports a fault (relay_driver_fault).",
            registry=ctx.registry,
        )
        self.error_counter = Counter(
            "bms_relay_driver_errors",
            "Relay driver failures: failed writes, failed Modbus syncs, read-back disagreements.",
            registry=ctx.registry,
        )
        self._errors_seen = 0

    def _count(self) -> None:
        """Mirror the relay driver's own fault flag and error count into Prometheus."""
        relays = self.ctx.drivers.relays
        try:
            fault = getattr(relays, "fault", None)
            errors = int(getattr(relays, "errors_total", 0))
        except Exception:
            log.exception("reading the relay driver's fault state failed")
            return
        self.fault_gauge.set(1 if fault else 0)
        if errors > self._errors_seen:
            self.error_counter.inc(errors - self._errors_seen)
        self._errors_seen = max(self._errors_seen, errors)

    async def run(self) -> None:
        """Run until cancelled; close the drivers on the way out."""
        drivers = self.ctx.drivers
        stop = threading.Event()
        watchdog = threading.Thread(
            target=self._watch_lease_outside_the_loop,
            args=(stop,),
            name="relay-lease-watchdog",
            daemon=True,
        )
        watchdog.start()
        try:
            async with asyncio.TaskGroup() as tg:
                for d in drivers.all():
                    loop = getattr(d, "run", None)
                    if loop is not None:
                        tg.create_task(loop(self.ctx.clock), name=f"driver:{type(d).__name__}")
                tg.create_task(self._watch_lease(), name="driver:lease")
        finally:
            stop.set()
            drivers.close()
            watchdog.join(timeout=1.0)
            log.info("drivers closed: every relay open")

    def _watch_lease_outside_the_loop(self, stop: threading.Event) -> None:
        """The same check from a thread: it still runs when the event loop is blocked."""
        interval = self.ctx.config.drivers.lease_check_interval_s
        relays = self.ctx.drivers.relays
        while not stop.wait(interval):
            try:
                relays.check_lease(self.ctx.clock.now())
            except Exception:
                log.exception("relay lease check failed")

    async def _watch_lease(self) -> None:
        interval = self.ctx.config.drivers.lease_check_interval_s
        relays = self.ctx.drivers.relays
        while True:
            relays.check_lease(self.ctx.clock.now())
            self._count()
            await self.ctx.clock.sleep(interval)


def create(ctx: GatewayContext) -> DriverService:
    """Entry point: the driver service always runs (it is the relays' watchdog)."""
    return DriverService(ctx)
