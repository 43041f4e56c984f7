"""MQTT command topics (Zigbee2MQTT style): `<prefix>/<id>/command/<name>`.

- `command/go_safe`: `on` / `off` (also `true`/`false`, `1`/`0`, JSON `{"active": bool}`):
  request go-safe (every relay opens; always honoured) or withdraw the MQTT request (other
  go-safe sources, e.g. an input, stay in force).
- `command/ack`: an error name, or `all`: acknowledge latched errors; the engine keeps any
  whose condition is still present.

An extension of the MQTT publisher (`ctx.mqtt_extensions`) and a component of its own. It
never calls the engine: a valid command becomes a `CommandRequested` event on the bus, which
the engine component applies at the start of its next cycle and answers with a
`CommandApplied` notice; this component turns that notice into a reply on `command/result`.
Retained messages on command topics are ignored (they would replay on every reconnect).
Anything invalid gets an `ok: false` reply, a log line and a count; never an exception.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
from prometheus_client import Counter

from gateway.control.commands import (
    ACK,
    COMMANDS,
    GO_SAFE,
    CommandApplied,
    CommandReceived,
    CommandRequested,
)
from gateway.control.names import ERROR_NAMES
from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.publishers.payloads import Topics, encode, isotime

log = logging.getLogger(__name__)

SOURCE = "mqtt"  # the go-safe source name (shown in state `reasons.go_safe`)
RESULT = "result"
MAX_PAYLOAD_BYTES = 256
MAX_IN_FLIGHT = 16  # accepted commands the engine has not answered yet
GO_SAFE_FILE = "command_go_safe.json"
_TRUE = frozenset({"on", "true", "1"})
_FALSE = frozenset({"off", "false", "0"})


class Rejected(ValueError):
    """A command message that cannot be carried out: `reason` is the metric label."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed, valid command."""

    command: str
    argument: str  # normalised payload, for the audit trail
    active: bool = True  # go_safe
    errors: tuple[str, ...] | None = None  # ack: None = all


