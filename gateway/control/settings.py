"""Config sections of the control engine (public keys: see docs/protections.md).

Voltage keys left unset (`null`) take the default of `pack.chemistry`; a protection row
left unset takes the chemistry's row from `gateway.control.table`. `resolve()` turns the
sections into one `ControlSettings` with every value filled in, or raises `ConfigError`
naming the dotted path of the key that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from gateway.board import DEFAULT_RELAY_FUNCTIONS
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.control.table import BY_NAME, Params
from gateway.core.errors import ConfigError
from gateway.core.section import Section, SocFraction, soc_fraction

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

Chemistry = Literal["lfp", "nmc"]

# Input signals a discrete input (or a point `override.<signal>`) can carry.
InputSignal = Literal[
    "none",
    "battery_cover",
    "charger_connected",
    "power_down_request",
    "inhibit_charging",
    "inhibit_discharging",
    "charge_contactor_feedback",
    "discharge_contactor_feedback",
    "charge_request",
    "discharge_request",
    "balancing_request",
    "go_safe",
]
INPUT_SIGNALS: tuple[str, ...] = get_args(InputSignal)

CONTACTOR_FUNCTIONS: tuple[str, ...] = (
    "discharge_contactor",
    "allow_charging",
    "charge_contactor",
    "heater",
    "cooler",
)
EXTRA_SIGNALS: tuple[str, ...] = ("cooler", "end_of_charge", "go_safe", "any_error")
OUTPUT_FUNCTIONS: tuple[str, ...] = (
    "none",
    *CONTACTOR_FUNCTIONS,
    *(s for s in (*SIGNAL_NAMES, *EXTRA_SIGNALS) if s not in CONTACTOR_FUNCTIONS),
)

# Chemistry defaults of the voltage keys outside the protection table (V per cell).
CHEMISTRY_DEFAULTS: dict[str, dict[str, float]] = {
    "lfp": {
        "end_of_charge_voltage": 3.45,
        "recharge_voltage": 3.35,
        "balancing_start_voltage": 3.40,
        "balancing_stop_voltage": 3.35,
        "cvl_cell_v": 3.45,
        "charge_derate_start_v": 3.40,
        "charge_derate_end_v": 3.45,
        "discharge_derate_start_v": 3.05,
        "discharge_derate_end_v": 2.90,
    },
    "nmc": {
        "end_of_charge_voltage": 4.15,
        "recharge_voltage": 4.05,
        "balancing_start_voltage": 3.95,
        "balancing_stop_voltage": 3.90,
        "cvl_cell_v": 4.15,
        "charge_derate_start_v": 4.05,
        "charge_derate_end_v": 4.15,
        "discharge_derate_start_v": 3.40,
        "discharge_derate_end_v": 3.10,
    },
}


def _int_keys(data: Any) -> Any:
    """Accept YAML integer keys (`1:`) for fields aliased "1".."4"."""
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    return data


class PackSection(Section):
    """The battery pack as a whole."""

    chemistry: Chemistry = Field("lfp", description="Cell chemistry: picks every default.")
    capacity_ah: float = Field(100.0, gt=0, description="Rated capacity (SOC, C-rates).")
    cells_in_series: int | None = Field(
        None, ge=1, description="Optional cross-check of the total cell count of all boards."
    )


class FlagProtection(Section):
    """A protection without a threshold; every key left unset takes the default."""

    enable: bool | None = Field(None, description="Enable the protection.")
    set_delay_ms: int | None = Field(None, ge=0, description="Breach must last this long.")
    clear_delay_s: float | None = Field(None, ge=0, description="Release must last this long.")
    latch: bool | None = Field(None, description="Stay active until acknowledged.")


class MaxProtection(FlagProtection):
    """An upper-limit protection: trips above `max`, releases below `tolerant`."""

    max: float | None = Field(None, description="Trip above this.")
    tolerant: float | None = Field(None, description="Release below this (hysteresis).")


class MinProtection(FlagProtection):
    """A lower-limit protection: trips below `min`, releases above `tolerant`."""

    min: float | None = Field(None, description="Trip below this.")
    tolerant: float | None = Field(None, description="Release above this (hysteresis).")


class RangeProtection(FlagProtection):
    """A plausibility window: trips outside `min`..`max`."""

    min: float | None = Field(None, description="Lowest plausible value.")
    max: float | None = Field(None, description="Highest plausible value.")


ProtectionSettings = FlagProtection


def _max() -> Any:
    return Field(default_factory=MaxProtection)


def _min() -> Any:
    return Field(default_factory=MinProtection)


def _flag() -> Any:
    return Field(default_factory=FlagProtection)


class ProtectionsSection(Section):
    """`protections.<error_name>`: per-protection overrides (see docs/protections.md)."""

    cell_overvoltage: MaxProtection = _max()
    cell_undervoltage: MinProtection = _min()
    overcurrent_charge: MaxProtection = _max()
    overcurrent_discharge: MaxProtection = _max()
    low_temperature_charge: MinProtection = _min()
    low_temperature_discharge: MinProtection = _min()
    high_temperature_charge: MaxProtection = _max()
    high_temperature_discharge: MaxProtection = _max()
    battery_cover: FlagProtection = _flag()
    logic_offline: FlagProtection = _flag()
    temperature_sensor_fault: RangeProtection = Field(default_factory=RangeProtection)
    cell_count_mismatch: FlagProtection = _flag()
    current_sensor_fault: RangeProtection = Field(default_factory=RangeProtection)
    logic_high_temperature: MaxProtection = _max()
    high_humidity: MaxProtection = _max()
    cell_imbalance: MaxProtection = _max()
    contactor_feedback: FlagProtection = _flag()
    charger_fault: FlagProtection = _flag()
    relay_driver_fault: FlagProtection = _flag()
    state_persistence_fault: FlagProtection = _flag()
    cell_voltage_implausible: RangeProtection = Field(default_factory=RangeProtection)

    def row(self, name: str) -> FlagProtection:
        """Return the overrides of one error name."""
        value: FlagProtection = getattr(self, name)
        return value


class ChargeControlSection(Section):
    """Charge contactor and allow-charging control (vendor "Charging control")."""

    mode: Literal["always", "charger_connected", "charge_request"] = Field(
        "always", description="What must be present for charging (besides no blocking error)."
    )
    ton_s: float = Field(0.0, ge=0, description="Request present this long before closing.")
    toff_s: float = Field(
        0.0, ge=0, description="Request gone this long before the charge contactor opens."
    )
    end_of_charge_voltage: float | None = Field(
        None, gt=0, description="A cell above it drops only allow_charging (V; chemistry default)."
    )
    recharge_voltage: float | None = Field(
        None, gt=0, description="All cells below it: allow_charging may return (V)."
    )


class DischargeControlSection(Section):
    """Discharge contactor control (vendor "Discharging control")."""

    mode: Literal["always", "charger_disconnected", "discharge_request"] = "always"
    ton_s: float = Field(0.0, ge=0, description="Request present this long before closing.")
    toff_s: float = Field(0.0, ge=0, description="Request gone this long before opening.")


HEATER_OFF_ERRORS = (
    "cell_undervoltage",
    "overcurrent_charge",
    "overcurrent_discharge",
    "high_temperature_charge",
    "high_temperature_discharge",
)
COOLER_OFF_ERRORS = (
    "cell_undervoltage",
    "overcurrent_charge",
    "overcurrent_discharge",
    "low_temperature_charge",
    "low_temperature_discharge",
)


class HeaterSection(Section):
    """Heater: on when the coldest cell is below `min`, off above `tolerant`."""

    enable: bool = True
    min: float = Field(5.0, description="Coldest cell below this (°C) switches the heater on.")
    tolerant: float = Field(10.0, description="Coldest cell above this (°C) switches it off.")
    set_delay_ms: int = Field(2000, ge=0)
    clear_delay_s: float = Field(10.0, ge=0)
    off_on_errors: list[str] = Field(
        default_factory=lambda: list(HEATER_OFF_ERRORS),
        description="Errors that switch the heater off (critical errors always do).",
    )

    @model_validator(mode="after")
    def _check(self) -> HeaterSection:
        if self.tolerant < self.min:
            raise ValueError("tolerant must be >= min")
        _check_errors(self.off_on_errors)
        return self


class CoolerSection(Section):
    """Optional cooler: on when the hottest cell is above `max`, off below `tolerant`."""

    enable: bool = False
    max: float = Field(35.0, description="Hottest cell above this (°C) switches the cooler on.")
    tolerant: float = Field(30.0, description="Hottest cell below this (°C) switches it off.")
    set_delay_ms: int = Field(2000, ge=0)
    clear_delay_s: float = Field(10.0, ge=0)
    off_on_errors: list[str] = Field(default_factory=lambda: list(COOLER_OFF_ERRORS))

    @model_validator(mode="after")
    def _check(self) -> CoolerSection:
        if self.tolerant > self.max:
            raise ValueError("tolerant must be <= max")
        _check_errors(self.off_on_errors)
        return self


def _check_errors(names: list[str]) -> None:
    for n in names:
        if n not in ERROR_NAMES:
            raise ValueError(f"unknown error {n!r}")


class BalancingSection(Section):
    """Whole-pack passive balancing."""

    enable: bool = True
    mode: Literal["charge", "charge_or_rest", "always"] = Field(
        "charge_or_rest", description="When balancing may run (the request input overrides)."
    )
    start_voltage: float | None = Field(None, gt=0, description="Cells above it may balance (V).")
    stop_voltage: float | None = Field(None, gt=0, description="A cell below it stops (V).")
    delta_start: float = Field(0.015, gt=0, description="Start when cell - pack min exceeds (V).")
    delta_stop: float = Field(0.005, ge=0, description="Stop when cell - pack min is below (V).")
    rest_current_a: float = Field(2.0, ge=0, description="|current| below this counts as rest.")

    @model_validator(mode="after")
    def _check(self) -> BalancingSection:
        if self.delta_stop > self.delta_start:
            raise ValueError("delta_stop must be <= delta_start")
        return self


class _Numbered(Section):
    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _int_keys(data)


RelayFunction = Literal[
    "none",
    "discharge_contactor",
    "allow_charging",
    "charge_contactor",
    "heater",
    "cooler",
    "charge_allowed",
    "discharge_allowed",
    "charger_connected",
    "balancing",
    "low_soc",
    "high_charging_current",
    "critical_error",
    "end_of_charge",
    "go_safe",
    "any_error",
]


def _default_relay(n: int) -> Any:
    return Field(DEFAULT_RELAY_FUNCTIONS[n], alias=str(n))  # the board's default (gateway.board)


class RelaysSection(_Numbered):
    """`relays.<1-4>`: what each relay does (seed defaults: 1 DCH, 2 ACH, 3 CH, 4 heater)."""

    r1: RelayFunction = _default_relay(1)
    r2: RelayFunction = _default_relay(2)
    r3: RelayFunction = _default_relay(3)
    r4: RelayFunction = _default_relay(4)

    def functions(self) -> dict[int, str]:
        """Relay number -> function."""
        return {1: self.r1, 2: self.r2, 3: self.r3, 4: self.r4}

    @model_validator(mode="after")
    def _unique(self) -> RelaysSection:
        used = [f for f in self.functions().values() if f in CONTACTOR_FUNCTIONS]
        if len(used) != len(set(used)):
            raise ValueError("a contactor function may drive only one relay")
        return self


class OutputsSection(_Numbered):
    """`outputs.<1-4>`: the signal each discrete output follows."""

    o1: RelayFunction = Field("none", alias="1")
    o2: RelayFunction = Field("none", alias="2")
    o3: RelayFunction = Field("none", alias="3")
    o4: RelayFunction = Field("none", alias="4")

    def functions(self) -> dict[int, str]:
        """Output number -> function."""
        return {1: self.o1, 2: self.o2, 3: self.o3, 4: self.o4}


class InputAssignment(Section):
    """One discrete input: the signal it carries and whether it is inverted."""

    signal: InputSignal = "none"
    invert: bool = Field(False, description="True: an open contact means the signal is active.")


def _input() -> Any:
    return Field(default_factory=InputAssignment)


class InputsSection(_Numbered):
    """`inputs.<1-4>`: `{signal, invert}` per discrete input."""

    i1: InputAssignment = Field(default_factory=InputAssignment, alias="1")
    i2: InputAssignment = Field(default_factory=InputAssignment, alias="2")
    i3: InputAssignment = Field(default_factory=InputAssignment, alias="3")
    i4: InputAssignment = Field(default_factory=InputAssignment, alias="4")

    def assignments(self) -> dict[int, InputAssignment]:
        """Input number -> assignment."""
        return {1: self.i1, 2: self.i2, 3: self.i3, 4: self.i4}

    @model_validator(mode="after")
    def _unique(self) -> InputsSection:
        used = [a.signal for a in self.assignments().values() if a.signal != "none"]
        if len(used) != len(set(used)):
            raise ValueError("a signal may be assigned to only one input")
        return self


class EngineSection(Section):
    """Timing of the control engine."""

    cycle_s: float = Field(
        0.1,
        gt=0,
        le=5,
        description="Heartbeat period: lease renewal, indicator blinking and driver fault "
        "checks. Decisions are event-driven (on every input and at the exact instant a delay "
        "falls due), not periodic.",
    )
    relay_lease_s: float = Field(
        1.0, gt=0, le=60, description="Relays open if the engine misses this long."
    )
    cell_timeout_s: float = Field(
        3.0, gt=0, description="A board's readings older than this are unknown."
    )
    current_timeout_s: float = Field(3.0, gt=0, description="Current older than this is unknown.")
    inputs_timeout_s: float = Field(3.0, gt=0, description="Inputs older than this are unknown.")
    startup_grace_s: float = Field(
        5.0,
        ge=0,
        description="After start, data not yet received holds the protections (relays stay "
        "open until the first complete scan) instead of tripping them.",
    )


class LimitsSection(Section):
    """Charge voltage limit (CVL), charge/discharge current limits (CCL/DCL) and derating."""

    max_charge_current_a: float = Field(50.0, ge=0, description="CCL before derating.")
    max_discharge_current_a: float = Field(100.0, ge=0, description="DCL before derating.")
    cvl_cell_v: float | None = Field(None, gt=0, description="CVL per cell (V).")
    charge_derate_start_v: float | None = Field(None, gt=0, description="Max cell: CCL starts.")
    charge_derate_end_v: float | None = Field(None, gt=0, description="Max cell: CCL at tail.")
    charge_tail_fraction: float = Field(
        0.1, ge=0, le=1, description="CCL fraction left at charge_derate_end_v."
    )
    discharge_derate_start_v: float | None = Field(None, gt=0, description="Min cell: DCL starts.")
    discharge_derate_end_v: float | None = Field(None, gt=0, description="Min cell: DCL is 0.")
    temperature_band_c: float = Field(
        5.0, gt=0, description="Ramp width inside each temperature protection limit."
    )
    charge_soc_derate_start: SocFraction = Field(
        0.95, gt=0, le=1, description="SOC where CCL starts derating (0.95, 95 or `95 %`)."
    )
    charge_soc_min_fraction: float = Field(0.2, ge=0, le=1, description="CCL fraction at 100 %.")
    discharge_soc_derate_start: SocFraction = Field(
        0.1, ge=0, lt=1, description="SOC where DCL starts derating (0.1, 10 or `10 %`)."
    )
    ramp_a_per_s: float = Field(10.0, gt=0, description="Rise rate of CCL/DCL (falls at once).")


class SocSection(Section):
    """State-of-charge estimator."""

    charge_efficiency: float = Field(0.99, gt=0, le=1, description="Coulombic efficiency.")
    rest_current_a: float = Field(1.0, ge=0, description="|current| below this is rest.")
    rest_time_s: float = Field(1800.0, ge=0, description="Rest this long: recalibrate from OCV.")
    ocv_recalibration: bool = True
    persist_interval_s: float = Field(60.0, gt=0, description="Save the SOC this often.")
    bridge_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Bridge mode: a bridged board's SOC (main2x.soc_pct, bms_main.soc_pct) "
        "older than this is not used; the gateway's own estimate takes over.",
    )


class LevelSettings(Section):
    """A debounced indication level (no relay action)."""

    enable: bool = True
    max: float | None = None
    min: float | None = None
    tolerant: float
    set_delay_ms: int = Field(1000, ge=0)
    clear_delay_s: float = Field(5.0, ge=0)


class SignalLevelsSection(Section):
    """Thresholds of the indication signals `low_soc` and `high_charging_current`."""

    low_soc: LevelSettings = Field(
        default_factory=lambda: LevelSettings(min=0.2, tolerant=0.25),
        description="SOC below `min` sets low_soc; above `tolerant` clears it (0.2, 20 or "
        "`20 %`).",
    )
    high_charging_current: LevelSettings = Field(
        default_factory=lambda: LevelSettings(max=60.0, tolerant=50.0),
        description="Charging current (A) above `max` sets high_charging_current.",
    )

    @field_validator("low_soc", mode="before")
    @classmethod
    def _soc_in_percent(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: soc_fraction(v) if k in ("min", "max", "tolerant") else v
                for k, v in value.items()
            }
        return value


@dataclass(frozen=True)
class ControlSettings:
    """Every control setting resolved for the configured chemistry."""

    chemistry: str
    capacity_ah: float
    cells_in_series: int | None
    protections: dict[str, Params]
    end_of_charge_voltage: float
    recharge_voltage: float
    balancing_start_voltage: float
    balancing_stop_voltage: float
    cvl_cell_v: float
    charge_derate_start_v: float
    charge_derate_end_v: float
    discharge_derate_start_v: float
    discharge_derate_end_v: float


def resolve_protection(chemistry: str, name: str, s: FlagProtection) -> Params:
    """Fill one protection's unset keys from the chemistry defaults and check it."""
    row = BY_NAME[name]
    d = row.defaults(chemistry)
    s_min: float | None = getattr(s, "min", None)
    s_max: float | None = getattr(s, "max", None)
    s_tol: float | None = getattr(s, "tolerant", None)
    if row.limit == "range":
        # a plausibility window `min`..`max` (threshold..tolerant): current_sensor_fault
        # (Vref), temperature_sensor_fault (°C), cell_voltage_implausible (V)
        lo = d.threshold if s_min is None else s_min
        hi = d.tolerant if s_max is None else s_max
        if lo is not None and hi is not None and lo > hi:
            raise ConfigError(f"protections.{name}.min: must be <= max")
        threshold, tolerant = lo, hi
    else:
        own = s_max if row.limit == "max" else s_min
        threshold = d.threshold if own is None else own
        tolerant = d.tolerant if s_tol is None else s_tol
    p = Params(
        enable=d.enable if s.enable is None else s.enable,
        threshold=threshold,
        tolerant=tolerant,
        set_delay_ms=d.set_delay_ms if s.set_delay_ms is None else s.set_delay_ms,
        clear_delay_s=d.clear_delay_s if s.clear_delay_s is None else s.clear_delay_s,
        latch=d.latch if s.latch is None else s.latch,
    )
    if threshold is None or tolerant is None:
        return p
    if row.limit == "max" and tolerant > threshold:
        raise ConfigError(f"protections.{name}.tolerant: {tolerant} is above max {threshold}")
    if row.limit == "min" and tolerant < threshold:
        raise ConfigError(f"protections.{name}.tolerant: {tolerant} is below min {threshold}")
    return p


