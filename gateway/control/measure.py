"""One snapshot of what the engine knows, with the freshness of every part made explicit.

`measure()` is pure: state + config + clock time in, `Measurements` out. A board whose last
good scan is older than `engine.cell_timeout_s` (or that is marked offline, or whose scan
flags a cell-measurement fault or carries a non-finite cell voltage) is not fresh; its cells
are unknown. Current, humidity and inputs each have their own freshness (humidity
uses the analog timeout `engine.current_timeout_s`, timed from its own readings); a
non-finite value counts as missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

from gateway.core.state import BoardState, GatewayState
from gateway.protocols.logic_map import STATUS_CELL_MEASUREMENT_FAULT

# Remote forcing of an input signal, like the vendor's Modbus "force on/off" registers
# (the gateway's Modbus server publishes them on writes to 0x5100+bit / 0x5110+bit):
# point `override.<signal>` = 0 force off, 1 force on, 2 (or more) follow the input.
OVERRIDE_POINT_PREFIX = "override."
OVERRIDE_OFF, OVERRIDE_ON, OVERRIDE_FOLLOW = 0, 1, 2
# Signals an override may force on but never off: a "go safe" is always honoured.
FORCE_ON_ONLY = frozenset({"go_safe"})
# A counter point: every increase requests an error reset (see Engine.step).
ERROR_RESET_POINT = "request.error_reset"
ERROR_POINT_PREFIX = "error."
CHARGER_CONNECTED_POINT = "charger.connected"


@dataclass(frozen=True, slots=True)
class BoardView:
    """One Logic board as the engine sees it."""

    board: int
    fresh: bool
    scanned: bool  # at least one good scan since start
    silent_s: float  # seconds since the last good scan (or since the engine started)
    cell_voltages_v: tuple[float, ...]
    temperatures_c: tuple[float | None, ...]
    board_temperature_c: float | None


@dataclass(frozen=True)
class Measurements:
    """Inputs of the detector and the actor for one cycle."""

    now_s: float
    controller: bool  # controller mode: data never received counts as unknown
    grace: bool  # within engine.startup_grace_s of the start: data not yet received is "band"
    boards: tuple[BoardView, ...]
    cells_per_board: int
    sensors_per_board: int
    cells_in_series: int | None
    current_a: float | None  # None: missing or stale
    current_ever: bool
    vref_v: float | None
    humidity_pct: float | None
    humidity_ever: bool
    inputs: dict[str, bool | None]  # assigned input signal -> active (None = stale/unknown)
    relay_commands: dict[str, bool] = field(default_factory=dict)  # function -> commanded
    points: dict[str, float | int | bool | str] = field(default_factory=dict)
    overrides: frozenset[str] = frozenset()  # signals forced by an `override.<signal>` point
    faults: dict[str, str] = field(default_factory=dict)  # error -> reason (drivers, disk)

    @cached_property
    def fresh_boards(self) -> list[BoardView]:
        """Boards whose readings are current."""
        return [b for b in self.boards if b.fresh]

    @cached_property
    def stale_boards(self) -> list[int]:
        """Numbers of the boards whose readings are not current (bridge: scanned ones only)."""
        return [b.board for b in self.boards if not b.fresh and (self.controller or b.scanned)]

    @property
    def cells_complete(self) -> bool:
        """True when every configured board is fresh."""
        return bool(self.boards) and all(b.fresh for b in self.boards)

    def cells(self) -> list[float]:
        """Every cell voltage of the fresh boards."""
        return self._cells

    def temperatures(self) -> list[float | None]:
        """Every cell temperature of the fresh boards (None = sensor fault)."""
        return self._temperatures

    @cached_property
    def _cells(self) -> list[float]:
        return [v for b in self.fresh_boards for v in b.cell_voltages_v]

    @cached_property
    def _temperatures(self) -> list[float | None]:
        return [t for b in self.fresh_boards for t in b.temperatures_c]

    def signal(self, name: str) -> bool | None:
        """An input signal: True/False, None when stale, False when not assigned."""
        return self.inputs.get(name, False)


def override_value(value: object) -> bool | None:
    """What an `override.<signal>` point forces: True/False, None = follow the input.

    0 / false = force off, 1 / true = force on, 2 or more = follow; anything else (a
    string, a negative or fractional number) is ignored, i.e. follows the input.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and float(value).is_integer():
        if value == OVERRIDE_OFF:
            return False
        if value == OVERRIDE_ON:
            return True
    return None


