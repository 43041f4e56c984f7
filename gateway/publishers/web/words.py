"""Reasons in words: what the dashboard shows for a relay, output, signal or indicator.

The engine explains each decision with short codes (`reasons` in the `state` message, e.g.
`low_temperature_charge`, `waiting_first_scan`, `blink_1hz`). This table turns them into
words; an unknown code is shown with its underscores as spaces, never as a Python repr.
"""

from __future__ import annotations

import re

from gateway.control.names import ERROR_NAMES

WORDS: dict[str, str] = {
    "charge_allowed": "charging allowed",
    "discharge_allowed": "discharging allowed",
    "waiting_first_scan": "waiting for the first complete scan of the cell boards",
    "go_safe": "go-safe requested: every relay held open",
    "mqtt": "requested over MQTT",
    "web": "requested on the dashboard",
    "input": "by a discrete input",
    "override": "overridden (Modbus/CAN point)",
    "disabled": "disabled in the configuration",
    "not_needed": "not needed",
    "temperature_unknown": "temperature unknown",
    "soc_unknown": "state of charge unknown",
    "no_cell_above_thresholds": "no cell above the balancing thresholds",
    "ramp": "ramping",
    "off": "off",
    "on": "on (follows its relay)",
    "blink_1hz": "blinking 1 Hz: engine running",
    "blink_2hz": "blinking 2 Hz: bringing up the cell boards",
    "blink_4hz": "blinking 4 Hz: a cell board is silent or stale",
    "blink_25hz": "flickering 25 Hz: cell board communication established",
    "stale_cells": "cell data stale",
    "end_of_charge": "end of charge reached",
    "charger_connected": "charger connected",
    "charger_disconnected": "charger disconnected",
    "mode_always": "always allowed (charge/discharge control mode: always)",
    "charge_request": "requested by the charge request input",
    "discharge_request": "requested by the discharge request input",
    "balancing_request": "requested by the balancing request input",
    "inhibit_charging": "charging inhibited by an input",
    "inhibit_discharging": "discharging inhibited by an input",
    "power_down_request": "power-down requested by an input",
    "derate_high_cell_voltage": "derated: a cell is near full",
    "derate_low_cell_voltage": "derated: a cell is near empty",
    "derate_high_soc": "derated: state of charge high",
    "derate_low_soc": "derated: state of charge low",
    "derate_temperature": "derated: temperature",
    "unknown_cell_voltage": "cell voltage unknown",
    "unknown_temperature": "temperature unknown",
    "low_soc": "state of charge low",
    "any_error": "an error is active",
    "critical_error": "a critical error is active",
}

ERROR_WORDS: dict[str, str] = {
    "cell_overvoltage": "a cell is over its maximum voltage",
    "cell_undervoltage": "a cell is under its minimum voltage",
    "overcurrent_charge": "charge current too high",
    "overcurrent_discharge": "discharge current too high",
    "low_temperature_charge": "too cold to charge",
    "low_temperature_discharge": "too cold to discharge",
    "high_temperature_charge": "too hot to charge",
    "high_temperature_discharge": "too hot to discharge",
    "battery_cover": "battery cover open",
    "logic_offline": "a cell board does not answer",
    "temperature_sensor_fault": "a temperature sensor is faulty",
    "cell_count_mismatch": "the cell count does not match pack.cells_in_series",
    "current_sensor_fault": "the current sensor reading is implausible",
    "logic_high_temperature": "a cell board is too hot",
    "high_humidity": "humidity too high",
    "cell_imbalance": "cells too far apart",
    "contactor_feedback": "a contactor does not follow its command",
    "charger_fault": "the charger reports a fault",
}

_TEMP = re.compile(r"^(coldest|hottest)_cell_(below|above)_(-?[\d.]+)C$")
_CELL = re.compile(r"^cell_above_([\d.]+)V$")
_BOARD = re.compile(r"^(hot_)?board_(\d+)$")
_STALE = re.compile(r"^(stale|no_data)_(board|input)_(\w+)$")

FUNCTION_STATES: dict[str, tuple[str, str]] = {
    "charge_contactor": ("charging allowed", "charging blocked"),
    "allow_charging": ("charging allowed", "charging blocked"),
    "discharge_contactor": ("discharging allowed", "discharging blocked"),
    "heater": ("heating", "heater off"),
    "cooler": ("cooling", "cooler off"),
}


def describe(code: str) -> str:
    """One reason code in words."""
    if code in WORDS:
        return WORDS[code]
    if code in ERROR_NAMES:
        return f"{ERROR_WORDS.get(code, code.replace('_', ' '))} ({code})"
    if m := _TEMP.match(code):
        return f"{m[1]} cell {m[2]} {m[3]} °C"
    if m := _CELL.match(code):
        return f"a cell is above {m[1]} V"
    if m := _STALE.match(code):
        what = "no data yet from" if m[1] == "no_data" else "stale data from"
        return f"{what} {m[2]} {m[3].replace('_', ' ')}"
    if code == "stale_current":
        return "current reading stale"
    if code.startswith("mode_"):
        return f"mode {code[5:].replace('_', ' ')}"
    if code.startswith(("ton ", "toff ")):
        which = "switch-on" if code.startswith("ton") else "switch-off"
        return f"{which} delay: {code.split(' ', 1)[1]}"
    if m := _BOARD.match(code):
        return f"board {m[2]} {'too hot' if m[1] else 'balancing'}"
    return code.replace("_", " ")


def explain(codes: list[str] | tuple[str, ...]) -> str:
    """Several reasons in words, or a dash when there is none."""
    return "; ".join(describe(c) for c in codes) if codes else "-"


def switch_state(function: str, on: bool) -> str:
    """What a relay/output of `function` being on/off means ("charging blocked")."""
    pair = FUNCTION_STATES.get(function)
    if pair is not None:
        return pair[0] if on else pair[1]
    return "on" if on else "off"
