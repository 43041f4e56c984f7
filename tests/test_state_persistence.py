"""Persistence that fails safe (issue 9, item 2).

Latches and go-safe requests survive restarts; a state directory that is full or
read-only raises `state_persistence_fault` and keeps every relay open until the state is
written; an acknowledgement or a go-safe release takes effect only once written; a corrupt
state file at start keeps every relay open, naming why, until acknowledged; the writer
never holds up the control path.

The full and read-only directories are a real tmpfs (mounted small, remounted read-only)
when this machine lets the test mount one, and otherwise the same errnos injected at the
writer's OS-call seam (`StateWriter.ops`); the seam works as root, where chmod does not.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.config import GatewayConfig, load_config
from gateway.control.commands import GO_SAFE, CommandRequested
from gateway.control.latches import GO_SAFE_FILE, latch_path
from gateway.control.state_writer import PosixFileOps
from gateway.scenario.faults import BrokenDisk
from gateway.scenario.world import World
from gateway.sim.pack import PackModel
from tests.support.waiting import until

FAULT = "state_persistence_fault"


def _config(state_dir: Path, **extra: Any) -> GatewayConfig:
    data: dict[str, Any] = {
        "gateway": {"state_dir": str(state_dir)},
        "protections": {"cell_overvoltage": {"latch": True}},
        **extra,
    }
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


def _errors(world: World) -> list[str]:
    return list(world.ctx.store.state.control.errors_active)


def _all_open(world: World) -> bool:
    return not any(world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))


# --- corrupt or wrong-shape state at start -------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"null",
        b'{"latched": []}',
        b"[]",
        b"{}",
        b'"latched"',
        b'{"latched": {"no_such_error": {}}}',
        b'{"latched": {"cell_overvoltage": 5}}',
        b'{"latched": {}, "extra": 1}',
        b"{not json",
        b"",
        b"\xff\xfe\x00",
    ],
)
def test_a_corrupt_latch_file_keeps_every_relay_open_until_acknowledged(
    tmp_path: Path, content: bytes
) -> None:
    latch_path(tmp_path).write_bytes(content)
    world = _world(_config(tmp_path))
    _run(world, 5.0)
    assert _errors(world) == [FAULT]
    assert _all_open(world)
    detail = world.engine.engine.errors[FAULT].detail
    assert str(latch_path(tmp_path)) in detail and "corrupt" in detail, detail
    world.engine.engine.acknowledge(FAULT, 5.1)
    _run(world, 7.0, start_s=5.2)
    assert _errors(world) == []
    assert world.ctx.drivers.relays.relay_closed(1)
    # the acknowledgement rewrote the file in the right shape
    assert json.loads(latch_path(tmp_path).read_text()) == {"latched": {}}


def test_the_ack_command_repairs_a_corrupt_latch_file(tmp_path: Path) -> None:
    latch_path(tmp_path).write_text("null")
    assert main(["ack", "--state-dir", str(tmp_path), FAULT]) == 0
    assert json.loads(latch_path(tmp_path).read_text()) == {"latched": {}}
    world = _world(_config(tmp_path))
    _run(world, 3.0)
    assert _errors(world) == []


def test_a_corrupt_go_safe_file_restores_go_safe_and_names_the_fault(tmp_path: Path) -> None:
    (tmp_path / GO_SAFE_FILE).write_text('{"requests": []}')
    world = _world(_config(tmp_path))
    _run(world, 3.0)
    assert world.engine.engine.go_safe_requests == {"mqtt"}
    assert FAULT in _errors(world)
    assert _all_open(world)


# --- restart keeps latches and go-safe ------------------------------------------------


def test_restart_keeps_a_latch_and_an_mqtt_go_safe_request(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    world = _world(cfg)
    _run(world, 1.0)
    world.ctx.bus.publish(
        CommandRequested(at_s=1.0, command=GO_SAFE, source="mqtt", request=1, active=True)
    )
    world.pack.force_cell_voltage(1, 1, 3.8)
    _run(world, 4.0, start_s=1.1)
    assert set(_errors(world)) == {"cell_overvoltage"}
    world.engine.shutdown()

    again = _world(cfg)
    again.pack.release("all")
    _run(again, 10.0)
    assert _errors(again) == ["cell_overvoltage"]
    assert again.engine.engine.go_safe_requests == {"mqtt"}
    assert _all_open(again)
    # released (the release is written first), the relays may close again
    again.engine.engine.request_go_safe("mqtt", False)
    again.engine.engine.acknowledge("cell_overvoltage", 10.1)
    _run(again, 12.0, start_s=10.2)
    assert _errors(again) == []
    assert again.ctx.drivers.relays.relay_closed(1)
    again.engine.shutdown()

    third = _world(cfg)
    _run(third, 2.0)
    assert third.engine.engine.go_safe_requests == set()
    assert _errors(third) == []


# --- a full or read-only state directory ---------------------------------------------


def _mount_tmpfs(where: Path) -> bool:
    where.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


class Disk:
    """A state directory that can be made full or read-only, for real when possible."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "state"
        self.real = _mount_tmpfs(self.dir)
        self.injected: Any = None

    def fill(self) -> None:
        if not self.real:
            self.injected = BrokenDisk(errno.ENOSPC)
            return
        fd = os.open(self.dir / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 1024)
        except OSError as err:
            assert err.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def read_only(self) -> None:
        if not self.real:
            self.injected = BrokenDisk(errno.EROFS)
            return
        subprocess.run(["mount", "-o", "remount,ro", str(self.dir)], check=True, timeout=10)

    def heal(self) -> None:
        self.injected = None
        if self.real:
            subprocess.run(["mount", "-o", "remount,rw", str(self.dir)], check=True, timeout=10)
            (self.dir / "filler").unlink(missing_ok=True)

    def close(self) -> None:
        if self.real:
            subprocess.run(["umount", "-l", str(self.dir)], check=False, timeout=10)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    d = Disk(tmp_path)
    yield d
    d.close()


