"""sd_notify against a real unix datagram socket (what systemd listens on)."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.core.clock import VirtualClock
from gateway.core.sdnotify import (
    Notifier,
    engine_progress,
    run_notifier,
    supervise,
    watchdog_interval_s,
)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield path, sock
    sock.close()


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


def test_notify_sends_one_datagram_per_call(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier(path)
    assert n.notify("READY=1", "STATUS=running")
    assert received(sock) == ["READY=1\nSTATUS=running"]
    n.close()
    n.close()


def test_abstract_namespace_address() -> None:
    name = f"bms-gateway-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        assert Notifier.from_env({"NOTIFY_SOCKET": "@" + name}).notify("READY=1")
        assert received(sock) == ["READY=1"]
    finally:
        sock.close()


def test_no_socket_is_a_no_op() -> None:
    n = Notifier.from_env({})
    assert not n.enabled
    assert not n.notify("READY=1")


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    n = Notifier(str(tmp_path / "missing.sock"))
    assert n.notify("READY=1") is False


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    pid = str(os.getpid())
    assert watchdog_interval_s({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": pid}) == 2.0
    assert watchdog_interval_s({}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "x"}) is None
    assert watchdog_interval_s({"WATCHDOG_USEC": "0"}) is None


async def test_ready_watchdog_while_the_engine_cycles_then_stopping(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    clock = VirtualClock()
    registry = CollectorRegistry()
    cycles = Counter("bms_engine_cycles", "cycles", registry=registry)
    task = asyncio.create_task(run_notifier(Notifier(path), clock, 5.0, engine_progress(registry)))
    await clock.advance(0)
    assert received(sock) == ["READY=1\nSTATUS=running"]

    cycles.inc()
    await clock.advance(5.0)
    assert received(sock) == ["WATCHDOG=1"]

    await clock.advance(5.0)  # the engine made no cycle: the watchdog is not fed
    assert received(sock) == []

    cycles.inc(3)
    await clock.advance(5.0)
    assert received(sock) == ["WATCHDOG=1"]

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received(sock) == ["STOPPING=1"]


async def test_without_engine_the_loop_itself_is_vouched_for(
    listener: tuple[str, socket.socket],
) -> None:
    path, sock = listener
    clock = VirtualClock()
    task = asyncio.create_task(
        run_notifier(Notifier(path), clock, 1.0, engine_progress(CollectorRegistry()))
    )
    await clock.advance(0)
    await clock.advance(1.0)
    await clock.advance(1.0)
    assert received(sock) == ["READY=1\nSTATUS=running", "WATCHDOG=1", "WATCHDOG=1"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_supervise_reads_the_environment(
    listener: tuple[str, socket.socket], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    task = asyncio.create_task(supervise(CollectorRegistry(), VirtualClock()))
    await asyncio.sleep(0)
    assert received(sock) == ["READY=1\nSTATUS=running"]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert received(sock) == ["STOPPING=1"]


async def test_supervise_without_systemd_returns_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    await asyncio.wait_for(supervise(CollectorRegistry(), VirtualClock()), 1.0)
