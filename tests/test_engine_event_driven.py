"""The engine decides on inputs and at its own deadlines, not on a periodic cycle.

The real `EngineComponent.run()` loop runs on a virtual clock: a breach read at t acts at
exactly t + set delay, the reaction histogram spans reading -> relay command, and without
inputs or deadlines the loop only beats its heartbeat (no decisions).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from pathlib import Path

from gateway.config import load_config
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

REACTION = "bms_protection_reaction_seconds"


def _world(tmp_path: Path, **extra: object) -> World:
    cfg = load_config(
        None,
        {
            "gateway": {"state_dir": str(tmp_path)},
            "limits": {"ramp_a_per_s": 1e6},  # no ramp steps: only inputs and delays decide
            **extra,
        },
        env=False,
    )
    return World.build(cfg, PackModel(boards=2, cells_per_board=16), initial_soc=0.6)


def _count_steps(world: World) -> list[float]:
    seen: list[float] = []
    engine = world.engine.engine
    real = engine.step

    def step(now_s: float):  # type: ignore[no-untyped-def]
        seen.append(now_s)
        return real(now_s)

    engine.step = step  # type: ignore[method-assign]
    return seen


@contextlib.asynccontextmanager
async def running(world: World) -> AsyncIterator[None]:
    """The real `EngineComponent.run()` loop, cancelled on exit."""
    task = asyncio.create_task(world.engine.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll_at(world: World, *times_s: float) -> None:
    """Move the clock to each time and read the boards there."""
    for t in times_s:
        await world.clock.advance_to(t)
        world.logic.poll(t)


async def test_a_breach_acts_exactly_at_its_set_delay_from_the_reading(tmp_path: Path) -> None:
    world = _world(tmp_path, protections={"cell_overvoltage": {"set_delay_ms": 1250}})
    relays = world.ctx.drivers.relays
    steps = _count_steps(world)
    world.logic.poll(0.0)
    async with running(world):
        await poll_at(world, 1.0, 2.0, 3.0)
        await world.clock.advance_to(3.5)
        assert relays.relay_closed(3)
        decided = len(steps)
        world.pack.force_cells(3.70)
        world.logic.poll(3.5)  # the reading that shows the breach, stamped 3.5
        await world.clock.advance_to(4.5)
        world.logic.poll(4.5)
        await world.clock.advance_to(4.749)
        assert relays.relay_closed(3), "acted before the set delay"
        await world.clock.advance_to(4.75)
        assert not relays.relay_closed(3), "did not act at the set delay"
        assert 4.75 in steps  # a decision of its own, at the deadline
        assert "cell_overvoltage" in world.ctx.store.state.control.errors_active
        reaction = world.ctx.registry.get_sample_value(
            f"{REACTION}_sum", {"error": "cell_overvoltage"}
        )
        assert reaction is not None and math.isclose(reaction, 1.25, abs_tol=1e-9)
        # a few decisions per poll, none in between: 1 poll + 1 deadline + stale checks
        assert len(steps) - decided <= 4
    assert not any(relays.relay_closed(n) for n in range(1, 5))


async def test_no_inputs_no_decisions_but_the_lease_is_renewed(tmp_path: Path) -> None:
    world = _world(
        tmp_path,
        engine={
            "cell_timeout_s": 30.0,
            "current_timeout_s": 30.0,
            "inputs_timeout_s": 30.0,
            "relay_lease_s": 0.5,
        },
    )
    relays = world.ctx.drivers.relays
    world.logic.poll(0.0)
    async with running(world):
        await world.clock.advance_to(6.0)  # past the start-up grace
        assert relays.relay_closed(1)
        steps = _count_steps(world)
        await world.clock.advance_to(20.0)
        assert steps == [], "decided without an input or a deadline"
        assert relays.relay_closed(1), "the heartbeat let the lease lapse"
        assert relays.lease_lapses == 0
        # the data turns stale at exactly 30 s after its reading: a decision of its own
        await world.clock.advance_to(30.5)
        assert len(steps) == 1 and 30.0 < steps[0] < 30.001
        assert not relays.relay_closed(1)


async def test_ton_and_toff_act_exactly_when_due(tmp_path: Path) -> None:
    """A contactor closes at request + Ton and opens at request gone + Toff, not later."""
    world = _world(
        tmp_path,
        discharge_control={"mode": "discharge_request", "ton_s": 2.5, "toff_s": 1.5},
        inputs={2: {"signal": "discharge_request"}},
        engine={"cell_timeout_s": 30.0, "current_timeout_s": 30.0, "inputs_timeout_s": 30.0},
    )
    relays = world.ctx.drivers.relays
    world.logic.poll(0.0)
    async with running(world):
        await world.clock.advance_to(6.0)  # past the start-up grace; no request yet
        assert not relays.relay_closed(1)
        steps = _count_steps(world)
        world.pack.inputs_closed[1] = True
        world.logic.poll(6.0)  # the request arrives at 6.0
        await world.clock.advance_to(8.499)
        assert not relays.relay_closed(1), "closed before Ton"
        await world.clock.advance_to(8.5)
        assert relays.relay_closed(1), "did not close at Ton"
        assert 8.5 in steps  # a decision of its own, at the Ton deadline
        await world.clock.advance_to(9.0)
        world.pack.inputs_closed[1] = False
        world.logic.poll(9.0)  # the request goes away at 9.0
        await world.clock.advance_to(10.499)
        assert relays.relay_closed(1), "opened before Toff"
        await world.clock.advance_to(10.5)
        assert not relays.relay_closed(1), "did not open at Toff"
        assert 10.5 in steps


async def test_a_late_decision_times_the_breach_from_its_reading(tmp_path: Path) -> None:
    """A reading stamped 3.1 but decided at 3.5 (a slow poll): the set delay counts from 3.1."""
    world = _world(tmp_path, protections={"cell_overvoltage": {"set_delay_ms": 1250}})
    relays = world.ctx.drivers.relays
    world.logic.poll(0.0)
    async with running(world):
        await poll_at(world, 1.0, 2.0, 3.0)
        await world.clock.advance_to(3.5)
        world.pack.force_cells(3.70)
        world.logic.poll(3.1)  # the scan began at 3.1; the engine hears of it at 3.5
        await world.clock.advance_to(4.0)
        world.logic.poll(4.0)
        await world.clock.advance_to(4.349)
        assert relays.relay_closed(3), "acted before the set delay"
        await world.clock.advance_to(4.35)
        assert not relays.relay_closed(3), "the set delay was counted from the decision"
        reaction = world.ctx.registry.get_sample_value(
            f"{REACTION}_sum", {"error": "cell_overvoltage"}
        )
        assert reaction is not None and math.isclose(reaction, 1.25, abs_tol=1e-9)


async def test_the_heater_times_its_delay_from_the_reading_too(tmp_path: Path) -> None:
    world = _world(
        tmp_path,
        heater={"enable": True, "min": 5, "tolerant": 10, "set_delay_ms": 2000},
    )
    relays = world.ctx.drivers.relays
    world.logic.poll(0.0)
    async with running(world):
        await poll_at(world, 1.0, 2.0, 3.0)
        await world.clock.advance_to(3.5)
        assert not relays.relay_closed(4)
        world.pack.force_temperature(3.0)
        world.logic.poll(3.1)  # read at 3.1, heard of at 3.5
        await poll_at(world, 4.0, 5.0)
        await world.clock.advance_to(5.099)
        assert not relays.relay_closed(4), "heated before the set delay"
        await world.clock.advance_to(5.1)
        assert relays.relay_closed(4), "the heater's delay was counted from the decision"
