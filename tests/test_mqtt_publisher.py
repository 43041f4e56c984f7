"""The MQTT publisher against a real Mosquitto, with aiomqtt as the independent subscriber.

Reconnect backoff and the state period run on a `VirtualClock`, so each reconnect happens
exactly when the test advances the clock (after its subscriber is ready); network I/O is real.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import VirtualClock
from gateway.core.context import GatewayContext
from gateway.core.events import BoardScanned, ErrorCleared, ErrorRaised, Notice, PackMeasured
from gateway.publishers.mqtt import MqttExtension, MqttPublisher, create
from gateway.publishers.payloads import state_message
from tests.support.broker import Broker
from tests.support.waiting import until as wait_until

pytestmark = pytest.mark.broker

WAIT_S = 10.0


def make_ctx(broker: Broker, **mqtt: Any) -> tuple[GatewayContext, VirtualClock]:
    settings = {
        "host": broker.host,
        "port": broker.port,
        "publish_interval_s": 1.0,
        "reconnect_min_s": 0.5,
        "reconnect_max_s": 2.0,
        **mqtt,
    }
    cfg = load_config(
        overrides={
            "gateway": {"id": "gw-test", "state_dir": str(broker.workdir / "state")},
            "mqtt": settings,
            "logic": {"boards": 2, "cells_per_board": 4},
        },
        env=False,
    )
    clock = VirtualClock(start_s=1000.0)
    return build_context(cfg, clock), clock


def scan(ctx: GatewayContext, board: int, base_v: float) -> None:
    """Fold one board scan into the store (as the Logic adapter's events would)."""
    ctx.store.apply(
        BoardScanned(
            at_s=ctx.clock.now(),
            board=board,
            cell_voltages_v=tuple(base_v + i * 0.0013 for i in range(4)),
            temperatures_c=(21.04, 22.0, None, 23.96),
            board_temperature_c=30.0,
            balancing_mask=0b10,
        )
    )


def metric(ctx: GatewayContext, name: str, **labels: str) -> float:
    return ctx.registry.get_sample_value(name, labels) or 0.0


until = functools.partial(wait_until, timeout_s=WAIT_S, poll_s=0.01)


@contextlib.asynccontextmanager
async def running(pub: MqttPublisher) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(pub.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Watcher:
    """An independent MQTT subscriber that records every message it receives."""

    def __init__(self, broker: Broker, *filters: str) -> None:
        self.messages: list[aiomqtt.Message] = []
        self._broker = broker
        self._filters = filters
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watcher:
        self._client = aiomqtt.Client(self._broker.host, self._broker.port)
        await self._client.__aenter__()
        for f in self._filters:
            await self._client.subscribe(f, qos=1)
        self._task = asyncio.create_task(self._receive())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self._client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _receive(self) -> None:
        assert self._client is not None
        with contextlib.suppress(aiomqtt.MqttError):
            async for m in self._client.messages:
                self.messages.append(m)

    def on(self, suffix: str) -> list[aiomqtt.Message]:
        return [m for m in self.messages if m.topic.value.endswith("/" + suffix)]

    def json_on(self, suffix: str) -> list[dict[str, Any]]:
        return [json.loads(bytes(m.payload)) for m in self.on(suffix)]  # type: ignore[arg-type]

    async def wait(self, suffix: str, count: int = 1) -> list[aiomqtt.Message]:
        await until(lambda: len(self.on(suffix)) >= count, f"{count} message(s) on {suffix}")
        return self.on(suffix)


def text(m: aiomqtt.Message) -> str:
    assert isinstance(m.payload, bytes)
    return m.payload.decode()


def without_timestamp(message: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != "timestamp"}


async def test_availability_and_state_are_retained_and_match_the_store(broker: Broker) -> None:
    ctx, clock = make_ctx(broker)
    scan(ctx, 1, 3.301)
    scan(ctx, 2, 3.29)
    ctx.store.apply(PackMeasured(at_s=clock.now(), current_a=-5.5, humidity_pct=40.0))
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: metric(ctx, "bms_mqtt_publishes_total", topic="state") >= 1, "state")
        # Subscribe only now: what arrives must be the broker's retained copies.
        async with Watcher(broker, "bms/gw-test/#") as w:
            (avail,) = await w.wait("availability")
            (state,) = await w.wait("state")
        assert text(avail) == "online" and avail.retain
        assert state.retain
        got = json.loads(text(state))
        expected = state_message(ctx.store.state, clock, ctx.config)
        assert without_timestamp(got) == without_timestamp(expected)
        held = [
            v
            for b in sorted(ctx.store.state.boards)
            for v in ctx.store.state.boards[b].cell_voltages_v
        ]
        published = [v for b in got["boards"] for v in b["cell_voltages"]]
        assert all(abs(a - b) <= 0.001 for a, b in zip(published, held, strict=True))
        assert got["current"] == -5.5 and got["boards_online"] == 2
        assert pub.connected and metric(ctx, "bms_mqtt_connected") == 1


async def test_state_is_published_at_most_once_per_interval(broker: Broker) -> None:
    ctx, clock = make_ctx(broker, publish_interval_s=5.0)
    pub = MqttPublisher(ctx)
    async with running(pub), Watcher(broker, "bms/gw-test/state") as w:
        await w.wait("state", 1)
        scan(ctx, 1, 3.4)
        await clock.advance(4.9)
        await asyncio.sleep(0.05)  # give a wrong early publish the chance to arrive
        assert len(w.on("state")) == 1
        await clock.advance(0.1)
        (_, second) = await w.wait("state", 2)
        assert json.loads(text(second))["boards"][0]["cell_voltages"][0] == 3.4
        assert json.loads(text(second))["timestamp"] == "2026-01-01T00:16:45.000Z"


async def test_events_carry_increasing_seq_and_qos1(broker: Broker) -> None:
    ctx, _ = make_ctx(broker)
    pub = MqttPublisher(ctx)
    async with Watcher(broker, "bms/gw-test/events") as w, running(pub):
        for i in range(5):
            ctx.bus.publish(
                ErrorRaised(
                    at_s=1000.0 + i, error="cell_imbalance", severity="warning", detail=f"#{i}"
                )
            )
        ctx.bus.publish(ErrorCleared(at_s=1010.0, error="cell_imbalance"))
        msgs = await w.wait("events", 6)
    events = [json.loads(text(m)) for m in msgs]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e["detail"] for e in events[:5]] == [f"#{i}" for i in range(5)]
    assert events[5]["type"] == "error_cleared"
    assert events[0]["timestamp"] == "2026-01-01T00:16:40.000Z"
    assert all(m.qos == 1 and not m.retain for m in msgs)
    assert metric(ctx, "bms_mqtt_publishes_total", topic="events") == 6
    assert metric(ctx, "bms_mqtt_publish_latency_seconds_count", topic="events") == 6


