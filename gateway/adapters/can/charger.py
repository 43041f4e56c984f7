"""The J1939-style charger pair (0x1806E5F4 command, 0x18FF50E5 status), sans-IO."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.adapters.can.config import CanChargerSection
from gateway.adapters.can.dbc import Frame, encode, shipped
from gateway.core.state import GatewayState

CONTROL_CHARGE = 0
CONTROL_STOP = 1

# CHARGER_Status signal -> gateway point.
STATUS_POINTS: dict[str, str] = {
    "OutputVoltage": "charger.output_voltage_v",
    "OutputCurrent": "charger.output_current_a",
    "HardwareFailure": "charger.hardware_failure",
    "OverTemperature": "charger.over_temperature",
    "InputVoltageFault": "charger.input_voltage_fault",
    "BatteryNotDetected": "charger.battery_not_detected",
    "CommunicationTimeout": "charger.communication_timeout",
}
FAULT_SIGNALS = ("HardwareFailure", "OverTemperature", "InputVoltageFault")


@dataclass(frozen=True)
class ChargerCommand:
    """What the gateway asks the charger for."""

    charge: bool
    voltage_v: float
    current_a: float

    def frame(self) -> Frame:
        """Encode as the 0x1806E5F4 frame."""
        return encode(
            shipped("charger_j1939"),
            "BMS_ChargerCommand",
            {
                "MaxChargeVoltage": self.voltage_v,
                "MaxChargeCurrent": self.current_a,
                "Control": CONTROL_CHARGE if self.charge else CONTROL_STOP,
            },
        )

    def points(self) -> dict[str, float | int | bool | str]:
        """The command as points (`charger.command_*`)."""
        return {
            "charger.command_charge": self.charge,
            "charger.command_voltage_v": self.voltage_v,
            "charger.command_current_a": self.current_a,
        }


def _clip(value: float, cap: float | None) -> float:
    value = min(max(value, 0.0), 6553.5)
    return value if cap is None else min(value, cap)


def charger_command(state: GatewayState, cfg: CanChargerSection) -> ChargerCommand:
    """Charge only while the engine allows it, with its CVL and CCL; otherwise stop."""
    limits = state.control.limits
    cvl = limits.get("cvl_v")
    ccl = limits.get("ccl_a")
    allowed = state.control.signals.get("charge_allowed", False)
    if allowed and cvl is not None and cvl > 0 and ccl is not None and ccl > 0:
        return ChargerCommand(
            True,
            round(_clip(cvl, cfg.max_voltage_v), 1),
            round(_clip(ccl, cfg.max_current_a), 1),
        )
    return ChargerCommand(False, round(_clip(cvl or 0.0, cfg.max_voltage_v), 1), 0.0)


def status_points(values: dict[str, Any]) -> dict[str, float | int | bool | str]:
    """Turn a decoded CHARGER_Status into `charger.*` points."""
    out: dict[str, float | int | bool | str] = {}
    for sig, point in STATUS_POINTS.items():
        v = values.get(sig, 0)
        out[point] = round(float(v), 1) if sig.startswith("Output") else bool(v)
    out["charger.fault"] = any(bool(values.get(s, 0)) for s in FAULT_SIGNALS)
    return out
