"""One snapshot of what the engine knows, with the freshness of every part made explicit.

`measure()` is pure: state + config + clock time in, `Measurements` out. A board whose last
good scan is older than `engine.cell_timeout_s` (or that is marked offline), that reports
another cell count than configured, or whose scan flags a cell-measurement fault or carries
a cell outside the plausible window (non-finite, 0 V, full scale) is not fresh: its cells
and temperatures are unknown, and `BoardView.cause` names the root-cause error that owns
the reason. A temperature outside the sensor window is unknown too. Current, humidity and
inputs each have their own freshness (humidity uses the analog timeout
`engine.current_timeout_s`, timed from its own readings); a non-finite value counts as
missing.
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


# Root causes: the diagnosis error that owns each reason data can be unknown.
LOGIC_OFFLINE = "logic_offline"
CELL_IMPLAUSIBLE = "cell_voltage_implausible"
CELL_COUNT = "cell_count_mismatch"
SENSOR_FAULT = "temperature_sensor_fault"
CURRENT_FAULT = "current_sensor_fault"


@dataclass(frozen=True, slots=True)
class BoardView:
    """One Logic board as the engine sees it."""

    board: int
    fresh: bool  # answering, and its cell data can be trusted
    scanned: bool  # at least one good scan since start
    silent_s: float  # seconds since the last good scan (or since the engine started)
    cell_voltages_v: tuple[float, ...]
    temperatures_c: tuple[float | None, ...]
    board_temperature_c: float | None
    answering: bool = True  # online, last good scan within engine.cell_timeout_s
    count_ok: bool = True  # reports logic.cells_per_board cells
    cell_fault: bool = False  # a cell-measurement fault flag, or a cell outside the window

    @property
    def cause(self) -> str | None:
        """Why this board's cells are unknown (the root-cause error), None when fresh."""
        if self.fresh:
            return None
        if not self.answering:
            return LOGIC_OFFLINE
        return CELL_COUNT if not self.count_ok else CELL_IMPLAUSIBLE

    @property
    def reason(self) -> str:
        """The relay reason naming this board when its cells are unknown."""
        if not self.answering:
            return f"stale_board_{self.board}" if self.scanned else f"no_data_board_{self.board}"
        if not self.count_ok:
            return f"cell_count_board_{self.board}"
        return f"implausible_cells_board_{self.board}"


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
    # clock time of the newest reading of each kind (delays count from the reading that
    # first showed a breach, not from the decision that noticed it)
    cells_at_s: float | None = None
    current_at_s: float | None = None
    humidity_at_s: float | None = None
    inputs_at_s: float | None = None
    cell_window_v: tuple[float, float] = (-math.inf, math.inf)  # plausible cell voltage
    temperature_window_c: tuple[float, float] = (-math.inf, math.inf)  # plausible sensor

    @cached_property
    def fresh_boards(self) -> list[BoardView]:
        """Boards whose readings are current and trusted."""
        return [b for b in self.boards if b.fresh]

    @cached_property
    def answering_boards(self) -> list[BoardView]:
        """Boards whose link works (their diagnoses can be judged)."""
        return [b for b in self.boards if b.answering]

    @cached_property
    def stale_boards(self) -> list[int]:
        """Numbers of the boards whose readings are not current (bridge: scanned ones only)."""
        return [b.board for b in self.boards if not b.fresh and (self.controller or b.scanned)]

    @property
    def waiting(self) -> bool:
        """Within the start-up grace and some board has not answered yet."""
        return self.grace and any(not b.scanned for b in self.boards)

    @cached_property
    def cell_causes(self) -> frozenset[str]:
        """Root causes of unknown cell data (empty: every cell known, or still waiting)."""
        return frozenset(
            c
            for b in self.boards
            if (c := b.cause) is not None and (b.scanned or (self.controller and not self.grace))
        )

    @cached_property
    def temperature_causes(self) -> frozenset[str]:
        """Root causes of unknown cell temperatures."""
        own = any(t is None for t in self._temperatures)
        return self.cell_causes | ({SENSOR_FAULT} if own else frozenset())

    @property
    def cells_complete(self) -> bool:
        """True when every configured board is fresh."""
        return bool(self.boards) and all(b.fresh for b in self.boards)

    def cells(self) -> list[float]:
        """Every cell voltage of the fresh boards."""
        return self._cells

    def temperatures(self) -> list[float | None]:
        """Every cell temperature of the fresh boards (None = missing, shorted, implausible)."""
        return self._temperatures

    @cached_property
    def _cells(self) -> list[float]:
        return [v for b in self.fresh_boards for v in b.cell_voltages_v]

    @cached_property
    def known_temperatures(self) -> list[float]:
        """The cell temperatures that can be trusted (fresh board, inside the window)."""
        return [t for t in self._temperatures if t is not None]

    @cached_property
    def _temperatures(self) -> list[float | None]:
        lo, hi = self.temperature_window_c
        out: list[float | None] = []
        for b in self.fresh_boards:
            temps = list(b.temperatures_c) + [None] * (
                self.sensors_per_board - len(b.temperatures_c)
            )
            out += [t if t is not None and lo <= t <= hi else None for t in temps]
        return out

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