async def test_broker_absent_at_start_then_started(stopped_broker: Broker) -> None:
    ctx, clock = make_ctx(stopped_broker, outbox_max_events=10)
    pub = MqttPublisher(ctx)
    async with running(pub) as task:
        await until(lambda: metric(ctx, "bms_mqtt_reconnects_total") >= 1, "a failed attempt")
        assert not pub.connected and metric(ctx, "bms_mqtt_connected") == 0
        for i in range(13):  # raised while the broker is away; the outbox holds 10
            ctx.bus.publish(
                ErrorRaised(
                    at_s=clock.now(), error="high_humidity", severity="warning", detail=str(i)
                )
            )
        await until(lambda: pub.last_seq >= 14, "13 events and one drop report stored")
        assert pub.backlog == 10
        dropped = pub.dropped
        assert dropped == 4 and metric(ctx, "bms_mqtt_events_dropped_total") == dropped
        scan(ctx, 1, 3.3)
        stopped_broker.start()
        async with Watcher(stopped_broker, "bms/gw-test/#") as w:
            await clock.advance(2.0)  # the backoff expires: the publisher tries again
            await w.wait("state")
            events = await w.wait("events", 10)
            assert text((await w.wait("availability"))[0]) == "online"
        got = [json.loads(text(m)) for m in events]
        # The oldest were dropped; the rest arrive in order, then the report of the gap.
        assert [e["seq"] for e in got] == list(range(dropped + 1, 15))
        assert [e["detail"] for e in got[:-1]] == [str(i) for i in range(dropped, 13)]
        assert got[-1] == {
            "type": "events_dropped",
            "count": dropped,
            "first_seq": 1,
            "last_seq": dropped,
            "timestamp": got[-1]["timestamp"],
            "boot_id": pub.boot_id,
            "seq": 14,
        }
        assert {e["boot_id"] for e in got} == {pub.boot_id}
        assert pub.connected and not task.done()
        await until(lambda: pub.backlog == 0, "outbox emptied after the PUBACKs")


