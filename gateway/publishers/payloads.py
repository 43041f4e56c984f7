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
import uuid
from dataclasses import dataclass
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

__all__ = ["StatePayload", "Topics", "encode", "event_message", "isotime", "state_message"]


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
    cells, sensors = config.logic.cells_per_board, config.logic.sensors
    boards = [_board(b, cells, sensors) for _, b in sorted(state.boards.items())]
    return _state_message(state, clock, config, boards)


def _state_message(
    state: GatewayState, clock: Clock, config: GatewayConfig, boards: Any
) -> dict[str, Any]:
    control = state.control
    values: dict[str, Any] = {"timestamp": isotime(clock.wall()), "mode": config.gateway.mode}
    groups: dict[str, dict[str, Any]] = {}
    for m in STATE_MEASUREMENTS:  # one key per row of the measurement table
        into = values if m.group is None else groups.setdefault(m.group, {})
        into[m.key] = rounded(m.value(state), m.precision)
    return {
        **values,
        "boards_online": state.boards_online,
        "boards": boards,
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


@dataclass(frozen=True, slots=True)
class _EncodedBoard:
    """One board's JSON and the readings it was made from (compared by identity)."""

    online: bool
    cell_voltages_v: tuple[float, ...]
    temperatures_c: tuple[float | None, ...]
    board_temperature_c: float | None
    balancing_mask: int
    json: str

    def fresh(self, b: BoardState) -> bool:
        return (
            self.online is b.online
            and self.cell_voltages_v is b.cell_voltages_v
            and self.temperatures_c is b.temperatures_c
            and self.board_temperature_c == b.board_temperature_c
            and self.balancing_mask == b.balancing_mask
        )


class StatePayload:
    """Encodes `state` messages, each board's part once per scan rather than once per publish.

    `encode(state, clock)` returns exactly `encode(state_message(state, clock, config))`.
    A board's JSON is kept until its readings change: a scan stores new value tuples in the
    `BoardState` (from its `BoardScanned`), which the cache compares by identity.
    """

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        self._boards: dict[int, _EncodedBoard] = {}
        # Stands for the boards array while the rest is encoded; cannot occur in real data.
        self._slot = f"\x00boards-{uuid.uuid4().hex}"
        self._slot_json = json.dumps(self._slot)

    def _board_json(self, b: BoardState) -> str:
        cached = self._boards.get(b.board)
        if cached is not None and cached.fresh(b):
            return cached.json
        logic = self._config.logic
        text = _dumps(_board(b, logic.cells_per_board, logic.sensors))
        self._boards[b.board] = _EncodedBoard(
            b.online,
            b.cell_voltages_v,
            b.temperatures_c,
            b.board_temperature_c,
            b.balancing_mask,
            text,
        )
        return text

    def encode(self, state: GatewayState, clock: Clock) -> bytes:
        """The `state` message as bytes (strict JSON; raises `ValueError` like `encode`)."""
        boards = ",".join(self._board_json(b) for _, b in sorted(state.boards.items()))
        rest = _dumps(_state_message(state, clock, self._config, self._slot))
        return rest.replace(self._slot_json, f"[{boards}]", 1).encode()


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
    return _dumps(message).encode()


def _dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
