"""Per-gateway budget on the broker: N gateways (real MqttPublisher) vs N bare clients.

N in-process gateways publish the retained 414-cell `state` every second and one event per
second each (QoS 1) to one private Mosquitto for T seconds; then N bare aiomqtt clients
publish the same payloads at the same rate. Figures per gateway: messages/s, bytes/s
(payloads), the broker's CPU (share of one core) and the publishing process' CPU. This is
the budget docs/scaling.md multiplies out for a fleet.
"""

from __future__ import annotations

import asyncio
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import aiomqtt

from bench.common import Bounds, Row, mosquitto, pid_cpu_s, process_cpu_s
from bench.gateway_rig import bench_config, context, published
from gateway.core.events import BoardWentOffline
from gateway.publishers.mqtt import MqttPublisher
from gateway.publishers.payloads import encode, event_message, isotime, state_message
from tests.support.nats import NATS_SERVER, NatsCluster

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
STATE_PERIOD_S = 1.0
EVENT_PERIOD_S = 1.0


def _event(ctx: Any) -> BoardWentOffline:
    return BoardWentOffline(at_s=ctx.clock.now(), board=1, reason="timeout", consecutive_failures=3)


def _cpu(pids: list[int]) -> float:
    return sum(pid_cpu_s(p) for p in pids)


async def _gateways(
    n: int, endpoints: list[str], broker_pids: list[int], seconds: float, tmp: Path
) -> dict[str, Any]:
    ctxs = [
        context(
            bench_config(
                tmp / f"g{i}",
                gateway_id=f"fleet{i:04d}",
                mqtt={
                    "brokers": endpoints[i % len(endpoints) :] + endpoints[: i % len(endpoints)],
                    "publish_interval_s": STATE_PERIOD_S,
                    "duplicate_check_s": 0,
                },
            )
        )
        for i in range(n)
    ]
    state_bytes = len(encode(state_message(ctxs[0].store.state, ctxs[0].clock, ctxs[0].config)))
    event_bytes = len(encode(event_message(_event(ctxs[0]), 1, ctxs[0].clock))) + 80  # boot id…
    pubs = [MqttPublisher(c) for c in ctxs]
    tasks = [asyncio.create_task(p.run()) for p in pubs]

    async def events() -> None:
        while True:
            for c in ctxs:
                c.bus.publish(_event(c))
            await asyncio.sleep(EVENT_PERIOD_S)

    try:
        deadline = time.monotonic() + 60
        while not all(p.connected for p in pubs):
            if time.monotonic() > deadline:
                raise RuntimeError("the gateways did not all connect")
            await asyncio.sleep(0.05)
        ev = asyncio.create_task(events())
        await asyncio.sleep(min(1.0, seconds))
        m0 = sum(published(c, "state") + published(c, "events") for c in ctxs)
        b0, c0, t0 = _cpu(broker_pids), process_cpu_s(), time.monotonic()
        await asyncio.sleep(seconds)
        m1 = sum(published(c, "state") + published(c, "events") for c in ctxs)
        b1, c1, t1 = _cpu(broker_pids), process_cpu_s(), time.monotonic()
        ev.cancel()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    dt = t1 - t0
    return {
        "msgs_per_s": (m1 - m0) / dt / n,
        "bytes_per_s": (state_bytes / STATE_PERIOD_S + event_bytes / EVENT_PERIOD_S),
        "broker_cpu_pct": (b1 - b0) / dt / n * 100,
        "client_cpu_pct": (c1 - c0) / dt / n * 100,
        "state_bytes": state_bytes,
    }


