"""Drive a scenario `World` (real engine, Logic loopback) step by step on virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.core.state import ControlState
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

STEP_S = 0.1  # the engine's default cycle


class WorldStepper:
    """Poll the boards and cycle the engine every 0.1 s of virtual time."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.t = 0.0

    async def run_until(self, until_s: float) -> None:
        """Poll and cycle every step of virtual time up to `until_s` (inclusive)."""
        w = self.world
        while self.t <= until_s + 1e-9:
            await w.clock.advance_to(self.t)
            w.logic.poll(self.t)
            w.engine.cycle(self.t)
            self.t = round(self.t + STEP_S, 6)


def build_world(state_dir: Path, mode: str = "controller", **extra: Any) -> World:
    """A World on a 2 x 16-cell simulated pack, SOC 60 %, with config sections `extra`."""
    data: dict[str, Any] = {"gateway": {"state_dir": str(state_dir), "mode": mode}, **extra}
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


class SyncStepper:
    """Poll the boards (unless `poll` is off) and decide every 0.1 s, without an event loop."""

    def __init__(self, world: World, poll: bool = True) -> None:
        self.world, self.poll, self.t = world, poll, 0.0

    def until(self, until_s: float) -> None:
        """Step virtual time up to `until_s` (inclusive)."""
        while self.t <= until_s + 1e-9:
            if self.poll:
                self.world.logic.poll(self.t)
            self.world.engine.cycle(self.t)
            self.t = round(self.t + STEP_S, 6)

    @property
    def control(self) -> ControlState:
        """The engine's decisions."""
        return self.world.ctx.store.state.control
