"""The inverter battery protocol (Pylontech-compatible family), sans-IO.

`InverterPublisher.frames(state, now_s)` returns the frame set for one period, built from the
engine's decisions in `state.control` and the measurements. See docs/protocols/inverter-can.md
for scaling, sources, profiles and the traps each rule below avoids.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

from gateway import __version__
from gateway.adapters.can.config import CanInverterSection
from gateway.adapters.can.dbc import Frame, encode, shipped, text_raw
from gateway.core.state import GatewayState

# The frames Victron and SMA both read (0x351-0x35F, alarms as 0x35A pairs).
_PAIR_ALARM_FRAMES: tuple[str, ...] = (
    "BMS_Limits",
    "BMS_SocSoh",
    "BMS_Measurements",
    "BMS_Alarms",
    "BMS_Manufacturer",
    "BMS_BatteryInfo",
)

PROFILES: dict[str, tuple[str, ...]] = {
    "pylon": (
        "BMS_Limits",
        "BMS_SocSoh",
        "BMS_Measurements",
        "BMS_ProtectionFlags",
        "BMS_Request",
        "BMS_Manufacturer",
    ),
    "victron": (
        *_PAIR_ALARM_FRAMES,
        "BMS_Name1",
        "BMS_Name2",
        "BMS_ModuleCounts",
        "BMS_CellExtremes",
        "BMS_MinCellVoltageId",
        "BMS_MaxCellVoltageId",
        "BMS_MinCellTemperatureId",
        "BMS_MaxCellTemperatureId",
    ),
    "sma": _PAIR_ALARM_FRAMES,
}

# "System error / BMS internal" sits on byte 1 bit 7 for some receivers (Battery-Emulator,
# JK-BMSToPylontechCAN) and on byte 1 bit 3 for others (OpenDTU-OnBattery, a public Pylontech
# DBC): both bits are always set together.
SYSTEM_ERROR = ("ProtSystemError", "ProtSystemErrorAlt")

# Our error names -> 0x359 (Pylon) flag signals. Errors not listed set SYSTEM_ERROR.
PYLON_ALARMS: dict[str, tuple[str, ...]] = {
    "cell_overvoltage": ("ProtOverVoltage",),
    "cell_undervoltage": ("ProtUnderVoltage",),
    "high_temperature_charge": ("ProtOverTemperature",),
    "high_temperature_discharge": ("ProtOverTemperature",),
    "low_temperature_charge": ("ProtUnderTemperature",),
    "low_temperature_discharge": ("ProtUnderTemperature",),
    "overcurrent_discharge": ("ProtDischargeOverCurrent",),
    "overcurrent_charge": ("ProtChargeOverCurrent",),
    "logic_offline": (*SYSTEM_ERROR, "WarnInternalCommFault"),
}

# Our error names -> 0x35A (Victron/SMA) alarm pairs. Errors not listed set AlarmBmsInternal.
PAIR_ALARMS: dict[str, str] = {
    "cell_overvoltage": "AlarmHighVoltage",
    "cell_undervoltage": "AlarmLowVoltage",
    "high_temperature_discharge": "AlarmHighTemperature",
    "low_temperature_discharge": "AlarmLowTemperature",
    "high_temperature_charge": "AlarmHighTemperatureCharge",
    "low_temperature_charge": "AlarmLowTemperatureCharge",
    "overcurrent_discharge": "AlarmHighCurrent",
    "overcurrent_charge": "AlarmHighChargeCurrent",
    "contactor_feedback": "AlarmContactor",
    "cell_imbalance": "AlarmCellImbalance",
}
# Alarm pairs we fill in (everything else is sent as 0 = not supported).
SUPPORTED_PAIRS = (
    "AlarmGeneral",
    "AlarmHighVoltage",
    "AlarmLowVoltage",
    "AlarmHighTemperature",
    "AlarmLowTemperature",
    "AlarmHighTemperatureCharge",
    "AlarmLowTemperatureCharge",
    "AlarmHighCurrent",
    "AlarmHighChargeCurrent",
    "AlarmContactor",
    "AlarmBmsInternal",
    "AlarmCellImbalance",
    "WarnHighChargeCurrent",
)
PAIR_NOT_SUPPORTED = 0
PAIR_ACTIVE = 1
PAIR_OK = 2


def alarm_pairs(errors: list[str], signals: dict[str, bool]) -> dict[str, int]:
    """Map active errors (and warning signals) to 0x35A 2-bit pair values."""
    values = dict.fromkeys(SUPPORTED_PAIRS, PAIR_OK)
    for err in errors:
        values[PAIR_ALARMS.get(err, "AlarmBmsInternal")] = PAIR_ACTIVE
    if errors:
        values["AlarmGeneral"] = PAIR_ACTIVE
    if signals.get("high_charging_current"):
        values["WarnHighChargeCurrent"] = PAIR_ACTIVE
    return values


def pylon_flags(errors: list[str], signals: dict[str, bool]) -> dict[str, int]:
    """Map active errors (and warning signals) to 0x359 flag bits."""
    values: dict[str, int] = {}
    for err in errors:
        for sig in PYLON_ALARMS.get(err, SYSTEM_ERROR):
            values[sig] = 1
    if signals.get("high_charging_current"):
        values["WarnChargeHighCurrent"] = 1
    return values


def firmware_version(version: str = __version__) -> tuple[int, int]:
    """Return (major, minor) of a version string for 0x35F (bytes 2 and 3, "major.minor")."""
    parts: list[int] = []
    for part in version.split(".")[:2]:
        digits = "".join(itertools.takewhile(str.isdigit, part))
        parts.append(min(int(digits), 255) if digits else 0)
    major, minor = [*parts, 0, 0][:2]
    return major, minor


def _floor1(value: float) -> float:
    """Round down to 0.1 (a limit rounded up could exceed what the engine allows)."""
    return math.floor(value * 10 + 1e-6) / 10


@dataclass
class Limits:
    """The limits one 0x351 frame carries, after every trap rule."""

    cvl_v: float
    ccl_a: float
    dcl_a: float


def limits_for(state: GatewayState, cfg: CanInverterSection) -> Limits | None:
    """Return the limits to send, or None when nothing safe can be sent yet.

    Rules (docs/protocols/inverter-can.md, traps): CVL is never 0; charging stops by CVL =
    pack voltage (never above the engine's CVL) and CCL = 0; without engine limits both
    currents are 0; zero currents are sent as `zero_current_a`.
    """
    control = state.control
    pack_v = state.pack_voltage_v
    cvl = control.limits.get("cvl_v")
    ccl = control.limits.get("ccl_a")
    dcl = control.limits.get("dcl_a")
    charge = control.signals.get("charge_allowed", False)
    discharge = control.signals.get("discharge_allowed", False)
    if cvl is None or cvl < 1.0 or ccl is None or dcl is None:
        if pack_v is None or pack_v < 1.0:
            return None
        return Limits(_floor1(pack_v), cfg.zero_current_a, cfg.zero_current_a)
    if not charge or ccl <= 0:
        stop_v = cvl if pack_v is None or pack_v < 1.0 else min(cvl, pack_v)
        cvl_out, ccl_out = stop_v, cfg.zero_current_a
    else:
        cvl_out, ccl_out = cvl, max(ccl, cfg.zero_current_a)
    dcl_out = max(dcl, cfg.zero_current_a) if discharge and dcl > 0 else cfg.zero_current_a
    return Limits(max(_floor1(cvl_out), 0.1), _floor1(ccl_out), _floor1(dcl_out))


@dataclass
class _Extremes:
    min_v: tuple[float, str] | None = None
    max_v: tuple[float, str] | None = None
    min_t: tuple[float, str] | None = None
    max_t: tuple[float, str] | None = None


def _extremes(state: GatewayState) -> _Extremes:
    out = _Extremes()
    for b in state.online_boards():
        for i, v in enumerate(b.cell_voltages_v, 1):
            tag = f"b{b.board}c{i}"
            if out.min_v is None or v < out.min_v[0]:
                out.min_v = (v, tag)
            if out.max_v is None or v > out.max_v[0]:
                out.max_v = (v, tag)
        for i, t in enumerate(b.temperatures_c, 1):
            if t is None:
                continue
            tag = f"b{b.board}t{i}"
            if out.min_t is None or t < out.min_t[0]:
                out.min_t = (t, tag)
            if out.max_t is None or t > out.max_t[0]:
                out.max_t = (t, tag)
    return out


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


class InverterPublisher:
    """Builds the inverter frame set; keeps the 'pack full' latch for withheld 100 % SOC."""

    def __init__(self, cfg: CanInverterSection) -> None:
        self.cfg = cfg
        self.db = shipped("inverter")
        self.full = False

    def reported_soc_pct(self, state: GatewayState) -> float | None:
        """Return the SOC to report (0..100), applying `withhold_full_soc`."""
        soc = state.control.soc
        if soc is None:
            return None
        pct = _clamp(soc * 100.0, 0.0, 100.0)
        if not self.cfg.withhold_full_soc:
            return pct
        vmax = state.cell_voltage_max_v
        if pct >= 99.5 and vmax is not None and vmax >= self.cfg.full_cell_voltage_v:
            self.full = True
        elif pct < 98.0:
            self.full = False
        return pct if self.full else min(pct, 99.0)

    def frames(self, state: GatewayState) -> list[Frame]:
        """Return the profile's frames for this period (frames without data are left out).

        Nothing at all before the engine's first complete valid scan: a limit or a SOC
        guessed from partial data (e.g. a discharge cut-off of 0 cells x 2.8 V = 0 V) is
        something an inverter would act on; silence reads as "battery absent" instead.
        """
        if not state.control.first_valid_scan:
            return []
        out: list[Frame] = []
        for name in PROFILES[self.cfg.profile]:
            values = self._values(name, state)
            if values is not None:
                out.append(encode(self.db, name, values))
        return out

    def _values(self, name: str, state: GatewayState) -> dict[str, float | int] | None:
        cfg = self.cfg
        control = state.control
        errors = list(control.errors_active)
        signals = control.signals
        match name:
            case "BMS_Limits":
                lim = limits_for(state, cfg)
                if lim is None:
                    return None
                cells = len(state.cell_voltages_v())
                dvl = cfg.discharge_voltage_v or cells * cfg.discharge_cell_voltage_v
                return {
                    "ChargeVoltageLimit": lim.cvl_v,
                    "ChargeCurrentLimit": _clamp(lim.ccl_a, 0, 3276.7),
                    "DischargeCurrentLimit": _clamp(lim.dcl_a, 0, 3276.7),
                    "DischargeVoltageLimit": _clamp(_floor1(dvl), 0, 6553.5),
                }
            case "BMS_SocSoh":
                pct = self.reported_soc_pct(state)
                if pct is None:
                    return None
                return {
                    "Soc": round(pct),
                    "Soh": round(cfg.soh_pct),
                    "SocHighRes": round(pct, 2),
                }
            case "BMS_Measurements":
                pack_v = state.pack_voltage_v
                if pack_v is None:
                    return None
                temps = state.temperatures_c()
                return {
                    "PackVoltage": _clamp(round(pack_v, 2), -327.68, 327.67),
                    "PackCurrent": _clamp(round(state.current_a or 0.0, 1), -3276.8, 3276.7),
                    "PackTemperature": round(sum(temps) / len(temps), 1) if temps else 0.0,
                }
            case "BMS_ProtectionFlags":
                return {
                    **pylon_flags(errors, signals),
                    "ModuleCount": cfg.module_count,
                    "MarkerP": ord("P"),
                    "MarkerN": ord("N"),
                }
            case "BMS_Request":
                return {
                    "ChargeEnable": int(bool(signals.get("charge_allowed"))),
                    "DischargeEnable": int(bool(signals.get("discharge_allowed"))),
                    "ForceChargeI": int("cell_undervoltage" in errors),
                }
            case "BMS_Manufacturer":
                return {"Manufacturer": text_raw(cfg.manufacturer)}
            case "BMS_Alarms":
                return dict(alarm_pairs(errors, signals))
            case "BMS_BatteryInfo":
                major, minor = firmware_version()
                return {
                    "BatteryModel": 0,
                    "FirmwareMajor": major,
                    "FirmwareMinor": minor,
                    "CapacityAh": round(cfg.capacity_ah),
                }
            case "BMS_Name1":
                return {"Text": text_raw(cfg.bms_name[:8])}
            case "BMS_Name2":
                return {"Text": text_raw(cfg.bms_name[8:16])}
            case "BMS_ModuleCounts":
                total = len(state.boards)
                online = state.boards_online
                return {
                    "ModulesOk": online,
                    "ModulesBlockingCharge": 0 if signals.get("charge_allowed") else online,
                    "ModulesBlockingDischarge": 0 if signals.get("discharge_allowed") else online,
                    "ModulesOffline": total - online,
                }
            case "BMS_CellExtremes":
                ex = _extremes(state)
                if ex.min_v is None or ex.max_v is None:
                    return None
                return {
                    "MinCellVoltage": round(ex.min_v[0], 3),
                    "MaxCellVoltage": round(ex.max_v[0], 3),
                    "MinCellTemperature": round(ex.min_t[0]) if ex.min_t else -273,
                    "MaxCellTemperature": round(ex.max_t[0]) if ex.max_t else -273,
                }
            case (
                "BMS_MinCellVoltageId"
                | "BMS_MaxCellVoltageId"
                | "BMS_MinCellTemperatureId"
                | "BMS_MaxCellTemperatureId"
            ):
                ex = _extremes(state)
                which = {
                    "BMS_MinCellVoltageId": ex.min_v,
                    "BMS_MaxCellVoltageId": ex.max_v,
                    "BMS_MinCellTemperatureId": ex.min_t,
                    "BMS_MaxCellTemperatureId": ex.max_t,
                }[name]
                return None if which is None else {"Text": text_raw(which[1])}
        return None
