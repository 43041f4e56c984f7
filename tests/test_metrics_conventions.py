"""Every metric of a whole running gateway follows Prometheus' conventions; promtool agrees."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import build_components, build_context
from gateway.config import GatewayConfig, load_config
from gateway.core.clock import RealClock
from gateway.publishers.prometheus import PrometheusPublisher
from gateway.sim.embedded import embedded_simulator
from tests.support.broker import Broker
from tests.support.tasks import cancel_for_sure
from tests.support.waiting import until

PROMTOOL = shutil.which("promtool")
NAME = re.compile(r"^bms_[a-z0-9]+(_[a-z0-9]+)*$")
# Base units only (https://prometheus.io/docs/practices/naming/): no milli-, no kilo-, no %.
BAD_UNIT_PARTS = {
    "ms", "milliseconds", "millivolts", "mv", "ma", "milliamperes", "kw", "kwh", "percent",
    "pct", "minutes", "hours", "celcius", "degrees", "volt", "amps", "amp", "watt",
}  # fmt: skip
UNIT_LABELS = {"unit", "units", "uom"}


def gateway_config(broker: Broker, tmp_path: Path) -> GatewayConfig:
    return load_config(
        overrides={
            "gateway": {"id": "gw-metrics", "state_dir": str(tmp_path / "state")},
            "mqtt": {"host": broker.host, "port": broker.port, "publish_interval_s": 0.2},
            "metrics": {"port": 0},
            "web": {"port": 0},
            "logic": {"boards": 2, "cells_per_board": 4, "poll_interval_s": 0.1},
        },
        env=False,
    )


@contextlib.asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[PrometheusPublisher]:
    """Everything `run_gateway` starts, with the Prometheus publisher at hand."""
    async with embedded_simulator(config) as (port, pack):
        logic = config.logic.model_copy(update={"port": port})
        ctx = build_context(config.model_copy(update={"logic": logic}), RealClock(), pack)
        components = build_components(ctx)
        pub = next(c for c in components if isinstance(c, PrometheusPublisher))
        tasks = [asyncio.create_task(ctx.store.run())]
        tasks += [asyncio.create_task(c.run(), name=c.name) for c in components]
        try:
            await asyncio.wait_for(pub.ready.wait(), 10)
            yield pub
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                if await cancel_for_sure(t) > 1:
                    print(f"task {t.get_name()} swallowed a cancellation")


async def scrape(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200"), head
    return body


async def live_scrape(broker: Broker, tmp_path: Path) -> str:
    async with running_gateway(gateway_config(broker, tmp_path)) as pub:
        bodies: list[str] = []

        async def scanned_and_cycled() -> bool:
            body = await scrape(pub.port or 0)
            bodies.append(body)
            return "bms_cell_voltage_volts{" in body and "bms_engine_cycles_total " in body

        # wait until the simulator's boards were scanned and the engine cycled
        await until(scanned_and_cycled, "cell voltages in a scrape", timeout_s=15, poll_s=0.1)
        return bodies[-1]


async def test_every_metric_follows_prometheus_naming(broker: Broker, tmp_path: Path) -> None:
    body = await live_scrape(broker, tmp_path)
    families = list(text_string_to_metric_families(body))
    names = {f.name for f in families}
    # The histograms added for issue 6 are exported by every gateway.
    assert {
        "bms_logic_poll_latency_seconds",
        "bms_protection_reaction_seconds",
        "bms_mqtt_publish_latency_seconds",
    } <= names
    for f in families:
        if f.name.startswith(("python_", "process_")):
            continue
        assert NAME.match(f.name), f.name
        assert f.documentation.strip(), f"{f.name} has no help text"
        parts = set(f.name.split("_"))
        assert not parts & BAD_UNIT_PARTS, f"{f.name}: use base units"
        if f.type == "counter":
            assert all(s.name.endswith(("_total", "_created")) for s in f.samples), (
                f"{f.name}: counters end in _total"
            )
        if f.type == "histogram":
            assert f.name.endswith("_seconds"), f"{f.name}: durations in seconds"
        if f.type == "gauge":
            assert not f.name.endswith("_total"), f"{f.name}: _total is for counters"
        for s in f.samples:
            assert not set(s.labels) & UNIT_LABELS, f"{f.name}: no unit in labels"


@pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool missing: `apt-get install -y prometheus` (scripts/ensure-test-tools)",
)
async def test_promtool_accepts_the_whole_gateway(broker: Broker, tmp_path: Path) -> None:
    body = await live_scrape(broker, tmp_path)
    assert PROMTOOL is not None
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, "check", "metrics",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate(body.encode())
    report = out.decode()
    assert proc.returncode == 0, report
    assert report.strip() == "", report