def _use(world: World, disk: Disk) -> None:
    """Point the writer at the injected failure (no-op on a real tmpfs)."""
    writer = world.engine.engine.persisted.writer
    writer.ops = disk.injected or PosixFileOps()


@pytest.mark.parametrize("how", ["fill", "read_only"])
async def test_a_latch_that_cannot_be_written_keeps_relays_open_until_it_is(
    disk: Disk, how: str
) -> None:
    world = _world(_config(disk.dir))
    world.logic.poll(0.0)
    task = asyncio.create_task(world.engine.run())  # the writer task runs off the loop
    stepper_clock = world.clock
    try:
        for t in range(1, 4):
            world.logic.poll(float(t))
            await stepper_clock.advance(1.0)
        assert world.ctx.drivers.relays.relay_closed(1)
        getattr(disk, how if how == "read_only" else "fill")()
        _use(world, disk)
        world.pack.force_cell_voltage(1, 1, 3.8)
        for t in range(4, 8):
            world.logic.poll(float(t))
            await stepper_clock.advance(1.0)
        await until(lambda: FAULT in _errors(world), FAULT)
        assert "cell_overvoltage" in _errors(world)
        assert _all_open(world)
        detail = world.engine.engine.faults.get(FAULT, "")
        assert "latched_errors.json" in detail
        assert ("No space" in detail) if how == "fill" else ("Read-only" in detail), detail
        # an acknowledgement cannot take effect while it cannot be written
        world.pack.release("all")
        for t in range(8, 10):
            world.logic.poll(float(t))
            await stepper_clock.advance(1.0)
        world.engine.engine.acknowledge("cell_overvoltage", world.clock.now())
        await stepper_clock.advance(1.0)
        assert "cell_overvoltage" in _errors(world)
        disk.heal()
        _use(world, disk)
        # the writer retries with backoff in real time; the engine then applies the ack
        for _ in range(200):
            if not _errors(world):
                break
            world.logic.poll(world.clock.now())
            await stepper_clock.advance(0.5)
            await asyncio.sleep(0.02)
        assert _errors(world) == []
        assert json.loads(latch_path(disk.dir).read_text()) == {"latched": {}}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_opening_relays_never_waits_for_the_disk(tmp_path: Path) -> None:
    """A write stuck in the kernel (NFS, a dying SD card) does not delay the trip."""
    world = _world(
        _config(
            tmp_path,
            inputs={1: {"signal": "battery_cover"}},
            protections={"battery_cover": {"latch": True}},
        )
    )
    release = threading.Event()
    entered = threading.Event()

    class StuckDisk(PosixFileOps):
        def write_durably(self, path: Path, data: bytes) -> None:
            entered.set()
            release.wait(30)
            super().write_durably(path, data)

    world.engine.engine.persisted.writer.ops = StuckDisk()
    world.logic.poll(0.0)
    task = asyncio.create_task(world.engine.run())
    try:
        for t in range(1, 3):
            world.logic.poll(float(t))
            await world.clock.advance(1.0)
        assert world.ctx.drivers.relays.relay_closed(1)
        world.pack.inputs_closed[0] = True
        await world.clock.advance(1.0)
        world.logic.poll(world.clock.now())
        await world.clock.advance(1.0)
        assert "battery_cover" in _errors(world)
        assert _all_open(world)  # while the latch write is still stuck
        await until(entered.is_set, "the writer thread inside the stuck write")
        assert not release.is_set()
    finally:
        release.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "battery_cover" in json.loads(latch_path(tmp_path).read_text())["latched"]


def test_writes_are_atomic_and_leave_no_temporary_file(tmp_path: Path) -> None:
    ops = PosixFileOps()
    target = tmp_path / "deep" / "x.json"
    ops.write_durably(target, b'{"a": 1}\n')
    ops.write_durably(target, b'{"a": 2}\n')
    assert json.loads(target.read_text()) == {"a": 2}
    assert sorted(os.listdir(target.parent)) == ["x.json"]


async def test_a_failed_write_reaches_the_engine_without_waiting_for_an_input(
    tmp_path: Path,
) -> None:
    """The writer fails in its thread between decisions; the heartbeat brings it in."""
    world = _world(_config(tmp_path))
    gate = threading.Event()

    class LateFullDisk(PosixFileOps):
        def write_durably(self, path: Path, data: bytes) -> None:
            gate.wait(30)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    world.logic.poll(0.0)
    task = asyncio.create_task(world.engine.run())
    try:
        for t in range(1, 3):
            world.logic.poll(float(t))
            await world.clock.advance(1.0)
        world.engine.engine.persisted.writer.ops = LateFullDisk()
        world.pack.force_cell_voltage(1, 1, 3.8)
        world.logic.poll(world.clock.now())
        await world.clock.advance(1.2)  # the set delay: the latch is submitted, the write hangs
        assert "cell_overvoltage" in _errors(world)
        writer = world.engine.engine.persisted.writer
        gate.set()  # now the disk says "full", between two decisions
        await until(lambda: writer.fault is not None, "the latch write failing in its thread")
        assert FAULT not in _errors(world)
        await world.clock.advance(0.25)  # two heartbeats, no input
        assert FAULT in _errors(world)
        assert _all_open(world)
    finally:
        gate.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
