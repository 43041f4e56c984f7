"""How the gateway connects to its broker(s): endpoints, TLS, MQTT 5, backoff with jitter.

Pure configuration → `aiomqtt.Client` plumbing, kept apart from the publisher's loops.
"""

from __future__ import annotations

import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiomqtt
from paho.mqtt import client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

if TYPE_CHECKING:
    from gateway.config import GatewayConfig, MqttSection

IO_TIMEOUT_S = 10.0  # real-time limit on one broker round trip (connect, PUBACK, SUBACK)
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)  # no Nagle stall on QoS 1 pairs
GATEWAY_PROPERTY = "gateway"  # MQTT 5 user property carrying gateway.id


def is_v5(cfg: MqttSection) -> bool:
    """True when the gateway speaks MQTT 5."""
    return cfg.protocol == "5"


def tls_context(cfg: MqttSection) -> ssl.SSLContext | None:
    """Build the TLS context of `mqtt.tls` (None: plain TCP).

    Raises:
        OSError / ssl.SSLError: a certificate or key file cannot be loaded.
    """
    tls = cfg.tls
    if tls is None:
        return None
    ctx = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if tls.ca_file is None else str(tls.ca_file)
    )
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_file is not None and tls.key_file is not None:
        ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    if tls.insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def user_properties(packet: int, gateway_id: str, expiry_s: int | None = None) -> Properties:
    """MQTT 5 properties carrying the gateway id (and a message expiry, for PUBLISH)."""
    props = Properties(packet)  # type: ignore[no-untyped-call]
    props.UserProperty = [(GATEWAY_PROPERTY, gateway_id)]
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    return props


def make_client(
    config: GatewayConfig, host: str, port: int, will_topic: str, will_payload: str
) -> aiomqtt.Client:
    """Return an (unconnected) client for one broker endpoint (last will: retained, QoS 1)."""
    cfg = config.mqtt
    password = cfg.password.get_secret_value() if cfg.password is not None else None
    v5 = is_v5(cfg)
    connect_props: Properties | None = None
    will_props: Properties | None = None
    if v5:
        connect_props = user_properties(PacketTypes.CONNECT, config.gateway.id)
        connect_props.SessionExpiryInterval = cfg.session_expiry_s
        will_props = user_properties(PacketTypes.WILLMESSAGE, config.gateway.id)
    will = aiomqtt.Will(will_topic, will_payload, qos=1, retain=True, properties=will_props)
    tls = cfg.tls
    return aiomqtt.Client(
        host,
        port,
        username=cfg.username,
        password=password if cfg.username is not None else None,
        identifier=cfg.client_id,
        keepalive=cfg.keepalive_s,
        timeout=IO_TIMEOUT_S,
        will=will,
        protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
        properties=connect_props,
        clean_start=cfg.session_expiry_s == 0 if v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
        tls_context=tls_context(cfg),
        tls_insecure=True if tls is not None and tls.insecure else None,
        socket_options=NODELAY,
    )


@dataclass
class Backoff:
    """Endpoints tried in turn; the delay doubles after each full round of failures.

    Every delay is spread by jitter (×0.5..1.0) so that a fleet does not reconnect in step.
    """

    endpoints: list[tuple[str, int]]
    min_s: float
    max_s: float
    rng: random.Random = field(default_factory=random.Random)
    index: int = 0
    _failures_in_round: int = 0
    _delay_s: float = 0.0

    def __post_init__(self) -> None:
        self._delay_s = self.min_s

    @property
    def current(self) -> tuple[str, int]:
        """The endpoint to try now."""
        return self.endpoints[self.index % len(self.endpoints)]

    def connected(self) -> None:
        """A connection succeeded: start over with the shortest delay."""
        self._delay_s = self.min_s
        self._failures_in_round = 0

    def failed(self) -> float:
        """The current endpoint failed or dropped: move on; return the delay before the next."""
        self.index = (self.index + 1) % len(self.endpoints)
        self._failures_in_round += 1
        delay = self._delay_s
        if self._failures_in_round >= len(self.endpoints):
            self._failures_in_round = 0
            self._delay_s = min(self._delay_s * 2, max(self.max_s, self.min_s))
        return delay * (0.5 + 0.5 * self.rng.random())


def explain(err: BaseException) -> str:
    """One failure in words, with what to check for the usual ones."""
    text = str(err) or type(err).__name__
    if isinstance(err, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"{text} (the broker's certificate is not trusted or not for this host name: "
            "check mqtt.tls.ca_file and the host in mqtt.host/mqtt.brokers)"
        )
    if isinstance(err, ssl.SSLError) or "[SSL" in text:
        return f"{text} (TLS failed: check mqtt.tls and that the port speaks TLS)"
    if "Not authorized" in text or "Bad user name or password" in text:
        return f"{text} (check mqtt.username and mqtt.password)"
    return text


def leaf_errors(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for e in err.exceptions for leaf in leaf_errors(e)]
    return [err]