def _valid_scan(b: BoardState) -> bool:
    """A scan whose cell values can be trusted: finite, no cell-measurement fault flagged.

    A board whose front end reports a fault keeps serving its last converted values, and a
    non-finite value compares False against every limit: either is unknown, never "fine".
    """
    if b.status_bits & STATUS_CELL_MEASUREMENT_FAULT:
        return False
    return all(math.isfinite(v) for v in b.cell_voltages_v)


def measure(
    state: GatewayState,
    *,
    now_s: float,
    started_s: float,
    controller: bool,
    boards: list[int],
    cells_per_board: int,
    sensors_per_board: int,
    cells_in_series: int | None,
    cell_timeout_s: float,
    current_timeout_s: float,
    inputs_timeout_s: float,
    input_assignments: dict[int, tuple[str, bool]],
    relay_commands: dict[str, bool],
    vref_v: float | None = None,
    startup_grace_s: float = 0.0,
    faults: dict[str, str] | None = None,
) -> Measurements:
    """Build the snapshot of one cycle."""
    views = []
    for n in boards:
        b = state.boards.get(n)
        updated = None if b is None else b.updated_s
        silent = now_s - (updated if updated is not None else started_s)
        fresh = (
            b is not None
            and b.online
            and updated is not None
            and now_s - updated <= cell_timeout_s
            and _valid_scan(b)
        )
        views.append(
            BoardView(
                board=n,
                fresh=fresh,
                scanned=updated is not None,
                silent_s=max(0.0, silent),
                cell_voltages_v=() if b is None else b.cell_voltages_v,
                temperatures_c=() if b is None else b.temperatures_c,
                board_temperature_c=None if b is None else b.board_temperature_c,
            )
        )
    cur_t = state.current_updated_s
    current_fresh = (
        cur_t is not None
        and now_s - cur_t <= current_timeout_s
        and state.current_a is not None
        and math.isfinite(state.current_a)
    )
    hum_t = state.humidity_updated_s
    humidity_fresh = (
        hum_t is not None
        and now_s - hum_t <= current_timeout_s
        and state.humidity_pct is not None
        and math.isfinite(state.humidity_pct)
    )
    inputs_fresh = (
        state.inputs_updated_s is not None and now_s - state.inputs_updated_s <= inputs_timeout_s
    )
    inputs: dict[str, bool | None] = {}
    for n, (signal, invert) in input_assignments.items():
        if signal == "none":
            continue
        if inputs_fresh and n - 1 < len(state.inputs):
            inputs[signal] = bool(state.inputs[n - 1]) != invert
        else:
            inputs[signal] = None
    overridden: set[str] = set()
    for key, value in state.points.items():
        if key.startswith(OVERRIDE_POINT_PREFIX):
            signal = key[len(OVERRIDE_POINT_PREFIX) :]
            forced = override_value(value)
            if forced is None or (signal in FORCE_ON_ONLY and not forced):
                continue
            inputs[signal] = forced
            overridden.add(signal)
    return Measurements(
        now_s=now_s,
        controller=controller,
        grace=now_s - started_s < startup_grace_s,
        boards=tuple(views),
        cells_per_board=cells_per_board,
        sensors_per_board=sensors_per_board,
        cells_in_series=cells_in_series,
        current_a=state.current_a if current_fresh else None,
        current_ever=cur_t is not None,
        vref_v=vref_v,
        humidity_pct=state.humidity_pct if humidity_fresh else None,
        humidity_ever=state.humidity_pct is not None,
        inputs=inputs,
        relay_commands=dict(relay_commands),
        points=dict(state.points),
        overrides=frozenset(overridden),
        faults=dict(faults or {}),
    )
