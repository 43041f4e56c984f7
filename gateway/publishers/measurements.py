"""The gateway's measurements, declared once: one row each, read by every output.

A row names a measurement (its `state` key), its unit, how precisely `state` shows it, its
Home Assistant device class and the function that reads it from the `GatewayState`. From this
table come the MQTT `state` keys (`payloads.state_message`), the Prometheus gauges
(`prometheus.STATE_METRICS`), the Home Assistant sensors (`homeassistant.DESCRIPTIONS`) and
the REAL32 registers of the Modbus extension block (`modbus_server.extension_profile`).
`tests/test_measurements.py` proves every row reaches each output it names.

Add a measurement = add one row (and document its public names in docs/mqtt.md,
docs/metrics.md and docs/modbus.md). Its `value` returns None when unknown; each output
then leaves it out (Prometheus, Modbus NaN) or shows null (`state`, Home Assistant). A row
with `unit="%"` is a percentage in `state`, HA and Modbus and a 0..1 `_ratio` in Prometheus.
A new Modbus register takes the next free pair after the highest `modbus_address` below
(0x304A on: 0x3004-0x301F and 0x3040-0x3049 are taken).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.core.state import GatewayState

Output = Literal["state", "prometheus", "homeassistant", "modbus"]
OUTPUTS: frozenset[Output] = frozenset(("state", "prometheus", "homeassistant", "modbus"))


@dataclass(frozen=True, kw_only=True, slots=True)
class Measurement:
    """One measurement and where it goes."""

    key: str  # `state` JSON key (under `group`), HA object id
    name: str  # for people: the HA entity name
    unit: str  # V, A, W, %, °C, kWh, Ah ...
    precision: int  # decimals in `state`
    display_precision: int  # Home Assistant's suggested display precision
    device_class: str | None  # Home Assistant device class
    value: Callable[[GatewayState], float | None]  # None = unknown
    metric: str  # Prometheus name (a `%` row: the 0..1 ratio)
    help: str  # Prometheus help text
    modbus_point: str  # extension-block point name (REAL32, two input registers)
    modbus_address: int
    group: str | None = None  # nested under this `state` key (e.g. "limits")
    kind: Literal["measurement", "total"] = "measurement"  # total: grows only (energy)
    metric_scale: float = 1.0  # to the Prometheus base unit (kWh -> J); `%` rows: 0.01
    outputs: frozenset[Output] = OUTPUTS

    @property
    def path(self) -> str:
        """Dotted path of the value in the `state` JSON."""
        return self.key if self.group is None else f"{self.group}.{self.key}"


def rounded(value: float | None, digits: int) -> float | None:
    """Round a reading; None (unknown) and non-finite values become None."""
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


VOLTAGE_DIGITS = 3  # 1 mV


def _power(s: GatewayState) -> float | None:
    v, i = s.pack_voltage_v, s.current_a
    return None if v is None or i is None else v * i


def _delta(s: GatewayState) -> float | None:
    # From the extremes as `state` shows them, so that max - min == delta for every reader.
    vmin = rounded(s.cell_voltage_min_v, VOLTAGE_DIGITS)
    vmax = rounded(s.cell_voltage_max_v, VOLTAGE_DIGITS)
    return None if vmin is None or vmax is None else vmax - vmin


def _soc_pct(s: GatewayState) -> float | None:
    soc = s.control.soc
    return None if soc is None else soc * 100.0


def _limit(key: str) -> Callable[[GatewayState], float | None]:
    return lambda s: s.control.limits.get(key)


def _energy(field: str) -> Callable[[GatewayState], float | None]:
    """A total of the energy counter (`gateway.control.energy`); None until it runs."""
    return lambda s: None if s.energy is None else getattr(s.energy, field)


MEASUREMENTS: tuple[Measurement, ...] = (
    Measurement(
        key="voltage", name="Pack voltage", unit="V", precision=3, display_precision=2,
        device_class="voltage", value=lambda s: s.pack_voltage_v,
        metric="bms_pack_voltage_volts", help="Pack voltage (sum of the online boards' cells).",
        modbus_point="ext.pack_voltage_v", modbus_address=0x3004,
    ),
    Measurement(
        key="current", name="Current", unit="A", precision=3, display_precision=1,
        device_class="current", value=lambda s: s.current_a,
        metric="bms_pack_current_amperes", help="Pack current, positive while charging.",
        modbus_point="ext.current_a", modbus_address=0x3006,
    ),
    Measurement(
        key="power", name="Power", unit="W", precision=1, display_precision=0,
        device_class="power", value=_power,
        metric="bms_pack_power_watts", help="Pack power, positive while charging.",
        modbus_point="ext.power_w", modbus_address=0x3008,
    ),
    Measurement(
        key="soc", name="State of charge", unit="%", precision=1, display_precision=0,
        device_class="battery", value=_soc_pct,
        metric="bms_state_of_charge_ratio", help="State of charge (0..1).",
        modbus_point="ext.soc_pct", modbus_address=0x3014,
    ),
    Measurement(
        key="cell_voltage_min", name="Cell voltage min", unit="V", precision=3,
        display_precision=3, device_class="voltage", value=lambda s: s.cell_voltage_min_v,
        metric="bms_cell_voltage_min_volts", help="Lowest cell voltage.",
        modbus_point="ext.cell_voltage_min_v", modbus_address=0x300A,
    ),
    Measurement(
        key="cell_voltage_max", name="Cell voltage max", unit="V", precision=3,
        display_precision=3, device_class="voltage", value=lambda s: s.cell_voltage_max_v,
        metric="bms_cell_voltage_max_volts", help="Highest cell voltage.",
        modbus_point="ext.cell_voltage_max_v", modbus_address=0x300C,
    ),
    Measurement(
        key="cell_voltage_delta", name="Cell voltage delta", unit="V", precision=3,
        display_precision=3, device_class="voltage", value=_delta,
        metric="bms_cell_voltage_delta_volts",
        help="Highest minus lowest cell voltage (of the values rounded to 1 mV).",
        modbus_point="ext.cell_voltage_delta_v", modbus_address=0x300E,
    ),
    Measurement(
        key="temperature_min", name="Temperature min", unit="°C", precision=1,
        display_precision=1, device_class="temperature", value=lambda s: s.temperature_min_c,
        metric="bms_temperature_min_celsius", help="Lowest cell temperature sensor reading.",
        modbus_point="ext.temperature_min_c", modbus_address=0x3010,
    ),
    Measurement(
        key="temperature_max", name="Temperature max", unit="°C", precision=1,
        display_precision=1, device_class="temperature", value=lambda s: s.temperature_max_c,
        metric="bms_temperature_max_celsius", help="Highest cell temperature sensor reading.",
        modbus_point="ext.temperature_max_c", modbus_address=0x3012,
    ),
    Measurement(
        key="humidity", name="Humidity", unit="%", precision=1, display_precision=0,
        device_class="humidity", value=lambda s: s.humidity_pct,
        metric="bms_humidity_ratio", help="Relative humidity in the battery enclosure (0..1).",
        modbus_point="ext.humidity_pct", modbus_address=0x301C,
    ),
    Measurement(
        key="external_temperature", name="External temperature", unit="°C", precision=1,
        display_precision=1, device_class="temperature",
        value=lambda s: s.external_temperature_c,
        metric="bms_external_temperature_celsius",
        help="Temperature from the external (pack) sensor input.",
        modbus_point="ext.external_temperature_c", modbus_address=0x301E,
    ),
    Measurement(
        key="charge_voltage_limit", group="limits", name="Charge voltage limit", unit="V",
        precision=3, display_precision=1, device_class="voltage", value=_limit("cvl_v"),
        metric="bms_charge_voltage_limit_volts",
        help="Charge voltage limit (CVL) sent to chargers/inverters.",
        modbus_point="ext.charge_voltage_limit_v", modbus_address=0x3016,
    ),
    Measurement(
        key="charge_current_limit", group="limits", name="Charge current limit", unit="A",
        precision=2, display_precision=0, device_class="current", value=_limit("ccl_a"),
        metric="bms_charge_current_limit_amperes",
        help="Charge current limit (CCL) sent to chargers/inverters.",
        modbus_point="ext.charge_current_limit_a", modbus_address=0x3018,
    ),
    Measurement(
        key="discharge_current_limit", group="limits", name="Discharge current limit",
        unit="A", precision=2, display_precision=0, device_class="current",
        value=_limit("dcl_a"), metric="bms_discharge_current_limit_amperes",
        help="Discharge current limit (DCL) sent to inverters.",
        modbus_point="ext.discharge_current_limit_a", modbus_address=0x301A,
    ),
    # --- energy counters (gateway.control.energy): totals that only grow ----------------
    Measurement(
        key="energy_in_kwh", name="Energy charged", unit="kWh", precision=3,
        display_precision=2, device_class="energy", value=_energy("energy_in_kwh"),
        kind="total", metric="bms_energy_in_joules", metric_scale=3.6e6,
        help="Energy charged into the pack (persisted across restarts).",
        modbus_point="ext.energy_in_kwh", modbus_address=0x3040,
    ),
    Measurement(
        key="energy_out_kwh", name="Energy discharged", unit="kWh", precision=3,
        display_precision=2, device_class="energy", value=_energy("energy_out_kwh"),
        kind="total", metric="bms_energy_out_joules", metric_scale=3.6e6,
        help="Energy discharged from the pack (persisted across restarts).",
        modbus_point="ext.energy_out_kwh", modbus_address=0x3042,
    ),
    Measurement(
        key="charge_in_ah", name="Charge in", unit="Ah", precision=3, display_precision=1,
        device_class=None, value=_energy("charge_in_ah"), kind="total",
        metric="bms_charge_in_coulombs", metric_scale=3600.0,
        help="Charge into the pack (Ah x 3600).",
        modbus_point="ext.charge_in_ah", modbus_address=0x3044,
    ),
    Measurement(
        key="charge_out_ah", name="Charge out", unit="Ah", precision=3, display_precision=1,
        device_class=None, value=_energy("charge_out_ah"), kind="total",
        metric="bms_charge_out_coulombs", metric_scale=3600.0,
        help="Charge out of the pack (Ah x 3600).",
        modbus_point="ext.charge_out_ah", modbus_address=0x3046,
    ),
    Measurement(
        key="cycles", name="Full cycles", unit="cycles", precision=3, display_precision=2,
        device_class=None, value=_energy("cycles"), kind="total",
        metric="bms_equivalent_full_cycles",
        help="Equivalent full cycles: discharged charge / pack.capacity_ah.",
        modbus_point="ext.cycles", modbus_address=0x3048,
    ),
)  # fmt: skip
