"""Typed events, named in the past tense.

Every event carries `at_s`, the clock's monotonic time when the fact was observed; turn it
into wall time with `Clock.wall(at_s)`. Subclasses of `Notice` are the things a user wants
to hear about (they go to MQTT `events` and are never dropped); the rest are measurements
(keep-latest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event on the bus."""

    at_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Notice(Event):
    """An event worth telling users about: published on MQTT `events`, never dropped."""

    def payload(self) -> dict[str, Any]:
        """Return the JSON-able body of this notice (without `seq` and `timestamp`)."""
        raise NotImplementedError


# --- measurements -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardScanned(Event):
    """One BMS Logic board answered a poll."""

    board: int
    cell_voltages_v: tuple[float, ...]
    temperatures_c: tuple[float | None, ...]  # None = sensor missing or shorted
    board_temperature_c: float | None
    status_bits: int = 0
    balancing_mask: int = 0
    firmware: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PackMeasured(Event):
    """Pack-level analog measurements (current sensor, humidity, external temperature)."""

    current_a: float | None = None
    humidity_pct: float | None = None
    temperature_c: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class InputsRead(Event):
    """The dry-contact discrete inputs 1..4 (True = contact closed)."""

    closed: tuple[bool, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class PointsRead(Event):
    """Named values read from an external device (Modbus profile points, DBC signals).

    `values` maps a gateway point name (e.g. `charger.output_voltage_v`) to its value; the
    state store keeps the latest of each in `GatewayState.points`.
    """

    source: str
    values: dict[str, float | int | bool | str]


# --- notices ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardWentOffline(Notice):
    """A board missed `offline_after` polls in a row."""

    board: int
    reason: str
    consecutive_failures: int

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "board_offline",
            "board": self.board,
            "reason": self.reason,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class BoardCameOnline(Notice):
    """A board answered (first time, or after being offline)."""

    board: int

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "board_online", "board": self.board}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorRaised(Notice):
    """A protection tripped (after its set delay)."""

    error: str
    severity: str
    detail: str = ""

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "error_raised",
            "error": self.error,
            "severity": self.severity,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorCleared(Notice):
    """A protection released (after its clear delay, or by acknowledgement)."""

    error: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "error_cleared", "error": self.error}


@dataclass(frozen=True, slots=True, kw_only=True)
class RelaySwitched(Notice):
    """The engine changed a relay's commanded state."""

    relay: int
    function: str
    closed: bool
    reasons: tuple[str, ...]

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "relay_closed" if self.closed else "relay_opened",
            "relay": self.relay,
            "function": self.function,
            "closed": self.closed,
            "reasons": list(self.reasons),
        }
