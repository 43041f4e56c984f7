"""Relays on a Modbus relay module fail safe on their own link (issue 9, item 1).

A whole in-process gateway (embedded simulator on a pty, the real Logic adapter, engine and
driver service) drives its relays on a pymodbus server playing the relay module, through a
proxy that resets or silences the link on demand. The module's coils are the truth the
tests check; the gateway's published relay state must follow what the module confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import _logic_port, build_components, build_context, gateway_tasks
from gateway.config import load_config
from gateway.control.commands import GO_SAFE, CommandRequested
from gateway.core.context import GatewayContext
from gateway.core.supervise import cancel_and_wait, run_tasks
from tests.support.modbus_fault_proxy import FaultProxy
from tests.support.modbus_io_server import IoModule, ModbusIoServer
from tests.support.waiting import until

DISCHARGE, CHARGE = 0, 2  # coils of relays 1 (discharge contactor) and 3 (charge contactor)
WATCHDOG_REGISTER = 10


@pytest.fixture
def module() -> Any:
    m = IoModule()
    server = ModbusIoServer(m)
    server.start()
    yield m, server.port
    server.stop()


def _config(tmp: Path, port: int, **relays: Any) -> Any:
    return load_config(
        overrides={
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "web": {"port": 0},
            "gateway": {"state_dir": str(tmp / "state")},
            "drivers": {
                "relays": {
                    "backend": "modbus",
                    "host": "127.0.0.1",
                    "port": port,
                    "timeout_s": 0.3,
                    "poll_interval_s": 0.1,
                    **relays,
                }
            },
        },
        env=False,
    )


@contextlib.asynccontextmanager
async def gateway(config: Any) -> AsyncIterator[tuple[GatewayContext, asyncio.Task[None]]]:
    """Run a whole gateway in this process (as `run_gateway` does) while the block runs."""
    async with _logic_port(config) as (cfg, pack):
        ctx = build_context(cfg, None, pack)
        components = build_components(ctx)
        task = asyncio.create_task(run_tasks(gateway_tasks(ctx, components)))
        try:
            yield ctx, task
        finally:
            await cancel_and_wait(task)


def _errors(ctx: GatewayContext) -> list[str]:
    return list(ctx.store.state.control.errors_active)


def _published_closed(ctx: GatewayContext, relay: int) -> bool:
    sw = ctx.store.state.control.relays.get(relay)
    return sw is not None and sw.on


async def _contactors_closed(ctx: GatewayContext, m: IoModule) -> None:
    await until(
        lambda: m.coils[DISCHARGE] and m.coils[CHARGE] and _published_closed(ctx, 1),
        "the gateway closing the contactors on the module",
        timeout_s=30,
    )


async def test_a_tcp_reset_while_closed_raises_relay_driver_fault_and_recovers(
    module: Any, tmp_path: Path
) -> None:
    m, port = module
    async with (
        FaultProxy(("127.0.0.1", port)).running() as proxy,
        gateway(_config(tmp_path, proxy.port)) as (ctx, task),
    ):
        await _contactors_closed(ctx, m)
        proxy.mode = "reset"
        await until(lambda: "relay_driver_fault" in _errors(ctx), "relay_driver_fault")
        detail = ctx.drivers.relays.fault  # type: ignore[attr-defined]
        assert detail is not None and f"127.0.0.1:{proxy.port}" in detail, detail
        assert "reset" in detail.lower() or "connect" in detail.lower(), detail
        assert not task.done(), "the gateway stopped on a relay link error"
        await until(
            lambda: ctx.registry.get_sample_value("bms_relay_driver_fault") == 1, "fault gauge"
        )
        # the engine commands every relay open; the module cannot hear it yet
        assert not ctx.drivers.relays.relay_closed(1)
        proxy.mode = "pass"
        # the driver reconnects on its own and writes the coils open first
        await until(lambda: not m.coils[DISCHARGE] and not m.coils[CHARGE], "coils open")
        await until(lambda: "relay_driver_fault" not in _errors(ctx), "fault cleared")
        await _contactors_closed(ctx, m)
        assert not task.done()
        assert ctx.drivers.relays.link.failures > 0  # type: ignore[attr-defined]
        assert (ctx.registry.get_sample_value("bms_relay_driver_errors_total") or 0) > 0
        assert ctx.registry.get_sample_value("bms_relay_driver_fault") == 0


async def test_a_silent_link_reports_the_last_confirmed_state_not_the_command(
    module: Any, tmp_path: Path
) -> None:
    m, port = module
    async with (
        FaultProxy(("127.0.0.1", port)).running() as proxy,
        gateway(_config(tmp_path, proxy.port)) as (ctx, task),
    ):
        await _contactors_closed(ctx, m)
        relays: Any = ctx.drivers.relays
        # settled: nothing left to write and the last read-back says closed (a reclose
        # written just before the silence, its read-back lost, would leave "open" confirmed)
        await until(lambda: not relays.writer.dirty and relays.confirmed(1), "coils settled")
        proxy.mode = "silent"
        ctx.bus.publish(
            CommandRequested(at_s=ctx.clock.now(), command=GO_SAFE, source="test", request=1)
        )
        await until(lambda: "relay_driver_fault" in _errors(ctx), "relay_driver_fault")
        # the coil is still closed and the gateway says so, with the error naming why
        assert m.coils[DISCHARGE]
        assert not relays.relay_closed(1)  # commanded open...
        assert relays.confirmed(1) and _published_closed(ctx, 1)  # ...confirmed and shown closed
        detail = ctx.drivers.relays.fault  # type: ignore[attr-defined]
        assert detail is not None and "modbus relay driver" in detail
        proxy.mode = "pass"
        await until(lambda: not m.coils[DISCHARGE] and not m.coils[CHARGE], "coils open")
        await until(lambda: not _published_closed(ctx, 1), "published open after read-back")
        assert not task.done()


async def test_coils_open_within_the_lease_while_the_event_loop_is_blocked(
    module: Any, tmp_path: Path
) -> None:
    m, port = module
    async with gateway(_config(tmp_path, port)) as (ctx, task):
        await _contactors_closed(ctx, m)
        opened_while_blocked = threading.Event()

        def block_the_loop() -> None:
            # The loop is stuck in this callback for 5 s; the lease (1 s) lapses meanwhile.
            end = time.monotonic() + 5.0
            while time.monotonic() < end:
                if not m.coils[DISCHARGE] and not m.coils[CHARGE]:
                    opened_while_blocked.set()
                    return
                time.sleep(0.01)

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: None)  # a worker thread exists
        loop.call_soon(block_the_loop)
        await asyncio.sleep(0)
        assert opened_while_blocked.is_set(), "coils stayed closed while the loop was blocked"
        assert ctx.drivers.relays.lease_lapses >= 1  # type: ignore[attr-defined]
        assert not task.done()


async def test_a_readback_that_disagrees_is_a_relay_driver_fault(
    module: Any, tmp_path: Path
) -> None:
    m, port = module
    async with gateway(_config(tmp_path, port)) as (ctx, _task):
        await _contactors_closed(ctx, m)
        m.coils[DISCHARGE] = False  # someone (or the module) opened it behind our back
        await until(lambda: "relay_driver_fault" in _errors(ctx), "relay_driver_fault")
        detail = ctx.drivers.relays.fault or ""  # type: ignore[attr-defined]
        assert "relay 1" in detail and "reads open" in detail, detail
        await until(lambda: not m.coils[CHARGE], "every relay opened")


def _run_gateway_process(tmp: Path, port: int) -> subprocess.Popen[bytes]:
    cfg = tmp / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "mqtt": {"enabled": False},
                "metrics": {"enabled": False},
                "web": {"port": 0},
                "gateway": {"state_dir": str(tmp / "state")},
                "drivers": {
                    "relays": {
                        "backend": "modbus",
                        "host": "127.0.0.1",
                        "port": port,
                        "poll_interval_s": 0.1,
                        "module_watchdog": {"address": WATCHDOG_REGISTER, "value": 5},
                    }
                },
            }
        )
    )
    exe = Path(sys.executable).parent / "bms-gateway"
    return subprocess.Popen(
        [str(exe), "run", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["SIGKILL", "SIGSTOP"])
async def test_the_module_watchdog_opens_the_coils_when_the_gateway_dies_or_freezes(
    module: Any, tmp_path: Path, sig: signal.Signals
) -> None:
    m, port = module
    m.watchdog_register = WATCHDOG_REGISTER  # 5 x 0.1 s without a refresh: coils open
    proc = _run_gateway_process(tmp_path, port)
    try:
        await until(lambda: m.coils[DISCHARGE] and m.coils[CHARGE], "contactors closed", 60)
        assert m.holding_registers[WATCHDOG_REGISTER] == 5
        assert m.watchdog_trips == 0
        proc.send_signal(sig)
        await until(lambda: m.watchdog_trips == 1, "the module's watchdog tripping")
        assert not any(m.coils[:4])
        if sig == signal.SIGSTOP:
            # Thawed, the gateway reads the coils back open: an alarm, not a silent reclose.
            proc.send_signal(signal.SIGCONT)
            await until(lambda: m.watchdog_deadline is not None, "the watchdog re-armed")
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        proc.wait(10)


def test_check_config_warns_about_a_modbus_relay_module_without_watchdog(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    bare = tmp_path / "bare.yaml"
    bare.write_text("drivers:\n  relays: {backend: modbus, host: 192.0.2.7}\n")
    assert main(["check-config", str(bare)]) == 0
    out = capsys.readouterr()
    assert "valid" in out.out
    assert "drivers.relays" in out.err and "module_watchdog" in out.err
    guarded = tmp_path / "guarded.yaml"
    guarded.write_text(
        "drivers:\n  relays: {backend: modbus, host: 192.0.2.7,"
        " module_watchdog: {address: 10, value: 30}}\n"
    )
    assert main(["check-config", str(guarded)]) == 0
    assert "warning" not in capsys.readouterr().err
