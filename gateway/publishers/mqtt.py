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
import ssl
import uuid
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from prometheus_client import Counter, Gauge, Histogram

from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.core.events import Notice
from gateway.core.supervise import reraise_swallowed_cancel, taskgroup_cancel_fix
from gateway.publishers.mqtt_client import Backoff, is_v5, make_client, user_properties
from gateway.publishers.outbox import OUTBOX_FILE, Dropped, OutboxWorker
from gateway.publishers.payloads import (
    AVAILABILITY_OFFLINE,
    AVAILABILITY_ONLINE,
    StatePayload,
    Topics,
    encode,
    isotime,
)

log = logging.getLogger(__name__)

WRITE_BATCH = 500  # notices written to the outbox in one transaction (at most)
SEND_BATCH = 100  # outbox rows read at once by the sender
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


class FatalMqttError(Exception):
    """The publisher must stop the gateway (e.g. another live gateway has the same id)."""


def _explain(err: BaseException) -> str:
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


def _leaf_errors(err: BaseException) -> list[BaseException]:
    if isinstance(err, BaseExceptionGroup):
        return [leaf for e in err.exceptions for leaf in _leaf_errors(e)]
    return [err]


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
        self._outbox_ready = asyncio.Event()
        self._acked_seq = 0  # highest seq the broker acknowledged on this run
        self._dropped_count = 0
        self._last_state_s: float | None = None
        self._ever_connected = False
        self._outage_logged = False
        self._where = ""
        self.connected = False
        # Subscribe now, so notices raised before `run` starts are not missed.
        self._notices = ctx.bus.subscribe("mqtt", Notice, overflow=Overflow.NEVER_DROP)
        self._outbox_path = outbox_path or Path(ctx.config.gateway.state_dir) / OUTBOX_FILE
        self._worker: OutboxWorker | None = None  # opened by `run`
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
            "Events dropped because the outbox was full (broker away too long).",
            registry=reg,
        )
        self._backlog_gauge = Gauge(
            "bms_mqtt_events_backlog",
            "Events in the outbox waiting for the broker's acknowledgement.",
            registry=reg,
        )
        self._outbox_persistent = Gauge(
            "bms_mqtt_outbox_persistent",
            "1 while the events outbox is on disk, 0 when it fell back to memory.",
            registry=reg,
        )
        self._outbox_errors = Counter(
            "bms_mqtt_outbox_errors",
            "Failures of the events outbox (open, write, encoding).",
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

    @property
    def _outbox(self) -> OutboxWorker:
        assert self._worker is not None, "the outbox is open only while `run` runs"
        return self._worker

    @property
    def backlog(self) -> int:
        """Number of events in the outbox not yet acknowledged by the broker."""
        return 0 if self._worker is None else self._worker.outbox.count

    @property
    def last_seq(self) -> int:
        """The newest `seq` given to an event (continued across restarts)."""
        return 0 if self._worker is None else self._worker.outbox.last_seq

    @property
    def dropped(self) -> int:
        """Events lost to outbox overflow since start."""
        return self._dropped_count

    async def run(self) -> None:
        """Run until cancelled (then publish `offline` and disconnect cleanly)."""
        self._worker = await OutboxWorker.open(self._outbox_path, self._cfg.outbox_max_events)
        self._acked_seq = 0
        self._outbox_errors.inc(self._worker.outbox.errors)
        self._sync_outbox_metrics()
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._take_notices(), name="mqtt:notices")
                tg.create_task(self._connection_loop(), name="mqtt:connection")
        finally:
            self._outbox.close()

    # --- notices → outbox -------------------------------------------------------------

    def _body(self, notice: Notice) -> dict[str, Any]:
        body = dict(notice.payload())
        body["timestamp"] = isotime(self._clock.wall(notice.at_s))
        body["boot_id"] = self.boot_id
        return body

    def _dropped_body(self, dropped: Dropped) -> dict[str, Any]:
        return {
            "type": "events_dropped",
            "count": dropped.count,
            "first_seq": dropped.first_seq,
            "last_seq": dropped.last_seq,
            "timestamp": isotime(self._clock.wall()),
            "boot_id": self.boot_id,
        }

    async def _take_notices(self) -> None:
        batch: list[dict[str, Any]] = []
        try:
            while True:
                notice = await self._notices.get()
                self._add(batch, notice)
                while len(batch) < WRITE_BATCH and (more := self._notices.get_nowait()):
                    self._add(batch, more)
                await self._outbox.call(self._write, batch)
                self._outbox_ready.set()
        finally:
            # Cancelled (shutdown): what was taken off the bus still goes to disk. On the
            # outbox thread, after any write still running; `_write` empties the batch
            # it committed, so nothing is written twice.
            while more := self._notices.get_nowait():
                self._add(batch, more)
            if batch:
                self._outbox.call_blocking(self._write, batch)

    def _add(self, batch: list[dict[str, Any]], notice: Notice) -> None:
        try:
            body = self._body(notice)
            encode(body)  # fail here, not in the outbox transaction
        except (ValueError, TypeError, NotImplementedError):
            self._failures.labels(topic="events").inc()
            log.exception("MQTT event %s could not be encoded; dropped", type(notice).__name__)
            return
        batch.append(body)

    def _write(self, batch: list[dict[str, Any]]) -> None:
        """Store `batch` (runs on the outbox thread) and empty it once committed."""
        outbox = self._outbox.outbox
        errors = outbox.errors
        try:
            dropped = outbox.append(batch, self._dropped_body)
        except Exception:  # in-memory fallback failed too: nothing more we can do
            self._outbox_errors.inc()
            log.exception("MQTT outbox write failed; %d event(s) lost", len(batch))
            batch.clear()
            return
        batch.clear()
        self._outbox_errors.inc(outbox.errors - errors)
        if dropped is not None:
            self._dropped.inc(dropped.count)
            self._dropped_count += dropped.count
            log.error(
                "MQTT events outbox full (mqtt.outbox_max_events = %d): dropped seq %d..%d "
                "(%d event(s)); %d dropped since start",
                outbox.max_events,
                dropped.first_seq,
                dropped.last_seq,
                dropped.count,
                self._dropped_count,
            )
        self._sync_outbox_metrics()

    def _sync_outbox_metrics(self) -> None:
        self._backlog_gauge.set(self._outbox.outbox.count)
        self._outbox_persistent.set(1 if self._outbox.outbox.persistent else 0)

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
                if isinstance(err, FatalMqttError):
                    raise
                delay_s = backoff.failed()
                self._lost(err, delay_s)
            else:  # pragma: no cover - _serve only returns by raising
                delay_s = backoff.failed()
            await self._clock.sleep(delay_s)

    def _lost(self, err: Exception, delay_s: float) -> None:
        self._set_connected(False)
        self._ctx.health.mqtt_reconnects.inc()
        leaves = _leaf_errors(err)
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
                "; ".join(_explain(e) for e in leaves),
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
                payload = self._state_payload.encode(self._ctx.store.state, self._clock)
            except (ValueError, TypeError):
                self._failures.labels(topic="state").inc()
                log.exception("MQTT state message could not be encoded; skipped")
                continue
            await self._publish(client, self.topics.state, payload, qos=0, retain=True)

    async def _events_loop(self, client: aiomqtt.Client) -> None:
        outbox = self._outbox.outbox
        while True:
            self._outbox_ready.clear()  # before reading: a write after the read sets it
            rows = await self._outbox.call(outbox.read, self._acked_seq, SEND_BATCH)
            if not rows:
                await self._outbox_ready.wait()
                continue
            for seq, payload in rows:
                await self._publish(client, self.topics.events, payload, qos=1, retain=False)
                self._acked_seq = seq
                # Forgotten at once (in order, on the outbox thread): after a crash at most
                # the event in flight is sent again.
                self._outbox.submit(self._forget, seq)

    def _forget(self, seq: int) -> None:
        """Delete acknowledged rows (runs on the outbox thread)."""
        try:
            self._outbox.outbox.delete_through(seq)
        except Exception:
            self._outbox_errors.inc()
            log.exception("MQTT outbox delete failed (seq %d)", seq)
        self._sync_outbox_metrics()

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
