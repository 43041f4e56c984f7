"""Decider: the reason words of every relay function and signal (docs/protections.md). Pure."""

from __future__ import annotations

from typing import Any

from gateway.control.balancing import Balancing
from gateway.control.contactors import Blocks, Contactors
from gateway.control.measure import CHARGER_CONNECTED_POINT
from gateway.control.switching import ContactorControl
from gateway.control.thermal import Thermal


def _contactor(
    now_s: float, closed: bool, block: list[str], why: str, ctl: ContactorControl, hold: list[str]
) -> list[str]:
    if closed:
        wait = ctl.waiting(now_s)
        return [why] + ([wait] if wait else [])
    if block:
        return list(block)
    if hold:
        return list(hold)
    wait = ctl.waiting(now_s)
    return [wait] if wait else [f"no_{why}"]


def decide_reasons(
    now_s: float,
    *,
    c: Contactors,
    b: Blocks,
    charge_ctl: ContactorControl,
    discharge_ctl: ContactorControl,
    end_of_charge: bool,
    end_of_charge_v: float,
    power_down: bool,
    thermal: Thermal,
    heater_cfg: Any,
    cooler_cfg: Any,
    heater_level: bool,
    cooler_level: bool,
    balancing: Balancing,
    critical: list[str],
    active: list[str],
    charger_connected: bool,
    charger_override: bool,
    charger_input: bool,
    soc: float | None,
    current_a: float | None,
    low_soc: bool,
    high_charging_current: bool,
    go_safe_sources: list[str],
) -> dict[str, list[str]]:
    """Why each function and signal is what it is (limits and indicators are added later)."""
    r: dict[str, list[str]] = {}
    r["charge_contactor"] = _contactor(
        now_s, c.charge_closed, b.charge, c.charge.why, charge_ctl, b.pending_charge
    )
    if c.allow:
        r["allow_charging"] = [c.charge.why]
    elif not c.charge_closed:
        r["allow_charging"] = r["charge_contactor"]
    elif end_of_charge:
        r["allow_charging"] = ["end_of_charge"]
    else:
        r["allow_charging"] = ["power_down_request" if power_down else f"no_{c.charge.why}"]
    r["discharge_contactor"] = _contactor(
        now_s, c.discharge_closed, b.discharge, c.discharge.why, discharge_ctl, b.pending_discharge
    )
    r["charge_allowed"] = r["allow_charging"]
    r["discharge_allowed"] = r["discharge_contactor"]
    h, k = heater_cfg, cooler_cfg
    r["heater"] = (
        [f"coldest_cell_below_{h.min:g}C"]
        if thermal.heater_on
        else thermal.heater_off
        if heater_level
        else ["disabled"]
        if not h.enable
        else ["temperature_unknown"]
        if thermal.tmin is None
        else [f"coldest_cell_above_{h.min:g}C"]
    )
    r["cooler"] = (
        [f"hottest_cell_above_{k.max:g}C"]
        if thermal.cooler_on
        else thermal.cooler_off
        if cooler_level
        else ["disabled" if not k.enable else "not_needed"]
    )
    on = any(balancing.masks.values())
    r["balancing"] = (
        [f"board_{bd}" for bd, mk in balancing.masks.items() if mk]
        if on
        else balancing.blocked or ["no_cell_above_thresholds"]
    ) + [f"hot_board_{bd}" for bd in sorted(balancing.hot)]
    r["critical_error"] = critical
    r["any_error"] = active
    r["charger_connected"] = (
        ["override" if charger_override else "input" if charger_input else CHARGER_CONNECTED_POINT]
        if charger_connected
        else ["override"]
        if charger_override
        else []
    )
    # a signal lists reasons only while it holds
    r["low_soc"] = (
        ([] if not low_soc else ["soc_unknown"])
        if soc is None
        else [f"soc {soc * 100:.1f} %"]
        if low_soc
        else []
    )
    r["high_charging_current"] = (
        [f"current {current_a:.1f} A"] if current_a is not None and high_charging_current else []
    )
    r["end_of_charge"] = [f"cell_above_{end_of_charge_v:g}V"] if end_of_charge else []
    r["go_safe"] = go_safe_sources
    return r
