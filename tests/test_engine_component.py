"""The engine component: fail-safe loop, lease, notices, latches across restarts, ack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import GatewayConfig, load_config
from gateway.control.latches import latch_path
from gateway.core.events import ErrorCleared, ErrorRaised, Notice, RelaySwitched
from gateway.scenario.world import World
from gateway.sim.pack import PackModel


def _config(tmp_path: Path, **extra: object) -> GatewayConfig:
    data: dict[str, object] = {"gateway": {"state_dir": str(tmp_path)}, **extra}
    return load_config(None, data, env=False)


def _world(cfg: GatewayConfig) -> World:
    return World.build(cfg, PackModel(boards=2, cells_per_board=16), initial_soc=0.6)


def _run(world: World, until_s: float, start_s: float = 0.0) -> None:
    t = start_s
    while t <= until_s + 1e-9:
        if round(t * 10) % 10 == 0:
            world.logic.poll(t)
        world.engine.cycle(t)
        t = round(t + 0.1, 6)


def test_relays_close_on_good_data_and_notices_say_why(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    sub = world.ctx.bus.subscribe("t", Notice)
    world.engine.cycle(0.0)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    _run(world, 1.0)
    assert world.ctx.drivers.relays.relay_closed(1)
    switched = []
    while (e := sub.get_nowait()) is not None:
        switched.append(e)
    closes = [e for e in switched if isinstance(e, RelaySwitched) and e.closed]
    assert {e.function for e in closes} == {
        "discharge_contactor",
        "allow_charging",
        "charge_contactor",
    }
    assert all(e.reasons == ("mode_always",) for e in closes)
    state = world.ctx.store.state.control
    assert state.relays[1].on and state.relays[1].since_s == 0.0
    assert state.reasons_since_s["discharge_contactor"] == 0.0


def test_error_notices_and_critical_opens_everything(tmp_path: Path) -> None:
    world = _world(_config(tmp_path, inputs={1: {"signal": "battery_cover"}}))
    sub = world.ctx.bus.subscribe("t", Notice)
    _run(world, 2.0)
    world.pack.inputs_closed[0] = True
    _run(world, 4.0, start_s=3.0)
    notices = []
    while (e := sub.get_nowait()) is not None:
        notices.append(e)
    raised = [e for e in notices if isinstance(e, ErrorRaised)]
    assert [(e.error, e.severity) for e in raised] == [("battery_cover", "critical")]
    opened = [e for e in notices if isinstance(e, RelaySwitched) and not e.closed]
    assert opened and all("battery_cover" in e.reasons for e in opened)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    world.pack.inputs_closed[0] = False
    _run(world, 7.0, start_s=5.0)
    cleared = []
    while (e := sub.get_nowait()) is not None:
        cleared.append(e)
    assert any(isinstance(e, ErrorCleared) and e.error == "battery_cover" for e in cleared)


def test_lapsed_lease_is_detected_and_relays_reclose_with_events(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    _run(world, 1.0)
    relays = world.ctx.drivers.relays
    assert relays.relay_closed(1)
    # the engine stalls for longer than the lease: the driver opens everything
    assert relays.check_lease(1.0 + 5.0)
    assert not relays.relay_closed(1)
    sub = world.ctx.bus.subscribe("t", RelaySwitched)
    world.logic.poll(6.0)
    world.engine.cycle(6.0)
    assert relays.relay_closed(1)
    assert sub.get_nowait() is not None


async def test_run_opens_every_relay_when_cancelled(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    world.logic.poll(0.0)
    task = asyncio.create_task(world.engine.run())
    await world.clock.advance(0.5)
    assert world.ctx.drivers.relays.relay_closed(1)
    assert world.ctx.store.state.control.running
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    assert not world.ctx.store.state.control.running
    assert (tmp_path / "soc.json").exists()


async def test_a_crash_in_the_engine_opens_every_relay(tmp_path: Path) -> None:
    world = _world(_config(tmp_path))
    world.logic.poll(0.0)
    task = asyncio.create_task(world.engine.run())
    await world.clock.advance(0.3)
    assert world.ctx.drivers.relays.relay_closed(1)

    def boom(now_s: float) -> None:
        raise RuntimeError("bug")

    world.engine.engine.step = boom  # type: ignore[assignment,method-assign]
    await world.clock.advance(0.3)
    with pytest.raises(RuntimeError):
        await task
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))


def test_bridge_mode_never_commands_relays(tmp_path: Path) -> None:
    world = _world(_config(tmp_path, gateway={"state_dir": str(tmp_path), "mode": "bridge"}))
    world.ctx.store.state.points["error.battery_cover"] = True
    _run(world, 2.0)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    assert "battery_cover" in world.ctx.store.state.control.errors_active
    assert world.ctx.store.state.control.relays == {}


def test_latched_error_survives_restart_until_acknowledged(tmp_path: Path) -> None:
    cfg = _config(tmp_path, protections={"cell_overvoltage": {"latch": True}})
    world = _world(cfg)
    _run(world, 1.0)
    world.pack.force_cell_voltage(1, 1, 3.8)
    _run(world, 4.0, start_s=2.0)
    assert "cell_overvoltage" in world.ctx.store.state.control.errors_active
    data = json.loads(latch_path(tmp_path).read_text())
    assert "cell_overvoltage" in data["latched"]
    world.engine.shutdown()

    # restart with a healthy pack: the latch is restored and keeps charging off
    again = _world(cfg)
    _run(again, 20.0)
    ctl = again.ctx.store.state.control
    assert ctl.errors_active == ["cell_overvoltage"]
    assert not again.ctx.drivers.relays.relay_closed(3)  # charge contactor
    assert again.ctx.drivers.relays.relay_closed(1)  # discharge contactor
    again.engine.shutdown()

    assert main(["ack", "--state-dir", str(tmp_path), "cell_overvoltage"]) == 0
    assert json.loads(latch_path(tmp_path).read_text())["latched"] == {}

    third = _world(cfg)
    _run(third, 2.0)
    assert third.ctx.store.state.control.errors_active == []
    assert third.ctx.drivers.relays.relay_closed(3)


def test_ack_rejects_unknown_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ack", "--state-dir", str(tmp_path), "no_such_error"]) == 2
    assert main(["ack", "--state-dir", str(tmp_path), "--list"]) == 0
    assert "no latched errors" in capsys.readouterr().out


def test_unreadable_latch_file_latches_everything(tmp_path: Path) -> None:
    latch_path(tmp_path).write_text("{not json", encoding="utf-8")
    world = _world(_config(tmp_path))
    _run(world, 3.0)
    assert world.ctx.store.state.control.signals["critical_error"]
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
