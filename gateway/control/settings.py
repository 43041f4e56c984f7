"""Config sections of the control engine (public keys: see docs/protections.md).

Voltage keys left unset (`null`) take the default of `pack.chemistry`; a protection row
left unset takes the chemistry's row from `gateway.control.table`. `resolve()` turns the
sections into one `ControlSettings` with every value filled in, or raises `ConfigError`
naming the dotted path of the key that is wrong.

The `protections` section lives in `protection_settings`, the `relays`/`outputs`/`inputs`
sections in `io_settings`; this module re-exports them, so every control section is
importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.control.io_settings import (
    CONTACTOR_FUNCTIONS,
    EXTRA_SIGNALS,
    INPUT_SIGNALS,
    OUTPUT_FUNCTIONS,
    InputAssignment,
    InputSignal,
    InputsSection,
    OutputsSection,
    RelayFunction,
    RelaysSection,
)
from gateway.control.names import ERROR_NAMES
from gateway.control.protection_settings import (
    FlagProtection,
    MaxProtection,
    MinProtection,
    ProtectionSettings,
    ProtectionsSection,
    RangeProtection,
    resolve_protection,
)
from gateway.control.table import Params
from gateway.core.errors import ConfigError
from gateway.core.section import Section, SocFraction, soc_fraction

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

__all__ = [
    "CHEMISTRY_DEFAULTS",
    "CONTACTOR_FUNCTIONS",
    "COOLER_OFF_ERRORS",
    "EXTRA_SIGNALS",
    "HEATER_OFF_ERRORS",
    "INPUT_SIGNALS",
    "OUTPUT_FUNCTIONS",
    "BalancingSection",
    "ChargeControlSection",
    "Chemistry",
    "ControlSettings",
    "CoolerSection",
    "DischargeControlSection",
    "EngineSection",
    "FlagProtection",
    "HeaterSection",
    "InputAssignment",
    "InputSignal",
    "InputsSection",
    "LevelSettings",
    "LimitsSection",
    "MaxProtection",
    "MinProtection",
    "OutputsSection",
    "PackSection",
    "ProtectionSettings",
    "ProtectionsSection",
    "RangeProtection",
    "RelayFunction",
    "RelaysSection",
    "SignalLevelsSection",
    "SocSection",
    "resolve",
    "resolve_protection",
]

Chemistry = Literal["lfp", "nmc"]

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


class PackSection(Section):
    """The battery pack as a whole."""

    chemistry: Chemistry = Field("lfp", description="Cell chemistry: picks every default.")
    capacity_ah: float = Field(100.0, gt=0, description="Rated capacity (SOC, C-rates).")
    cells_in_series: int | None = Field(
        None, ge=1, description="Optional cross-check of the total cell count of all boards."
    )


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
