"""Board I/O adapter and driver service on virtual time, with real drivers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.adapters import board_io
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.bus import Overflow, Subscription
from gateway.core.clock import VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.events import InputsRead, PackMeasured, PointsRead
from gateway.hal.service import DriverService
from gateway.hal.sim import SimAdc
from gateway.sim.pack import PackModel
from tests.support.modbus_io_server import IoModule, ModbusIoServer


def _ctx(pack: PackModel | None = None, **overrides: Any) -> GatewayContext:
    config = load_config(overrides=overrides, env=False)
    return build_context(config, VirtualClock(), pack)


def _sub(ctx: GatewayContext) -> Subscription[Any]:
    return ctx.bus.subscribe(
        "test", PackMeasured, InputsRead, PointsRead, overflow=Overflow.NEVER_DROP
    )


def _drain(sub: Subscription[Any]) -> list[Any]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def _metric(ctx: GatewayContext, name: str, **labels: str) -> float:
    v = ctx.registry.get_sample_value(name, labels)
    return 0.0 if v is None else v


@pytest.fixture
async def running() -> AsyncIterator[list[asyncio.Task[None]]]:
    """Tasks to cancel at the end of the test."""
    tasks: list[asyncio.Task[None]] = []
    yield tasks
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_embedded_simulator_current_humidity_temperature_reach_the_state(
    running: list[asyncio.Task[None]],
) -> None:
    pack = PackModel(boards=1, cells_per_board=4, current_a=37.5, humidity_pct=55.0)
    ctx = _ctx(pack, board_io={"poll_interval_s": 0.5})
    sub = _sub(ctx)
    adapter = board_io.create(ctx)
    assert adapter is not None
    running.append(asyncio.create_task(adapter.run()))
    clock = ctx.clock
    assert isinstance(clock, VirtualClock)
    await clock.advance(0.1)
    ctx.store.drain()
    assert ctx.store.state.current_a == pytest.approx(37.5, abs=1e-6)
    assert ctx.store.state.humidity_pct == pytest.approx(55.0, abs=0.01)
    assert ctx.store.state.external_temperature_c == pytest.approx(25.0, abs=1e-6)

    pack.set_current(-180.0)
    pack.humidity_pct = 80.0
    await clock.advance(0.5)
    ctx.store.drain()
    assert ctx.store.state.current_a == pytest.approx(-180.0, abs=1e-6)
    assert ctx.store.state.humidity_pct == pytest.approx(80.0, abs=0.01)
    events = _drain(sub)
    measured = [e for e in events if isinstance(e, PackMeasured)]
    assert len(measured) == 2  # one per poll: t=0 and t=0.5
    last = measured[-1]
    assert last.at_s == 0.5
    assert last.extra["current_sensor_fault"] == 0.0
    assert last.extra["vref_v"] == pytest.approx(2.5)
    # 200 A sensor, 0.625 V at nominal: -180 A is 0.5625 V under the reference
    assert last.extra["vcs_v"] == pytest.approx(2.5 - 0.5625)
    points = [e for e in events if isinstance(e, PointsRead)][-1]
    assert points.source == "board_io"
    assert points.values["board_io.current_sensor_fault"] is False
    assert points.values["board_io.vcs_v"] == pytest.approx(1.9375)


async def test_inputs_are_published(running: list[asyncio.Task[None]]) -> None:
    pack = PackModel(boards=1, cells_per_board=4)
    pack.inputs_closed = [True, False, False, True]  # type: ignore[attr-defined]
    ctx = _ctx(pack)
    sub = _sub(ctx)
    adapter = board_io.BoardIo(ctx)
    adapter.poll_once()
    ctx.store.drain()
    assert ctx.store.state.inputs == (True, False, False, True)
    assert [e.closed for e in _drain(sub) if isinstance(e, InputsRead)] == [
        (True, False, False, True)
    ]


async def test_current_sensor_fault_publishes_no_current_and_a_flag(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pack = PackModel(boards=1, cells_per_board=4, current_a=10.0)
    ctx = _ctx(pack)
    sub = _sub(ctx)
    adc = ctx.drivers.adc
    assert isinstance(adc, SimAdc)
    adapter = board_io.BoardIo(ctx)
    adc.force("vref", 0.0)  # reference line broken
    with caplog.at_level(logging.INFO, logger="gateway.adapters.board_io"):
        for _ in range(3):
            adapter.poll_once()
        adc.release()
        adapter.poll_once()
    measured = [e for e in _drain(sub) if isinstance(e, PackMeasured)]
    assert [m.current_a for m in measured[:3]] == [None, None, None]
    assert [m.extra["current_sensor_fault"] for m in measured] == [1.0, 1.0, 1.0, 0.0]
    assert measured[3].current_a == pytest.approx(10.0)
    assert _metric(ctx, "bms_current_sensor_faults_total") == 3
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("implausible (vref_out_of_window)" in m for m in msgs) == 1  # on transition only
    assert sum("plausible again" in m for m in msgs) == 1


class _BrokenAdc:
    def read_volts(self, channel: str) -> float | None:
        raise OSError(5, "Input/output error")


class _BrokenInputs:
    def __init__(self) -> None:
        self.broken = True

    def read_inputs(self) -> tuple[bool, ...]:
        if self.broken:
            raise OSError(5, "Input/output error")
        return (False, True, False, False)


async def test_driver_errors_are_counted_logged_once_and_never_fatal(
    caplog: pytest.LogCaptureFixture, running: list[asyncio.Task[None]]
) -> None:
    ctx = _ctx(None, board_io={"poll_interval_s": 1.0})
    ctx.drivers.adc = _BrokenAdc()
    inputs = _BrokenInputs()
    ctx.drivers.inputs = inputs
    sub = _sub(ctx)
    adapter = board_io.BoardIo(ctx)
    clock = ctx.clock
    assert isinstance(clock, VirtualClock)
    with caplog.at_level(logging.INFO, logger="gateway.adapters.board_io"):
        task = asyncio.create_task(adapter.run())
        running.append(task)
        await clock.advance(4.5)  # polls at 0, 1, 2, 3, 4
        assert not task.done()
        inputs.broken = False
        await clock.advance(1.0)
    assert _metric(ctx, "bms_driver_errors_total", concern="adc", kind="exception") == 4 * 6
    assert _metric(ctx, "bms_driver_errors_total", concern="inputs", kind="exception") == 5
    msgs = [r.getMessage() for r in caplog.records]
    assert sum(m.startswith("adc driver failing") for m in msgs) == 1
    assert sum(m.startswith("inputs driver failing") for m in msgs) == 1
    assert sum(m == "inputs driver recovered" for m in msgs) == 1
    events = _drain(sub)
    # the broken ADC still reports the sensor as faulty rather than a made-up current
    assert all(e.current_a is None for e in events if isinstance(e, PackMeasured))
    assert [e.closed for e in events if isinstance(e, InputsRead)] == [(False, True, False, False)]


async def test_sim_drivers_without_a_simulator_invent_nothing() -> None:
    ctx = _ctx(None)  # e.g. a real logic.port with the default (sim) drivers
    assert ctx.drivers.adc is None
    sub = _sub(ctx)
    board_io.BoardIo(ctx).poll_once()
    assert _drain(sub) == []


async def test_no_adc_means_only_inputs() -> None:
    ctx = _ctx(None)
    inputs = _BrokenInputs()
    inputs.broken = False
    ctx.drivers.inputs = inputs
    sub = _sub(ctx)
    board_io.BoardIo(ctx).poll_once()
    assert [type(e) for e in _drain(sub)] == [InputsRead]


def test_disabled_board_io_is_not_built() -> None:
    assert board_io.create(_ctx(None, board_io={"enabled": False})) is None


async def test_board_io_over_a_modbus_analog_module() -> None:
    module = IoModule()
    server = ModbusIoServer(module)
    server.start()
    try:
        link = {"backend": "modbus", "host": "127.0.0.1", "port": server.port}
        ctx = _ctx(
            None,
            drivers={"adc": {**link}, "inputs": {**link, "discrete_inputs": [4, 5, 6, 7]}},
            current_sensor={"nominal_current_a": 100.0, "zero_offset_v": 0.004},
        )
        module.input_registers[:4] = [2754, 2500, 2040, 750]  # mV: vcs, vref, vhs, vts
        module.discrete_inputs[5] = True
        for d in (ctx.drivers.adc, ctx.drivers.inputs):
            await d.refresh()  # type: ignore[union-attr]
        sub = _sub(ctx)
        board_io.BoardIo(ctx).poll_once()
        ctx.store.drain()
        s = ctx.store.state
        assert s.current_a == pytest.approx((2.754 - 2.5 - 0.004) * 100 / 0.625)
        assert s.humidity_pct == pytest.approx((2.04 - 0.8) / 0.031, abs=0.01)
        assert s.external_temperature_c == pytest.approx(25.0)
        assert s.inputs == (False, True, False, False)
        assert any(isinstance(e, PackMeasured) for e in _drain(sub))
    finally:
        ctx.drivers.close()
        server.stop()


# --- driver service -----------------------------------------------------------------


async def test_service_opens_relays_when_the_lease_lapses_and_on_shutdown(
    running: list[asyncio.Task[None]],
) -> None:
    ctx = _ctx(None, drivers={"lease_check_interval_s": 0.1})
    clock = ctx.clock
    assert isinstance(clock, VirtualClock)
    relays = ctx.drivers.relays
    service = DriverService(ctx)
    task = asyncio.create_task(service.run())
    running.append(task)
    await clock.settle()
    # the engine's cycle: renew for lease_s, close relays 1 and 3
    lease_s = 1.0
    relays.renew_lease(clock.now() + lease_s)
    relays.set_relay(1, True)
    relays.set_relay(3, True)
    await clock.advance(lease_s - 0.05)
    assert relays.relay_closed(1) and relays.relay_closed(3)
    # the engine dies: nobody renews; the watchdog opens everything
    await clock.advance(0.2)
    assert not any(relays.relay_closed(r) for r in range(1, 5))
    relays.renew_lease(clock.now() + 5)
    relays.set_relay(2, True)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not relays.relay_closed(2)  # shutdown took the safe path


async def _until(pred: Any, timeout_s: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def test_service_runs_the_modbus_loop_and_closes_it(
    running: list[asyncio.Task[None]],
) -> None:
    module = IoModule()
    server = ModbusIoServer(module)
    server.start()
    try:
        link = {"backend": "modbus", "host": "127.0.0.1", "port": server.port}
        config = load_config(
            overrides={"drivers": {"relays": {**link, "poll_interval_s": 30}, "inputs": link}},
            env=False,
        )
        ctx = build_context(config)  # real clock: real sockets and threads
        module.coils[0] = True  # left closed by someone: the driver opens it at start
        module.discrete_inputs[2] = True
        task = asyncio.create_task(DriverService(ctx).run())
        running.append(task)
        assert await _until(lambda: not module.coils[0])
        assert await _until(lambda: _safe_inputs(ctx) == (False, False, True, False))
        ctx.drivers.relays.set_relay(2, True)  # written at once, not after poll_interval_s
        assert await _until(lambda: module.coils[1])
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert module.coils[:4] == [False] * 4
    finally:
        server.stop()


def _safe_inputs(ctx: GatewayContext) -> tuple[bool, ...] | None:
    try:
        return ctx.drivers.inputs.read_inputs()
    except Exception:
        return None
