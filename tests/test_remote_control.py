"""Modbus server writes reach the engine: signal overrides and the error reset, end to end.

A pymodbus client writes to the gateway's own Modbus server (real TCP on loopback, writes
enabled); the server publishes `override.<signal>` / `request.error_reset` points; the
engine (scenario World on virtual time, simulated pack, sim relay driver) reacts.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from gateway.config import load_config
from gateway.core.events import ErrorCleared, Notice, PointsRead
from gateway.links.modbus_slave import serve_tcp
from gateway.publishers.modbus_server import GatewayRegisterMap
from gateway.publishers.modbus_server_section import ModbusServerSection
from gateway.scenario.world import World
from gateway.sim.pack import PackModel
from tests.support.broker import free_port
from tests.support.world import WorldStepper

UNIT = 32
HR_CHARGER_CONNECTED = 0x5101  # bit 1 of IR 0x2000 (docs/modbus.md)
HR_ERROR_RESET = 0x3000
CHARGE_CONTACTOR = 3  # default relay functions: 1 discharge, 2 allow charging, 3 charge


def make_world(tmp_path: Path, **extra: Any) -> World:
    data: dict[str, Any] = {
        "gateway": {"state_dir": str(tmp_path)},
        "logic": {"boards": 2, "cells_per_board": 16},
        **extra,
    }
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


class Rig(WorldStepper):
    """A World plus the gateway's Modbus server on loopback and a client talking to it."""

    def __init__(self, world: World, client: AsyncModbusTcpClient) -> None:
        super().__init__(world)
        self.client = client

    async def write(self, address: int, value: int) -> None:
        rr = await self.client.write_register(address, value, device_id=UNIT)
        assert not rr.isError(), rr

    def relay(self, n: int) -> bool:
        return self.world.ctx.drivers.relays.relay_closed(n)

    @property
    def control(self) -> Any:
        return self.world.ctx.store.state.control


@contextlib.asynccontextmanager
async def rig(world: World) -> AsyncIterator[Rig]:
    section = ModbusServerSection(enabled=True, writes_enabled=True, allow_less_safe_writes=True)
    regmap = GatewayRegisterMap(world.ctx, section)
    port = free_port()
    async with serve_tcp(regmap, "127.0.0.1", port, UNIT):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert await client.connect()
        try:
            yield Rig(world, client)
        finally:
            client.close()


async def test_override_forces_a_signal_on_off_and_back_to_the_input(tmp_path: Path) -> None:
    world = make_world(
        tmp_path,
        charge_control={"mode": "charger_connected"},
        inputs={1: {"signal": "charger_connected"}},
    )
    async with rig(world) as r:
        await r.run_until(2.0)
        assert r.relay(1) and not r.relay(CHARGE_CONTACTOR)  # no charger: charge side open
        assert r.control.signals["charger_connected"] is False

        await r.write(HR_CHARGER_CONNECTED, 1)  # force on
        await r.run_until(2.5)
        assert r.control.signals["charger_connected"] is True
        assert r.control.reasons["charger_connected"] == ["override"]
        assert r.relay(CHARGE_CONTACTOR)

        world.pack.inputs_closed[0] = True  # the real contact says "connected"...
        await r.write(HR_CHARGER_CONNECTED, 0)  # ...but the override forces it off
        await r.run_until(3.0)
        assert r.control.signals["charger_connected"] is False
        assert not r.relay(CHARGE_CONTACTOR)

        await r.write(HR_CHARGER_CONNECTED, 2)  # follow the input again
        await r.run_until(3.5)
        assert r.control.signals["charger_connected"] is True
        assert r.control.reasons["charger_connected"] == ["input"]
        assert r.relay(CHARGE_CONTACTOR)

        world.pack.inputs_closed[0] = False
        await r.run_until(4.0)
        assert not r.relay(CHARGE_CONTACTOR)


async def test_error_reset_clears_only_latched_errors_whose_condition_cleared(
    tmp_path: Path,
) -> None:
    world = make_world(tmp_path, protections={"cell_overvoltage": {"latch": True}})
    sub = world.ctx.bus.subscribe("t", Notice)
    async with rig(world) as r:
        await r.run_until(1.0)
        world.pack.force_cells(3.70)  # above 3.65 (LFP default)
        await r.run_until(3.0)
        assert "cell_overvoltage" in r.control.errors_active
        assert not r.relay(2) and not r.relay(CHARGE_CONTACTOR)

        await r.write(HR_ERROR_RESET, 1)  # breach still present: nothing is cleared
        await r.run_until(4.0)
        assert "cell_overvoltage" in r.control.errors_active

        world.pack.force_cells(3.30)  # back within the release threshold (3.45)
        await r.run_until(12.0)  # far past the clear delay: the latch holds it
        assert "cell_overvoltage" in r.control.errors_active
        assert not r.relay(CHARGE_CONTACTOR)
        while sub.get_nowait() is not None:
            pass

        await r.write(HR_ERROR_RESET, 1)
        await r.run_until(12.5)
        assert "cell_overvoltage" not in r.control.errors_active
        assert r.relay(CHARGE_CONTACTOR)
    cleared = []
    while (e := sub.get_nowait()) is not None:
        if isinstance(e, ErrorCleared):
            cleared.append(e.error)
    assert cleared == ["cell_overvoltage"]


async def test_error_reset_keeps_a_latch_inside_the_hysteresis_band(tmp_path: Path) -> None:
    world = make_world(tmp_path, protections={"cell_overvoltage": {"latch": True}})
    async with rig(world) as r:
        await r.run_until(1.0)
        world.pack.force_cells(3.70)
        await r.run_until(3.0)
        world.pack.force_cells(3.50)  # below the trip (3.65), above the release (3.45)
        await r.run_until(4.0)
        await r.write(HR_ERROR_RESET, 1)
        await r.run_until(5.0)
        assert "cell_overvoltage" in r.control.errors_active


def test_go_safe_cannot_be_forced_off(tmp_path: Path) -> None:
    world = make_world(tmp_path, inputs={2: {"signal": "go_safe"}})
    clock = 0.0
    for _ in range(20):
        world.logic.poll(clock)
        world.engine.cycle(clock)
        clock = round(clock + 0.1, 6)
    assert world.ctx.drivers.relays.relay_closed(1)
    world.pack.inputs_closed[1] = True
    world.ctx.bus.publish(PointsRead(at_s=clock, source="test", values={"override.go_safe": 0}))
    world.logic.poll(clock)
    world.engine.cycle(clock)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    assert world.ctx.store.state.control.signals["go_safe"] is True
    # ...while an override may request it
    world.pack.inputs_closed[1] = False
    world.ctx.bus.publish(PointsRead(at_s=clock, source="test", values={"override.go_safe": 1}))
    for _ in range(10):
        clock = round(clock + 0.1, 6)
        world.logic.poll(clock)
        world.engine.cycle(clock)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
    # a go-safe request from a command wins over every override forcing signals on
    world.ctx.bus.publish(
        PointsRead(
            at_s=clock,
            source="test",
            values={"override.go_safe": 2, "override.charger_connected": 1},
        )
    )
    world.engine.engine.request_go_safe("test")
    for _ in range(10):
        clock = round(clock + 0.1, 6)
        world.logic.poll(clock)
        world.engine.cycle(clock)
    assert not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
