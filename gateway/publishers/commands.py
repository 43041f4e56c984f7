"""MQTT command topics (Zigbee2MQTT style): `<prefix>/<id>/command/<name>`.

- `command/go_safe`: `on` / `off` (also `true`/`false`, `1`/`0`, JSON `{"active": bool}`):
  request go-safe (every relay opens; always honoured) or withdraw the MQTT request (other
  go-safe sources, e.g. an input, stay in force).
- `command/ack`: an error name, or `all`: acknowledge latched errors; the engine keeps any
  whose condition is still present.
- `command/<name>/<identity>`: the same, from an identity the broker ACL vouches for.

Less-safe commands (`go_safe off`, `ack`) are off by default and need the gateway's own
authorisation when enabled (`gateway/publishers/command_parse.py`). Every message gets a
reply: on its MQTT v5 response topic with its correlation data when it has one, else on
`command/result`; a JSON payload's `transaction` is echoed (as Zigbee2MQTT does).

An extension of the MQTT publisher (`ctx.mqtt_extensions`) and a component of its own. It
never calls the engine: a valid command becomes a `CommandRequested` event on the bus, which
the engine component applies at the start of its next cycle and answers with a
`CommandApplied` notice; this component turns that notice into a reply on `command/result`.
Retained messages on command topics are ignored (they would replay on every reconnect).
An MQTT go-safe request outlives a restart through the engine's own file
(`<gateway.state_dir>/go_safe_requests.json`, `commands.persist_go_safe`), not through this one.
Anything invalid gets an `ok: false` reply, a log line and a count; never an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from prometheus_client import Counter

from gateway.control.commands import (
    ACK,
    CommandApplied,
    CommandReceived,
    CommandRequested,
)
from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.publishers.command_parse import (
    Command,
    Rejected,
    authorise,
    parse_command,
    transaction_of,
)
from gateway.publishers.payloads import Topics, encode, isotime

log = logging.getLogger(__name__)

SOURCE = "mqtt"  # the go-safe source name (shown in state `reasons.go_safe`)
RESULT = "result"
MAX_IN_FLIGHT = 16  # accepted commands the engine has not answered yet
TOKEN_PROPERTY = "token"  # MQTT v5 user property carrying `commands.token`

__all__ = ["Command", "CommandTopics", "Rejected", "ReplyTo", "create", "parse_command"]


@dataclass(frozen=True, slots=True)
class ReplyTo:
    """Where and how to answer one command message."""

    topic: str
    correlation: bytes | None = None  # MQTT v5 correlation data, echoed
    transaction: str | int | None = None  # payload `transaction`, echoed in the body


def _user_property(message: aiomqtt.Message, name: str) -> str | None:
    props = getattr(message, "properties", None)
    for key, value in getattr(props, "UserProperty", None) or []:
        if key == name:
            return str(value)
    return None


def result_message(
    command: str,
    ok: bool,
    detail: str,
    *,
    request: int | None,
    timestamp: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build one `command/result` body."""
    body: dict[str, Any] = {
        "command": command,
        "ok": ok,
        "detail": detail,
        "request": request,
        "timestamp": timestamp,
    }
    body.update(extra or {})
    return body


def _payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


