"""Adversarial tests from the safety review: bad data, latches, fail-safe relays.

Real engine (`EngineComponent`), real `sim` relay driver, virtual clock. Each test pins one
defect the review found (it failed before its fix) or one property the review verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from pathlib import Path

import pytest

from gateway.config import GatewayConfig, load_config
from gateway.core.clock import VirtualClock
from gateway.core.events import BoardScanned, PackMeasured
from gateway.hal.service import DriverService
from gateway.protocols import logic_map
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

BOARDS, CELLS = 2, 16


def _config(tmp_path: Path, **extra: object) -> GatewayConfig:
    data: dict[str, object] = {"gateway": {"state_dir": str(tmp_path)}, **extra}
    return load_config(None, data, env=False)


def _world(cfg: GatewayConfig) -> World:
    return World.build(cfg, PackModel(boards=BOARDS, cells_per_board=CELLS), initial_soc=0.6)


def _closed(world: World) -> dict[int, bool]:
    return {n: world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5)}


def _tick(world: World, t: float, tamper: object = None) -> None:
    """One 0.1 s engine cycle; a Logic poll (plus `tamper(world, t)`) every whole second."""
    if round(t * 10) % 10 == 0:
        world.logic.poll(t)
        if callable(tamper):
            tamper(world, t)
    world.engine.cycle(t)


def _run(
    world: World, until_s: float, start_s: float = 0.0, tamper: object = None
) -> list[dict[int, bool]]:
    """Cycle from `start_s` to `until_s`; return the relay states after every cycle."""
    seen = []
    t = start_s
    while t <= until_s + 1e-9:
        _tick(world, t, tamper)
        seen.append(_closed(world))
        t = round(t + 0.1, 6)
    return seen


# --- non-finite measurements ---------------------------------------------------------


def _bad_current(value: float) -> object:
    def tamper(world: World, t: float) -> None:
        world.ctx.bus.publish(PackMeasured(at_s=t, current_a=value, humidity_pct=40.0))

    return tamper


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_current_opens_every_relay_at_once(tmp_path: Path, value: float) -> None:
    world = _world(_config(tmp_path))
    _run(world, 2.0)
    assert _closed(world)[1] and _closed(world)[3]
    world.logic.current_missing = True  # only the tampered reading reaches the engine
    _run(world, 3.0, start_s=2.1, tamper=_bad_current(value))
    assert not any(_closed(world).values())
    assert "stale_current" in world.ctx.store.state.control.reasons["discharge_contactor"]


def test_nan_current_never_closes_a_relay(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    world.logic.current_missing = True
    seen = _run(world, 10.0, tamper=_bad_current(math.nan))
    assert not any(any(s.values()) for s in seen)
    assert "current_sensor_fault" in world.ctx.store.state.control.errors_active


def _bad_cell(value: float) -> object:
    def tamper(world: World, t: float) -> None:
        cells = (value, *world.pack.cell_voltages_v(1)[1:])
        world.ctx.bus.publish(
            BoardScanned(
                at_s=t,
                board=1,
                cell_voltages_v=tuple(cells),
                temperatures_c=tuple(world.pack.temperatures_c(1)),
                board_temperature_c=25.0,
            )
        )

    return tamper


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_cell_voltage_never_closes_a_relay(tmp_path: Path, value: float) -> None:
    world = _world(_config(tmp_path))
    seen = _run(world, 10.0, tamper=_bad_cell(value))
    assert not any(any(s.values()) for s in seen)


# --- a board whose cell front end reports a fault ------------------------------------


def test_cell_measurement_fault_bit_never_closes_a_relay(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    world.pack.board(1).status_bits = logic_map.STATUS_CELL_MEASUREMENT_FAULT
    seen = _run(world, 10.0)
    assert not any(any(s.values()) for s in seen)


def test_cell_measurement_fault_bit_opens_every_relay_at_once(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    _run(world, 2.0)
    assert _closed(world)[1]
    # the board's front end fails and it keeps serving its last converted cell values
    world.pack.board(2).status_bits = logic_map.STATUS_CELL_MEASUREMENT_FAULT
    _run(world, 3.0, start_s=2.1)
    assert not any(_closed(world).values())
    world.pack.board(2).status_bits = 0
    _run(world, 5.0, start_s=3.1)
    assert _closed(world)[1]


# --- latches ---------------------------------------------------------------------------


def _latched_overvoltage(tmp_path: Path) -> World:
    cfg = _config(tmp_path, protections={"cell_overvoltage": {"latch": True}})
    world = _world(cfg)
    _run(world, 1.0)
    world.pack.force_cell_voltage(1, 1, 3.80)
    _run(world, 3.0, start_s=1.1)
    assert "cell_overvoltage" in world.ctx.store.state.control.errors_active
    assert not _closed(world)[3]
    return world


def test_acknowledging_a_latch_between_trip_and_release_keeps_the_error(tmp_path: Path) -> None:
    world = _latched_overvoltage(tmp_path)
    world.pack.force_cell_voltage(1, 1, 3.55)  # below max 3.65, above tolerant 3.45
    _run(world, 20.0, start_s=3.1)
    world.engine.engine.acknowledge("cell_overvoltage", 20.0)
    seen = _run(world, 40.0, start_s=20.0)
    assert "cell_overvoltage" in world.ctx.store.state.control.errors_active
    assert not any(s[3] for s in seen), "charge contactor closed above the release threshold"


def test_acknowledging_a_latch_still_waits_for_the_clear_delay(tmp_path: Path) -> None:
    world = _latched_overvoltage(tmp_path)
    world.pack.force_cell_voltage(1, 1, 3.30)  # within the release threshold from t=4
    _run(world, 4.0, start_s=3.1)
    world.engine.engine.acknowledge("cell_overvoltage", 4.0)
    # clear_delay_s is 5: the release has held for 0 s at the ack, 5 s at t=9
    seen = _run(world, 8.8, start_s=4.0)
    assert not any(s[3] for s in seen), "released before the clear delay"
    _run(world, 10.0, start_s=8.9)
    assert world.ctx.store.state.control.errors_active == []
    assert _closed(world)[3]


# --- the relay lease -------------------------------------------------------------------


class _StallClock(VirtualClock):
    """A virtual clock whose time can pass while the event loop is blocked."""

    def stall_to(self, t_s: float) -> None:
        self._now_s = t_s


async def test_lease_opens_the_relays_while_the_event_loop_is_blocked(tmp_path: Path) -> None:
    world = _world(_config(tmp_path, drivers={"lease_check_interval_s": 0.01}))
    clock = _StallClock()
    world.ctx.clock = clock
    relays = world.ctx.drivers.relays
    service = asyncio.create_task(DriverService(world.ctx).run())
    await clock.settle()
    try:
        _run(world, 1.0)  # the engine renews the lease until 2.0 s
        assert relays.relay_closed(1)
        # The engine's loop blocks (a hung call in the control path): time passes, no
        # task runs, the lease lapses. Only a watchdog outside the loop can open them.
        clock.stall_to(5.0)
        deadline = time.monotonic() + 10.0
        while relays.relay_closed(1) and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 (blocks the event loop on purpose)
        assert not any(_closed(world).values()), "relays stayed closed past the lease"
    finally:
        service.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await service
    assert not any(_closed(world).values())