def _decode(payload: bytes) -> Any:
    """Return the payload as JSON value when it looks like JSON, else as stripped text."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected("malformed", f"payload longer than {MAX_PAYLOAD_BYTES} bytes")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise Rejected("malformed", "payload is not UTF-8 text") from None
    if text[:1] in ("{", "[", '"'):
        try:
            return json.loads(text)
        except ValueError:
            raise Rejected("malformed", "payload is not valid JSON") from None
    return text


def _go_safe(value: Any) -> Command:
    if isinstance(value, dict):
        if set(value) != {"active"} or not isinstance(value["active"], bool):
            raise Rejected("malformed", 'go_safe JSON must be {"active": true|false}')
        value = value["active"]
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            value = True
        elif word in _FALSE:
            value = False
    if not isinstance(value, bool):
        raise Rejected("malformed", "go_safe payload must be on or off")
    return Command(GO_SAFE, "on" if value else "off", active=value)


def _ack(value: Any) -> Command:
    if isinstance(value, dict):
        if set(value) != {"error"} or not isinstance(value["error"], str):
            raise Rejected("malformed", 'ack JSON must be {"error": "<name>"|"all"}')
        value = value["error"]
    if not isinstance(value, str) or not value.strip():
        raise Rejected("malformed", "ack payload must be an error name or all")
    name = value.strip().lower()
    if name == "all":
        return Command(ACK, "all", errors=None)
    if name not in ERROR_NAMES:
        raise Rejected("unknown_error", f"unknown error name {value.strip()[:64]!r}")
    return Command(ACK, name, errors=(name,))


def parse_command(command: str, payload: bytes) -> Command:
    """Parse one command message (pure).

    Raises:
        Rejected: unknown command, malformed payload or unknown error name.
    """
    if command not in COMMANDS:
        raise Rejected("unknown_command", f"unknown command {command[:64]!r}")
    value = _decode(payload)
    return _go_safe(value) if command == GO_SAFE else _ack(value)


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
        self.prefix = topics.sub("command") + "/"
        self.result_topic = topics.sub("command", RESULT)
        self._client: aiomqtt.Client | None = None
        self._request = 0
        self._awaiting: set[int] = set()
        self._go_safe_path = Path(ctx.config.gateway.state_dir) / GO_SAFE_FILE
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
            "retained, not_allowed, busy).",
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
        """Return the command topic filter."""
        return [self.prefix + "+"]

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Remember the client for replies that come back from the engine."""
        self._client = client

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Validate one command and hand it to the engine's next cycle."""
        topic = message.topic.value
        if not topic.startswith(self.prefix):
            return
        name = topic[len(self.prefix) :]
        if name == RESULT:  # our own replies
            return
        try:
            cmd = self._accept(name, message)
        except Rejected as err:
            self.rejected.labels(reason=err.reason).inc()
            log.warning("MQTT command on %s dropped (%s): %s", topic, err.reason, err.detail)
            await self._reply(client, name[:64], False, err.detail, request=None)
            return
        self._submit(cmd)

    # --- component --------------------------------------------------------------------

    async def run(self) -> None:
        """Restore a persisted go-safe request, then reply to what the engine applied."""
        self._restore_go_safe()
        async for applied in self._applied:
            if applied.source != SOURCE or applied.request not in self._awaiting:
                continue
            self._awaiting.discard(applied.request)
            extra = {}
            if applied.command == ACK:
                extra = {"cleared": list(applied.cleared), "kept": list(applied.kept)}
            await self._reply(
                self._client,
                applied.command,
                applied.ok,
                applied.detail,
                request=applied.request,
                extra=extra,
            )

    # --- internals --------------------------------------------------------------------

    def _accept(self, name: str, message: aiomqtt.Message) -> Command:
        if message.retain:
            raise Rejected("retained", "retained command ignored (publish commands without retain)")
        cmd = parse_command(name, _payload_bytes(message.payload))
        self._check_allowed(cmd)
        return cmd

    def _check_allowed(self, cmd: Command) -> None:
        if cmd.command == ACK and not self._cfg.allow_ack:
            raise Rejected("not_allowed", "ack over MQTT is disabled (commands.allow_ack)")
        if cmd.command == GO_SAFE and not cmd.active and not self._cfg.allow_go_safe_release:
            raise Rejected(
                "not_allowed",
                "go_safe off over MQTT is disabled (commands.allow_go_safe_release)",
            )
        if len(self._awaiting) >= MAX_IN_FLIGHT:
            raise Rejected("busy", "too many commands waiting for the engine; try again")

    def _submit(self, cmd: Command, *, reply: bool = True) -> int:
        self._request += 1
        n = self._request
        now_s = self._ctx.clock.now()
        if reply:
            self._awaiting.add(n)
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
        if cmd.command == GO_SAFE:
            self._persist_go_safe(cmd.active, now_s)
        return n

    def _persist_go_safe(self, active: bool, now_s: float) -> None:
        if not self._cfg.persist_go_safe:
            return
        path = self._go_safe_path
        try:
            if active:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                since = isotime(self._ctx.clock.wall(now_s))
                tmp.write_text(json.dumps({"active": True, "since": since}), encoding="utf-8")
                tmp.replace(path)
            else:
                path.unlink(missing_ok=True)
        except OSError as err:
            log.error("cannot persist the MQTT go-safe request in %s: %s", path, err)

    def _restore_go_safe(self) -> None:
        if not self._cfg.persist_go_safe:
            return
        try:
            data = json.loads(self._go_safe_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            # Unreadable: the safe reading is "requested".
            log.error("unreadable %s (%s): restoring go-safe", self._go_safe_path, err)
            data = {"active": True, "since": None}
        if isinstance(data, dict) and data.get("active") is not False:
            log.warning(
                "MQTT go-safe request restored from %s (since %s): every relay stays open "
                "until command/go_safe off",
                self._go_safe_path,
                data.get("since"),
            )
            self._submit(Command(GO_SAFE, "on (restored)", active=True), reply=False)

    async def _reply(
        self,
        client: aiomqtt.Client | None,
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
        if client is None:
            self.reply_failures.inc()
            log.warning("command reply not published (never connected): %s", body)
            return
        try:
            await client.publish(self.result_topic, encode(body), qos=1, retain=False)
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
