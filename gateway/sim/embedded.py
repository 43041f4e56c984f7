"""The embedded default: a simulated pack served as Logic boards on a pty, in this process."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable

from gateway.config import GatewayConfig, SimulatorSection
from gateway.core.clock import Clock, RealClock
from gateway.core.supervise import cancel_and_wait
from gateway.sim.logic_server import LogicRtuServer, serve_on_pty
from gateway.sim.pack import PackModel

STEP_INTERVAL_S = 0.5


def build_pack(config: GatewayConfig) -> PackModel:
    """Build the pack model the config describes (`simulator` + `logic` sections)."""
    sim, logic = config.simulator, config.logic
    pack = PackModel(
        boards=max(logic.addresses),  # an explicit address list: unlisted boards stay unpolled
        cells_per_board=logic.cells_per_board,
        sensors_per_board=logic.sensors,
        chemistry=sim.chemistry,
        capacity_ah=sim.capacity_ah,
        soc=sim.soc,
        temperature_c=sim.temperature_c,
        current_a=sim.current_a,
        humidity_pct=sim.humidity_pct,
        seed=sim.seed,
    )
    pack.current_profile = current_profile(sim)
    return pack


def current_profile(sim: SimulatorSection) -> Callable[[float], float]:
    """Return `current_a` plus a slow sine of `current_amplitude_a` over `current_period_s`."""

    def profile(t_s: float) -> float:
        return sim.current_a + sim.current_amplitude_a * math.sin(
            2 * math.pi * t_s / sim.current_period_s
        )

    return profile


async def step_forever(pack: PackModel, clock: Clock, interval_s: float = STEP_INTERVAL_S) -> None:
    """Advance the model by the clock's elapsed time, every `interval_s`."""
    last = clock.now()
    while True:
        await clock.sleep(interval_s)
        now = clock.now()
        pack.step(now - last)
        last = now


@contextlib.asynccontextmanager
async def embedded_simulator(
    config: GatewayConfig, clock: Clock | None = None
) -> AsyncIterator[tuple[str, PackModel]]:
    """Serve the configured pack on a pty and step it in real time.

    Yields:
        (the pty device path the gateway opens as `logic.port`, the pack model)
    """
    pack = build_pack(config)
    server = LogicRtuServer(pack, baudrate=config.logic.baudrate)
    async with serve_on_pty(server) as path:
        stepper = asyncio.create_task(step_forever(pack, clock or RealClock()), name="sim-step")
        try:
            yield path, pack
        finally:
            await cancel_and_wait(stepper)
