"""The `modbus` adapter component: one poll loop per configured device, in one TaskGroup."""

from __future__ import annotations

import asyncio
import logging

from gateway.adapters.modbus.config import ModbusSection, device_endpoint
from gateway.adapters.modbus.poller import DevicePoller, ModbusMetrics
from gateway.core.context import GatewayContext
from gateway.links.modbus_client import ModbusLink
from gateway.protocols.profiles import load_profile

log = logging.getLogger(__name__)


class ModbusAdapter:
    """Polls every device of `modbus.devices`; a failing device never stops the others."""

    name = "modbus"

    def __init__(self, ctx: GatewayContext, section: ModbusSection) -> None:
        self._ctx = ctx
        self.metrics = ModbusMetrics.create(ctx.registry)
        self.pollers: list[tuple[DevicePoller, float]] = []
        for dev in section.devices:
            profile = load_profile(dev.profile)
            poller = DevicePoller(
                dev.name,
                ModbusLink(device_endpoint(dev, profile)),
                profile,
                ctx.bus,
                ctx.clock,
                self.metrics,
                offline_after=dev.offline_after,
                prefix=dev.prefix,
                max_registers=dev.max_registers,
            )
            self.pollers.append((poller, dev.poll_interval_s))

    async def run(self) -> None:
        """Poll every device until cancelled."""
        async with asyncio.TaskGroup() as tg:
            for poller, interval in self.pollers:
                tg.create_task(self._loop(poller, interval), name=f"modbus:{poller.name}")

    async def _loop(self, poller: DevicePoller, interval_s: float) -> None:
        clock = self._ctx.clock
        log.info(
            "modbus device %s: %s, profile %s, %d requests per cycle",
            poller.name,
            poller.link.endpoint,
            poller.profile.name,
            len(poller.plan),
        )
        try:
            next_s = clock.now()
            while True:
                await poller.poll_once()
                next_s += interval_s
                next_s = max(next_s, clock.now())  # fell behind (slow device): no burst
                await clock.sleep_until(next_s)
        finally:
            poller.link.close()


def create(ctx: GatewayContext) -> ModbusAdapter | None:
    """Build the adapter, or None when no device is configured."""
    section: ModbusSection | None = getattr(ctx.config, "modbus", None)
    if section is None or not section.devices:
        return None
    return ModbusAdapter(ctx, section)
