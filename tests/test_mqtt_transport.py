"""How the publisher reaches its broker: TLS (verified, client certificate), MQTT 5, several
brokers with failover, and the state published before any extension's announcements.

Real Mosquitto listeners; certificates are made in the test with the openssl CLI.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.core.errors import ConfigError
from gateway.publishers.mqtt import MqttPublisher
from gateway.publishers.mqtt_client import Backoff
from tests.support.broker import MOSQUITTO, Broker
from tests.support.certs import OPENSSL, Pki, make_pki, mosquitto_tls
from tests.test_mqtt_publisher import Watcher, make_ctx, metric, running, scan, text, until

pytestmark = pytest.mark.broker


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    if OPENSSL is None:
        pytest.fail("openssl is not installed: run scripts/ensure-test-tools")
    return make_pki(tmp_path / "pki")


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Pki) -> Any:
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    b = Broker(tmp_path, extra_conf=mosquitto_tls(pki))
    b.start()
    yield b
    b.stop()


def client_tls(pki: Pki) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    ctx.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return ctx


def tls_cfg(pki: Pki, **extra: Any) -> dict[str, Any]:
    return {
        "ca_file": str(pki.ca),
        "cert_file": str(pki.client_cert),
        "key_file": str(pki.client_key),
        **extra,
    }


async def test_tls_with_verification_and_a_client_certificate(tls_broker: Broker, pki: Pki) -> None:
    ctx, _ = make_ctx(tls_broker, tls=tls_cfg(pki))
    scan(ctx, 1, 3.3)
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: metric(ctx, "bms_mqtt_publishes_total", topic="state") >= 1, "state")
    # An independent TLS subscriber reads the retained state the gateway sent over TLS.
    async with aiomqtt.Client(tls_broker.host, tls_broker.port, tls_context=client_tls(pki)) as sub:
        await sub.subscribe("bms/gw-test/state", qos=1)
        async with asyncio.timeout(10):
            async for m in sub.messages:
                assert m.retain and json.loads(text(m))["boards"][0]["cell_voltages"][0] == 3.3
                break


async def test_tls_refuses_a_broker_it_cannot_verify_unless_told_insecure(
    tls_broker: Broker, pki: Pki, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = make_pki(tmp_path / "other-ca")  # a CA that did not sign the broker
    ctx, _ = make_ctx(tls_broker, tls=tls_cfg(pki, ca_file=str(other.ca)))
    pub = MqttPublisher(ctx)
    with caplog.at_level(logging.WARNING):
        async with running(pub) as task:
            await until(lambda: metric(ctx, "bms_mqtt_reconnects_total") >= 1, "refused")
            assert not pub.connected and not task.done()
    assert "mqtt.tls.ca_file" in caplog.text  # says what to check
    assert metric(ctx, "bms_mqtt_publishes_total", topic="availability") == 0
    ctx, _ = make_ctx(tls_broker, tls=tls_cfg(pki, ca_file=str(other.ca), insecure=True))
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: pub.connected, "connected without verification (insecure)")


def test_tls_config_is_checked(tmp_path: Path) -> None:
    from gateway.config import load_config

    with pytest.raises(ConfigError, match="cert_file and key_file"):
        load_config(None, {"mqtt": {"tls": {"cert_file": __file__}}}, env=False)
    with pytest.raises(ConfigError, match="ca_file"):
        load_config(None, {"mqtt": {"tls": {"ca_file": str(tmp_path / "nope.pem")}}}, env=False)
    with pytest.raises(ConfigError, match=r"brokers\.1"):
        load_config(None, {"mqtt": {"brokers": ["a:1883", "b"]}}, env=False)
    with pytest.raises(ConfigError, match="client_id"):
        load_config(None, {"mqtt": {"protocol": "5", "session_expiry_s": 60}}, env=False)
    cfg = load_config(None, {"mqtt": {"brokers": ["a:1", "[::1]:2"]}}, env=False)
    assert cfg.mqtt.endpoints == [("a", 1), ("::1", 2)]
    assert load_config(None, {}, env=False).mqtt.endpoints == [("localhost", 1883)]


async def test_mqtt5_user_property_and_message_expiry_on_state(broker: Broker) -> None:
    ctx, _ = make_ctx(
        broker, protocol="5", state_expiry_s=120, session_expiry_s=60, client_id="gw-test-1"
    )
    pub = MqttPublisher(ctx)
    async with running(pub):
        await until(lambda: metric(ctx, "bms_mqtt_publishes_total", topic="state") >= 1, "state")
        async with aiomqtt.Client(
            broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5
        ) as sub:
            await sub.subscribe("bms/gw-test/+", qos=1)
            seen: dict[str, aiomqtt.Message] = {}
            async with asyncio.timeout(10):
                async for m in sub.messages:
                    seen[m.topic.value.rsplit("/", 1)[1]] = m
                    if {"state", "availability"} <= set(seen):
                        break
    state, avail = seen["state"], seen["availability"]
    assert state.properties is not None and avail.properties is not None
    assert ("gateway", "gw-test") in state.properties.UserProperty
    assert ("gateway", "gw-test") in avail.properties.UserProperty
    # The broker counts the expiry down while it keeps the retained copy.
    assert 0 < state.properties.MessageExpiryInterval <= 120
    assert not hasattr(avail.properties, "MessageExpiryInterval")


def test_backoff_tries_each_broker_in_turn_and_doubles_per_round_with_jitter() -> None:
    b = Backoff([("a", 1), ("b", 2), ("c", 3)], 1.0, 8.0, rng=random.Random(7))
    tried = []
    delays = []
    for _ in range(9):
        tried.append(b.current[0])
        delays.append(b.failed())
    assert tried == list("abcabcabc")
    rounds = [delays[0:3], delays[3:6], delays[6:9]]
    for base, round_ in zip((1.0, 2.0, 4.0), rounds, strict=True):
        assert all(base * 0.5 <= d <= base for d in round_), (base, round_)
    assert len(set(delays)) > 3  # spread, not in step
    b.connected()
    tried_after = b.current[0]
    assert 0.5 <= b.failed() <= 1.0 and tried_after == "a"


async def test_losing_one_broker_moves_the_gateway_to_the_next(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = Broker(tmp_path / "a"), Broker(tmp_path / "b")
    first.start()
    second.start()
    try:
        ctx, clock = make_ctx(
            first, brokers=[f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"]
        )
        pub = MqttPublisher(ctx)
        async with running(pub), Watcher(second, "bms/gw-test/#") as w:
            await until(lambda: pub.connected, "connected to the first broker")
            assert not w.on("availability")
            first.stop()
            await until(lambda: not pub.connected, "loss noticed")
            await clock.advance(1.0)  # the first delay (≤ reconnect_min_s)
            await w.wait("availability")
            await w.wait("state")
            assert pub.connected and text(w.on("availability")[0]) == "online"
    finally:
        first.stop()
        second.stop()


class SlowAnnouncer:
    """An extension whose on_connected hangs (a discovery burst that never ends)."""

    name = "slow"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = asyncio.Event()

    def subscriptions(self) -> list[str]:
        return []

    async def on_connected(self, client: aiomqtt.Client) -> None:
        self.entered.set()
        await self.release.wait()

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        pass


async def test_state_and_events_do_not_wait_for_an_extensions_announcements(
    broker: Broker,
) -> None:
    from gateway.core.events import ErrorRaised

    ctx, clock = make_ctx(broker)
    slow = SlowAnnouncer()
    ctx.mqtt_extensions.append(slow)
    scan(ctx, 1, 3.3)
    pub = MqttPublisher(ctx)
    ctx.bus.publish(ErrorRaised(at_s=clock.now(), error="cell_imbalance", severity="warning"))
    async with Watcher(broker, "bms/gw-test/#") as w, running(pub):
        await slow.entered.wait()
        await w.wait("state")
        await w.wait("events")
        assert not slow.release.is_set()  # still announcing
        slow.release.set()
