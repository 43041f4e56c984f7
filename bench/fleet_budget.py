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
from gateway.publishers.payloads import encode, event_message, state_message

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
STATE_PERIOD_S = 1.0
EVENT_PERIOD_S = 1.0


def _event(ctx: Any) -> BoardWentOffline:
    return BoardWentOffline(at_s=ctx.clock.now(), board=1, reason="timeout", consecutive_failures=3)


async def _gateways(
    n: int, port: int, broker_pid: int, seconds: float, tmp: Path
) -> dict[str, Any]:
    ctxs = [
        context(
            bench_config(
                tmp / f"g{i}",
                port=port,
                gateway_id=f"fleet{i:04d}",
                mqtt={"publish_interval_s": STATE_PERIOD_S, "duplicate_check_s": 0},
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
        await asyncio.sleep(1.0)
        m0 = sum(published(c, "state") + published(c, "events") for c in ctxs)
        b0, c0, t0 = pid_cpu_s(broker_pid), process_cpu_s(), time.monotonic()
        await asyncio.sleep(seconds)
        m1 = sum(published(c, "state") + published(c, "events") for c in ctxs)
        b1, c1, t1 = pid_cpu_s(broker_pid), process_cpu_s(), time.monotonic()
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


async def _bare(n: int, port: int, broker_pid: int, seconds: float, tmp: Path) -> dict[str, Any]:
    ctx = context(bench_config(tmp / "bare", port=port))
    state = encode(state_message(ctx.store.state, ctx.clock, ctx.config))
    event = encode(event_message(_event(ctx), 1, ctx.clock))
    sent = [0]

    async def client(i: int, stop_at: float) -> None:
        async with aiomqtt.Client(
            "127.0.0.1", port, identifier=f"bare{i:04d}", socket_options=NODELAY
        ) as c:
            while time.monotonic() < stop_at:
                await c.publish(f"bare/{i}/state", state, qos=0, retain=True)
                await c.publish(f"bare/{i}/events", event, qos=1)
                sent[0] += 2
                await asyncio.sleep(STATE_PERIOD_S)

    stop_at = time.monotonic() + seconds + 2.0
    tasks = [asyncio.create_task(client(i, stop_at)) for i in range(n)]
    await asyncio.sleep(1.0)
    m0, b0, c0, t0 = sent[0], pid_cpu_s(broker_pid), process_cpu_s(), time.monotonic()
    await asyncio.sleep(seconds)
    m1, b1, c1, t1 = sent[0], pid_cpu_s(broker_pid), process_cpu_s(), time.monotonic()
    await asyncio.gather(*tasks, return_exceptions=True)
    dt = t1 - t0
    return {
        "msgs_per_s": (m1 - m0) / dt / n,
        "broker_cpu_pct": (b1 - b0) / dt / n * 100,
        "client_cpu_pct": (c1 - c0) / dt / n * 100,
    }


def run(b: Bounds) -> dict[str, Any]:
    """Both fleets against the same broker."""
    n = b.count(20, 3)
    seconds = b.seconds(8.0, 1.0)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp, mosquitto() as (port, proc):
        gw = asyncio.run(_gateways(n, port, proc.pid, seconds, Path(tmp)))
        bare = asyncio.run(_bare(n, port, proc.pid, seconds, Path(tmp)))
    return {
        "rows": [
            Row(
                "fleet_budget",
                f"messages per gateway ({n} gateways)",
                "msg/s",
                gw["msgs_per_s"],
                "bare aiomqtt clients",
                bare["msgs_per_s"],
                "≈ 1",
            ),
            Row(
                "fleet_budget",
                "broker CPU per gateway",
                "% core",
                gw["broker_cpu_pct"],
                "bare aiomqtt clients",
                bare["broker_cpu_pct"],
                "≈ 1",
            ),
            Row(
                "fleet_budget",
                "client CPU per gateway",
                "% core",
                gw["client_cpu_pct"],
                "bare aiomqtt clients",
                bare["client_cpu_pct"],
                "",
            ),
        ],
        "details": {"gateways": n, "seconds": seconds, "gateway": gw, "bare": bare},
    }
