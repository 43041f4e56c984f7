"""BMS Main 2.x CANopen TPDO1/TPDO2 (facts doc section 6.1), sans-IO.

Controller mode: `tpdo_frames(state, node_id)` builds the two frames from the gateway's state.
Bridge mode: `tpdo1_points`/`tpdo2_points` turn a real board's frames into points.
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.can.dbc import TPDO1_BASE, TPDO2_BASE, Frame, encode, shipped
from gateway.core.state import GatewayState

# TPDO1 byte 0, "DI signals 1" (bits 0-7), DBC signal -> point suffix.
INPUT_BITS: dict[str, str] = {
    "InputCover": "cover",
    "InputChargerConnected": "charger_connected",
    "InputPowerDownRequest": "power_down_request",
    "InputInhibitCharging": "inhibit_charging",
    "InputInhibitDischarging": "inhibit_discharging",
    "InputChContactorFeedback": "ch_contactor_feedback",
    "InputDchContactorFeedback": "dch_contactor_feedback",
    "InputInsulation": "insulation",
}

# TPDO2 internal-signals word: known bits (section 3.2) <-> our signal names.
INTERNAL_SIGNAL_BITS: dict[int, str] = {
    0: "low_soc",
    1: "high_charging_current",
    8: "heater",
    15: "balancing",
}

# TPDO2 errors register 1: known bits (section 5.4) <-> our error names. Bits 7 (water) and 19
# (ADC error) have no gateway error name; they stay visible in `bms_main.errors1`.
ERROR_BITS: dict[int, str] = {
    5: "battery_cover",
    6: "high_humidity",
    8: "logic_high_temperature",
    9: "logic_offline",
    12: "cell_count_mismatch",
}


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


def tpdo_frames(state: GatewayState, node_id: int) -> list[Frame]:
    """Build TPDO1 and TPDO2 for `node_id` from the state (fields without data are 0)."""
    db = shipped("bms_main_canopen")
    c = state.control
    soc = c.soc
    tmin, tmax, pack = state.temperature_min_c, state.temperature_max_c, state.pack_voltage_v
    t1 = encode(
        db,
        "TPDO1",
        {
            "InputCover": int("battery_cover" in c.errors_active),
            "InputChargerConnected": int(bool(c.signals.get("charger_connected"))),
            "PackCurrent": _clamp(round(state.current_a or 0.0, 1), -3276.8, 3276.7),
            "TemperatureMin": round(_clamp(tmin, -128, 127)) if tmin is not None else 0,
            "TemperatureMax": round(_clamp(tmax, -128, 127)) if tmax is not None else 0,
            "Soc": round(_clamp(soc * 100, 0, 100)) if soc is not None else 0,
            "PackVoltage": round(_clamp(pack, 0, 6553.5), 1) if pack is not None else 0,
        },
    )
    internal = sum(1 << bit for bit, name in INTERNAL_SIGNAL_BITS.items() if c.signals.get(name))
    errors = sum(1 << bit for bit, name in ERROR_BITS.items() if name in c.errors_active)
    t2 = encode(db, "TPDO2", {"InternalSignals": internal, "Errors1": errors})
    return [
        Frame(TPDO1_BASE + node_id, t1.data),
        Frame(TPDO2_BASE + node_id, t2.data),
    ]


def tpdo1_points(values: dict[str, Any]) -> dict[str, float | int | bool | str]:
    """Points from a decoded TPDO1 (`bms_main.*`)."""
    out: dict[str, float | int | bool | str] = {
        f"bms_main.input.{suffix}": bool(values[sig]) for sig, suffix in INPUT_BITS.items()
    }
    out["bms_main.current_a"] = round(float(values["PackCurrent"]), 1)
    out["bms_main.temperature_min_c"] = int(values["TemperatureMin"])
    out["bms_main.temperature_max_c"] = int(values["TemperatureMax"])
    out["bms_main.soc_pct"] = int(values["Soc"])
    out["bms_main.pack_voltage_v"] = round(float(values["PackVoltage"]), 1)
    return out


def tpdo2_points(values: dict[str, Any]) -> dict[str, float | int | bool | str]:
    """Points from a decoded TPDO2: raw words, known signals, and `error.<name>` flags."""
    internal = int(values["InternalSignals"])
    errors = int(values["Errors1"])
    out: dict[str, float | int | bool | str] = {
        "bms_main.internal_signals": internal,
        "bms_main.errors1": errors,
    }
    for bit, name in INTERNAL_SIGNAL_BITS.items():
        out[f"bms_main.signal.{name}"] = bool(internal >> bit & 1)
    for bit, name in ERROR_BITS.items():
        out[f"error.{name}"] = bool(errors >> bit & 1)
    return out
