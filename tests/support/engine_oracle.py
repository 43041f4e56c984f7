"""The invariant test's oracle: what must hold, from the raw readings and the configuration.

It reads the state store's raw readings (cell voltages, sensor values, status bits, the
time of every reading, the current and the contacts) and the configuration, and computes
itself which limits are breached in valid data and since when, which data is stale,
implausible or unknown, which inputs are asserted and which diagnoses are disabled. It
never reads the engine's conclusions (`errors_active`, `first_valid_scan`, reasons,
debounce state): those are only checked *against* it.

The rules it applies are the product's (docs/protections.md, issue 10):
- stale or implausible data, no valid scan yet, a critical condition past its set delay
  or go-safe: every relay open, and no contactor function on;
- a protection judges the valid data; data that is unknown holds it (no set, clear or
  latch) while the root-cause diagnosis that owns the data is enabled, and counts as a
  breach when that diagnosis is disabled (`enable: false`);
- the heater is off under stale data, go-safe, a critical condition, an unknown or
  implausible temperature, one of `heater.off_on_errors` past its set delay (too hot,
  undervoltage, over-current) and once the coldest cell has stayed above
  `heater.tolerant` for `heater.clear_delay_s`;
- balancing is off on stale data, under go-safe or a critical condition, during an
  undervoltage past its delay and on a board at or above `logic_high_temperature.max`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from gateway.config import GatewayConfig
from gateway.control.settings import resolve
from gateway.core.state import GatewayState
from gateway.protocols.logic_map import STATUS_CELL_MEASUREMENT_FAULT

EPS = 1e-6
# the root-cause diagnoses: the errors that own each reason data can be unknown
LOGIC_OFFLINE = "logic_offline"
CELL_COUNT = "cell_count_mismatch"
CELL_IMPLAUSIBLE = "cell_voltage_implausible"
SENSOR_FAULT = "temperature_sensor_fault"
CURRENT_FAULT = "current_sensor_fault"
DIAGNOSES = (CURRENT_FAULT, SENSOR_FAULT, LOGIC_OFFLINE, CELL_IMPLAUSIBLE)
# errors whose condition is a limit on measured data: only a real breach may raise them
DEPENDENT = (
    "cell_overvoltage",
    "cell_undervoltage",
    "overcurrent_charge",
    "overcurrent_discharge",
    "low_temperature_charge",
    "low_temperature_discharge",
    "high_temperature_charge",
    "high_temperature_discharge",
)
BLOCKS_CHARGE = (
    "cell_overvoltage",
    "low_temperature_charge",
    "high_temperature_charge",
    "overcurrent_charge",
    "overcurrent_discharge",
)
BLOCKS_DISCHARGE = (
    "cell_undervoltage",
    "low_temperature_discharge",
    "high_temperature_discharge",
    "overcurrent_charge",
    "overcurrent_discharge",
)


@dataclass
class Must:
    """What the outputs must respect at one instant."""

    all_open: bool  # every relay open, no contactor function on
    stale: bool
    critical: bool
    charge_blocked: bool
    discharge_blocked: bool
    heater_forbidden: bool
    undervoltage: bool
    hot_boards: set[int]


@dataclass
class Oracle:
    """What must hold, from the raw readings and the configuration only.

    `inputs` names the signal of each discrete input (1-based, in order); `started_s` is
    the clock time the gateway started (the start-up grace counts from it).
    """

    config: GatewayConfig
    inputs: tuple[str, ...]
    started_s: float = 0.0
    since: dict[str, float] = field(default_factory=dict)  # condition -> held since
    justified: set[str] = field(default_factory=set)  # errors a real breach once justified
    ever_valid: bool = False

    def __post_init__(self) -> None:
        st = resolve(self.config)
        self.p = st.protections
        self.cells_in_series = st.cells_in_series

    def held(self, name: str, now: bool, t: float, delay_s: float) -> bool:
        """Track a condition; True when it has held for `delay_s` at time t."""
        if not now:
            self.since.pop(name, None)
            return False
        start = self.since.setdefault(name, t)
        return t - start >= delay_s - EPS

    def on(self, name: str) -> bool:
        return bool(self.p[name].enable)

    def window(self, name: str) -> tuple[float, float]:
        q = self.p[name]
        return (
            -math.inf if q.threshold is None else q.threshold,
            math.inf if q.tolerant is None else q.tolerant,
        )

    def observe(self, s: GatewayState, t: float, go_safe: bool) -> Must:
        """Evaluate every condition at t."""
        e, lg = self.config.engine, self.config.logic
        cell_lo, cell_hi = self.window(CELL_IMPLAUSIBLE)
        t_lo, t_hi = self.window(SENSOR_FAULT)
        grace_over = t >= self.started_s + e.startup_grace_s
        fresh: list[Any] = []
        cell_causes: set[str] = set()
        for n in lg.addresses:
            b = s.boards.get(n)
            answering = (
                b is not None
                and b.online
                and b.updated_s is not None
                and t <= b.updated_s + e.cell_timeout_s
            )
            count_ok = b is not None and len(b.cell_voltages_v) == lg.cells_per_board
            plausible = (
                b is not None
                and not b.status_bits & STATUS_CELL_MEASUREMENT_FAULT
                and all(math.isfinite(v) and cell_lo <= v <= cell_hi for v in b.cell_voltages_v)
            )
            if answering and count_ok and plausible:
                fresh.append(b)
            elif (b is not None and b.updated_s is not None) or grace_over:
                # unknown cells: the diagnosis that owns the reason (a board not heard from
                # yet during the start-up grace is no cause: the protections wait)
                cause = LOGIC_OFFLINE if not answering else CELL_COUNT if not count_ok else None
                cell_causes.add(cause or CELL_IMPLAUSIBLE)
        all_fresh = len(fresh) == len(lg.addresses)
        cells = [v for b in fresh for v in b.cell_voltages_v]
        valid_scan = all_fresh and (
            self.cells_in_series is None or len(cells) == self.cells_in_series
        )
        self.ever_valid = self.ever_valid or valid_scan
        cur_t = s.current_updated_s
        current = (
            s.current_a
            if cur_t is not None
            and t <= cur_t + e.current_timeout_s
            and s.current_a is not None
            and math.isfinite(s.current_a)
            else None
        )
        in_t = s.inputs_updated_s
        contacts = s.inputs if in_t is not None and t <= in_t + e.inputs_timeout_s else None
        stale = not all_fresh or current is None or contacts is None

        def asserted(signal: str) -> bool:
            if contacts is None or signal not in self.inputs:
                return False
            return bool(contacts[self.inputs.index(signal)])

        sensors: list[float | None] = []
        for b in fresh:
            raw = list(b.temperatures_c) + [None] * (lg.sensors - len(b.temperatures_c))
            sensors += [x if x is not None and t_lo <= x <= t_hi else None for x in raw]
        temps = [x for x in sensors if x is not None]
        temps_known = bool(temps) and len(temps) == len(sensors)
        sensor_fault = len(temps) < len(sensors)  # on a fresh board: the sensor's own fault
        temp_causes = cell_causes | ({SENSOR_FAULT} if sensor_fault else set())

        def disabled(causes: set[str]) -> bool:
            """Unknown data counts as a breach: a diagnosis that owns it is disabled."""
            return any(not self.on(c) for c in causes)

        def limit(name: str, value: float | None, above: bool, unknown: bool) -> bool:
            q = self.p[name]
            if not q.enable or q.threshold is None:
                self.since.pop(name, None)
                return False
            real = value is not None and (value > q.threshold if above else value < q.threshold)
            if unknown:  # timed by the engine from the last reading: may set before t + delay
                self.justified.add(name)
            if self.held(name, real or unknown, t, q.set_delay_s):
                self.justified.add(name)
                return True
            return False

        tmin, tmax = min(temps, default=None), max(temps, default=None)
        cell_unknown, temp_unknown = disabled(cell_causes), disabled(temp_causes)
        current_unknown = (
            current is None and not self.on(CURRENT_FAULT) and (cur_t is not None or grace_over)
        )
        neg = None if current is None else -current
        # name -> (value judged, True: a maximum, unknown data counts as a breach)
        judged: dict[str, tuple[float | None, bool, bool]] = {
            "cell_overvoltage": (max(cells, default=None), True, cell_unknown),
            "cell_undervoltage": (min(cells, default=None), False, cell_unknown),
            "overcurrent_charge": (current, True, current_unknown),
            "overcurrent_discharge": (neg, True, current_unknown),
            "low_temperature_charge": (tmin, False, temp_unknown),
            "low_temperature_discharge": (tmin, False, temp_unknown),
            "high_temperature_charge": (tmax, True, temp_unknown),
            "high_temperature_discharge": (tmax, True, temp_unknown),
        }
        trips = {name: limit(name, *how) for name, how in judged.items()}
        cover_s, sensor_s = self.p["battery_cover"].set_delay_s, self.p[SENSOR_FAULT].set_delay_s
        cover = asserted("battery_cover") and self.on("battery_cover")
        critical = self.held("battery_cover", cover, t, cover_s) | self.held(
            SENSOR_FAULT, sensor_fault and self.on(SENSOR_FAULT), t, sensor_s
        )
        h = self.config.heater
        coldest = tmin if temps_known else None
        warm = self.held(
            "heater_release", coldest is not None and coldest > h.tolerant, t, h.clear_delay_s
        )
        lht = self.p["logic_high_temperature"].threshold
        assert lht is not None
        return Must(
            all_open=not self.ever_valid or stale or critical or go_safe,
            stale=stale,
            critical=critical,
            charge_blocked=any(trips[n] for n in BLOCKS_CHARGE) or asserted("inhibit_charging"),
            discharge_blocked=any(trips[n] for n in BLOCKS_DISCHARGE)
            or asserted("inhibit_discharging"),
            heater_forbidden=critical
            or go_safe
            or stale
            or not temps_known
            or warm
            or any(trips.get(n, False) for n in h.off_on_errors),
            undervoltage=trips["cell_undervoltage"],
            hot_boards={
                b.board
                for b in fresh
                if b.board_temperature_c is None or b.board_temperature_c >= lht
            },
        )
