"""Drive a scenario `World` (real engine, Logic loopback) step by step on virtual time."""

from __future__ import annotations

from gateway.scenario.world import World

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
