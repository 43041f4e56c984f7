"""MQTT payloads built from the gateway state: pure functions, no broker involved.

`state_message` is the public `state` JSON (its shape is fixed in docs/mqtt.md; the Home
Assistant discovery templates and other consumers read it): its pack values come from the
measurement table (`gateway.publishers.measurements`), one key per row, the rest (boards,
relays, errors...) is built here. `event_message` is one `events` message. `Topics` lives in
`gateway.publishers.topics` (re-exported here). `encode` turns either into bytes (strict
JSON: never NaN or Infinity).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.clock import Clock
from gateway.core.events import Notice
from gateway.core.state import BoardState, GatewayState
from gateway.publishers.measurements import MEASUREMENTS, rounded
from gateway.publishers.topics import Topics

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

# Per-board lists (the pack values' precision is in the measurement table).
VOLTAGE_DIGITS = 3  # 1 mV
TEMPERATURE_DIGITS = 1  # 0.1 °C

STATE_MEASUREMENTS = tuple(m for m in MEASUREMENTS if "state" in m.outputs)

AVAILABILITY_ONLINE = "online"
AVAILABILITY_OFFLINE = "offline"


def isotime(when: datetime) -> str:
    """Format a UTC datetime as ISO 8601 with milliseconds and a `Z` suffix."""
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_num = rounded  # None (unknown) and non-finite values become null

__all__ = ["Topics", "encode", "event_message", "isotime", "state_message"]


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
    values: dict[str, Any] = {"timestamp": isotime(clock.wall()), "mode": config.gateway.mode}
    groups: dict[str, dict[str, Any]] = {}
    for m in STATE_MEASUREMENTS:  # one key per row of the measurement table
        into = values if m.group is None else groups.setdefault(m.group, {})
        into[m.key] = rounded(m.value(state), m.precision)
    return {
        **values,
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
        **groups,
        "reasons": {thing: list(why) for thing, why in control.reasons.items()},
        "points": {name: _point(v) for name, v in sorted(state.points.items())},
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
