"""The world a scenario runs in: config, virtual clock, simulated pack, Logic loopback, engine.

The Logic boards are reached through the real register codec over an in-memory transport:
`pack.input_registers(board)` -> `logic_map.decode_input_registers` -> `BoardScanned`, and
balancing masks go back as holding registers (`encode_balancing_mask` ->
`decode_balancing_mask` -> `pack.write_balancing`). Current, humidity and the dry contacts
are published from the model each poll, as the board I/O adapter does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.logic import BoardTimeoutError, BoardTracker
from gateway.app import build_context
from gateway.config import GatewayConfig
from gateway.control.component import EngineComponent
from gateway.core.clock import VirtualClock
from gateway.core.context import Component, GatewayContext
from gateway.core.errors import FrameError
from gateway.core.events import InputsRead, PackMeasured
from gateway.core.supervise import cancel_and_wait
from gateway.hal.drivers import sim_drivers
from gateway.protocols import logic_map
from gateway.sim.pack import PackModel


@dataclass
class LogicLoopback:
    """Polls the simulated boards through the register codec, like the Logic adapter.

    Each poll result goes to the adapter's own `BoardTracker`, so online/offline verdicts,
    notices and `poll_errors` are the adapter's.
    """

    ctx: GatewayContext
    pack: PackModel
    written: dict[int, int] = field(default_factory=dict)
    current_missing: bool = False  # the current sensor stops reporting
    vref_v: float | None = None  # reported as PackMeasured.extra["vref_v"] when set
    boards: BoardTracker = field(init=False)

    def __post_init__(self) -> None:
        self.boards = BoardTracker(self.ctx, self.ctx.config.logic.addresses)

    def poll(self, now_s: float) -> None:
        """Scan every board once and publish what a real poll would."""
        cfg = self.ctx.config.logic
        bus = self.ctx.bus
        for n in cfg.addresses:
            if n > self.pack.board_count or not self.pack.board(n).online:
                self.boards.failed(n, BoardTimeoutError(f"board {n}: no reply"), now_s)
                continue
            try:
                reading = logic_map.decode_input_registers(
                    self.pack.input_registers(n), cfg.cells_per_board, cfg.sensors
                )
            except FrameError as err:
                self.boards.failed(n, err, now_s)
                continue
            self.boards.succeeded(n, reading, now_s)
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
        """Write changed balancing masks to the boards (holding registers 0-1)."""
        for n, mask in self.ctx.store.state.control.balancing.items():
            if self.written.get(n) == mask or n > self.pack.board_count:
                continue
            if not self.pack.board(n).online:
                continue
            regs = logic_map.encode_balancing_mask(mask)
            self.pack.write_balancing(n, logic_map.decode_balancing_mask(regs))
            self.written[n] = mask


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
