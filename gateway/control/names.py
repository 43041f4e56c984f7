"""Public names of errors and signals (MQTT, HA, Prometheus and scenarios use them).

Fixed by issue 3; `charger_fault` was added for issue 4,
`relay_driver_fault` and `state_persistence_fault` for issue 9, `cell_voltage_implausible`
for issue 10. New names are appended only: the Modbus server's error bitfield numbers the
bits in this order.

The protection table in `gateway/control` must have exactly one row per error name; a test
checks that, and that `docs/protections.md` documents each one.
"""

from __future__ import annotations

ERROR_NAMES: tuple[str, ...] = (
    "cell_overvoltage",
    "cell_undervoltage",
    "overcurrent_charge",
    "overcurrent_discharge",
    "low_temperature_charge",
    "low_temperature_discharge",
    "high_temperature_charge",
    "high_temperature_discharge",
    "battery_cover",
    "logic_offline",
    "temperature_sensor_fault",
    "cell_count_mismatch",
    "current_sensor_fault",
    "logic_high_temperature",
    "high_humidity",
    "cell_imbalance",
    "contactor_feedback",
    "charger_fault",
    "relay_driver_fault",
    "state_persistence_fault",
    "cell_voltage_implausible",
)

SIGNAL_NAMES: tuple[str, ...] = (
    "charge_allowed",
    "discharge_allowed",
    "charger_connected",
    "heater",
    "balancing",
    "low_soc",
    "high_charging_current",
    "critical_error",
)

RELAY_FUNCTIONS_DEFAULT: dict[int, str] = {
    1: "discharge_contactor",
    2: "allow_charging",
    3: "charge_contactor",
    4: "heater",
}
