"""Bridge mode end to end, the gateway's Modbus server, and device faults, over real sockets.

Simulated BMS Main 2.x (pymodbus server on loopback) -> Modbus adapter -> state -> MQTT
`state` on a real Mosquitto; the gateway's own Modbus server read back by an independent
pymodbus client and by `mbpoll` (when installed); a fault proxy for timeouts, exception
replies and wrong byte counts.
"""

from __future__ import annotations

import asyncio
import shutil
import struct
import subprocess
import sys
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymodbus.client import AsyncModbusTcpClient

from gateway.adapters.modbus.adapter import ModbusAdapter
from gateway.adapters.modbus.adapter import create as create_adapter
from gateway.adapters.modbus.config import ModbusDeviceConfig, device_endpoint
from gateway.adapters.modbus.events import (
    DeviceCameOnline,
    DeviceWentOffline,
    ErrorResetRequested,
    SignalOverridden,
)
from gateway.adapters.modbus.poller import DevicePoller, ModbusMetrics
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.bus import EventBus
from gateway.core.clock import RealClock, VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.errors import ConfigError
from gateway.core.events import BoardScanned, Event, PointsRead
from gateway.links.modbus_client import ModbusLink
from gateway.links.modbus_slave import serve_tcp
from gateway.protocols.profiles import load_profile
from gateway.publishers.modbus_server import GatewayRegisterMap
from gateway.publishers.modbus_server import create as create_server
from gateway.publishers.modbus_server_section import ModbusServerSection
from gateway.sim.main2x import Main2xSimulator, serve_main2x
from gateway.sim.pack import PackModel
from tests.support.broker import Broker, free_port
from tests.support.modbus_fault_proxy import FaultProxy
from tests.support.mqtt import watching
from tests.support.tasks import running
from tests.support.waiting import until

MBPOLL = shutil.which("mbpoll")
SOCAT = shutil.which("socat")


def real32(regs: list[int]) -> float:
    """IEEE-754 single from two registers, low word first (written independently of the codec)."""
    value: float = struct.unpack("<f", struct.pack("<HH", regs[0], regs[1]))[0]
    return value


def u32(regs: list[int]) -> int:
    return regs[0] | regs[1] << 16


def simulated_pack() -> tuple[PackModel, Main2xSimulator]:
    pack = PackModel(boards=2, cells_per_board=4, current_a=12.5, humidity_pct=47.5,
                     temperature_c=18.25)  # fmt: skip
    sim = Main2xSimulator(pack)
    sim.errors.add("error.high_humidity")
    sim.outputs[1] = True
    return pack, sim


async def read_ir(port: int, address: int, count: int, unit: int = 32) -> list[int]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
    assert await client.connect()
    try:
        rr = await client.read_input_registers(address, count=count, device_id=unit)
        assert not rr.isError(), rr
        return list(rr.registers)
    finally:
        client.close()


