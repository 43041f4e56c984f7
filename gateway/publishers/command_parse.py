"""Parsing and authorising MQTT command messages (pure functions, no broker involved).

A command is either **safer** (it can only open relays: `go_safe on`) or **less safe** (it
can let a relay close again: `go_safe off`, `ack`). Safer commands are accepted from anyone
who may publish on the command topic. A less-safe command must be enabled in the config and
carry the gateway's own authorisation: the configured secret token (payload field `token`,
or MQTT v5 user property `token`), or arrive on an identity topic
`…/command/<name>/<identity>` whose identity is in `commands.trusted_identities` (the broker
ACL decides who may publish there; MQTT itself never tells a subscriber who published).
The token is compared in constant time and never logged, echoed or stored.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from gateway.control.commands import ACK, COMMANDS, GO_SAFE
from gateway.control.names import ERROR_NAMES
from gateway.publishers.commands_section import CommandsSection

MAX_PAYLOAD_BYTES = 256
MAX_TRANSACTION_CHARS = 64
_TRUE = frozenset({"on", "true", "1"})
_FALSE = frozenset({"off", "false", "0"})
_META_KEYS = frozenset({"token", "transaction"})  # allowed beside the command's own keys


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
    argument: str  # normalised payload, for the audit trail (never holds the token)
    active: bool = True  # go_safe
    errors: tuple[str, ...] | None = None  # ack: None = all
    token: str | None = field(default=None, repr=False)  # payload `token`; never logged
    transaction: str | int | None = None  # echoed in the reply (Zigbee2MQTT style)

    @property
    def less_safe(self) -> bool:
        """True when carrying it out may let a relay close (needs authorisation)."""
        return self.command == ACK or (self.command == GO_SAFE and not self.active)


def transaction_of(payload: bytes) -> str | int | None:
    """Best effort: the `transaction` of a JSON payload, even one rejected otherwise."""
    try:
        value = json.loads(payload[:MAX_PAYLOAD_BYTES].decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(value, dict):
        return _transaction(value.get("transaction"))
    return None


def _transaction(value: Any) -> str | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, str) and len(value) <= MAX_TRANSACTION_CHARS:
        return value
    return None


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


def _split_meta(value: dict[str, Any], key: str) -> tuple[Any, str | None, str | int | None]:
    """Return (the command's own value, token, transaction) of a JSON object payload."""
    if key not in value or not set(value) <= {key} | _META_KEYS:
        raise Rejected(
            "malformed", f'JSON must be {{"{key}": …}} (optionally "token", "transaction")'
        )
    token = value.get("token")
    if token is not None and not isinstance(token, str):
        raise Rejected("malformed", "token must be a string")
    raw_tx = value.get("transaction")
    transaction = _transaction(raw_tx)
    if raw_tx is not None and transaction is None:
        raise Rejected(
            "malformed", f"transaction must be a string (≤ {MAX_TRANSACTION_CHARS}) or an integer"
        )
    return value[key], token, transaction


def _go_safe(value: Any) -> Command:
    token: str | None = None
    transaction: str | int | None = None
    if isinstance(value, dict):
        value, token, transaction = _split_meta(value, "active")
        if not isinstance(value, bool):
            raise Rejected("malformed", 'go_safe JSON must be {"active": true|false}')
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            value = True
        elif word in _FALSE:
            value = False
    if not isinstance(value, bool):
        raise Rejected("malformed", "go_safe payload must be on or off")
    arg = "on" if value else "off"
    return Command(GO_SAFE, arg, active=value, token=token, transaction=transaction)


def _ack(value: Any) -> Command:
    token: str | None = None
    transaction: str | int | None = None
    if isinstance(value, dict):
        value, token, transaction = _split_meta(value, "error")
        if not isinstance(value, str):
            raise Rejected("malformed", 'ack JSON must be {"error": "<name>"|"all"}')
    if not isinstance(value, str) or not value.strip():
        raise Rejected("malformed", "ack payload must be an error name or all")
    name = value.strip().lower()
    if name == "all":
        return Command(ACK, "all", errors=None, token=token, transaction=transaction)
    if name not in ERROR_NAMES:
        raise Rejected("unknown_error", f"unknown error name {value.strip()[:64]!r}")
    return Command(ACK, name, errors=(name,), token=token, transaction=transaction)


def parse_command(command: str, payload: bytes) -> Command:
    """Parse one command message (pure).

    Raises:
        Rejected: unknown command, malformed payload or unknown error name.
    """
    if command not in COMMANDS:
        raise Rejected("unknown_command", f"unknown command {command[:64]!r}")
    value = _decode(payload)
    return _go_safe(value) if command == GO_SAFE else _ack(value)


def _enabled(cmd: Command, cfg: CommandsSection) -> bool:
    return cfg.allow_ack if cmd.command == ACK else cfg.allow_go_safe_release


def authorise(
    cmd: Command,
    cfg: CommandsSection,
    *,
    identity: str | None,
    property_token: str | None,
) -> str:
    """Check a parsed command against the config; return how it was authorised.

    Returns "not_needed" for a safer command, "token" or "identity" for a less-safe one.

    Raises:
        Rejected: `not_allowed` (disabled in the config) or `unauthorised` (no valid token
        and no trusted identity); the detail never contains the token.
    """
    if not cmd.less_safe:
        return "not_needed"
    what = "ack" if cmd.command == ACK else "go_safe off"
    key = "commands.allow_ack" if cmd.command == ACK else "commands.allow_go_safe_release"
    if not _enabled(cmd, cfg):
        raise Rejected("not_allowed", f"{what} over MQTT is disabled ({key})")
    secret = cfg.secret()
    if secret is not None:
        for offered in (cmd.token, property_token):
            if offered is not None and hmac.compare_digest(offered.encode(), secret.encode()):
                return "token"
    if identity is not None and identity in cfg.trusted_identities:
        return "identity"
    raise Rejected(
        "unauthorised",
        f"{what} makes the battery less safe and needs the gateway's authorisation: the "
        "commands.token (payload field or MQTT v5 user property `token`) or an identity "
        "topic listed in commands.trusted_identities",
    )