async def _bare(
    n: int, endpoints: list[str], broker_pids: list[int], seconds: float, tmp: Path
) -> dict[str, Any]:
    ctx = context(bench_config(tmp / "bare"))
    state = encode(state_message(ctx.store.state, ctx.clock, ctx.config))
    stamp = isotime(ctx.clock.wall()).encode()[:19]  # each message differs, like the gateway's
    event = encode(event_message(_event(ctx), 1, ctx.clock))
    sent = [0]

    async def client(i: int, stop_at: float) -> None:
        host, port = endpoints[i % len(endpoints)].rsplit(":", 1)
        async with aiomqtt.Client(
            host, int(port), identifier=f"bare{i:04d}", socket_options=NODELAY
        ) as c:
            while time.monotonic() < stop_at:
                now = isotime(ctx.clock.wall()).encode()[:19]
                await c.publish(f"bare/{i}/state", state.replace(stamp, now, 1), qos=0, retain=True)
                await c.publish(f"bare/{i}/events", event, qos=1)
                sent[0] += 2
                await asyncio.sleep(STATE_PERIOD_S)

    stop_at = time.monotonic() + 2 * seconds + 1.0
    tasks = [asyncio.create_task(client(i, stop_at)) for i in range(n)]
    await asyncio.sleep(min(1.0, seconds))
    m0, b0, c0, t0 = sent[0], _cpu(broker_pids), process_cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    m1, b1, c1, t1 = sent[0], _cpu(broker_pids), process_cpu_s(), time.monotonic()
    await asyncio.gather(*tasks, return_exceptions=True)
    dt = t1 - t0
    return {
        "msgs_per_s": (m1 - m0) / dt / n,
        "broker_cpu_pct": (b1 - b0) / dt / n * 100,
        "client_cpu_pct": (c1 - c0) / dt / n * 100,
    }


def _idle_pct(pids: list[int], seconds: float) -> float:
    """The brokers' CPU share (of one core) with no client."""
    c0, t0 = _cpu(pids), time.monotonic()
    time.sleep(seconds)
    return (_cpu(pids) - c0) / (time.monotonic() - t0) * 100


def _rows(label: str, n: int, gw: dict[str, Any], bare: dict[str, Any]) -> list[Row]:
    return [
        Row(
            "fleet_budget",
            f"messages per gateway ({n} gateways, {label})",
            "msg/s",
            gw["msgs_per_s"],
            "bare aiomqtt clients",
            bare["msgs_per_s"],
            "≈ 1",
        ),
        Row(
            "fleet_budget",
            f"broker CPU per gateway ({label})",
            "% core",
            gw["broker_cpu_pct"],
            "bare aiomqtt clients",
            bare["broker_cpu_pct"],
            "≈ 1",
        ),
        Row(
            "fleet_budget",
            f"client CPU per gateway ({label})",
            "% core",
            gw["client_cpu_pct"],
            "bare aiomqtt clients",
            bare["client_cpu_pct"],
            "",
        ),
    ]


def run(b: Bounds) -> dict[str, Any]:
    """Both fleets on one Mosquitto, then (full runs) on a three-node NATS cluster."""
    n = b.count(20, 3)
    seconds = b.seconds(6.0, 1.0)
    rows: list[Row] = []
    details: dict[str, Any] = {"gateways": n, "seconds": seconds}
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        with mosquitto() as (port, proc):
            where = [f"127.0.0.1:{port}"]
            gw = asyncio.run(_gateways(n, where, [proc.pid], seconds, Path(tmp) / "m"))
            bare = asyncio.run(_bare(n, where, [proc.pid], seconds, Path(tmp) / "m"))
        rows += _rows("Mosquitto", n, gw, bare)
        details["mosquitto"] = {"gateway": gw, "bare": bare}
        if not b.smoke and NATS_SERVER is not None:
            cluster = NatsCluster(Path(tmp) / "nats")
            try:
                cluster.start()
                pids = [node.proc.pid for node in cluster.nodes if node.proc is not None]
                eps = cluster.endpoints
                time.sleep(2.0)  # JetStream settles (leaders, MQTT streams)
                idle_pct = _idle_pct(pids, seconds / 2)
                bare = asyncio.run(_bare(n, eps, pids, seconds, Path(tmp) / "n"))
                gw = asyncio.run(_gateways(n, eps, pids, seconds, Path(tmp) / "n"))
            finally:
                cluster.stop()
            for r in (gw, bare):  # the cluster's own housekeeping is nobody's cost
                r["broker_cpu_pct"] = max(0.0, r["broker_cpu_pct"] - idle_pct / n)
            rows += _rows("NATS ×3", n, gw, bare)
            details["nats_cluster"] = {"gateway": gw, "bare": bare, "idle_cpu_pct": idle_pct}
    return {"rows": rows, "details": details}
