"""Supervision (issue 9, item 3): a crashed adapter or publisher is restarted with backoff
and reported, the control loop keeps running; an engine crash opens every relay and the
gateway exits non-zero so systemd or the container restarts it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.logic import LogicAdapter
from gateway.app import _logic_port, build_components, build_context, gateway_tasks, main_run
from gateway.config import load_config
from gateway.control.engine import Engine
from gateway.core.bus import Overflow
from gateway.core.events import BoardScanned
from gateway.core.supervise import ComponentRestarted, cancel_and_wait, restarting, run_tasks
from tests.support.modbus_io_server import IoModule, ModbusIoServer
from tests.support.waiting import until


def _metric(ctx: Any, name: str, **labels: str) -> float:
    return ctx.registry.get_sample_value(name, labels) or 0.0


async def test_a_crashed_adapter_is_restarted_and_the_control_loop_keeps_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_poll = LogicAdapter.poll_cycle
    calls = {"n": 0}

    async def flaky_poll(self: LogicAdapter) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected bug in the Logic adapter")
        await real_poll(self)

    monkeypatch.setattr(LogicAdapter, "poll_cycle", flaky_poll)
    config = load_config(
        overrides={
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "web": {"port": 0},
            "gateway": {"state_dir": str(tmp_path)},
            "logic": {"poll_interval_s": 0.2},
        },
        env=False,
    )
    async with _logic_port(config) as (cfg, pack):
        ctx = build_context(cfg, None, pack)
        sub = ctx.bus.subscribe(
            "t", ComponentRestarted, BoardScanned, overflow=Overflow.NEVER_DROP, maxsize=10000
        )
        task = asyncio.create_task(run_tasks(gateway_tasks(ctx, build_components(ctx))))
        try:
            seen: list[Any] = []

            def restarted_and_scanning() -> bool:
                while (e := sub.get_nowait()) is not None:
                    seen.append(e)
                restart = [e for e in seen if isinstance(e, ComponentRestarted)]
                if not restart:
                    return False
                after = seen[seen.index(restart[0]) :]
                return any(isinstance(e, BoardScanned) for e in after)

            cycles_before = _metric(ctx, "bms_engine_cycles_total")
            await until(restarted_and_scanning, "the Logic adapter restarted and polling")
            event = next(e for e in seen if isinstance(e, ComponentRestarted))
            assert event.component == "logic"
            assert "injected bug" in event.error
            assert event.payload()["type"] == "component_restarted"
            assert _metric(ctx, "bms_component_restarts_total", component="logic") == 1
            assert _metric(ctx, "bms_engine_cycles_total") > cycles_before
            assert not task.done()
        finally:
            await cancel_and_wait(task)


async def test_restarts_back_off_and_a_clean_return_ends_the_component() -> None:
    reports: list[tuple[str, float, int]] = []
    runs = {"n": 0}

    async def crashy() -> None:
        runs["n"] += 1
        if runs["n"] <= 3:
            raise ValueError(f"crash {runs['n']}")

    await restarting(
        "x", crashy, lambda n, e, d, c: reports.append((str(e), d, c)), min_s=0.01, max_s=0.03
    )
    assert runs["n"] == 4
    assert reports == [("crash 1", 0.01, 1), ("crash 2", 0.02, 2), ("crash 3", 0.03, 3)]


def test_an_engine_crash_opens_every_relay_and_exits_non_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = IoModule()
    server = ModbusIoServer(module)
    server.start()
    real_step = Engine.step

    def step_then_crash(self: Engine, now_s: float) -> Any:
        if module.coils[0] and module.coils[2]:  # once the contactors are closed
            raise RuntimeError("injected bug in the engine")
        return real_step(self, now_s)

    monkeypatch.setattr(Engine, "step", step_then_crash)
    config = load_config(
        overrides={
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "web": {"port": 0},
            "gateway": {"state_dir": str(tmp_path)},
            "drivers": {
                "relays": {
                    "backend": "modbus",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "poll_interval_s": 0.1,
                }
            },
        },
        env=False,
    )
    try:
        assert main_run(config) == 1
        assert not any(module.coils[:4])
    finally:
        server.stop()


async def test_a_fatal_error_is_never_restarted() -> None:
    from gateway.core.errors import FatalError

    reports: list[str] = []

    async def duplicate() -> None:
        raise FatalError("another gateway has this id")

    async def grouped() -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(duplicate())

    with pytest.raises(FatalError):
        await restarting("mqtt", duplicate, lambda n, e, d, c: reports.append(n), min_s=0.01)
    with pytest.raises(ExceptionGroup):
        await restarting("mqtt", grouped, lambda n, e, d, c: reports.append(n), min_s=0.01)
    assert reports == []