async def test_broker_killed_and_restarted_resumes_publishing(broker: Broker) -> None:
    ctx, clock = make_ctx(broker)
    pub = MqttPublisher(ctx)
    async with running(pub) as task:
        await until(lambda: pub.connected, "connected")
        ctx.bus.publish(ErrorRaised(at_s=clock.now(), error="cell_imbalance", severity="w"))
        await until(
            lambda: (
                metric(ctx, "bms_mqtt_publishes_total", topic="events") == 1 and not pub.backlog
            ),
            "first event acknowledged",
        )
        broker.stop()
        await until(lambda: not pub.connected, "disconnect noticed")
        assert metric(ctx, "bms_mqtt_reconnects_total") == 1
        ctx.bus.publish(ErrorCleared(at_s=clock.now(), error="cell_imbalance"))
        ctx.bus.publish(ErrorRaised(at_s=clock.now(), error="high_humidity", severity="w"))
        scan(ctx, 2, 3.2)
        await until(lambda: pub.backlog == 2, "events kept while down")
        broker.start()
        async with Watcher(broker, "bms/gw-test/#") as w:
            await clock.advance(2.0)
            state = (await w.wait("state"))[-1]  # on connect, and maybe once more per interval
            events = await w.wait("events", 2)
        assert json.loads(text(state))["boards"][1]["cell_voltages"][0] == 3.2
        assert [json.loads(text(m))["seq"] for m in events] == [2, 3]
        assert [json.loads(text(m))["type"] for m in events] == ["error_cleared", "error_raised"]
        assert pub.connected and not task.done()
        assert metric(ctx, "bms_mqtt_publishes_total", topic="availability") == 2


async def test_graceful_shutdown_publishes_offline(broker: Broker) -> None:
    ctx, _ = make_ctx(broker)
    pub = MqttPublisher(ctx)
    async with Watcher(broker, "bms/gw-test/availability") as w:
        async with running(pub):
            await w.wait("availability", 1)
        msgs = await w.wait("availability", 2)
    assert [text(m) for m in msgs] == ["online", "offline"]
    # Ours, not the broker's last will: the clean path published it itself.
    assert metric(ctx, "bms_mqtt_publishes_total", topic="availability") == 2
    async with Watcher(broker, "bms/gw-test/availability") as late:
        (retained,) = await late.wait("availability")
    assert text(retained) == "offline" and retained.retain


GATEWAY_PROCESS = """
import asyncio, sys
from gateway.app import build_context
from gateway.config import load_config
from gateway.publishers.mqtt import MqttPublisher

async def main():
    cfg = load_config(overrides={"gateway": {"id": "gw-test"},
                                 "mqtt": {"host": "127.0.0.1", "port": int(sys.argv[1])}},
                      env=False)
    await MqttPublisher(build_context(cfg)).run()

asyncio.run(main())
"""


async def test_last_will_offline_when_the_gateway_dies(broker: Broker, tmp_path: Path) -> None:
    script = tmp_path / "gw.py"
    script.write_text(GATEWAY_PROCESS, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    async with Watcher(broker, "bms/gw-test/availability") as w:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(broker.port), env=env
        )
        try:
            await w.wait("availability", 1)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        msgs = await w.wait("availability", 2)
    assert [text(m) for m in msgs] == ["online", "offline"]


