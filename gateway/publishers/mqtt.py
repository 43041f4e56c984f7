"""MQTT publisher: retained `state`, QoS 1 `events`, `availability` with a last will.

Topics live under `<mqtt.topic_prefix>/<gateway.id>/` (docs/mqtt.md). The publisher only
reads the state store and its own bus subscription, so the control path never waits on it:
a dead broker costs nothing but a reconnect loop with exponential backoff.

Notices are taken off the bus as they arrive, numbered (`seq`) and kept in a bounded backlog
until the broker acknowledges them (QoS 1), so notices raised while disconnected are sent
after the reconnect; when the backlog overflows the oldest notice is dropped and counted (the
gap in `seq` shows it to subscribers).

Other components hook into the connection through `MqttExtension` objects in
`ctx.mqtt_extensions` (Home Assistant discovery, command topics).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Protocol, runtime_checkable

import aiomqtt
from prometheus_client import Counter, Gauge, Histogram

from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.core.events import Notice
from gateway.core.supervise import reraise_swallowed_cancel, taskgroup_cancel_fix
from gateway.publishers.payloads import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    Topics,
    encode,
    event_message,
    state_message,
)

log = logging.getLogger(__name__)

EVENTS_BACKLOG = 10_000  # notices kept while the broker is unreachable
IO_TIMEOUT_S = 10.0  # real-time limit on one broker round trip (connect, PUBACK, SUBACK)
SHUTDOWN_TIMEOUT_S = 1.0  # budget for the clean `offline` on shutdown
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

__all__ = ["MqttExtension", "MqttPublisher", "Topics", "create"]


@runtime_checkable
class MqttExtension(Protocol):
    """Something that rides on the gateway's MQTT connection (put it in `ctx.mqtt_extensions`).

    After every (re)connect the publisher subscribes to `subscriptions()` (QoS 1) and then
    awaits `on_connected`; each message matching one of the filters is passed to
    `on_message`. Both run on the publisher's task: keep them short. An `aiomqtt.MqttError`
    they raise is treated as a lost connection; any other exception is logged and counted
    and the connection carries on.
    """

    def subscriptions(self) -> list[str]:
        """Return the topic filters to subscribe to (may be empty)."""
        ...

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Publish what must be (re)announced on every connection (e.g. discovery)."""
        ...

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Handle one message on a subscribed topic."""
        ...


def _leaf_errors(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for e in err.exceptions for leaf in _leaf_errors(e)]
    return [err]


class MqttPublisher:
    """Keeps one broker connection alive and publishes availability, state and events."""

    name = "mqtt"

    def __init__(self, ctx: GatewayContext, *, backlog_size: int = EVENTS_BACKLOG) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.mqtt
        self._clock = ctx.clock
        self.topics = Topics.from_config(ctx.config)
        self._backlog_size = backlog_size
        self._backlog: collections.deque[tuple[int, Notice]] = collections.deque()
        self._backlog_ready = asyncio.Event()
        self._seq = 0
        self._dropped_count = 0
        self._last_state_s: float | None = None
        self._ever_connected = False
        self._outage_logged = False
        self.connected = False
        # Subscribe now, so notices raised before `run` starts are not missed.
        self._notices = ctx.bus.subscribe("mqtt", Notice, overflow=Overflow.NEVER_DROP)
        reg = ctx.registry
        self._latency = Histogram(
            "bms_mqtt_publish_latency_seconds",
            "Time from handing a message to the client to its completion (PUBACK for QoS 1).",
            ["topic"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
        )
        self._dropped = Counter(
            "bms_mqtt_events_dropped",
            "Notices dropped because the events backlog was full (broker away too long).",
            registry=reg,
        )
        self._backlog_gauge = Gauge(
            "bms_mqtt_events_backlog", "Notices waiting to be published on events.", registry=reg
        )
        self._failures = Counter(
            "bms_mqtt_publish_failures",
            "Messages that could not be published (encoding error or connection lost).",
            ["topic"],
            registry=reg,
        )
        self._extension_errors = Counter(
            "bms_mqtt_extension_errors",
            "Exceptions raised by MQTT extensions (other than connection loss).",
            ["extension"],
            registry=reg,
        )

    @property
    def backlog(self) -> int:
        """Number of notices not yet acknowledged by the broker."""
        return len(self._backlog)

    @property
    def dropped(self) -> int:
        """Notices lost to backlog overflow since start."""
        return self._dropped_count

    async def run(self) -> None:
        """Run until cancelled (then publish `offline` and disconnect cleanly)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._take_notices(), name="mqtt:notices")
            tg.create_task(self._connection_loop(), name="mqtt:connection")

    # --- notices ----------------------------------------------------------------------

    async def _take_notices(self) -> None:
        async for notice in self._notices:
            self._enqueue(notice)

    def _enqueue(self, notice: Notice) -> None:
        self._seq += 1
        if len(self._backlog) >= self._backlog_size:
            lost_seq, lost = self._backlog.popleft()
            self._dropped.inc()
            self._dropped_count += 1
            n = self._dropped_count
            if n == 1 or n % 1000 == 0:
                log.error(
                    "MQTT events backlog full (%d): dropped notice seq %d (%s); %d dropped so far",
                    self._backlog_size,
                    lost_seq,
                    type(lost).__name__,
                    n,
                )
        self._backlog.append((self._seq, notice))
        self._backlog_gauge.set(len(self._backlog))
        self._backlog_ready.set()

    # --- connection -------------------------------------------------------------------

    def _client(self) -> aiomqtt.Client:
        cfg = self._cfg
        password = cfg.password.get_secret_value() if cfg.password is not None else None
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=password if cfg.username is not None else None,
            identifier=cfg.client_id,
            keepalive=cfg.keepalive_s,
            timeout=IO_TIMEOUT_S,
            will=aiomqtt.Will(self.topics.availability, AVAILABILITY_OFFLINE, qos=1, retain=True),
        )

    async def _connection_loop(self) -> None:
        delay_s = self._cfg.reconnect_min_s
        while True:
            try:
                with taskgroup_cancel_fix():
                    async with self._client() as client:
                        delay_s = self._cfg.reconnect_min_s
                        await self._serve(client)
            except Exception as err:  # a publisher must never stop the gateway
                self._lost(err, delay_s)
            await self._clock.sleep(delay_s)
            delay_s = min(delay_s * 2, max(self._cfg.reconnect_max_s, self._cfg.reconnect_min_s))

    def _lost(self, err: Exception, delay_s: float) -> None:
        self._set_connected(False)
        self._ctx.health.mqtt_reconnects.inc()
        leaves = _leaf_errors(err)
        if not all(isinstance(e, aiomqtt.MqttError | OSError) for e in leaves):
            log.error("MQTT publisher failed; reconnecting", exc_info=err)
            self._outage_logged = True
            return
        where = f"{self._cfg.host}:{self._cfg.port}"
        if not self._outage_logged:
            self._outage_logged = True
            what = "connection to" if self._ever_connected else "cannot connect to"
            log.warning(
                "MQTT %s broker %s lost: %s; retrying every %.1f..%.1f s",
                what,
                where,
                "; ".join(str(e) for e in leaves),
                self._cfg.reconnect_min_s,
                self._cfg.reconnect_max_s,
            )
        else:
            log.debug(
                "MQTT broker %s still unreachable: %s (next try in %.1f s)",
                where,
                leaves[0],
                delay_s,
            )

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._ctx.health.mqtt_connected.set(1 if connected else 0)

    async def _serve(self, client: aiomqtt.Client) -> None:
        where = f"{self._cfg.host}:{self._cfg.port}"
        if self._outage_logged:
            log.info("MQTT reconnected to %s", where)
        elif not self._ever_connected:
            log.info("MQTT connected to %s", where)
        self._ever_connected = True
        self._outage_logged = False
        self._set_connected(True)
        try:
            await self._publish(
                client, self.topics.availability, AVAILABILITY_ONLINE.encode(), qos=1, retain=True
            )
            extensions = list(self._ctx.mqtt_extensions)
            filters = await self._start_extensions(client, extensions)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._state_loop(client), name="mqtt:state")
                tg.create_task(self._events_loop(client), name="mqtt:events")
                tg.create_task(self._messages_loop(client, extensions, filters), name="mqtt:rx")
        except asyncio.CancelledError:
            await self._say_offline(client)
            raise
        finally:
            self._set_connected(False)

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        """Publish the retained `offline` before a clean disconnect (best effort)."""
        try:
            await self._publish(
                client,
                self.topics.availability,
                AVAILABILITY_OFFLINE.encode(),
                qos=1,
                retain=True,
                io_timeout_s=SHUTDOWN_TIMEOUT_S,
            )
        except aiomqtt.MqttError as err:
            log.warning("MQTT could not publish offline on shutdown: %s", err)

    async def _start_extensions(
        self, client: aiomqtt.Client, extensions: list[MqttExtension]
    ) -> list[list[str]]:
        filters: list[list[str]] = []
        for ext in extensions:
            try:
                subs = list(ext.subscriptions())
                for topic in subs:
                    await client.subscribe(topic, qos=1)
                    reraise_swallowed_cancel()
                await ext.on_connected(client)
                reraise_swallowed_cancel()
            except aiomqtt.MqttError:
                raise
            except Exception:
                self._extension_failed(ext, "on_connected")
                subs = []
            filters.append(subs)
        return filters

    def _extension_failed(self, ext: object, where: str) -> None:
        name = str(getattr(ext, "name", type(ext).__name__))
        self._extension_errors.labels(extension=name).inc()
        log.exception("MQTT extension %s failed in %s", name, where)

    # --- loops (each ends with an MqttError when the connection drops) ------------------

    async def _state_loop(self, client: aiomqtt.Client) -> None:
        interval_s = self._cfg.publish_interval_s
        while True:
            if self._last_state_s is not None:
                await self._clock.sleep_until(self._last_state_s + interval_s)
            self._last_state_s = self._clock.now()
            try:
                payload = encode(
                    state_message(self._ctx.store.state, self._clock, self._ctx.config)
                )
            except (ValueError, TypeError):
                self._failures.labels(topic="state").inc()
                log.exception("MQTT state message could not be encoded; skipped")
                continue
            await self._publish(client, self.topics.state, payload, qos=0, retain=True)

    async def _events_loop(self, client: aiomqtt.Client) -> None:
        while True:
            while not self._backlog:
                self._backlog_ready.clear()
                await self._backlog_ready.wait()
            seq, notice = self._backlog[0]
            try:
                payload = encode(event_message(notice, seq, self._clock))
            except (ValueError, TypeError, NotImplementedError):
                self._failures.labels(topic="events").inc()
                log.exception(
                    "MQTT event seq %d (%s) could not be encoded; dropped",
                    seq,
                    type(notice).__name__,
                )
            else:
                await self._publish(client, self.topics.events, payload, qos=1, retain=False)
            # The head may have been dropped by an overflow while we awaited the PUBACK.
            if self._backlog and self._backlog[0][0] == seq:
                self._backlog.popleft()
            self._backlog_gauge.set(len(self._backlog))

    async def _messages_loop(
        self,
        client: aiomqtt.Client,
        extensions: list[MqttExtension],
        filters: list[list[str]],
    ) -> None:
        # Also the disconnect detector: the iterator raises MqttError when the link drops.
        async for message in client.messages:
            for ext, subs in zip(extensions, filters, strict=True):
                if not any(message.topic.matches(f) for f in subs):
                    continue
                try:
                    await ext.on_message(client, message)
                    reraise_swallowed_cancel()
                except aiomqtt.MqttError:
                    raise
                except Exception:
                    self._extension_failed(ext, "on_message")

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        io_timeout_s: float | None = None,
    ) -> None:
        label = topic.rsplit("/", 1)[-1]
        start_s = self._clock.now()
        try:
            await client.publish(topic, payload, qos=qos, retain=retain, timeout=io_timeout_s)
        except aiomqtt.MqttError:
            self._failures.labels(topic=label).inc()
            reraise_swallowed_cancel()
            raise
        self._latency.labels(topic=label).observe(max(0.0, self._clock.now() - start_s))
        self._ctx.health.mqtt_publishes.labels(topic=label).inc()
        reraise_swallowed_cancel()


def create(ctx: GatewayContext) -> MqttPublisher | None:
    """Entry point (`bms_gateway.publishers`: mqtt); None when `mqtt.enabled` is false."""
    if not ctx.config.mqtt.enabled:
        return None
    return MqttPublisher(ctx)