def resolve(config: GatewayConfig) -> ControlSettings:
    """Resolve every chemistry default of the control sections.

    Raises:
        ConfigError: a value contradicts another (message starts with the dotted key).
    """
    chem = config.pack.chemistry
    d = CHEMISTRY_DEFAULTS[chem]
    prots = {n: resolve_protection(chem, n, config.protections.row(n)) for n in ERROR_NAMES}

    def pick(value: float | None, key: str) -> float:
        return d[key] if value is None else value

    cc, bal, lim = config.charge_control, config.balancing, config.limits
    out = ControlSettings(
        chemistry=chem,
        capacity_ah=config.pack.capacity_ah,
        cells_in_series=config.pack.cells_in_series,
        protections=prots,
        end_of_charge_voltage=pick(cc.end_of_charge_voltage, "end_of_charge_voltage"),
        recharge_voltage=pick(cc.recharge_voltage, "recharge_voltage"),
        balancing_start_voltage=pick(bal.start_voltage, "balancing_start_voltage"),
        balancing_stop_voltage=pick(bal.stop_voltage, "balancing_stop_voltage"),
        cvl_cell_v=pick(lim.cvl_cell_v, "cvl_cell_v"),
        charge_derate_start_v=pick(lim.charge_derate_start_v, "charge_derate_start_v"),
        charge_derate_end_v=pick(lim.charge_derate_end_v, "charge_derate_end_v"),
        discharge_derate_start_v=pick(lim.discharge_derate_start_v, "discharge_derate_start_v"),
        discharge_derate_end_v=pick(lim.discharge_derate_end_v, "discharge_derate_end_v"),
    )
    if out.recharge_voltage >= out.end_of_charge_voltage:
        raise ConfigError("charge_control.recharge_voltage: must be below end_of_charge_voltage")
    if out.balancing_stop_voltage > out.balancing_start_voltage:
        raise ConfigError("balancing.stop_voltage: must be <= start_voltage")
    if out.charge_derate_end_v < out.charge_derate_start_v:
        raise ConfigError("limits.charge_derate_end_v: must be >= charge_derate_start_v")
    if out.discharge_derate_end_v > out.discharge_derate_start_v:
        raise ConfigError("limits.discharge_derate_end_v: must be <= discharge_derate_start_v")
    return out