class Recorder:
    """An MqttExtension that announces on connect and records command messages."""

    name = "recorder"

    def __init__(self, base: str, fail: bool = False) -> None:
        self.base = base
        self.connects = 0
        self.received: list[str] = []
        self.fail = fail

    def subscriptions(self) -> list[str]:
        return [f"{self.base}/cmd/#"]

    async def on_connected(self, client: aiomqtt.Client) -> None:
        self.connects += 1
        await client.publish(f"{self.base}/announce", str(self.connects), qos=1, retain=True)

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self.received.append(f"{message.topic.value}={text(message)}")
        if self.fail:
            raise RuntimeError("extension bug")


async def test_extensions_are_called_on_every_connect_and_for_their_messages(
    broker: Broker,
) -> None:
    ctx, clock = make_ctx(broker)
    rec, buggy = Recorder("bms/gw-test"), Recorder("bms/gw-test", fail=True)
    assert isinstance(rec, MqttExtension)
    ctx.mqtt_extensions.extend([buggy, rec])
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: rec.connects == 1 and pub.connected, "extension on_connected")
        async with Watcher(broker, "bms/gw-test/announce") as w:
            assert text((await w.wait("announce"))[0]) == "1"
            assert w._client is not None
            await w._client.publish("bms/gw-test/other", b"ignored", qos=1)
            await w._client.publish("bms/gw-test/cmd/ack", b"cell_overvoltage", qos=1)
            await until(lambda: len(rec.received) == 1, "the command")
        # The buggy extension's exception was counted; the connection stayed up.
        assert rec.received == buggy.received == ["bms/gw-test/cmd/ack=cell_overvoltage"]
        assert metric(ctx, "bms_mqtt_extension_errors_total", extension="recorder") == 1
        assert pub.connected and metric(ctx, "bms_mqtt_reconnects_total") == 0
        broker.stop()
        await until(lambda: not pub.connected, "disconnect")
        broker.start()
        await clock.advance(2.0)
        await until(lambda: rec.connects == 2 and buggy.connects == 2, "on_connected again")


@pytest.fixture
def auth_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto that accepts only user `gw` with password `s3cret`."""
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "gw", "s3cret"],
        check=True,
        capture_output=True,
    )
    b = Broker(tmp_path)
    # `user root`: started as root, Mosquitto would otherwise switch to a user that cannot
    # read pytest's private tmp_path (the option is ignored when not started as root).
    Path(b._conf).write_text(
        f"listener {b.port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n"
        "persistence false\nuser root\n",
        encoding="utf-8",
    )
    b.start()
    yield b
    b.stop()


async def test_username_and_password_from_config(auth_broker: Broker) -> None:
    ctx, _ = make_ctx(auth_broker, username="gw", password="wrong")
    pub = MqttPublisher(ctx)
    async with running(pub) as task:
        await until(lambda: metric(ctx, "bms_mqtt_reconnects_total") >= 1, "refused")
        assert not pub.connected and not task.done()
    ctx, _ = make_ctx(auth_broker, username="gw", password="s3cret")
    assert "s3cret" not in repr(ctx.config.mqtt)
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: pub.connected, "authenticated connection")


def test_disabled_by_config(broker: Broker) -> None:
    ctx, _ = make_ctx(broker, enabled=False)
    assert create(ctx) is None


async def test_notices_are_taken_before_run(broker: Broker) -> None:
    ctx, clock = make_ctx(broker)
    pub = create(ctx)
    assert pub is not None
    early: Notice = ErrorRaised(at_s=clock.now(), error="battery_cover", severity="critical")
    ctx.bus.publish(early)
    async with Watcher(broker, "bms/gw-test/events") as w, running(pub):
        (m,) = await w.wait("events")
    assert json.loads(text(m))["error"] == "battery_cover"
