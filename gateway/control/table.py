"""The protection table: one row of data per public error name (style lesson 11/12).

A row says what a protection measures (`check`), which side its limit is on (`limit`),
how bad it is (`severity`), what it blocks (`action`) and its defaults per chemistry. The
detector, the debouncer and the actor read this table; nothing else decides what an error
does. `docs/protections.md` documents every row and a test keeps the two in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Check = Literal[
    "cell_voltage_max",
    "cell_voltage_min",
    "current_charge",
    "current_discharge",
    "temperature_min",
    "temperature_max",
    "input_active",
    "board_silent",
    "sensor_fault",
    "cell_count",
    "current_sensor",
    "board_temperature_max",
    "humidity_max",
    "cell_spread",
    "contactor_feedback",
    "charger_fault",
    "fault_report",
    "cell_plausible",
]
Limit = Literal["max", "min", "none", "range"]
Severity = Literal["critical", "normal", "warn"]
Action = Literal["charge", "discharge", "all", "none", "balancing"]

SEVERITIES: tuple[Severity, ...] = ("critical", "normal", "warn")
ACTIONS: tuple[Action, ...] = ("charge", "discharge", "all", "none", "balancing")


@dataclass(frozen=True, slots=True)
class Params:
    """The resolved parameters of one protection."""

    enable: bool
    threshold: float | None  # `max` or `min` (None for checks without a limit)
    tolerant: float | None  # release threshold (hysteresis); for `range` the upper bound
    set_delay_ms: int
    clear_delay_s: float
    latch: bool

    @property
    def set_delay_s(self) -> float:
        """Set delay in seconds."""
        return self.set_delay_ms / 1000.0


@dataclass(frozen=True, slots=True)
class ProtectionRow:
    """One protection: what it checks, what it does, and its defaults."""

    name: str
    check: Check
    limit: Limit
    severity: Severity
    action: Action
    unit: str
    meaning: str
    lfp: Params
    nmc: Params

    def defaults(self, chemistry: str) -> Params:
        """Return the defaults for a chemistry (`lfp` or `nmc`)."""
        return self.nmc if chemistry == "nmc" else self.lfp

    @property
    def blocks_charge(self) -> bool:
        """True when an active error of this row keeps the charge side open."""
        return self.action in ("charge", "all") or self.severity == "critical"

    @property
    def blocks_discharge(self) -> bool:
        """True when an active error of this row keeps the discharge side open."""
        return self.action in ("discharge", "all") or self.severity == "critical"


def _p(
    threshold: float | None,
    tolerant: float | None,
    set_delay_ms: int,
    clear_delay_s: float,
    *,
    enable: bool = True,
    latch: bool = False,
) -> Params:
    return Params(enable, threshold, tolerant, set_delay_ms, clear_delay_s, latch)


PROTECTIONS: tuple[ProtectionRow, ...] = (
    ProtectionRow(
        "cell_overvoltage", "cell_voltage_max", "max", "normal", "charge", "V",
        "The highest cell voltage is above `max`.",
        lfp=_p(3.65, 3.45, 1000, 5.0), nmc=_p(4.25, 4.15, 1000, 5.0),
    ),
    ProtectionRow(
        "cell_undervoltage", "cell_voltage_min", "min", "normal", "discharge", "V",
        "The lowest cell voltage is below `min`.",
        lfp=_p(2.80, 3.00, 1000, 5.0), nmc=_p(3.00, 3.20, 1000, 5.0),
    ),
    ProtectionRow(
        "overcurrent_charge", "current_charge", "max", "normal", "all", "A",
        "The charging current is above `max` (blocks both directions, as the vendor board).",
        lfp=_p(100.0, 90.0, 500, 10.0), nmc=_p(100.0, 90.0, 500, 10.0),
    ),
    ProtectionRow(
        "overcurrent_discharge", "current_discharge", "max", "normal", "all", "A",
        "The discharge current (magnitude) is above `max` (blocks both directions).",
        lfp=_p(200.0, 180.0, 500, 10.0), nmc=_p(200.0, 180.0, 500, 10.0),
    ),
    ProtectionRow(
        "low_temperature_charge", "temperature_min", "min", "normal", "charge", "°C",
        "The coldest cell is below `min`: charging would plate lithium.",
        lfp=_p(0.0, 3.0, 2000, 10.0), nmc=_p(0.0, 3.0, 2000, 10.0),
    ),
    ProtectionRow(
        "low_temperature_discharge", "temperature_min", "min", "normal", "discharge", "°C",
        "The coldest cell is below `min` for discharging.",
        lfp=_p(-20.0, -17.0, 2000, 10.0), nmc=_p(-20.0, -17.0, 2000, 10.0),
    ),
    ProtectionRow(
        "high_temperature_charge", "temperature_max", "max", "normal", "charge", "°C",
        "The hottest cell is above `max` for charging.",
        lfp=_p(45.0, 40.0, 2000, 10.0), nmc=_p(45.0, 40.0, 2000, 10.0),
    ),
    ProtectionRow(
        "high_temperature_discharge", "temperature_max", "max", "normal", "discharge", "°C",
        "The hottest cell is above `max` for discharging.",
        lfp=_p(55.0, 50.0, 2000, 10.0), nmc=_p(60.0, 55.0, 2000, 10.0),
    ),
    ProtectionRow(
        "battery_cover", "input_active", "none", "critical", "all", "",
        "The input assigned to `battery_cover` is active (the cover is open).",
        lfp=_p(None, None, 100, 1.0), nmc=_p(None, None, 100, 1.0),
    ),
    ProtectionRow(
        "logic_offline", "board_silent", "none", "critical", "all", "",
        "A BMS Logic board has not answered for longer than the set delay.",
        lfp=_p(None, None, 3000, 1.0), nmc=_p(None, None, 3000, 1.0),
    ),
    ProtectionRow(
        "temperature_sensor_fault", "sensor_fault", "range", "critical", "all", "°C",
        "A cell temperature sensor is missing, shorted or reads outside the plausible window "
        "`min`..`max` (such a reading is unknown for control: heater, cooler, limits).",
        lfp=_p(-50.0, 150.0, 2000, 5.0), nmc=_p(-50.0, 150.0, 2000, 5.0),
    ),
    ProtectionRow(
        "cell_count_mismatch", "cell_count", "none", "critical", "all", "",
        "A board reports a cell count other than `logic.cells_per_board`, or the pack total "
        "differs from `pack.cells_in_series`.",
        lfp=_p(None, None, 1000, 5.0), nmc=_p(None, None, 1000, 5.0),
    ),
    ProtectionRow(
        "current_sensor_fault", "current_sensor", "range", "critical", "all", "V",
        "The current reading is missing or stale, or the sensor's Vref is outside `min`..`max` "
        "(`tolerant` is unused).",
        lfp=_p(2.0, 3.0, 1000, 5.0), nmc=_p(2.0, 3.0, 1000, 5.0),
    ),
    ProtectionRow(
        "logic_high_temperature", "board_temperature_max", "max", "normal", "balancing", "°C",
        "A Logic board is hotter than `max`: balancing stops on that board.",
        lfp=_p(70.0, 60.0, 2000, 10.0), nmc=_p(70.0, 60.0, 2000, 10.0),
    ),
    ProtectionRow(
        "high_humidity", "humidity_max", "max", "warn", "none", "%RH",
        "The humidity inside the enclosure is above `max` (warning only).",
        lfp=_p(85.0, 80.0, 10000, 60.0), nmc=_p(85.0, 80.0, 10000, 60.0),
    ),
    ProtectionRow(
        "cell_imbalance", "cell_spread", "max", "warn", "none", "V",
        "The spread max - min cell voltage is above `max` (warning only).",
        lfp=_p(0.10, 0.05, 10000, 10.0), nmc=_p(0.10, 0.05, 10000, 10.0),
    ),
    ProtectionRow(
        "contactor_feedback", "contactor_feedback", "none", "critical", "all", "",
        "A contactor feedback input disagrees with the relay command for longer than the set "
        "delay.",
        lfp=_p(None, None, 1000, 5.0), nmc=_p(None, None, 1000, 5.0),
    ),
    ProtectionRow(
        "charger_fault", "charger_fault", "none", "normal", "charge", "",
        "The CAN charger reports a failure (point `charger.fault`: hardware failure, "
        "over-temperature or input voltage fault; also `charger.hardware_failure` or "
        "`charger.over_temperature` on their own).",
        lfp=_p(None, None, 500, 5.0), nmc=_p(None, None, 500, 5.0),
    ),
    ProtectionRow(
        "relay_driver_fault", "fault_report", "none", "critical", "all", "",
        "A relay driver cannot vouch for its relays: its link failed (reset, refused, silent, "
        "exception reply) or a relay reads back other than commanded. The detail names the "
        "driver and the OS/Modbus reason.",
        lfp=_p(None, None, 0, 5.0), nmc=_p(None, None, 0, 5.0),
    ),
    ProtectionRow(
        "state_persistence_fault", "fault_report", "none", "critical", "all", "",
        "A latch or go-safe request could not be written durably to `gateway.state_dir` "
        "(relays stay open until it is), or the state file was unreadable at start "
        "(latched until acknowledged).",
        lfp=_p(None, None, 0, 1.0), nmc=_p(None, None, 0, 1.0),
    ),
    ProtectionRow(
        "cell_voltage_implausible", "cell_plausible", "range", "critical", "all", "V",
        "A cell reads outside the plausible window `min`..`max` (or not a number, or its board "
        "flags a cell-measurement fault): that cell is unmonitored.",
        lfp=_p(0.5, 5.0, 1000, 5.0), nmc=_p(0.5, 5.0, 1000, 5.0),
    ),
)  # fmt: skip

BY_NAME: dict[str, ProtectionRow] = {r.name: r for r in PROTECTIONS}
