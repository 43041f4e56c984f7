"""Config section `protections.<error_name>` and its resolution against the table.

Each row overrides the chemistry's row of `gateway.control.table`; a key left unset
(`null`) takes the default. `resolve_protection` fills in one row and checks its
thresholds, raising `ConfigError` with the dotted key (docs/protections.md).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from gateway.control.table import BY_NAME, Params
from gateway.core.errors import ConfigError
from gateway.core.section import Section


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
