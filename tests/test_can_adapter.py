"""The CAN adapter end to end on python-can's virtual bus.

A simulated inverter and a simulated charger sit on the other side of the bus (plain python-can
`virtual` buses decoding with the shipped DBCs). Periodic senders and timeouts run on a
`VirtualClock`; reception runs on the adapter's real reader thread, so inbound checks poll with
a real-time timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import can
import pytest

from gateway.adapters.can.adapter import CanAdapter
from gateway.adapters.can.dbc import CHARGER_STATUS_ID, decode, shipped
from gateway.adapters.can.events import CanBusCameUp, CanBusWentDown, CanPeerFound, CanPeerLost
from gateway.config import load_config
from gateway.core.bus import EventBus, Overflow
from gateway.core.clock import VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.events import Notice
from gateway.core.state import BoardState, StateStore
from gateway.hal.drivers import sim_drivers


def make_ctx(
    channel: str, can_cfg: dict[str, Any], mode: str = "controller", first_valid_scan: bool = True
) -> GatewayContext:
    cfg = load_config(
        None,
        {
            "gateway": {"mode": mode},
            "can": {"enabled": True, "interface": "virtual", "channel": channel, **can_cfg},
        },
        env=False,
    )
    clock = VirtualClock()
    bus = EventBus()
    ctx = GatewayContext(
        config=cfg,
        clock=clock,
        bus=bus,
        store=StateStore(bus, clock, [1, 2]),
        drivers=sim_drivers(),
    )
    s = ctx.store.state
    for b in (1, 2):
        s.boards[b] = BoardState(
            board=b, online=True, cell_voltages_v=(3.3,) * 16, temperatures_c=(25.0,) * 4
        )
    s.current_a = 20.0
    s.control.limits = {"cvl_v": 112.0, "ccl_a": 50.0, "dcl_a": 100.0}
    s.control.signals = {"charge_allowed": True, "discharge_allowed": True}
    s.control.soc = 0.6
    s.control.first_valid_scan = first_valid_scan
    return ctx


async def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition on real I/O (the reader thread) with a real-time timeout."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


def metric(ctx: GatewayContext, name: str, **labels: str) -> float:
    value = ctx.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


@dataclass
class Harness:
    ctx: GatewayContext
    adapter: CanAdapter
    peer: can.BusABC
    clock: VirtualClock
    notices: Any
    seen: list[Notice]

    def received(self) -> dict[int, list[can.Message]]:
        """Drain what the peer side received, by arbitration id."""
        out: dict[int, list[can.Message]] = {}
        while (msg := self.peer.recv(timeout=0)) is not None:
            out.setdefault(msg.arbitration_id, []).append(msg)
        return out

    def notices_of(self, kind: type[Notice]) -> list[Notice]:
        while (n := self.notices.get_nowait()) is not None:
            self.seen.append(n)
        return [n for n in self.seen if isinstance(n, kind)]

    def points(self) -> dict[str, Any]:
        self.ctx.store.drain()
        return self.ctx.store.state.points


@asynccontextmanager
async def running(
    can_cfg: dict[str, Any],
    mode: str = "controller",
    bus_factory: Callable[[str], Callable[[], can.BusABC]] | None = None,
    wait_up: bool = True,
    first_valid_scan: bool = True,
) -> AsyncIterator[Harness]:
    channel = f"test-{uuid.uuid4().hex}"
    ctx = make_ctx(channel, can_cfg, mode, first_valid_scan)
    notices = ctx.bus.subscribe("test", Notice, overflow=Overflow.NEVER_DROP)
    adapter = CanAdapter(ctx, bus_factory=bus_factory(channel) if bus_factory else None)
    peer = can.Bus(interface="virtual", channel=channel)
    assert isinstance(ctx.clock, VirtualClock)
    h = Harness(ctx, adapter, peer, ctx.clock, notices, [])
    task = asyncio.create_task(adapter.run())
    try:
        if wait_up:
            await wait_for(lambda: adapter.link.up)
        yield h
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        peer.shutdown()


def dec(db: str, msg: can.Message) -> dict[str, Any]:
    m = shipped(db).get_message_by_frame_id(
        msg.arbitration_id | (1 << 31 if msg.is_extended_id else 0)
    )
    return decode(m, bytes(msg.data))


INVERTER_AND_CHARGER = {
    "bitrate": 500000,
    "inverter": {"enabled": True, "profile": "pylon"},
    "charger": {"enabled": True, "timeout_s": 5},
}


async def test_inverter_and_charger_see_the_limits_change_when_a_protection_trips() -> None:
    async with running(INVERTER_AND_CHARGER) as h:
        await h.clock.advance(1.0)
        rx = h.received()
        assert {0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E, 0x1806E5F4} <= set(rx)
        lim = dec("inverter", rx[0x351][-1])
        assert lim["ChargeVoltageLimit"] == pytest.approx(112.0)
        assert lim["ChargeCurrentLimit"] == pytest.approx(50.0)
        assert lim["DischargeCurrentLimit"] == pytest.approx(100.0)
        cmd = dec("charger_j1939", rx[0x1806E5F4][-1])
        assert cmd["Control"] == 0
        assert cmd["MaxChargeVoltage"] == pytest.approx(112.0)
        assert cmd["MaxChargeCurrent"] == pytest.approx(50.0)
        assert dec("inverter", rx[0x35C][-1])["ChargeEnable"] == 1

        # a cell overvoltage trips: the engine drops charge_allowed and raises the error
        control = h.ctx.store.state.control
        control.errors_active = ["cell_overvoltage"]
        control.signals["charge_allowed"] = False
        await h.clock.advance(1.0)
        rx = h.received()
        lim = dec("inverter", rx[0x351][-1])
        assert lim["ChargeVoltageLimit"] == pytest.approx(105.6)  # pack voltage, never 0
        assert lim["ChargeCurrentLimit"] == 0
        assert lim["DischargeCurrentLimit"] == pytest.approx(100.0)
        assert dec("inverter", rx[0x359][-1])["ProtOverVoltage"] == 1
        assert dec("inverter", rx[0x35C][-1])["ChargeEnable"] == 0
        cmd = dec("charger_j1939", rx[0x1806E5F4][-1])
        assert cmd["Control"] == 1
        assert cmd["MaxChargeCurrent"] == 0
        assert h.points()["charger.command_charge"] is False

        # released: charging resumes with the engine's (derated) limits
        control.errors_active = []
        control.signals["charge_allowed"] = True
        control.limits["ccl_a"] = 25.0
        await h.clock.advance(1.0)
        rx = h.received()
        assert dec("inverter", rx[0x351][-1])["ChargeCurrentLimit"] == pytest.approx(25.0)
        assert dec("charger_j1939", rx[0x1806E5F4][-1])["Control"] == 0


async def test_the_set_repeats_every_period() -> None:
    async with running(INVERTER_AND_CHARGER) as h:
        await h.clock.advance(10.0)
        rx = h.received()
        assert len(rx[0x351]) == 11  # t = 0, 1, ..., 10
        assert len(rx[0x1806E5F4]) == 11
        assert metric(h.ctx, "bms_can_tx_frames_total") == 11 * 7


async def test_charger_status_becomes_points_and_silence_clears_connected() -> None:
    async with running(INVERTER_AND_CHARGER) as h:
        h.peer.send(
            can.Message(
                arbitration_id=CHARGER_STATUS_ID,
                is_extended_id=True,
                data=bytes.fromhex("021f007d02000000"),
            )
        )
        await wait_for(lambda: h.points().get("charger.connected") is True)
        p = h.points()
        assert p["charger.output_voltage_v"] == 54.3
        assert p["charger.output_current_a"] == 12.5
        assert p["charger.over_temperature"] is True
        assert p["charger.fault"] is True
        assert h.notices_of(CanPeerFound)[0].payload() == {
            "type": "can_peer_found",
            "peer": "charger",
        }
        assert metric(h.ctx, "bms_can_peer_connected", peer="charger") == 1
        await h.clock.advance(4.5)
        assert h.points()["charger.connected"] is True
        await h.clock.advance(1.0)
        assert h.points()["charger.connected"] is False
        lost = h.notices_of(CanPeerLost)
        assert len(lost) == 1 and lost[0].payload()["peer"] == "charger"
        assert metric(h.ctx, "bms_can_peer_connected", peer="charger") == 0


async def test_inverter_keepalive_has_a_startup_grace() -> None:
    cfg = {"inverter": {"enabled": True, "startup_grace_s": 60, "keepalive_timeout_s": 20}}
    async with running(cfg) as h:
        await h.clock.advance(59.0)
        assert "inverter.connected" not in h.points()
        await h.clock.advance(1.5)
        assert h.points()["inverter.connected"] is False
        h.peer.send(can.Message(arbitration_id=0x305, is_extended_id=False, data=bytes(8)))
        await wait_for(lambda: h.points().get("inverter.connected") is True)
        await h.clock.advance(19.0)
        assert h.points()["inverter.connected"] is True
        await h.clock.advance(1.5)
        assert h.points()["inverter.connected"] is False


class FlakyFactory:
    """Opens real virtual buses; the test can make the current one fail at the seam."""

    def __init__(self, channel: str, fail_first: int = 0) -> None:
        self.channel = channel
        self.fail_first = fail_first
        self.opened: list[can.BusABC] = []
        self.calls = 0

    def __call__(self) -> can.BusABC:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise can.CanInitializationError(f"no such device {self.channel}")
        bus = can.Bus(interface="virtual", channel=self.channel)
        self.opened.append(bus)
        return bus

    def break_current(self) -> None:
        def broken(timeout: float | None) -> Any:
            raise can.CanOperationError("device went away")

        self.opened[-1]._recv_internal = broken  # type: ignore[method-assign]


async def test_receive_failure_closes_and_reopens_the_bus() -> None:
    factories: list[FlakyFactory] = []

    def make(channel: str) -> FlakyFactory:
        factories.append(FlakyFactory(channel))
        return factories[-1]

    cfg = {**INVERTER_AND_CHARGER, "reopen_min_s": 2.0}
    async with running(cfg, bus_factory=make) as h:
        factory = factories[0]
        factory.break_current()
        await wait_for(lambda: not h.adapter.link.up)
        assert metric(h.ctx, "bms_can_up") == 0
        assert metric(h.ctx, "bms_can_bus_errors_total") == 1
        down = h.notices_of(CanBusWentDown)
        assert "device went away" in down[0].payload()["reason"]
        h.received()
        await h.clock.advance(1.0)
        assert 0x351 not in h.received()  # nothing is sent while down
        await h.clock.advance(1.0)
        await wait_for(lambda: h.adapter.link.up)
        assert factory.calls == 2
        assert metric(h.ctx, "bms_can_reopens_total") == 1
        assert len(h.notices_of(CanBusCameUp)) == 2
        await h.clock.advance(1.0)
        assert 0x351 in h.received()
        h.peer.send(
            can.Message(arbitration_id=CHARGER_STATUS_ID, is_extended_id=True, data=bytes(8))
        )
        await wait_for(lambda: h.points().get("charger.connected") is True)


async def test_bus_off_error_frame_reopens_the_bus() -> None:
    async with running({"reopen_min_s": 1.0}) as h:
        h.peer.send(can.Message(arbitration_id=0x40, is_error_frame=True, dlc=8))
        await wait_for(lambda: not h.adapter.link.up)
        assert metric(h.ctx, "bms_can_bus_off_total") == 1
        assert metric(h.ctx, "bms_can_error_frames_total") == 1
        await h.clock.advance(1.0)
        await wait_for(lambda: h.adapter.link.up)
        h.peer.send(can.Message(arbitration_id=0x04, is_error_frame=True, dlc=8))
        await wait_for(lambda: metric(h.ctx, "bms_can_error_frames_total") == 2)
        assert h.adapter.link.up  # a plain error frame is counted, not fatal


async def test_missing_interface_at_start_is_a_logged_error_and_a_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    factories: list[FlakyFactory] = []

    def make(channel: str) -> FlakyFactory:
        factories.append(FlakyFactory(channel, fail_first=2))
        return factories[-1]

    caplog.set_level(logging.INFO, logger="gateway.adapters.can")
    async with running({"reopen_min_s": 1.0}, bus_factory=make, wait_up=False) as h:
        await h.clock.advance(0.0)
        assert factories[0].calls == 1
        await h.clock.advance(1.0)
        assert factories[0].calls == 2
        await h.clock.advance(2.0)  # the delay doubles
        await wait_for(lambda: h.adapter.link.up)
        assert factories[0].calls == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # logged once, on the transition, not on every retry
    assert "cannot open" in errors[0].getMessage()
    assert "no such device" in errors[0].getMessage()
    assert errors[0].exc_info is None


async def test_a_real_unavailable_socketcan_interface_does_not_crash() -> None:
    channel = f"nope{uuid.uuid4().hex[:6]}"
    ctx = make_ctx(channel, {"interface": "socketcan", "reopen_min_s": 1.0})
    adapter = CanAdapter(ctx)
    task = asyncio.create_task(adapter.run())
    clock = ctx.clock
    assert isinstance(clock, VirtualClock)
    await clock.advance(3.0)
    assert not task.done()
    assert metric(ctx, "bms_can_bus_errors_total") >= 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_garbage_frames_never_crash_the_adapter() -> None:
    cfg = {**INVERTER_AND_CHARGER, "canopen": {"enabled": True}}
    rng = random.Random(4)
    known = [0x305, 0x80, 0x1A0, 0x2A0, 0x351]
    async with running(cfg) as h:
        sent = 0
        for i in range(3000):
            ext = rng.random() < 0.3
            if i % 3 == 0:
                arb, ext = CHARGER_STATUS_ID, True
            elif i % 3 == 1:
                arb = rng.choice(known)
            else:
                arb = rng.getrandbits(29 if ext else 11)
            data = rng.randbytes(rng.randint(0, 8))
            h.peer.send(can.Message(arbitration_id=arb, is_extended_id=ext, data=data))
            sent += 1
        await wait_for(lambda: metric(h.ctx, "bms_can_rx_frames_total") == sent)
        assert metric(h.ctx, "bms_can_decode_errors_total") > 0
        assert metric(h.ctx, "bms_can_rx_unknown_total") > 0
        assert h.adapter.link.up
        await h.clock.advance(1.0)
        assert 0x351 in h.received()


async def test_canopen_answers_sync_with_tpdos() -> None:
    async with running({"canopen": {"enabled": True, "node_id": 0x20}}) as h:
        h.ctx.store.state.control.errors_active = ["logic_offline"]
        h.peer.send(can.Message(arbitration_id=0x80, is_extended_id=False, data=b""))
        got: dict[int, list[can.Message]] = {}

        def both() -> bool:
            for k, v in h.received().items():
                got.setdefault(k, []).extend(v)
            return 0x1A0 in got and 0x2A0 in got

        await wait_for(both)
        t1 = dec("bms_main_canopen", got[0x1A0][0])
        assert t1["PackVoltage"] == pytest.approx(105.6)
        assert t1["Soc"] == 60
        assert dec("bms_main_canopen", got[0x2A0][0])["Errors1"] == 1 << 9


async def test_canopen_period_mode() -> None:
    async with running({"canopen": {"enabled": True, "mode": "period", "period_s": 0.5}}) as h:
        await h.clock.advance(1.0)
        assert len(h.received()[0x1A0]) == 3


async def test_bridge_mode_decodes_a_real_boards_tpdos() -> None:
    async with running({"canopen": {"enabled": True, "node_id": 0x20}}, mode="bridge") as h:
        h.peer.send(
            can.Message(
                arbitration_id=0x2A0, is_extended_id=False, data=bytes.fromhex("0180000000020000")
            )
        )
        h.peer.send(
            can.Message(
                arbitration_id=0x1A0, is_extended_id=False, data=bytes.fromhex("0300fffb1f4b1002")
            )
        )
        await wait_for(lambda: h.points().get("bms_main.pack_voltage_v") == 52.8)
        p = h.points()
        assert p["error.logic_offline"] is True
        assert p["bms_main.connected"] is True
        h.peer.send(can.Message(arbitration_id=0x80, is_extended_id=False, data=b""))
        await asyncio.sleep(0.05)
        assert 0x1A0 not in h.received()  # bridge mode never impersonates the board


async def test_inverter_bus_stays_silent_until_the_first_valid_scan() -> None:
    """No inverter frame on the wire before the engine's first valid scan, then the set.

    The virtual bus is FIFO: any frame sent before the flag would arrive before the first
    set sent after it, so seeing that set complete with one 0x351 proves the silence.
    """
    inverter = {"inverter": {"enabled": True, "profile": "pylon"}}
    async with running(inverter, first_valid_scan=False) as h:
        await h.clock.advance(3.0)  # three periods without a valid scan
        h.ctx.store.state.control.first_valid_scan = True
        await h.clock.advance(1.0)
        seen: dict[int, list[can.Message]] = {}

        def got_set() -> bool:
            for k, v in h.received().items():
                seen.setdefault(k, []).extend(v)
            return 0x35E in seen

        await wait_for(got_set)
        assert len(seen[0x351]) == 1
        assert {0x351, 0x355, 0x356, 0x359, 0x35C, 0x35E} <= set(seen)
