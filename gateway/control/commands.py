"""Operator commands for the engine: go-safe requests and latch acknowledgements.

A command front end (MQTT command topics, `gateway/publishers/commands.py`) never calls the
engine: it publishes a `CommandRequested` event on the bus (sync, never blocks). The engine
component drains its subscription at the start of every cycle, applies each request with
`apply_command` before `Engine.step` (so a go-safe request opens every relay in that very
cycle) and publishes the outcome as a `CommandApplied` notice. Everything runs on the
engine's own task between two steps: no lock, no race with the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core.events import Event, Notice

if TYPE_CHECKING:
    from gateway.control.engine import Engine

GO_SAFE = "go_safe"
ACK = "ack"
COMMANDS = (GO_SAFE, ACK)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRequested(Event):
    """A validated operator command, for the engine's next cycle (not a notice)."""

    command: str  # GO_SAFE | ACK
    source: str  # who asked, e.g. "mqtt" (go-safe requests are kept per source)
    request: int  # the front end's running number, echoed in `CommandApplied`
    active: bool = True  # GO_SAFE: request (True) or release (False)
    errors: tuple[str, ...] | None = None  # ACK: these error names; None = every latch


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandReceived(Notice):
    """A command arrived and was accepted for the next engine cycle (audit trail)."""

    command: str
    source: str
    request: int
    argument: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "command_received",
            "command": self.command,
            "source": self.source,
            "request": self.request,
            "argument": self.argument,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandApplied(Notice):
    """The engine applied a command; `ok` false when it changed nothing that was asked."""

    command: str
    source: str
    request: int
    ok: bool
    detail: str
    cleared: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        body: dict[str, Any] = {
            "type": "command_applied",
            "command": self.command,
            "source": self.source,
            "request": self.request,
            "ok": self.ok,
            "detail": self.detail,
        }
        if self.command == ACK:
            body["cleared"] = list(self.cleared)
            body["kept"] = list(self.kept)
        return body


def apply_command(engine: Engine, cmd: CommandRequested, now_s: float) -> CommandApplied:
    """Apply one command to the engine (call between steps, on the engine's task)."""

    def done(ok: bool, detail: str, **extra: Any) -> CommandApplied:
        return CommandApplied(
            at_s=now_s,
            command=cmd.command,
            source=cmd.source,
            request=cmd.request,
            ok=ok,
            detail=detail,
            **extra,
        )

    if cmd.command == GO_SAFE:
        engine.request_go_safe(cmd.source, cmd.active)
        others = sorted(engine.go_safe_requests)
        if cmd.active:
            detail = "go-safe requested: every relay opens"
        elif others:
            detail = f"go-safe released for {cmd.source}; still requested by {', '.join(others)}"
        else:
            detail = f"go-safe released for {cmd.source}"
        if not engine.controller:
            detail += " (bridge mode: this gateway drives no relays)"
        return done(True, detail)
    if cmd.command == ACK:
        cleared, kept = engine.reset_errors(now_s, cmd.errors)
        asked = "every latched error" if cmd.errors is None else ", ".join(cmd.errors)
        if cmd.errors is not None and not cleared and not kept:
            return done(False, f"not latched: {asked}")
        parts = [f"cleared {', '.join(cleared) or 'none'}"]
        if kept:
            parts.append(f"kept {', '.join(kept)} (condition still present)")
        ok = not kept or cmd.errors is None
        return done(ok, "; ".join(parts), cleared=tuple(cleared), kept=tuple(kept))
    return done(False, f"unknown command {cmd.command!r}")