def mbpoll_float(port: int, address: int) -> float:
    """Read one REAL32 (low word first, mbpoll's default) with Debian's mbpoll."""
    assert MBPOLL is not None
    out = subprocess.run(
        [MBPOLL, "-m", "tcp", "-a", "32", "-0", "-r", str(address), "-c", "1", "-t", "3:float",
         "-1", "-p", str(port), "127.0.0.1"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout  # fmt: skip
    line = next(x for x in out.splitlines() if x.startswith(f"[{address}]:"))
    return float(line.split(":", 1)[1])


# --- bridge mode end to end ----------------------------------------------------------


@pytest.mark.broker
async def test_bridge_sim_to_mqtt_state_and_back_out_of_the_modbus_server(broker: Broker) -> None:
    from gateway.publishers.mqtt import MqttPublisher

    sim_port, server_port = free_port(), free_port()
    pack, sim = simulated_pack()
    device = {"name": "bms", "port": sim_port, "poll_interval_s": 0.1, "timeout_s": 0.5}
    config = load_config(
        overrides={
            "gateway": {
                "id": "gw-bridge",
                "mode": "bridge",
                "state_dir": str(broker.workdir / "state"),
            },
            "mqtt": {"host": broker.host, "port": broker.port, "publish_interval_s": 0.1},
            "modbus": {"devices": [device]},
            "modbus_server": {"enabled": True, "port": server_port, "update_interval_s": 0.05},
        },
        env=False,
    )
    ctx = build_context(config, RealClock())
    adapter, server = create_adapter(ctx), create_server(ctx)
    assert adapter is not None and server is not None
    assert [p.name for p, _ in adapter.pollers] == ["bms"]

    def complete(m: dict[str, Any]) -> bool:
        return m.get("current") == 12.5 and "main2x.soc_pct" in m.get("points", {})

    async with (
        serve_main2x(sim, tcp=("127.0.0.1", sim_port)),
        watching(broker, "bms/gw-bridge/state") as states,
        running(ctx, adapter, MqttPublisher(ctx), server),
    ):
        await until(lambda: any(complete(m) for m in states), "a state with the bridged values")
        msg = next(m for m in states if complete(m))
        # the MQTT state carries what the simulated board serves
        assert msg["mode"] == "bridge"
        assert msg["humidity"] == pack.humidity_pct
        pts = msg["points"]
        assert pts["main2x.external_temperature_c"] == pack.ambient_c
        assert pts["main2x.soc_pct"] == pytest.approx(pack.soc * 100, abs=1e-4)
        assert pts["main2x.logic_boards"] == pack.board_count
        assert pts["error.high_humidity"] is True and pts["error.battery_cover"] is False
        assert pts["output.2"] is True and pts["output.1"] is False
        assert pts["main2x.firmware_version"] == "5.0.3"
        assert pts["main2x.charge_current_limit_a"] == sim.charge_current_limit_a

        # the gateway's own Modbus server answers the same values (independent client)
        # The image is rebuilt every update_interval_s: wait for one built after the current
        # was known (an image from before holds NaN there, whose high word is not 0 either).
        image = server.regmap
        await until(
            lambda: real32([image.image.get(0x2001, 0), image.image.get(0x2002, 0)])
            == msg["current"],
            "a server image with the bridged current",
        )
        assert real32(await read_ir(server_port, 0x2001, 2)) == msg["current"]
        assert real32(await read_ir(server_port, 0x2005, 2)) == msg["humidity"]
        errors_1 = u32(await read_ir(server_port, 0x2007, 2))
        assert errors_1 & (1 << 6) and not errors_1 & (1 << 5)  # high humidity, no cover
        assert (await read_ir(server_port, 0x200B, 1))[0] == 0b0010  # output 2
        ext = await read_ir(server_port, 0x3000, 8)
        assert ext[0] == 1 and ext[1] == 1  # layout version, bridge mode
        assert real32(ext[6:8]) == msg["current"]
        if MBPOLL is not None:  # Debian's mbpoll as a second, unrelated client
            got = await asyncio.to_thread(mbpoll_float, server_port, 0x2001)
            assert got == msg["current"]
            got = await asyncio.to_thread(mbpoll_float, server_port, 0x2005)
            assert got == msg["humidity"]


@pytest.mark.skipif(MBPOLL is None, reason="mbpoll is not installed (apt-get install mbpoll)")
async def test_mbpoll_reads_the_simulated_main2x() -> None:
    port = free_port()
    pack, sim = simulated_pack()
    async with serve_main2x(sim, tcp=("127.0.0.1", port)):
        assert await asyncio.to_thread(mbpoll_float, port, 0x2001) == pack.current_a
        assert await asyncio.to_thread(mbpoll_float, port, 0x2003) == pack.ambient_c


# --- adapter against the simulator, without MQTT -------------------------------------


def _poller(port: int, bus: EventBus, registry: CollectorRegistry, **kw: Any) -> DevicePoller:
    dev = ModbusDeviceConfig(name="bms", port=port, timeout_s=kw.pop("timeout_s", 0.3))
    profile = load_profile("bms-main-2x")
    metrics = ModbusMetrics.create(registry)
    link = ModbusLink(device_endpoint(dev, profile))
    return DevicePoller("bms", link, profile, bus, RealClock(), metrics, **kw)


def _drain(sub: Any) -> list[Event]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


async def test_override_written_to_the_simulator_shows_in_the_inputs() -> None:
    port = free_port()
    _, sim = simulated_pack()
    bus = EventBus()
    sub = bus.subscribe("t", PointsRead)
    poller = _poller(port, bus, CollectorRegistry())
    async with serve_main2x(sim, tcp=("127.0.0.1", port)):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert await client.connect()
        try:
            assert not (await client.write_register(0x5100, 1, device_id=32)).isError()
            assert not (await client.write_register(0x5101, 1, device_id=32)).isError()
            bad = await client.write_register(0x5109, 1, device_id=32)  # bit 9: undocumented
            assert bad.isError() and bad.exception_code == 2
        finally:
            client.close()
        assert await poller.poll_once()
        poller.link.close()
    (event,) = _drain(sub)
    assert isinstance(event, PointsRead)
    values = event.values
    assert values["main2x.input.charger_connected"] is True
    assert values["main2x.inputs_1"] == 0b11
    assert values["error.battery_cover"] is True  # the sim raises cover while the input is on


async def test_faulty_device_is_counted_goes_offline_and_recovers() -> None:
    sim_port = free_port()
    _, sim = simulated_pack()
    bus, registry = EventBus(), CollectorRegistry()
    notices = bus.subscribe("n", DeviceWentOffline, DeviceCameOnline)
    proxy = FaultProxy(("127.0.0.1", sim_port))

    def errors(kind: str) -> float:
        v = registry.get_sample_value("bms_modbus_errors_total", {"device": "bms", "kind": kind})
        return v or 0.0

    async with serve_main2x(sim, tcp=("127.0.0.1", sim_port)), proxy.running():
        poller = _poller(proxy.port, bus, registry, offline_after=2, timeout_s=0.2)
        try:
            assert await poller.poll_once()
            assert [type(e) for e in _drain(notices)] == [DeviceCameOnline]

            proxy.mode = "exception"
            assert not await poller.poll_once()
            assert errors("exception") == sum(b.every == 1 for b in poller.plan)  # not the journal
            assert _drain(notices) == []  # one failure is not offline yet
            assert not await poller.poll_once()
            (offline,) = _drain(notices)
            assert isinstance(offline, DeviceWentOffline)
            assert offline.consecutive_failures == 2 and "exception 4" in offline.reason

            proxy.mode = "pass"
            assert await poller.poll_once()
            assert [type(e) for e in _drain(notices)] == [DeviceCameOnline]

            proxy.mode = "truncate"
            assert not await poller.poll_once()
            assert errors("malformed") >= 1

            proxy.mode = "drop"
            assert not await poller.poll_once()
            assert errors("timeout") == 1  # the first timeout ends the cycle
            assert not await poller.poll_once()
            assert isinstance(_drain(notices)[-1], DeviceWentOffline)

            proxy.mode = "pass"
            assert await poller.poll_once()
            assert [type(e) for e in _drain(notices)] == [DeviceCameOnline]
            assert registry.get_sample_value("bms_modbus_device_up", {"device": "bms"}) == 1
        finally:
            poller.link.close()


async def test_unreachable_device_counts_connect_errors_and_never_raises() -> None:
    bus, registry = EventBus(), CollectorRegistry()
    poller = _poller(free_port(), bus, registry, offline_after=1, timeout_s=0.2)
    assert not await poller.poll_once()
    assert (
        registry.get_sample_value("bms_modbus_errors_total", {"device": "bms", "kind": "connect"})
        == 1
    )
    assert poller.online is False


async def test_adapter_polls_on_the_virtual_clock() -> None:
    port = free_port()
    _, sim = simulated_pack()
    config = load_config(
        overrides={"modbus": {"devices": [{"name": "bms", "port": port, "poll_interval_s": 5}]}},
        env=False,
    )
    clock = VirtualClock()
    ctx = build_context(config, clock)
    adapter = create_adapter(ctx)
    assert isinstance(adapter, ModbusAdapter)
    async with serve_main2x(sim, tcp=("127.0.0.1", port)), running(ctx, adapter):
        # The cycle publishes its points after its last read: then the count is final.
        await until(lambda: "bms" in ctx.store.state.points_updated_s, "the first poll cycle")
        first = sim.reads
        await asyncio.sleep(0.2)  # real time passes, virtual time does not: no new cycle
        assert sim.reads == first
        await clock.advance(5)
        await until(lambda: sim.reads > first, "the second poll cycle")
        await until(lambda: ctx.store.state.current_a == 12.5, "the bridged current")
        assert ctx.store.state.humidity_pct == 47.5
        assert ctx.store.state.external_temperature_c == 18.25


# --- the gateway's Modbus server -------------------------------------------------------


def test_server_defaults_are_loopback_and_read_only() -> None:
    section = load_config(env=False).modbus_server
    assert section.host == "127.0.0.1"
    assert not section.writes_enabled and not section.allow_less_safe_writes


async def test_less_safe_writes_are_refused_unless_allowed() -> None:
    ctx, regmap, _ = _server_ctx(writes=True)
    sub = ctx.bus.subscribe("t", SignalOverridden, ErrorResetRequested)
    port = free_port()
    cover, inhibit_charging, fuse_2 = 0x5100, 0x5103, 0x5110
    async with serve_tcp(regmap, "127.0.0.1", port, 32):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert await client.connect()
        try:
            # Safer: the battery cover forced "open" (alarm), charging inhibited.
            for address, value in ((cover, 1), (inhibit_charging, 1)):
                assert not (await client.write_register(address, value, device_id=32)).isError()
            # Less safe: the cover forced "closed" (what the attacker did), releasing
            # the inhibit, forcing a fuse either way, the error reset.
            for address, value in ((cover, 0), (inhibit_charging, 2), (fuse_2, 1), (0x3000, 1)):
                rr = await client.write_register(address, value, device_id=32)
                assert rr.isError() and rr.exception_code == 3, hex(address)
            rr = await client.read_holding_registers(cover, count=4, device_id=32)
            assert rr.registers == [1, 2, 2, 1]  # the safe overrides stand
        finally:
            client.close()
    got = _drain(sub)
    assert [(e.signal, e.mode) for e in got if isinstance(e, SignalOverridden)] == [
        ("battery_cover", "on"),
        ("inhibit_charging", "on"),
    ]
    assert not any(isinstance(e, ErrorResetRequested) for e in got)


def _server_ctx(
    writes: bool, less_safe: bool = False
) -> tuple[GatewayContext, GatewayRegisterMap, ModbusServerSection]:
    config = load_config(overrides={"logic": {"boards": 2, "cells_per_board": 3}}, env=False)
    ctx = build_context(config, VirtualClock())
    section = ModbusServerSection(
        enabled=True, writes_enabled=writes, allow_less_safe_writes=less_safe
    )
    ctx.store.apply(
        BoardScanned(at_s=0.0, board=1, cell_voltages_v=(3.301, 3.302, 3.299),
                     temperatures_c=(21.5, None, -3.2), board_temperature_c=30.0)
    )  # fmt: skip
    ctx.store.state.current_a = -42.25
    ctx.store.state.control.errors_active = ["cell_overvoltage", "logic_offline"]
    ctx.store.state.control.soc = 0.5
    return ctx, GatewayRegisterMap(ctx, section), section


async def test_server_extension_block_matches_the_state() -> None:
    ctx, regmap, _ = _server_ctx(writes=False)
    port = free_port()
    async with serve_tcp(regmap, "127.0.0.1", port, 32):
        ext = await read_ir(port, 0x3000, 0x2A)
        cells = await read_ir(port, 0x3100, 4)
        temps = await read_ir(port, 0x3300, 3)
        board2 = await read_ir(port, 0x3100 + 18, 1)
        main = await read_ir(port, 0x2007, 2)
        soc = await read_ir(port, 0x2100, 3)
    s = ctx.store.state
    assert ext[3] == 1  # boards online
    assert real32(ext[4:6]) == pytest.approx(s.pack_voltage_v, abs=1e-5)
    assert real32(ext[6:8]) == -42.25
    assert real32(ext[8:10]) == pytest.approx(s.pack_voltage_v * -42.25, rel=1e-6)
    assert real32(ext[0x14:0x16]) == 50.0
    errors = u32(ext[0x24:0x26])
    assert errors == (1 << 0) | (1 << 9)  # ERROR_NAMES order: cell_overvoltage, logic_offline
    assert u32(ext[0x28:0x2A]) == 0b01  # board 1 online, board 2 not
    assert cells[:3] == [3301, 3302, 3299] and cells[3] == 0xFFFF
    assert temps == [215, 0x8000, (-32) & 0xFFFF]
    assert board2 == [0xFFFF]  # offline board: unknown
    assert u32(main) == 1 << 9  # Errors 1 bit 9 = Logic offline; overvoltage bit is unknown
    assert real32(soc[0:2]) == 50.0 and soc[2] == 2


async def test_read_only_server_refuses_writes_with_illegal_function() -> None:
    ctx, regmap, _ = _server_ctx(writes=False)
    sub = ctx.bus.subscribe("t", PointsRead)
    port = free_port()
    async with serve_tcp(regmap, "127.0.0.1", port, 32):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert await client.connect()
        try:
            for address in (0x5101, 0x5113, 0x3000):
                rr = await client.write_register(address, 1, device_id=32)
                assert rr.isError() and rr.exception_code == 1, address  # ILLEGAL FUNCTION
            rr = await client.write_register(0x2001, 1, device_id=32)  # no such holding register
            assert rr.isError() and rr.exception_code == 2
            rr = await client.write_registers(0x5100, [1, 1], device_id=32)
            assert rr.isError() and rr.exception_code == 1
            rr = await client.read_input_registers(0x2009, count=2, device_id=32)
            assert rr.isError() and rr.exception_code == 2  # undocumented: ILLEGAL DATA ADDRESS
            rr = await client.read_coils(0, count=1, device_id=32)
            assert rr.isError() and rr.exception_code == 1
        finally:
            client.close()
    assert sub.get_nowait() is None
    assert regmap.overrides[0x5101] == 2


async def test_enabled_writes_accept_only_overrides_and_error_reset() -> None:
    ctx, regmap, _ = _server_ctx(writes=True, less_safe=True)
    sub = ctx.bus.subscribe("t", PointsRead, SignalOverridden, ErrorResetRequested)
    port = free_port()
    async with serve_tcp(regmap, "127.0.0.1", port, 32):
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=1)
        assert await client.connect()
        try:
            assert not (await client.write_register(0x5101, 1, device_id=32)).isError()
            assert not (await client.write_register(0x5113, 0, device_id=32)).isError()
            assert not (await client.write_register(0x3000, 1, device_id=32)).isError()
            rr = await client.read_holding_registers(0x5100, count=2, device_id=32)
            assert rr.registers == [2, 1]
            for address, value, code in ((0x5109, 1, 2), (0x2001, 1, 2), (0x3000, 7, 3)):
                rr = await client.write_register(address, value, device_id=32)
                assert rr.isError() and rr.exception_code == code, address
        finally:
            client.close()
    events = _drain(sub)
    points: dict[str, Any] = {}
    for e in events:
        if isinstance(e, PointsRead):
            assert e.source == "modbus_server"
            points.update(e.values)
    assert points == {
        "override.charger_connected": 1,
        "override.balancing_request": 0,
        "request.error_reset": 1,
    }
    assert [e.signal for e in events if isinstance(e, SignalOverridden)] == [
        "charger_connected",
        "balancing_request",
    ]
    assert sum(isinstance(e, ErrorResetRequested) for e in events) == 1
    for e in events:
        ctx.store.apply(e)
    assert ctx.store.state.points["override.charger_connected"] == 1


# --- RTU, the CLI and config ------------------------------------------------------------


@pytest.mark.skipif(SOCAT is None, reason="socat is not installed (apt-get install socat)")
async def test_bridge_over_rtu_on_a_socat_pty_pair(tmp_path: Any) -> None:
    a, b = tmp_path / "gw", tmp_path / "bms"
    assert SOCAT is not None
    proc = await asyncio.create_subprocess_exec(
        SOCAT, f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await until(lambda: a.exists() and b.exists(), "the socat ptys", 10)
        pack, sim = simulated_pack()
        bus = EventBus()
        sub = bus.subscribe("t", PointsRead)
        dev = ModbusDeviceConfig(name="bms", transport="rtu", serial_port=str(a), timeout_s=0.5)
        profile = load_profile("bms-main-2x")
        link = ModbusLink(device_endpoint(dev, profile))
        poller = DevicePoller("bms", link, profile, bus, RealClock(),
                              ModbusMetrics.create(CollectorRegistry()))  # fmt: skip
        async with serve_main2x(sim, rtu=str(b)):
            try:
                assert await poller.poll_once()
            finally:
                poller.link.close()
        event = sub.get_nowait()
        assert isinstance(event, PointsRead)
        assert event.values["main2x.current_a"] == pack.current_a
        assert event.values["error.high_humidity"] is True
    finally:
        proc.terminate()
        await proc.wait()


async def test_simulate_command_serves_main2x_over_tcp() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "simulate", "--main2x-tcp", f"127.0.0.1:{port}",
        "--current", "-7.5", "--amplitude", "0",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while True:
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
            if await client.connect():
                break
            client.close()
            if time.monotonic() > deadline:
                pytest.fail("simulate did not start listening")
            await asyncio.sleep(0.1)
        try:
            rr = await client.read_input_registers(0x2001, count=2, device_id=32)
            assert real32(list(rr.registers)) == -7.5
        finally:
            client.close()
    finally:
        proc.terminate()
        await proc.wait()


def test_simulate_command_rejects_a_bad_host_port() -> None:
    from gateway.cli import main

    assert main(["simulate", "--main2x-tcp", "nohostport"]) == 2


def test_modbus_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="serial_port"):
        load_config(overrides={"modbus": {"devices": [{"name": "x", "transport": "rtu"}]}},
                    env=False)  # fmt: skip
    with pytest.raises(ConfigError, match="neither a bundled profile"):
        load_config(overrides={"modbus": {"devices": [{"name": "x", "profile": "nope"}]}},
                    env=False)  # fmt: skip
    with pytest.raises(ConfigError, match="unique"):
        load_config(overrides={"modbus": {"devices": [{"name": "x"}, {"name": "x"}]}}, env=False)
    config = load_config(env=False)
    assert config.modbus.devices == [] and config.modbus_server.enabled is False
    ctx = build_context(config, VirtualClock())
    assert create_adapter(ctx) is None and create_server(ctx) is None
