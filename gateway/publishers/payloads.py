"""MQTT payloads built from the gateway state: pure functions, no broker involved.

`state_message` is the public `state` JSON (its shape is fixed in docs/mqtt.md; the Home
Assistant discovery templates and other consumers read it); `event_message` is one `events`
message. `encode` turns either into bytes (strict JSON: never NaN or Infinity).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.clock import Clock
from gateway.core.events import Notice
from gateway.core.state import BoardState, GatewayState

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

VOLTAGE_DIGITS = 3  # 1 mV
CURRENT_DIGITS = 3  # 1 mA
POWER_DIGITS = 1  # 0.1 W
TEMPERATURE_DIGITS = 1  # 0.1 °C
PERCENT_DIGITS = 1  # 0.1 %
LIMIT_VOLTAGE_DIGITS = 3
LIMIT_CURRENT_DIGITS = 2

AVAILABILITY_ONLINE = "online"
AVAILABILITY_OFFLINE = "offline"


@dataclass(frozen=True, slots=True)
class Topics:
    """The gateway's MQTT topics, all under `<mqtt.topic_prefix>/<gateway.id>/`."""

    base: str
    availability: str
    state: str
    events: str

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Topics:
        """Build the topics for this config."""
        base = f"{config.mqtt.topic_prefix.rstrip('/')}/{config.gateway.id}"
        return cls(
            base=base,
            availability=f"{base}/availability",
            state=f"{base}/state",
            events=f"{base}/events",
        )

    def sub(self, *levels: str) -> str:
        """Return a topic below the base (e.g. `sub("cmd", "ack")`)."""
        return "/".join((self.base, *levels))


def isotime(when: datetime) -> str:
    """Format a UTC datetime as ISO 8601 with milliseconds and a `Z` suffix."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _num(value: float | None, digits: int) -> float | None:
    """Round a reading; None (unknown) and non-finite values become null."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def _mask_cells(mask: int) -> list[int]:
    """Return the 1-based cell numbers whose bit is set (bit n-1 = cell n)."""
    return [bit + 1 for bit in range(mask.bit_length()) if mask >> bit & 1]


def _board(board: BoardState, cells: int, sensors: int) -> dict[str, Any]:
    if board.online:
        voltages = [_num(v, VOLTAGE_DIGITS) for v in board.cell_voltages_v]
        temps = [_num(t, TEMPERATURE_DIGITS) for t in board.temperatures_c]
        board_temp = _num(board.board_temperature_c, TEMPERATURE_DIGITS)
        balancing = _mask_cells(board.balancing_mask)
    else:
        # Offline: the last readings are stale, so every value is unknown; the lists keep
        # their length so consumers indexing a cell still find it (as null).
        voltages = [None] * (len(board.cell_voltages_v) or cells)
        temps = [None] * (len(board.temperatures_c) or sensors)
        board_temp = None
        balancing = []
    return {
        "board": board.board,
        "online": board.online,
        "cell_voltages": voltages,
        "temperatures": temps,
        "board_temperature": board_temp,
        "balancing": balancing,
    }


def _point(value: float | int | bool | str) -> float | int | bool | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def state_message(state: GatewayState, clock: Clock, config: GatewayConfig) -> dict[str, Any]:
    """Build the `state` message (see docs/mqtt.md for every key)."""
    control = state.control
    voltage = _num(state.pack_voltage_v, VOLTAGE_DIGITS)
    current = _num(state.current_a, CURRENT_DIGITS)
    pack_v, current_a = state.pack_voltage_v, state.current_a
    power = None if pack_v is None or current_a is None else _num(pack_v * current_a, POWER_DIGITS)
    vmin = _num(state.cell_voltage_min_v, VOLTAGE_DIGITS)
    vmax = _num(state.cell_voltage_max_v, VOLTAGE_DIGITS)
    # From the rounded extremes, so that max - min == delta for every reader.
    delta = None if vmin is None or vmax is None else _num(vmax - vmin, VOLTAGE_DIGITS)
    soc = None if control.soc is None else _num(control.soc * 100.0, PERCENT_DIGITS)
    limits = control.limits
    return {
        "timestamp": isotime(clock.wall()),
        "mode": config.gateway.mode,
        "voltage": voltage,
        "current": current,
        "power": power,
        "soc": soc,
        "cell_voltage_min": vmin,
        "cell_voltage_max": vmax,
        "cell_voltage_delta": delta,
        "temperature_min": _num(state.temperature_min_c, TEMPERATURE_DIGITS),
        "temperature_max": _num(state.temperature_max_c, TEMPERATURE_DIGITS),
        "humidity": _num(state.humidity_pct, PERCENT_DIGITS),
        "boards_online": state.boards_online,
        "boards": [
            _board(b, config.logic.cells_per_board, config.logic.sensors)
            for _, b in sorted(state.boards.items())
        ],
        "errors": list(control.errors_active),
        "signals": dict(control.signals),
        "relays": [
            {
                "relay": n,
                "function": sw.function,
                "closed": sw.on,
                "since": None if sw.since_s is None else isotime(clock.wall(sw.since_s)),
                "reasons": list(sw.reasons),
            }
            for n, sw in sorted(control.relays.items())
        ],
        "outputs": [
            {
                "output": n,
                "function": sw.function,
                "on": sw.on,
                "since": None if sw.since_s is None else isotime(clock.wall(sw.since_s)),
                "reasons": list(sw.reasons),
            }
            for n, sw in sorted(control.outputs.items())
        ],
        "inputs": [
            {"input": i, "closed": None if state.inputs_updated_s is None else closed}
            for i, closed in enumerate(state.inputs, start=1)
        ],
        "indicators": dict(control.indicators),
        "limits": {
            "charge_voltage_limit": _num(limits.get("cvl_v"), LIMIT_VOLTAGE_DIGITS),
            "charge_current_limit": _num(limits.get("ccl_a"), LIMIT_CURRENT_DIGITS),
            "discharge_current_limit": _num(limits.get("dcl_a"), LIMIT_CURRENT_DIGITS),
        },
        "reasons": {thing: list(why) for thing, why in control.reasons.items()},
        "points": {name: _point(v) for name, v in sorted(state.points.items())},
        **_energy(state),
    }


ENERGY_DIGITS = 3


def _energy(state: GatewayState) -> dict[str, float | None]:
    """The energy counters (gateway.control.energy); null until the counter runs."""
    e = state.energy
    return {
        "energy_in_kwh": None if e is None else _num(e.energy_in_kwh, ENERGY_DIGITS),
        "energy_out_kwh": None if e is None else _num(e.energy_out_kwh, ENERGY_DIGITS),
        "charge_in_ah": None if e is None else _num(e.charge_in_ah, ENERGY_DIGITS),
        "charge_out_ah": None if e is None else _num(e.charge_out_ah, ENERGY_DIGITS),
        "cycles": None if e is None else _num(e.cycles, ENERGY_DIGITS),
    }


def event_message(notice: Notice, seq: int, clock: Clock) -> dict[str, Any]:
    """Build one `events` message: the notice's body plus `seq` and `timestamp`."""
    body = dict(notice.payload())
    body["seq"] = seq
    body["timestamp"] = isotime(clock.wall(notice.at_s))
    return body


def encode(message: dict[str, Any]) -> bytes:
    """Serialise a message as compact, strict JSON (UTF-8).

    Raises:
        ValueError: the message holds NaN/Infinity or something JSON cannot represent.
    """
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
