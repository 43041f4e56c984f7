"""A full history disk is an event and a metric; relay decisions stay on time.

The store is capped with SQLite's `max_page_count`, so SQLite itself answers "database or disk
is full" exactly as on a full file system. The gateway runs whole (embedded simulator, engine,
web, history) on the real clock.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from gateway.app import build_components, build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.publishers.history.store import HistoryStore
from gateway.publishers.web.server import WebComponent
from gateway.sim.embedded import embedded_simulator
from tests.support.tasks import cancel_for_sure
from tests.support.waiting import until

SET_DELAY_S = 1.0  # protections.cell_overvoltage.set_delay_ms for LFP


def sample(web: WebComponent, name: str) -> float:
    return float(web.ctx.registry.get_sample_value(name) or 0.0)


async def test_full_disk_keeps_the_gateway_deciding(tmp_path: Path) -> None:
    overrides: dict[str, Any] = {
        "gateway": {"id": "gw-disk", "state_dir": str(tmp_path / "state")},
        "mqtt": {"enabled": False},
        "metrics": {"enabled": False},
        "logic": {"boards": 4, "cells_per_board": 16, "poll_interval_s": 0.1},
        "web": {"port": 0},
        "history": {"pack_interval_s": 1, "cell_interval_s": 1, "flush_interval_s": 0.2},
    }
    config = load_config(overrides=overrides, env=False)
    async with embedded_simulator(config) as (port, pack):
        logic = config.logic.model_copy(update={"port": port})
        # The bundled web component is switched off; ours has a store that fills up at once.
        off = {"web": {"enabled": False}, "history": {"enabled": False}}
        ctx = build_context(
            load_config(overrides={**overrides, **off}, env=False).model_copy(
                update={"logic": logic}
            ),
            RealClock(),
            pack,
        )
        components = build_components(ctx)
        assert not any(isinstance(c, WebComponent) for c in components)
        ctx.config = config.model_copy(update={"logic": logic})
        web = WebComponent(ctx, history_max_pages=6)
        components.append(web)
        tasks = [asyncio.create_task(ctx.store.run())]
        tasks += [asyncio.create_task(c.run(), name=c.name) for c in components]
        try:
            await asyncio.wait_for(web.ready.wait(), 20)
            assert web.writer is not None
            # The disk fills up: an error event, a metric, and the gateway runs on.
            await until(lambda: web.writer is not None and web.writer.failing, "a failed write")
            failed = [e for e in web.journal.recent if e["type"] == "history_write_failed"]
            assert failed and "full" in failed[0]["detail"]
            assert sample(web, "bms_history_ok") == 0.0
            assert sample(web, "bms_history_write_failures_total") >= 1
            # A cell over its limit still opens the charge contactor on time.
            pack.force_cell_voltage(1, 2, 3.75)
            loop = asyncio.get_running_loop()
            forced_at = loop.time()

            def charge_opened() -> bool:
                return any(
                    e["type"] == "relay_opened"
                    and e["function"] == "charge_contactor"
                    and "cell_overvoltage" in e["reasons"]
                    for e in web.journal.recent
                )

            await until(charge_opened, "the charge contactor opened", timeout_s=SET_DELAY_S + 3.0)
            assert loop.time() - forced_at < SET_DELAY_S + 3.0
            failures = sample(web, "bms_history_write_failures_total")
            await until(
                lambda: sample(web, "bms_history_write_failures_total") > failures,
                "the writer retrying (and failing) again",
            )
            async with aiohttp.ClientSession() as http, http.get(f"{web.url}api/state") as r:
                assert r.status == 200
                state = await r.json()
            assert "cell_overvoltage" in state["errors"]
            assert all(task.done() is False for task in tasks), "a task died"
        finally:
            for t in reversed(tasks):
                await cancel_for_sure(t)


async def test_a_damaged_history_file_is_an_event_not_a_crash(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    bad = tmp_path / "history.sqlite3"
    bad.write_bytes(b"this is not an SQLite database, just garbage " * 100)
    config = load_config(
        overrides={
            "gateway": {"state_dir": str(tmp_path)},
            "web": {"enabled": False},
            "history": {"path": str(bad)},
        },
        env=False,
    )
    ctx = build_context(config, RealClock())
    ctx.registry = CollectorRegistry()
    web = WebComponent(ctx)
    task = asyncio.create_task(web.run())
    try:
        await until(
            lambda: any(e["type"] == "history_write_failed" for e in web.journal.recent),
            "the failure as an event",
        )
        (event,) = [e for e in web.journal.recent if e["type"] == "history_write_failed"]
        assert event["path"] == str(bad) and "database" in event["detail"]
        assert sample(web, "bms_history_ok") == 0.0
        assert not task.done()
        assert bad.read_bytes().startswith(b"this is not an SQLite")  # left alone for a person
    finally:
        await cancel_for_sure(task)


async def test_the_component_runs_again_after_a_restart(tmp_path: Path) -> None:
    """The gateway restarts a crashed publisher by calling `run` again on the same object."""
    from prometheus_client import CollectorRegistry

    from gateway.core.events import BoardCameOnline

    config = load_config(
        overrides={
            "gateway": {"state_dir": str(tmp_path)},
            "web": {"enabled": False},
            "history": {"flush_interval_s": 0.1},
        },
        env=False,
    )
    ctx = build_context(config, RealClock())
    ctx.registry = CollectorRegistry()
    web = WebComponent(ctx)
    for run in (1, 2):
        task = asyncio.create_task(web.run())
        await until(lambda: web.writer is not None and web.writer.store is not None, "open")
        ctx.bus.publish(BoardCameOnline(at_s=ctx.clock.now(), board=run))
        await until(lambda n=run: sample(web, "bms_history_writes_total") >= n, "a write")
        await cancel_for_sure(task)
    assert web.writer is not None
    store = HistoryStore(web.writer.path)  # the component closed its own at the end
    events = store.events_after(0, 10)
    store.close()
    assert [(e.seq, e.body["board"]) for e in events] == [(1, 1), (2, 2)]
