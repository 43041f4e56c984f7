"""The world a scenario runs in: config, virtual clock, simulated pack, Logic loopback, engine.

The Logic boards are polled by the real `LogicAdapter` over an in-memory link
(`gateway.sim.memory_link`): `pack.input_registers(board)` -> the adapter's read and
`logic_map.decode_input_registers` -> `BoardScanned`, and balancing masks go back through the
adapter's holding-register writes to `pack.write_balancing`. Current, humidity and the dry
contacts are published from the model each poll, as the board I/O adapter does.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.adapters.logic import LogicAdapter
from gateway.adapters.logic_health import BoardTracker
from gateway.app import build_context
from gateway.config import GatewayConfig
from gateway.control.component import EngineComponent
from gateway.core.clock import Clock, VirtualClock
from gateway.core.context import Component, GatewayContext
from gateway.core.events import InputsRead, PackMeasured
from gateway.core.supervise import cancel_and_wait
from gateway.hal.drivers import sim_drivers
from gateway.sim.memory_link import MemoryLogicClient
from gateway.sim.pack import PackModel


class _PollClock:
    """The gateway clock as the Logic adapter sees it: reading `at_s` while a poll runs, so
    what it publishes is stamped with the poll instant the harness names."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.at_s: float | None = None

    def now(self) -> float:
        return self._clock.now() if self.at_s is None else self.at_s

    def wall(self, monotonic_s: float | None = None) -> datetime:
        return self._clock.wall(monotonic_s)

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)

    async def sleep_until(self, deadline_s: float) -> None:
        await self._clock.sleep_until(deadline_s)


def run_now(step: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine that never waits (the in-memory link answers at once) to its end."""
    try:
        step.send(None)
    except StopIteration:
        return
    step.close()
    raise RuntimeError("the in-memory Logic link waited: it must answer at once")


@dataclass
class LogicLoopback:
    """The real `LogicAdapter` polling the simulated boards over an in-memory link.

    Poll, decode, online/offline verdicts, notices, `poll_errors` and balancing writes are
    the adapter's own code; only the link is `MemoryLogicClient` instead of a serial port.
    Each poll also publishes what the board I/O adapter would (current, humidity, inputs).
    """

    ctx: GatewayContext
    pack: PackModel
    current_missing: bool = False  # the current sensor stops reporting
    vref_v: float | None = None  # reported as PackMeasured.extra["vref_v"] when set
    client: MemoryLogicClient = field(init=False)
    adapter: LogicAdapter = field(init=False)

    def __post_init__(self) -> None:
        self._clock = _PollClock(self.ctx.clock)
        adapter_ctx = copy.copy(self.ctx)  # the same bus, store and metrics; its own clock view
        adapter_ctx.clock = self._clock
        self.client = MemoryLogicClient(self.pack)
        self.adapter = LogicAdapter(adapter_ctx, self.client)

    @property
    def boards(self) -> BoardTracker:
        """The adapter's board health bookkeeping."""
        return self.adapter.boards

    def poll(self, now_s: float) -> None:
        """Scan every board once through the adapter and publish what a real poll would."""
        self._clock.at_s = now_s
        try:
            run_now(self.adapter.poll_cycle())
        finally:
            self._clock.at_s = None
        bus = self.ctx.bus
        bus.publish(
            PackMeasured(
                at_s=now_s,
                current_a=None if self.current_missing else self.pack.current_a,
                humidity_pct=self.pack.humidity_pct,
                extra={} if self.vref_v is None else {"vref_v": self.vref_v},
            )
        )
        bus.publish(InputsRead(at_s=now_s, closed=self.ctx.drivers.inputs.read_inputs()))

    def write_balancing(self) -> None:
        """Write changed balancing masks to the boards through the adapter."""
        run_now(self.adapter.write_balancing())


@dataclass
class World:
    """Everything one scenario file acts on and checks."""

    config: GatewayConfig
    clock: VirtualClock
    pack: PackModel
    ctx: GatewayContext
    engine: EngineComponent
    logic: LogicLoopback
    extras: dict[str, Any] = field(default_factory=dict)  # for extensions
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    def build(cls, config: GatewayConfig, pack: PackModel, initial_soc: float | None) -> World:
        """Wire a context, the engine and the loopback around a pack model."""
        clock = VirtualClock()
        ctx = build_context(config, clock, pack)
        ctx.drivers = sim_drivers(pack)  # a scenario never touches real hardware
        engine = EngineComponent(ctx, initial_soc=initial_soc)
        return cls(config, clock, pack, ctx, engine, LogicLoopback(ctx, pack))

    def start_component(self, component: Component) -> None:
        """Run an extension's component on the virtual clock until the scenario ends."""
        self.tasks.append(asyncio.create_task(component.run(), name=component.name))

    async def stop_components(self) -> None:
        """Cancel every component started by extensions."""
        for t in self.tasks:
            await cancel_and_wait(t)
        self.tasks.clear()