def cell_fault(b: BoardState, window_v: tuple[float, float]) -> bool:
    """A scan whose cell values cannot all be trusted.

    A board whose front end reports a fault keeps serving its last converted values, a
    non-finite value compares False against every limit, and a value outside the plausible
    window (0 V, full scale) is no cell: each is unknown for control, never "fine".
    """
    if b.status_bits & STATUS_CELL_MEASUREMENT_FAULT:
        return True
    lo, hi = window_v
    return not all(math.isfinite(v) and lo <= v <= hi for v in b.cell_voltages_v)


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
    cell_window_v: tuple[float, float] = (-math.inf, math.inf),
    temperature_window_c: tuple[float, float] = (-math.inf, math.inf),
) -> Measurements:
    """Build the snapshot of one cycle."""
    views = []
    for n in boards:
        b = state.boards.get(n)
        updated = None if b is None else b.updated_s
        silent = now_s - (updated if updated is not None else started_s)
        answering = (
            b is not None and b.online and updated is not None and now_s <= updated + cell_timeout_s
        )
        count_ok = b is not None and len(b.cell_voltages_v) == cells_per_board
        faulty = b is not None and cell_fault(b, cell_window_v)
        views.append(
            BoardView(
                board=n,
                fresh=answering and count_ok and not faulty,
                scanned=updated is not None,
                silent_s=max(0.0, silent),
                cell_voltages_v=() if b is None else b.cell_voltages_v,
                temperatures_c=() if b is None else b.temperatures_c,
                board_temperature_c=None if b is None else b.board_temperature_c,
                answering=answering,
                count_ok=count_ok,
                cell_fault=faulty,
            )
        )
    cur_t = state.current_updated_s
    current_fresh = (
        cur_t is not None
        and now_s <= cur_t + current_timeout_s
        and state.current_a is not None
        and math.isfinite(state.current_a)
    )
    hum_t = state.humidity_updated_s
    humidity_fresh = (
        hum_t is not None
        and now_s <= hum_t + current_timeout_s
        and state.humidity_pct is not None
        and math.isfinite(state.humidity_pct)
    )
    inputs_fresh = (
        state.inputs_updated_s is not None and now_s <= state.inputs_updated_s + inputs_timeout_s
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
        grace=now_s < started_s + startup_grace_s,
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
        cells_at_s=max(
            (b.updated_s for b in state.boards.values() if b.updated_s is not None), default=None
        ),
        current_at_s=cur_t,
        humidity_at_s=hum_t,
        inputs_at_s=state.inputs_updated_s,
        cell_window_v=cell_window_v,
        temperature_window_c=temperature_window_c,
    )