class CommandTopics:
    """MQTT extension and component: command topics in, `command/result` out."""

    name = "commands"

    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._cfg = ctx.config.commands
        topics = Topics.from_config(ctx.config)
        self._base = topics.base
        self.prefix = topics.sub("command") + "/"
        self.result_topic = topics.sub("command", RESULT)
        self._client: aiomqtt.Client | None = None
        self._request = 0
        self._awaiting: dict[int, ReplyTo] = {}
        # Subscribed now, so no answer from the engine can be missed.
        self._applied = ctx.bus.subscribe(
            "commands", CommandApplied, overflow=Overflow.NEVER_DROP, maxsize=64
        )
        reg = ctx.registry
        self.received = Counter(
            "bms_commands_received",
            "Commands accepted on the MQTT command topics, by command.",
            ["command"],
            registry=reg,
        )
        self.rejected = Counter(
            "bms_commands_rejected",
            "Command messages dropped, by reason (unknown_command, malformed, unknown_error, "
            "retained, not_allowed, unauthorised, busy).",
            ["reason"],
            registry=reg,
        )
        self.reply_failures = Counter(
            "bms_command_replies_failed",
            "Replies on command/result that could not be published (no connection).",
            registry=reg,
        )

    @property
    def ready(self) -> bool:
        """True once subscribed on a connection (replies can be published)."""
        return self._client is not None

    # --- MqttExtension ------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Return the command topic filters (anonymous and identity topics)."""
        return [self.prefix + "+", self.prefix + "+/+"]

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Remember the client for replies that come back from the engine."""
        self._client = client

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Validate and authorise one command and hand it to the engine's next cycle."""
        topic = message.topic.value
        if not topic.startswith(self.prefix):
            return
        name, _, identity = topic[len(self.prefix) :].partition("/")
        if name == RESULT:  # our own replies
            return
        payload = _payload_bytes(message.payload)
        reply_to = self._reply_to(message, transaction_of(payload))
        try:
            cmd = self._accept(name, message, payload, identity or None)
        except Rejected as err:
            self.rejected.labels(reason=err.reason).inc()
            who = f" from {identity[:64]!r}" if identity else ""
            log.warning("MQTT command on %s%s dropped (%s): %s", topic, who, err.reason, err.detail)
            await self._reply(client, reply_to, name[:64], False, err.detail, request=None)
            return
        self._submit(cmd, reply_to)

    # --- component --------------------------------------------------------------------

    async def run(self) -> None:
        """Reply to what the engine applied (it persists and restores go-safe itself)."""
        async for applied in self._applied:
            if applied.source != SOURCE:
                continue
            reply_to = self._awaiting.pop(applied.request, None)
            if reply_to is None:
                continue
            extra = {}
            if applied.command == ACK:
                extra = {"cleared": list(applied.cleared), "kept": list(applied.kept)}
            await self._reply(
                self._client,
                reply_to,
                applied.command,
                applied.ok,
                applied.detail,
                request=applied.request,
                extra=extra,
            )

    # --- internals --------------------------------------------------------------------

    def _reply_to(self, message: aiomqtt.Message, transaction: str | int | None) -> ReplyTo:
        props = getattr(message, "properties", None)
        topic = getattr(props, "ResponseTopic", None)
        correlation = getattr(props, "CorrelationData", None)
        # Never into our own topics (a forged reply could pose as `state` or a command).
        valid = (
            isinstance(topic, str)
            and topic
            and not any(c in topic for c in "#+")
            and not topic.startswith(self._base + "/")
        )
        return ReplyTo(
            topic=topic if valid and isinstance(topic, str) else self.result_topic,
            correlation=bytes(correlation) if isinstance(correlation, bytes | bytearray) else None,
            transaction=transaction,
        )

    def _accept(
        self, name: str, message: aiomqtt.Message, payload: bytes, identity: str | None
    ) -> Command:
        if message.retain:
            raise Rejected("retained", "retained command ignored (publish commands without retain)")
        cmd = parse_command(name, payload)
        how = authorise(
            cmd,
            self._cfg,
            identity=identity,
            property_token=_user_property(message, TOKEN_PROPERTY),
        )
        if how != "not_needed":
            log.warning(
                "MQTT command %s %s authorised by %s%s",
                cmd.command,
                cmd.argument,
                how,
                f" {identity!r}" if how == "identity" else "",
            )
        if len(self._awaiting) >= MAX_IN_FLIGHT:
            raise Rejected("busy", "too many commands waiting for the engine; try again")
        return cmd

    def _submit(self, cmd: Command, reply_to: ReplyTo) -> int:
        self._request += 1
        n = self._request
        now_s = self._ctx.clock.now()
        self._awaiting[n] = reply_to
        self.received.labels(command=cmd.command).inc()
        log.warning("MQTT command %s %s accepted (request %d)", cmd.command, cmd.argument, n)
        bus = self._ctx.bus
        bus.publish(
            CommandReceived(
                at_s=now_s, command=cmd.command, source=SOURCE, request=n, argument=cmd.argument
            )
        )
        bus.publish(
            CommandRequested(
                at_s=now_s,
                command=cmd.command,
                source=SOURCE,
                request=n,
                active=cmd.active,
                errors=cmd.errors,
            )
        )
        return n

    async def _reply(
        self,
        client: aiomqtt.Client | None,
        reply_to: ReplyTo,
        command: str,
        ok: bool,
        detail: str,
        *,
        request: int | None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        clock = self._ctx.clock
        body = result_message(
            command,
            ok,
            detail,
            request=request,
            timestamp=isotime(clock.wall(clock.now())),
            extra=extra,
        )
        if reply_to.transaction is not None:
            body["transaction"] = reply_to.transaction
        if client is None:
            self.reply_failures.inc()
            log.warning("command reply not published (never connected): %s", body)
            return
        props: Properties | None = None
        if reply_to.correlation is not None:
            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.CorrelationData = reply_to.correlation
        try:
            await client.publish(
                reply_to.topic, encode(body), qos=1, retain=False, properties=props
            )
        except aiomqtt.MqttError as err:
            self.reply_failures.inc()
            log.warning("command reply not published (%s): %s", err, body)
            return
        self._ctx.health.mqtt_publishes.labels(topic=RESULT).inc()


def create(ctx: GatewayContext) -> CommandTopics | None:
    """Entry point (`bms_gateway.publishers`: commands); None unless MQTT and commands are on."""
    if not (ctx.config.commands.enabled and ctx.config.mqtt.enabled):
        return None
    ext = CommandTopics(ctx)
    ctx.mqtt_extensions.append(ext)
    return ext
