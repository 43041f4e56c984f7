"""The Logic adapter against the simulated boards over real pty pairs and real pymodbus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.logic import LogicAdapter, create
from gateway.adapters.logic_health import classify_garbage
from gateway.app import build_context
from gateway.config import GatewayConfig, load_config
from gateway.core.bus import Overflow, Subscription
from gateway.core.clock import Clock, RealClock, VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.events import BoardCameOnline, BoardScanned, BoardWentOffline, Event
from gateway.protocols.modbus_rtu import rtu_frame
from gateway.sim.embedded import embedded_simulator
from gateway.sim.logic_server import LogicRtuServer, serve_on_pty
from gateway.sim.pack import PackModel


def make_config(port: str, **logic: Any) -> GatewayConfig:
    # retries 0: these tests count each failed read (tests/test_serial_noise.py: retries)
    base = {"boards": 3, "cells_per_board": 16, "timeout_s": 0.05, "offline_after": 3, "retries": 0}
    base.update(logic)
    return load_config(overrides={"logic": {"port": port, **base}}, env=False)


@contextlib.asynccontextmanager
async def rig(
    pack: PackModel,
    clock: Clock | None = None,
    reply_filter: Callable[[int, bytes], bytes | None] | None = None,
    **logic: Any,
) -> AsyncIterator[tuple[GatewayContext, LogicAdapter, LogicRtuServer]]:
    server = LogicRtuServer(pack, reply_filter=reply_filter)
    async with serve_on_pty(server) as path:
        ctx = build_context(make_config(path, **logic), clock or RealClock(), pack)
        adapter = LogicAdapter(ctx)
        try:
            yield ctx, adapter, server
        finally:
            adapter.close()


def notices(ctx: GatewayContext) -> Subscription[Event]:
    return ctx.bus.subscribe(
        "test-notices", BoardWentOffline, BoardCameOnline, overflow=Overflow.NEVER_DROP
    )


def drain(sub: Subscription[Event]) -> list[Event]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def errors(ctx: GatewayContext, board: int, kind: str) -> float:
    v = ctx.registry.get_sample_value(
        "bms_logic_poll_errors_total", {"board": str(board), "kind": kind}
    )
    return v or 0.0


def spread_voltages(pack: PackModel) -> None:
    """Give every cell its own voltage so a mix-up between cells or boards shows."""
    for b in range(1, pack.board_count + 1):
        for c in range(1, len(pack.board(b).cells) + 1):
            pack.force_cell_voltage(b, c, 3.0 + b * 0.1 + c * 0.003 + 0.0004)


async def test_every_cell_voltage_arrives_in_the_state() -> None:
    pack = PackModel(boards=3, cells_per_board=16)
    spread_voltages(pack)
    pack.force_temperature(31.4, board=2, sensor=5)
    pack.force_temperature(None, board=3, sensor=1)
    async with rig(pack) as (ctx, adapter, _):
        scans = ctx.bus.subscribe("scans", BoardScanned, maxsize=100)
        await adapter.poll_cycle()
        ctx.store.drain()
        got = drain(scans)
        assert [e.board for e in got if isinstance(e, BoardScanned)] == [1, 2, 3]
        for b in (1, 2, 3):
            state = ctx.store.state.boards[b]
            assert state.online
            want = pack.cell_voltages_v(b)
            assert len(state.cell_voltages_v) == len(want) == 16
            for got_v, want_v in zip(state.cell_voltages_v, want, strict=True):
                assert abs(got_v - want_v) <= 0.001
        assert ctx.store.state.boards[2].temperatures_c[4] == 31.4
        assert ctx.store.state.boards[3].temperatures_c[0] is None
        # each board carries the time its own reply arrived
        stamps = [e.at_s for e in got]
        assert stamps == sorted(stamps)
        assert ctx.registry.get_sample_value("bms_logic_polls_total", {"board": "1"}) == 1


async def test_board_goes_offline_after_configured_failures_and_comes_back() -> None:
    pack = PackModel(boards=3, cells_per_board=16)
    async with rig(pack, offline_after=3) as (ctx, adapter, _):
        sub = notices(ctx)
        await adapter.poll_cycle()
        assert {e.board for e in drain(sub) if isinstance(e, BoardCameOnline)} == {1, 2, 3}
        pack.set_board_online(2, False)
        for _ in range(2):
            await adapter.poll_cycle()
        assert drain(sub) == []
        ctx.store.drain()
        assert ctx.store.state.boards[2].online
        await adapter.poll_cycle()
        [went] = drain(sub)
        assert isinstance(went, BoardWentOffline)
        assert (went.board, went.reason, went.consecutive_failures) == (2, "timeout", 3)
        ctx.store.drain()
        assert not ctx.store.state.boards[2].online
        assert ctx.store.state.boards_online == 2
        await adapter.poll_cycle()  # still silent: counted, but no second notice
        assert drain(sub) == []
        assert errors(ctx, 2, "timeout") == 4
        assert errors(ctx, 1, "timeout") == 0
        pack.set_board_online(2, True)
        await adapter.poll_cycle()
        [back] = drain(sub)
        assert isinstance(back, BoardCameOnline)
        assert back.board == 2
        ctx.store.drain()
        assert ctx.store.state.boards_online == 3


async def test_offline_and_online_are_logged_once_each(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pack = PackModel(boards=1, cells_per_board=4)
    async with rig(pack, boards=1, cells_per_board=4, offline_after=2) as (_, adapter, _srv):
        await adapter.poll_cycle()
        pack.set_board_online(1, False)
        caplog.clear()
        for _ in range(5):
            await adapter.poll_cycle()
        pack.set_board_online(1, True)
        await adapter.poll_cycle()
        await adapter.poll_cycle()
    ours = [r for r in caplog.records if r.name == "gateway.adapters.logic"]
    assert [r.levelname for r in ours if "offline" in r.getMessage()] == ["WARNING"]
    assert [r.levelname for r in ours if "back online" in r.getMessage()] == ["INFO"]
    assert not [r for r in caplog.records if r.name.startswith("pymodbus") and r.levelno >= 40]


def _noise(n: int, seed: int, avoid: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice([b for b in range(256) if b != avoid]) for _ in range(n))


def _short_block(board: int) -> bytes:
    """A well-formed frame (valid CRC) carrying only 10 registers."""
    return rtu_frame(board, bytes([0x04, 20]) + struct.pack(">10H", *([0x4C47] + [0] * 9)))


CORRUPTIONS: dict[str, tuple[Callable[[bytes], bytes | None], str]] = {
    "bad_crc": (lambda r: r[:-1] + bytes([r[-1] ^ 0xFF]), "crc"),
    "flipped_data_bit": (lambda r: r[:20] + bytes([r[20] ^ 0x10]) + r[21:], "crc"),
    "random_bytes": (lambda r: _noise(40, 7, avoid=1), "malformed"),
    "short_frame": (lambda r: r[:7], "malformed"),
    "valid_crc_short_block": (lambda r: _short_block(1), "malformed"),
    "wrong_device_id": (
        lambda r: rtu_frame(1, r[1:3] + b"\x12\x34" + r[5:-2]),
        "malformed",
    ),
    "exception_reply": (lambda r: rtu_frame(1, bytes([0x84, 0x04])), "exception"),
    "silence": (lambda r: None, "timeout"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
async def test_garbage_is_counted_and_the_next_good_reply_is_used(name: str) -> None:
    corrupt, kind = CORRUPTIONS[name]
    armed = {"board1": False}

    def reply_filter(board: int, reply: bytes) -> bytes | None:
        if board == 1 and armed["board1"]:
            armed["board1"] = False
            return corrupt(reply)
        return reply

    pack = PackModel(boards=2, cells_per_board=16)
    # timeout 0.5 s, not the rig's 0.05 s: on a loaded machine a good reply can take longer
    # than 50 ms, and that extra timeout would be counted beside the corruption under test.
    async with rig(pack, reply_filter=reply_filter, boards=2, timeout_s=0.5) as (ctx, adapter, _):
        sub = notices(ctx)
        await adapter.poll_cycle()
        pack.force_cell_voltage(1, 7, 3.456)
        armed["board1"] = True
        await adapter.poll_cycle()
        assert errors(ctx, 1, kind) == 1
        assert sum(errors(ctx, 1, k) for k in ("timeout", "crc", "malformed", "exception")) == 1
        ctx.store.drain()
        assert ctx.store.state.boards[1].cell_voltages_v[6] != 3.456  # the bad reply was dropped
        # board 2, polled right after the garbage, is unaffected
        assert errors(ctx, 2, kind) == 0
        await adapter.poll_cycle()
        ctx.store.drain()
        assert ctx.store.state.boards[1].cell_voltages_v[6] == 3.456
        assert ctx.store.state.boards[1].online
        assert not [e for e in drain(sub) if isinstance(e, BoardWentOffline)]


def test_classify_garbage() -> None:
    good = rtu_frame(3, bytes([0x04, 4, 0, 1, 0, 2]))
    assert classify_garbage(b"", 3) is None
    assert classify_garbage(good[:-1] + b"\x00", 3) == "crc"
    assert classify_garbage(b"\x00\x99" + good[:-1] + b"\x00", 3) == "crc"
    assert classify_garbage(good[:6], 3) == "malformed"
    assert classify_garbage(good, 9) == "malformed"  # a frame for another board


async def test_balancing_masks_written_by_the_adapter_reach_the_board() -> None:
    pack = PackModel(boards=2, cells_per_board=16)
    pack.write_balancing(2, 0b11)  # a stale mask from before the gateway started
    async with rig(pack, boards=2) as (ctx, adapter, _):
        control = ctx.store.state.control
        control.balancing[1] = 0b1000_0000_0000_0101
        await adapter.poll_cycle()
        assert pack.board(1).balancing_mask == 0b1000_0000_0000_0101
        assert pack.board(2).balancing_mask == 0  # no request for board 2 means "off"

        def writes(board: int) -> float:
            v = ctx.registry.get_sample_value(
                "bms_logic_balancing_writes_total", {"board": str(board), "result": "ok"}
            )
            return v or 0.0

        await adapter.poll_cycle()  # unchanged: not written again
        assert writes(1) == 1
        ctx.store.drain()
        assert ctx.store.state.boards[1].balancing_mask == 0b1000_0000_0000_0101
        control.balancing[1] = 0
        control.balancing[2] = 1 << 20  # no cell 21 on any board: refused, never written
        await adapter.poll_cycle()
        assert pack.board(1).balancing_mask == 0
        assert pack.board(2).balancing_mask == 0
        assert writes(1) == 2
        assert writes(2) == 1


async def test_balancing_write_waits_for_an_offline_board() -> None:
    pack = PackModel(boards=1, cells_per_board=8)
    async with rig(pack, boards=1, cells_per_board=8) as (ctx, adapter, _):
        pack.set_board_online(1, False)
        ctx.store.state.control.balancing[1] = 0b10
        await adapter.poll_cycle()
        assert pack.board(1).balancing_mask == 0
        pack.set_board_online(1, True)
        await adapter.poll_cycle()
        assert pack.board(1).balancing_mask == 0b10


async def test_serial_port_that_disappears_is_reopened_with_backoff(tmp_path: Path) -> None:
    clock = VirtualClock()
    link = tmp_path / "ttyLOGIC"
    pack = PackModel(boards=1, cells_per_board=4)
    server = LogicRtuServer(pack)
    async with serve_on_pty(server) as first:
        link.symlink_to(first)
        ctx = build_context(
            make_config(str(link), boards=1, cells_per_board=4, offline_after=2), clock, pack
        )
        adapter = LogicAdapter(ctx)
        sub = notices(ctx)
        await adapter.poll_cycle()
        assert [type(e) for e in drain(sub)] == [BoardCameOnline]
    # The pty is gone: the gateway sees the line drop.
    await wait_for(lambda: not adapter.connected)
    try:
        for _ in range(2):
            await adapter.poll_cycle()
        [went] = drain(sub)
        assert isinstance(went, BoardWentOffline)
        assert went.reason == "io"
        assert errors(ctx, 1, "io") == 2
        link.unlink()
        async with serve_on_pty(server) as second:
            link.symlink_to(second)
            await adapter.poll_cycle()  # inside the backoff: no attempt yet, still down
            assert errors(ctx, 1, "io") == 3
            await clock.advance(60)
            await adapter.poll_cycle()
            assert [type(e) for e in drain(sub)] == [BoardCameOnline]
    finally:
        adapter.close()


async def wait_for(cond: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Poll a condition that depends on real I/O."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_missing_port_is_counted_as_io_not_raised(tmp_path: Path) -> None:
    ctx = build_context(
        make_config(str(tmp_path / "nope"), boards=2), VirtualClock(), PackModel(boards=2)
    )
    adapter = LogicAdapter(ctx)
    await adapter.poll_cycle()
    assert errors(ctx, 1, "io") == 1
    assert errors(ctx, 2, "io") == 1
    adapter.close()


async def test_run_loop_polls_periodically_against_the_embedded_simulator() -> None:
    config = load_config(
        overrides={
            "logic": {"boards": 2, "cells_per_board": 12, "poll_interval_s": 0.05},
            "simulator": {"current_amplitude_a": 0.0},
        },
        env=False,
    )
    async with embedded_simulator(config) as (port, pack):
        logic = config.logic.model_copy(update={"port": port})
        ctx = build_context(config.model_copy(update={"logic": logic}), RealClock(), pack)
        component = create(ctx)
        assert component is not None
        scans = ctx.bus.subscribe("scans", BoardScanned, maxsize=1000)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(component.run()), tg.create_task(ctx.store.run())]
            await wait_for(lambda: len(scans) >= 6)
            for t in tasks:
                t.cancel()
        state = ctx.store.state
        assert state.boards_online == 2
        for b in (1, 2):
            for got_v, want_v in zip(
                state.boards[b].cell_voltages_v, pack.cell_voltages_v(b), strict=True
            ):
                assert abs(got_v - want_v) <= 0.001


async def test_create_is_disabled_in_bridge_mode() -> None:
    config = load_config(
        overrides={"gateway": {"mode": "bridge"}, "logic": {"port": "/dev/null"}}, env=False
    )
    assert create(build_context(config, VirtualClock())) is None


async def test_run_loop_polls_on_the_gateway_clock() -> None:
    clock = VirtualClock()
    pack = PackModel(boards=2, cells_per_board=4)
    async with rig(pack, clock, boards=2, cells_per_board=4, poll_interval_s=5.0) as (
        ctx,
        adapter,
        _,
    ):
        scans = ctx.bus.subscribe("scans", BoardScanned, maxsize=100)
        task = asyncio.create_task(adapter.run())
        try:
            await wait_for(lambda: len(scans) == 2)  # the first cycle starts at once
            first = drain(scans)
            assert {e.at_s for e in first} == {0.0}
            await clock.advance(4.9)
            assert drain(scans) == []
            await clock.advance(0.1)
            await wait_for(lambda: len(scans) == 2)
            assert {e.at_s for e in drain(scans)} == {5.0}
            await clock.advance(5.0)
            await wait_for(lambda: len(scans) == 2)
            assert [e.board for e in drain(scans) if isinstance(e, BoardScanned)] == [1, 2]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert not adapter.connected  # run() closes the port on the way out
