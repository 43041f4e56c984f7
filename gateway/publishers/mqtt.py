"""MQTT publisher: retained `state`, QoS 1 `events`, `availability` with a last will.

Topics live under `<mqtt.topic_prefix>/<gateway.id>/` (docs/mqtt.md). The publisher only
reads the state store and its own bus subscription, so the control path never waits on it:
a dead broker costs nothing but a reconnect loop with exponential backoff.

Events (store-and-forward): notices are taken off the bus as they arrive and written, in
batches, to the persistent outbox (`gateway/publishers/outbox.py`, SQLite on its own thread),
which numbers them (`seq`, continued across restarts) and keeps them until the broker
acknowledged them (QoS 1); the sender publishes them in `seq` order after every (re)connect.
Every event carries the `boot_id` of the process that raised it. `state` is keep-latest: right
after a (re)connect the newest snapshot is published, before anything else is announced.

Other components hook into the connection through `MqttExtension` objects in
`ctx.mqtt_extensions` (Home Assistant discovery, command topics).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from pathlib import Path

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from prometheus_client import Counter, Histogram

from gateway.core.context import GatewayContext
from gateway.core.errors import FatalError
from gateway.core.supervise import reraise_swallowed_cancel, taskgroup_cancel_fix
from gateway.publishers.event_feed import EventFeed
from gateway.publishers.mqtt_client import (
    IO_TIMEOUT_S,
    Backoff,
    explain,
    is_v5,
    leaf_errors,
    make_client,
    user_properties,
)
from gateway.publishers.mqtt_extension import MqttExtension
from gateway.publishers.outbox import OUTBOX_FILE
from gateway.publishers.payloads import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    StatePayload,
    Topics,
    encode,
    isotime,
    state_message,
)
from gateway.publishers.presence import (
    check_no_duplicate,
    probe_answer,
    probe_topics,
    shutdown_state,
)

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 1.0  # budget for the clean `offline` on shutdown
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

__all__ = ["MqttExtension", "MqttPublisher", "Topics", "create"]


class MqttPublisher:
    """Keeps one broker connection alive and publishes availability, state and events."""

    name = "mqtt"

    def __init__(self, ctx: GatewayContext, *, outbox_path: Path | None = None) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.mqtt
        self._clock = ctx.clock
        self._state_payload = StatePayload(ctx.config)  # boards encoded once per scan
        self.topics = Topics.from_config(ctx.config)
        self.boot_id = uuid.uuid4().hex  # this process's run; on every event (`boot_id`)
        self._last_state_s: float | None = None
        self._ever_connected = False
        self._outage_logged = False
        self._where = ""
        self.connected = False
        reg = ctx.registry
        self._latency = Histogram(
            "bms_mqtt_publish_latency_seconds",
            "Time from handing a message to the client to its completion (PUBACK for QoS 1).",
            ["topic"],
            buckets=LATENCY_BUCKETS_S,
            registry=reg,
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
        self._feed = EventFeed(
            ctx.bus,
            ctx.clock,
            reg,
            path=outbox_path or Path(ctx.config.gateway.state_dir) / OUTBOX_FILE,
            max_events=self._cfg.outbox_max_events,
            boot_id=self.boot_id,
            failures=self._failures,
        )

    @property
    def backlog(self) -> int:
        """Number of events in the outbox not yet acknowledged by the broker."""
        return self._feed.backlog

    @property
    def last_seq(self) -> int:
        """The newest `seq` given to an event (continued across restarts)."""
        return self._feed.last_seq

    @property
    def dropped(self) -> int:
        """Events lost to outbox overflow since start."""
        return self._feed.dropped_count

    async def run(self) -> None:
        """Run until cancelled (then publish the final state and `offline`, disconnect)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._feed.run(), name="mqtt:outbox")
                tg.create_task(self._connection_loop(), name="mqtt:connection")
        finally:
            self._feed.close()  # both tasks have ended: nothing uses the outbox any more

    # --- connection -------------------------------------------------------------------

    def _client(self, host: str, port: int) -> aiomqtt.Client:
        config = self._ctx.config
        return make_client(config, host, port, self.topics.availability, AVAILABILITY_OFFLINE)

    async def _connection_loop(self) -> None:
        cfg = self._cfg
        backoff = Backoff(cfg.endpoints, cfg.reconnect_min_s, cfg.reconnect_max_s)
        while True:
            host, port = backoff.current
            self._where = f"{host}:{port}"
            try:
                with taskgroup_cancel_fix():
                    async with self._client(host, port) as client:
                        backoff.connected()
                        await self._serve(client)
            except Exception as err:  # a publisher must never stop the gateway
                if isinstance(err, FatalError):
                    raise
                delay_s = backoff.failed()
                self._lost(err, delay_s)
            else:  # pragma: no cover - _serve only returns by raising
                delay_s = backoff.failed()
            await self._clock.sleep(delay_s)

    def _lost(self, err: Exception, delay_s: float) -> None:
        self._set_connected(False)
        self._ctx.health.mqtt_reconnects.inc()
        leaves = leaf_errors(err)
        if not all(isinstance(e, aiomqtt.MqttError | OSError) for e in leaves):
            log.error("MQTT publisher failed; reconnecting", exc_info=err)
            self._outage_logged = True
            return
        if not self._outage_logged:
            self._outage_logged = True
            what = (
                "connection to broker %s lost"
                if self._ever_connected
                else "cannot connect to broker %s"
            )
            log.warning(
                "MQTT " + what + ": %s; retrying every %.1f..%.1f s%s",
                self._where,
                "; ".join(explain(e) for e in leaves),
                self._cfg.reconnect_min_s,
                self._cfg.reconnect_max_s,
                f" over {len(self._cfg.endpoints)} brokers (mqtt.brokers)"
                if len(self._cfg.endpoints) > 1
                else "",
            )
        else:
            log.debug(
                "MQTT broker %s unreachable: %s (next try in %.1f s)",
                self._where,
                leaves[0],
                delay_s,
            )

    def _set_connected(self, connected: bool) -> None:
        self.connected = connected
        self._ctx.health.mqtt_connected.set(1 if connected else 0)

    async def _serve(self, client: aiomqtt.Client) -> None:
        where = self._where
        if not self._ever_connected:  # before anything is published: one live gateway per id
            await check_no_duplicate(
                client,
                self.topics,
                self.boot_id,
                self._clock,
                self._cfg.duplicate_check_s,
                IO_TIMEOUT_S,
            )
        await client.subscribe(probe_topics(self.topics)[0], qos=1)  # answer others' probes
        reraise_swallowed_cancel()
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
            async with asyncio.TaskGroup() as tg:
                # The newest state and the events first: extensions (e.g. a discovery burst)
                # must not delay them.
                tg.create_task(self._state_loop(client), name="mqtt:state")
                tg.create_task(self._events_loop(client), name="mqtt:events")
                filters = await self._start_extensions(client, extensions)
                tg.create_task(self._messages_loop(client, extensions, filters), name="mqtt:rx")
        except asyncio.CancelledError:
            await self._say_final_state(client)
            await self._say_offline(client)
            raise
        finally:
            self._set_connected(False)

    async def _say_final_state(self, client: aiomqtt.Client) -> None:
        """Publish the retained last `state`: every relay open, reason `shutdown` (best effort).

        On a graceful stop the relay drivers open every contactor; without this the retained
        snapshot would keep showing them closed while the gateway is gone.
        """
        try:
            message = state_message(self._ctx.store.state, self._clock, self._ctx.config)
            final = shutdown_state(message, isotime(self._clock.wall()))
            await self._publish(
                client,
                self.topics.state,
                encode(final),
                qos=1,
                retain=True,
                io_timeout_s=SHUTDOWN_TIMEOUT_S,
                stopping=True,
            )
        except aiomqtt.MqttError as err:
            log.warning("MQTT could not publish the final state on shutdown: %s", err)
        except (ValueError, TypeError):
            self._failures.labels(topic="state").inc()
            log.exception("MQTT final state could not be encoded")

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
                stopping=True,
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
                payload = self._state_payload.encode(self._ctx.store.state, self._clock)
            except (ValueError, TypeError):
                self._failures.labels(topic="state").inc()
                log.exception("MQTT state message could not be encoded; skipped")
                continue
            await self._publish(client, self.topics.state, payload, qos=0, retain=True)

    async def _events_loop(self, client: aiomqtt.Client) -> None:
        async def publish(payload: bytes) -> None:
            await self._publish(client, self.topics.events, payload, qos=1, retain=False)

        await self._feed.send(publish)

    async def _messages_loop(
        self,
        client: aiomqtt.Client,
        extensions: list[MqttExtension],
        filters: list[list[str]],
    ) -> None:
        # Also the disconnect detector: the iterator raises MqttError when the link drops.
        probe = probe_topics(self.topics)[0]
        async for message in client.messages:
            if message.topic.value == probe:
                await self._answer_probe(client, message)
                continue
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

    async def _answer_probe(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        answer = probe_answer(message.payload, self.boot_id)
        if answer is None:
            return
        payload, other = answer
        log.error(
            "another gateway with gateway.id %r tried to start on this broker (host %s, pid %s); "
            "told it that this one is running",
            self._ctx.config.gateway.id,
            other.get("host", "?"),
            other.get("pid", "?"),
        )
        await self._publish(client, probe_topics(self.topics)[1], payload, qos=1, retain=False)

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        *,
        qos: int,
        retain: bool,
        io_timeout_s: float | None = None,
        stopping: bool = False,
    ) -> None:
        """Publish one message (QoS 1: until its PUBACK), counting and timing it.

        `stopping`: on the shutdown path, already cancelled: do not re-raise that cancel.
        """
        label = topic.rsplit("/", 1)[-1]
        start_s = self._clock.now()
        props = None
        if is_v5(self._cfg):
            expiry = self._cfg.state_expiry_s if topic == self.topics.state else None
            props = user_properties(PacketTypes.PUBLISH, self._ctx.config.gateway.id, expiry)
        try:
            await client.publish(
                topic, payload, qos=qos, retain=retain, properties=props, timeout=io_timeout_s
            )
        except aiomqtt.MqttError:
            self._failures.labels(topic=label).inc()
            if not stopping:
                reraise_swallowed_cancel()
            raise
        self._latency.labels(topic=label).observe(max(0.0, self._clock.now() - start_s))
        self._ctx.health.mqtt_publishes.labels(topic=label).inc()
        if not stopping:
            reraise_swallowed_cancel()


def create(ctx: GatewayContext) -> MqttPublisher | None:
    """Entry point (`bms_gateway.publishers`: mqtt); None when `mqtt.enabled` is false."""
    if not ctx.config.mqtt.enabled:
        return None
    return MqttPublisher(ctx)
