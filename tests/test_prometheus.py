"""The Prometheus publisher: scrape-time state gauges served over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import build_context
from gateway.config import load_config
from gateway.control.names import ERROR_NAMES
from gateway.core.clock import VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.registry import discover
from gateway.publishers import mqtt, prometheus
from gateway.publishers.prometheus import STATE_METRICS, PrometheusPublisher, create
from tests.test_payloads import fixed_state

PROMTOOL = shutil.which("promtool")


def make_ctx(**metrics: Any) -> GatewayContext:
    cfg = load_config(
        overrides={
            "metrics": {"host": "127.0.0.1", "port": 0, **metrics},
            "logic": {"boards": 3, "cells_per_board": 3},
        },
        env=False,
    )
    ctx = build_context(cfg, VirtualClock())
    ctx.store.state = fixed_state()
    return ctx


@contextlib.asynccontextmanager
async def serving(pub: PrometheusPublisher) -> AsyncIterator[None]:
    task = asyncio.create_task(pub.run())
    try:
        await asyncio.wait_for(pub.ready.wait(), 10)
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def http(port: int, request: str) -> tuple[str, dict[str, str], str]:
    """Send a raw HTTP/1.1 request and return (status line, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request.encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = raw.decode().partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return status, headers, body


async def scrape(port: int) -> str:
    status, headers, body = await http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("text/plain")
    assert int(headers["content-length"]) == len(body.encode())
    return body


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float | None:
    return found.get((name, frozenset(labels.items())))


async def test_scrape_shows_cell_gauges_and_control_state() -> None:
    ctx = make_ctx()
    pub = PrometheusPublisher(ctx)
    async with serving(pub):
        assert pub.port not in (None, 0)
        found = samples(await scrape(pub.port or 0))
        state = ctx.store.state
        for n, board in state.boards.items():
            for i, v in enumerate(board.cell_voltages_v, start=1):
                got = value(found, "bms_cell_voltage_volts", board=str(n), cell=str(i))
                assert got == (v if board.online else None), (n, i)
        assert value(found, "bms_cell_temperature_celsius", board="1", sensor="1") == 24.96
        assert value(found, "bms_cell_temperature_celsius", board="1", sensor="2") is None
        assert value(found, "bms_board_temperature_celsius", board="1") == 31.26
        assert value(found, "bms_board_online", board="3") == 0
        assert value(found, "bms_boards_online") == 2
        assert value(found, "bms_pack_voltage_volts") == state.pack_voltage_v
        assert value(found, "bms_pack_current_amperes") == -12.3456
        assert value(found, "bms_humidity_ratio") == pytest.approx(0.4126)
        assert value(found, "bms_state_of_charge_ratio") == 0.61234
        assert value(found, "bms_charge_voltage_limit_volts") == 55.2
        assert value(found, "bms_charge_current_limit_amperes") == 49.999
        assert value(found, "bms_discharge_current_limit_amperes") == 100.0
        errors = {dict(k[1])["error"]: v for k, v in found.items() if k[0] == "bms_error_active"}
        assert errors == {name: float(name == "cell_imbalance") for name in ERROR_NAMES}
        assert value(found, "bms_signal_active", signal="charge_allowed") == 1
        assert value(found, "bms_relay_closed", relay="3", function="charge_contactor") == 1
        assert value(found, "bms_relay_closed", relay="4", function="heater") == 0
        assert value(found, "bms_output_on", output="1", function="critical_error") == 0
        assert value(found, "bms_input_closed", input="4") == 1
        assert value(found, "bms_indicator_on", indicator="DS2") == 1
        balancing = [dict(k[1]) for k in found if k[0] == "bms_cell_balancing"]
        assert balancing == [{"board": "1", "cell": "3"}]  # offline board 3's mask is stale
        assert value(found, "bms_point_value", point="charger.output_voltage_v") == 53.2
        assert value(found, "bms_point_value", point="x.nan") is None
        # The state is read at scrape time: a change shows in the next scrape.
        state.boards[1].cell_voltages_v = (3.5, 3.5, 3.5)
        state.control.errors_active = []
        again = samples(await scrape(pub.port or 0))
        assert value(again, "bms_cell_voltage_volts", board="1", cell="2") == 3.5
        assert value(again, "bms_error_active", error="cell_imbalance") == 0


async def test_health_counters_are_served_too() -> None:
    ctx = make_ctx()
    mqtt.MqttPublisher(ctx)  # registers its own metrics on the same registry
    pub = PrometheusPublisher(ctx)
    ctx.health.mqtt_publishes.labels(topic="state").inc(3)
    async with serving(pub):
        found = samples(await scrape(pub.port or 0))
    assert value(found, "bms_mqtt_publishes_total", topic="state") == 3
    assert value(found, "bms_mqtt_connected") == 0
    assert value(found, "bms_mqtt_events_dropped_total") == 0


async def test_empty_state_exports_no_fake_zeros() -> None:
    ctx = make_ctx()
    ctx.store.state = type(ctx.store.state)()
    pub = PrometheusPublisher(ctx)
    async with serving(pub):
        found = samples(await scrape(pub.port or 0))
    names = {k[0] for k in found}
    for absent in (
        "bms_pack_voltage_volts",
        "bms_pack_current_amperes",
        "bms_cell_voltage_volts",
        "bms_state_of_charge_ratio",
        "bms_input_closed",
        "bms_humidity_ratio",
    ):
        assert absent not in names, absent
    assert value(found, "bms_boards_online") == 0


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (apt-get install prometheus)")
async def test_promtool_check_metrics_accepts_a_live_scrape() -> None:
    ctx = make_ctx()
    mqtt.MqttPublisher(ctx)
    pub = PrometheusPublisher(ctx)
    ctx.health.polls.labels(board="1").inc()
    ctx.health.poll_errors.labels(board="1", kind="timeout").inc()
    ctx.health.bus_drops.labels(subscriber="x").inc()
    async with serving(pub):
        body = await scrape(pub.port or 0)
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL,
        "check",
        "metrics",
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await proc.communicate(body.encode())
    assert proc.returncode == 0, out.decode()
    assert out.decode().strip() == ""


async def test_other_paths_and_methods() -> None:
    pub = PrometheusPublisher(make_ctx())
    async with serving(pub):
        port = pub.port or 0
        assert (await http(port, "GET /nope HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
        status, _, body = await http(port, "POST /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 405 Method Not Allowed"
        status, headers, body = await http(port, "HEAD /metrics HTTP/1.1\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and body == "" and int(headers["content-length"]) > 0
        assert (await http(port, "\r\n"))[0] == "HTTP/1.1 400 Bad Request"
        assert (await http(port, "nonsense\r\n"))[0] == "HTTP/1.1 400 Bad Request"
        # After all that, the server still answers.
        assert "bms_cell_voltage_volts" in await scrape(port)


async def test_busy_port_is_retried_not_fatal() -> None:
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        ctx = make_ctx(port=port)
        assert isinstance(ctx.clock, VirtualClock)
        clock = ctx.clock
        pub = PrometheusPublisher(ctx)
        task = asyncio.create_task(pub.run())
        deadline = time.monotonic() + 10
        while clock.next_deadline() is None:  # the publisher is waiting to retry
            assert time.monotonic() < deadline and not task.done()
            await asyncio.sleep(0.01)
        assert not pub.ready.is_set()
    try:
        await clock.advance(prometheus.RETRY_BIND_S)
        await asyncio.wait_for(pub.ready.wait(), 10)
        assert pub.port == port
        assert "bms_board_online" in await scrape(port)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_disabled_by_config_and_registered_as_entry_points() -> None:
    assert create(make_ctx(enabled=False)) is None
    publishers = discover("bms_gateway.publishers")
    assert publishers["prometheus"].load() is prometheus.create
    assert publishers["mqtt"].load() is mqtt.create


def test_metric_names_follow_conventions() -> None:
    units = ("_volts", "_celsius", "_amperes", "_watts", "_ratio")
    for m in STATE_METRICS:
        assert m.name.startswith("bms_") and m.name == m.name.lower()
        assert not m.name.endswith("_total")
        assert all(not label.endswith(units) for label in m.labels)
    assert len({m.name for m in STATE_METRICS}) == len(STATE_METRICS)


async def test_openmetrics_on_request() -> None:
    pub = PrometheusPublisher(make_ctx())
    async with serving(pub):
        status, headers, body = await http(
            pub.port or 0,
            "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n",
        )
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"].startswith("application/openmetrics-text")
    assert body.endswith("# EOF\n")


def test_every_metric_is_documented() -> None:
    ctx = make_ctx()
    mqtt.MqttPublisher(ctx)
    PrometheusPublisher(ctx)
    doc = (Path(__file__).parent.parent / "docs" / "metrics.md").read_text(encoding="utf-8")
    names = {m.name for m in STATE_METRICS}
    for family in ctx.registry.collect():
        suffix = {"counter": "_total", "info": "_info"}.get(family.type, "")
        names.add(family.name + suffix)
    assert names, "no metrics collected"
    missing = sorted(n for n in names if f"`{n}`" not in doc)
    assert not missing, f"undocumented in docs/metrics.md: {missing}"
