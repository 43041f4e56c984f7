"""The driver service (adapter entry point `hal`): owns the drivers' lifetime.

It runs the background loop of every driver that has one (`async run(clock)`, e.g. the
Modbus I/O driver's sync loop), checks the relay lease every `drivers.lease_check_interval_s`
so the relays open even when the engine has died, and closes every driver (relays open) when
the gateway stops, however it stops.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext

log = logging.getLogger(__name__)


class DriverService:
    """Background loops, the lease watchdog and the fail-safe close of `ctx.drivers`."""

    name = "hal"

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx

    async def run(self) -> None:
        """Run until cancelled; close the drivers on the way out."""
        drivers = self.ctx.drivers
        try:
            async with asyncio.TaskGroup() as tg:
                for d in drivers.all():
                    loop = getattr(d, "run", None)
                    if loop is not None:
                        tg.create_task(loop(self.ctx.clock), name=f"driver:{type(d).__name__}")
                tg.create_task(self._watch_lease(), name="driver:lease")
        finally:
            drivers.close()
            log.info("drivers closed: every relay open")

    async def _watch_lease(self) -> None:
        interval = self.ctx.config.drivers.lease_check_interval_s
        relays = self.ctx.drivers.relays
        while True:
            relays.check_lease(self.ctx.clock.now())
            await self.ctx.clock.sleep(interval)


def create(ctx: GatewayContext) -> DriverService:
    """Entry point: the driver service always runs (it is the relays' watchdog)."""
    return DriverService(ctx)
