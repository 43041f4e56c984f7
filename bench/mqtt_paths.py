"""MQTT `state` and `events` paths: the real MqttPublisher vs bare aiomqtt, same payloads.

State: the publisher runs with `mqtt.publish_interval_s` near zero, so it builds, encodes and
publishes the retained 414-cell `state` as fast as it can; the bare client publishes the
same (pre-encoded) bytes in a loop. Events: N notices go onto the bus; the publisher numbers
them, stores them in its outbox and publishes each with QoS 1 (PUBACK awaited); the bare
client publishes the same N payloads with QoS 1 one after the other.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import aiomqtt

from bench.common import Bounds, Row, mosquitto, process_cpu_s
from bench.gateway_rig import bench_config, context, published
from gateway.core.events import BoardWentOffline
from gateway.publishers.mqtt import MqttPublisher
from gateway.publishers.payloads import StatePayload, encode, event_message, state_message

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


async def _wait(predicate: Any, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.01)


async def gateway_state(port: int, seconds: float, tmp: Path) -> dict[str, Any]:
    """The publisher's state loop, flat out."""
    ctx = context(bench_config(tmp, port=port, mqtt={"publish_interval_s": 1e-6}))
    size = len(encode(state_message(ctx.store.state, ctx.clock, ctx.config)))
    publisher = MqttPublisher(ctx)
    task = asyncio.create_task(publisher.run())
    try:
        await _wait(lambda: published(ctx, "state") > 0, 10)
        n0, cpu0, t0 = published(ctx, "state"), process_cpu_s(), time.perf_counter()
        await asyncio.sleep(seconds)
        n1, cpu1, t1 = published(ctx, "state"), process_cpu_s(), time.perf_counter()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    n = n1 - n0
    return {
        "msgs_per_s": n / (t1 - t0),
        "cpu_us_per_msg": (cpu1 - cpu0) / max(n, 1) * 1e6,
        "bytes": size,
    }


async def bare_state(port: int, seconds: float, payload: bytes) -> dict[str, Any]:
    """aiomqtt publishing the same retained payload in a loop (QoS 0)."""
    async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as client:
        await client.publish("bare/state", payload, qos=0, retain=True)
        n, cpu0, t0 = 0, process_cpu_s(), time.perf_counter()
        end = t0 + seconds
        while time.perf_counter() < end:
            await client.publish("bare/state", payload, qos=0, retain=True)
            n += 1
        t1, cpu1 = time.perf_counter(), process_cpu_s()
    return {"msgs_per_s": n / (t1 - t0), "cpu_us_per_msg": (cpu1 - cpu0) / max(n, 1) * 1e6}


def _notices(ctx: Any, count: int) -> list[BoardWentOffline]:
    now = ctx.clock.now()
    return [
        BoardWentOffline(at_s=now, board=1 + i % 23, reason="timeout", consecutive_failures=3)
        for i in range(count)
    ]


async def gateway_events(port: int, count: int, tmp: Path) -> dict[str, Any]:
    """N notices from the bus to PUBACK through the publisher (and its outbox)."""
    ctx = context(bench_config(tmp, port=port, mqtt={"publish_interval_s": 3600}))
    publisher = MqttPublisher(ctx)
    task = asyncio.create_task(publisher.run())
    try:
        await _wait(lambda: published(ctx, "state") > 0, 10)
        cpu0, t0 = process_cpu_s(), time.perf_counter()
        for notice in _notices(ctx, count):
            ctx.bus.publish(notice)
        await _wait(lambda: published(ctx, "events") >= count, 60)
        t1, cpu1 = time.perf_counter(), process_cpu_s()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"msgs_per_s": count / (t1 - t0), "cpu_us_per_msg": (cpu1 - cpu0) / count * 1e6}


async def bare_events(port: int, count: int, tmp: Path) -> dict[str, Any]:
    """The same event payloads, QoS 1, one after the other with aiomqtt."""
    ctx = context(bench_config(tmp, port=port))
    payloads = [
        encode(event_message(n, i + 1, ctx.clock)) for i, n in enumerate(_notices(ctx, count))
    ]
    async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as client:
        cpu0, t0 = process_cpu_s(), time.perf_counter()
        for p in payloads:
            await client.publish("bare/events", p, qos=1)
        t1, cpu1 = time.perf_counter(), process_cpu_s()
    return {"msgs_per_s": count / (t1 - t0), "cpu_us_per_msg": (cpu1 - cpu0) / count * 1e6}


async def _run(b: Bounds, port: int, tmp: Path) -> dict[str, Any]:
    seconds = b.seconds(1.5, 0.2)
    count = b.count(1000, 50)
    rounds = b.count(3, 1)
    ctx = context(bench_config(tmp / "payload", port=port))
    payload = encode(state_message(ctx.store.state, ctx.clock, ctx.config))
    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("state", "bare_state", "events", "bare_events")
    }
    for r in range(rounds):  # alternate, so that a noisy moment hits both sides
        runs["state"].append(await gateway_state(port, seconds, tmp / f"state{r}"))
        runs["bare_state"].append(await bare_state(port, seconds, payload))
        runs["events"].append(await gateway_events(port, count, tmp / f"events{r}"))
        runs["bare_events"].append(await bare_events(port, count, tmp / f"bare-events{r}"))
    out: dict[str, Any] = {
        k: {"msgs_per_s": statistics.median(x["msgs_per_s"] for x in v), "runs": v}
        for k, v in runs.items()
    }
    out["state"]["bytes"] = len(payload)
    cached = StatePayload(ctx.config)
    state, clock, config = ctx.store.state, ctx.clock, ctx.config
    number = b.count(200, 5)

    def us(fn: Any) -> float:
        return min(timeit.repeat(fn, number=number, repeat=3)) / number * 1e6

    out["encode_us"] = {
        "per_scan": us(lambda: cached.encode(state, clock)),
        "per_publish": us(lambda: encode(state_message(state, clock, config))),
    }
    out.update(seconds=seconds, events_count=count, rounds=rounds)
    return out


def run(b: Bounds) -> dict[str, Any]:
    """Both paths against the same private Mosquitto."""
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp, mosquitto() as (port, _):
        d = asyncio.run(_run(b, port, Path(tmp)))
    kib = d["state"]["bytes"] / 1024
    return {
        "rows": [
            Row(
                "mqtt_paths",
                "state build + encode, 414 cells",
                "µs",
                d["encode_us"]["per_scan"],
                "rebuilt per publish (before)",
                d["encode_us"]["per_publish"],
                "< 1",
            ),
            Row(
                "mqtt_paths",
                f"MQTT state path, 414 cells ({kib:.1f} KiB)",
                "msg/s",
                d["state"]["msgs_per_s"],
                "bare aiomqtt, same payload",
                d["bare_state"]["msgs_per_s"],
                "≥ 0.7",
                higher_is_better=True,
            ),
            Row(
                "mqtt_paths",
                "MQTT events path, QoS 1",
                "msg/s",
                d["events"]["msgs_per_s"],
                "bare aiomqtt, same payloads",
                d["bare_events"]["msgs_per_s"],
                "≥ 0.7",
                higher_is_better=True,
            ),
        ],
        "details": d,
    }
