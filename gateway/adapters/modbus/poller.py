"""Poll one Modbus device through its profile: read, decode, publish, count, never die."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.adapters.modbus.events import DeviceCameOnline, DeviceWentOffline
from gateway.core.bus import EventBus
from gateway.core.clock import Clock
from gateway.core.errors import FrameError
from gateway.core.events import PackMeasured, PointsRead
from gateway.core.supervise import reraise_swallowed_cancel
from gateway.links.modbus_client import ModbusDeviceError
from gateway.protocols.modbus_profile import (
    Block,
    PointValue,
    Profile,
    decode_block,
    plan_reads,
)

log = logging.getLogger(__name__)


class RegisterReader(Protocol):
    """What the poller needs from a link (ModbusLink, or a test double of the same shape)."""

    @property
    def endpoint(self) -> str:
        """Human-readable address of the device."""
        ...

    async def read(self, function: int, address: int, count: int) -> list[int]:
        """Return exactly `count` registers or raise ModbusDeviceError."""
        ...

    def close(self) -> None:
        """Drop the connection."""
        ...


@dataclass
class ModbusMetrics:
    """Per-device counters on the gateway's registry."""

    polls: Counter
    requests: Counter
    errors: Counter
    up: Gauge
    decode_problems: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> ModbusMetrics:
        """Register the metrics (once per registry)."""
        r = registry
        return cls(
            polls=Counter(
                "bms_modbus_polls", "Modbus poll cycles attempted.", ["device"], registry=r
            ),
            requests=Counter(
                "bms_modbus_requests", "Modbus read requests sent.", ["device"], registry=r
            ),
            errors=Counter(
                "bms_modbus_errors",
                "Failed Modbus requests by kind (timeout, exception, malformed, connect, io).",
                ["device", "kind"],
                registry=r,
            ),
            up=Gauge(
                "bms_modbus_device_up", "1 while the device is online.", ["device"], registry=r
            ),
            decode_problems=Counter(
                "bms_modbus_decode_problems",
                "Points dropped because their value was out of range (NaN, bad BCD).",
                ["device"],
                registry=r,
            ),
        )


class DevicePoller:
    """One device: a read plan, failure accounting and online/offline transitions."""

    def __init__(
        self,
        name: str,
        link: RegisterReader,
        profile: Profile,
        bus: EventBus,
        clock: Clock,
        metrics: ModbusMetrics,
        *,
        offline_after: int = 3,
        prefix: str = "",
        max_registers: int = 125,
    ) -> None:
        self.name = name
        self.link = link
        self.profile = profile
        self.plan: list[Block] = plan_reads(profile, max_registers=max_registers)
        self._bus = bus
        self._clock = clock
        self._metrics = metrics
        self._offline_after = offline_after
        self._prefix = prefix
        self.online: bool | None = None  # None = not known yet
        self.consecutive_failures = 0
        self.cycle = 0
        self._feeds = profile.feeds()
        for kind in ("timeout", "exception", "malformed", "connect", "io"):
            metrics.errors.labels(device=name, kind=kind)
        metrics.up.labels(device=name).set(0)

    async def poll_once(self) -> bool:
        """Run one poll cycle; return True when every due block was read.

        Values of the blocks that were read are published even when another block failed.
        """
        self.cycle += 1
        self._metrics.polls.labels(device=self.name).inc()
        values: dict[str, PointValue] = {}
        failure: str | None = None
        for block in self.plan:
            reraise_swallowed_cancel()
            if (self.cycle - 1) % block.every:
                continue
            self._metrics.requests.labels(device=self.name).inc()
            try:
                regs = await self.link.read(block.function, block.start, block.count)
                decoded, problems = decode_block(self.profile, block, regs)
            except ModbusDeviceError as err:
                self._metrics.errors.labels(device=self.name, kind=err.kind).inc()
                failure = str(err)
                if err.kind in ("timeout", "connect"):
                    break  # the device is not answering: do not wait on every block
                continue
            except FrameError as err:
                self._metrics.errors.labels(device=self.name, kind="malformed").inc()
                failure = str(err)
                continue
            if problems:
                self._metrics.decode_problems.labels(device=self.name).inc(len(problems))
                log.debug("%s: %s", self.name, "; ".join(problems))
            values.update(decoded)
        reraise_swallowed_cancel()
        now = self._clock.now()
        if values:
            self._publish(values, now)
        if failure is None:
            self._succeeded(now)
            return True
        self._failed(failure, now)
        return False

    def _publish(self, values: dict[str, PointValue], now: float) -> None:
        pack: dict[str, float] = {}
        extra: dict[str, float] = {}
        for point, target in self._feeds.items():
            v = values.get(point)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                if target.startswith("extra."):
                    extra[target.removeprefix("extra.")] = float(v)
                else:
                    pack[target] = float(v)
        named = {self._prefix + k: v for k, v in values.items()}
        self._bus.publish(PointsRead(at_s=now, source=self.name, values=named))
        if pack or extra:
            self._bus.publish(
                PackMeasured(
                    at_s=now,
                    current_a=pack.get("current_a"),
                    humidity_pct=pack.get("humidity_pct"),
                    temperature_c=pack.get("temperature_c"),
                    extra=extra,
                )
            )

    def _succeeded(self, now: float) -> None:
        self.consecutive_failures = 0
        if self.online is not True:
            if self.online is False:
                log.warning("modbus device %s (%s) recovered", self.name, self.link.endpoint)
            self.online = True
            self._metrics.up.labels(device=self.name).set(1)
            self._bus.publish(DeviceCameOnline(at_s=now, device=self.name))

    def _failed(self, reason: str, now: float) -> None:
        self.consecutive_failures += 1
        if self.online is not False and self.consecutive_failures >= self._offline_after:
            log.warning(
                "modbus device %s offline after %d failed polls: %s",
                self.name,
                self.consecutive_failures,
                reason,
            )
            self.online = False
            self._metrics.up.labels(device=self.name).set(0)
            self._bus.publish(
                DeviceWentOffline(
                    at_s=now,
                    device=self.name,
                    reason=reason,
                    consecutive_failures=self.consecutive_failures,
                )
            )
