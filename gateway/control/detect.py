"""The detector: measurements -> one verdict per protection. Pure and stateless.

Verdicts: `breach` (beyond the trip limit), `band` (between trip and release: keeps the
present state), `ok` (within the release limit) and `unknown` (some data it needs is missing,
stale or implausible). A protection judges the data it has: a breach among the known
values is a breach; otherwise unknown data makes the verdict `unknown`, carrying the root
causes (the diagnosis errors that own the missing data: `logic_offline`,
`temperature_sensor_fault`, `current_sensor_fault`, `cell_voltage_implausible`,
`cell_count_mismatch`). `detect()` then keeps `unknown` (the debouncer holds the present
state: no set, clear or latch on missing data) only when every cause's diagnosis is enabled;
data without a diagnosis, or whose diagnosis is disabled, counts as a breach, so disabling a
diagnosis never makes the pack less safe. Diagnosis checks judge only the boards that answer;
a silent board is `logic_offline`'s job.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gateway.control.measure import CURRENT_FAULT, Measurements
from gateway.control.table import PROTECTIONS, Check, Params, ProtectionRow

State = Literal["breach", "band", "ok", "unknown"]

FEEDBACK_INPUTS = {
    "charge_contactor_feedback": "charge_contactor",
    "discharge_contactor_feedback": "discharge_contactor",
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one protection sees this cycle."""

    state: State
    value: float | None = None
    detail: str = ""
    causes: frozenset[str] = frozenset()  # unknown: the root-cause errors of the missing data
    at_s: float | None = None  # clock time of the reading judged (None: now)


def _above(value: float, p: Params, unit: str) -> Verdict:
    assert p.threshold is not None
    tol = p.threshold if p.tolerant is None else p.tolerant
    text = f"{value:.4g} {unit}".strip()
    if value > p.threshold:
        return Verdict("breach", value, f"{text} > {p.threshold:g}")
    if value <= tol:
        return Verdict("ok", value, text)
    return Verdict("band", value, text)


def _below(value: float, p: Params, unit: str) -> Verdict:
    assert p.threshold is not None
    tol = p.threshold if p.tolerant is None else p.tolerant
    text = f"{value:.4g} {unit}".strip()
    if value < p.threshold:
        return Verdict("breach", value, f"{text} < {p.threshold:g}")
    if value >= tol:
        return Verdict("ok", value, text)
    return Verdict("band", value, text)


def _absent(m: Measurements, what: str, causes: frozenset[str]) -> Verdict:
    """Data never received: fine in bridge mode, pending during the start-up grace."""
    if not m.controller:
        return Verdict("ok")
    if m.grace:
        return Verdict("band", None, f"waiting for {what}")
    return Verdict("unknown", None, f"no {what}", causes)


def _judge(m: Measurements, known: Verdict | None, causes: frozenset[str], what: str) -> Verdict:
    """Combine the verdict on the known values with what is unknown.

    A breach among the known values stands; else unknown data (its causes) makes the verdict
    unknown; else the start-up grace holds; else the known verdict.
    """
    if known is not None and known.state == "breach":
        return known
    if causes:
        return Verdict("unknown", None, f"{what} unknown ({', '.join(sorted(causes))})", causes)
    if m.waiting:
        return Verdict("band", None, "waiting for the first scan")
    if known is None:
        return _absent(m, what, causes)
    return known


def _limit(row: ProtectionRow, p: Params, values: list[float], pick: str) -> Verdict | None:
    if not values:
        return None
    value = max(values) if pick == "max" else min(values)
    return _above(value, p, row.unit) if row.limit == "max" else _below(value, p, row.unit)


def check_cell_voltage(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Highest or lowest known cell against its limit."""
    known = _limit(row, p, m.cells(), "max" if row.limit == "max" else "min")
    return _judge(m, known, m.cell_causes, "cell data")


def check_temperature(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Coldest or hottest known cell temperature against its limit."""
    known = _limit(row, p, m.known_temperatures, "max" if row.check == "temperature_max" else "min")
    return _judge(m, known, m.temperature_causes, "temperature")


def check_current(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Charge or discharge current magnitude against its maximum."""
    causes = frozenset({CURRENT_FAULT})
    if m.current_a is None:
        if not m.current_ever:
            return _absent(m, "current data", causes)
        return Verdict("unknown", None, "current stale", causes)
    i = m.current_a if row.check == "current_charge" else -m.current_a
    return _above(max(0.0, i), p, "A")


def check_input(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """An input signal named like the error is active."""
    del p
    active = m.signal(row.name)
    if active is None:
        return (
            Verdict("band", None, "waiting for inputs")
            if m.grace
            else Verdict("unknown", None, "input stale")
        )
    return Verdict("breach", 1.0, "input active") if active else Verdict("ok", 0.0)


def check_board_silent(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """A board silent for longer than the set delay (the delay is applied here)."""
    del row
    silent = [
        b.board
        for b in m.boards
        if (m.controller or b.scanned) and b.silent_s >= p.set_delay_s - 1e-9 and not b.answering
    ]
    if silent:
        return Verdict("breach", float(len(silent)), "board " + ",".join(map(str, silent)))
    if all(b.answering or (not m.controller and not b.scanned) for b in m.boards):
        return Verdict("ok")
    return Verdict("band")


def check_sensor_fault(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """A missing, shorted or implausible (outside `min`..`max`) sensor on an answering board."""
    del row
    lo = -math.inf if p.threshold is None else p.threshold
    hi = math.inf if p.tolerant is None else p.tolerant
    bad = []
    for b in m.answering_boards:
        temps = b.temperatures_c
        if len(temps) < m.sensors_per_board or any(t is None or not lo <= t <= hi for t in temps):
            bad.append(b.board)
    if bad:
        return Verdict("breach", float(len(bad)), "board " + ",".join(map(str, bad)))
    return Verdict("ok")


def check_cell_count(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Cell count per answering board, and the pack total against `pack.cells_in_series`."""
    del row, p
    bad = [
        f"{b.board} ({len(b.cell_voltages_v)} cells)" for b in m.answering_boards if not b.count_ok
    ]
    if bad:
        return Verdict(
            "breach", None, f"board {', '.join(bad)}, expected {m.cells_per_board} per board"
        )
    if m.cells_in_series is not None and m.cells_complete:
        total = len(m.cells())
        if total != m.cells_in_series:
            return Verdict("breach", total, f"{total} cells, expected {m.cells_in_series}")
    return Verdict("ok")


def check_cell_plausible(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """A cell outside the plausible window `min`..`max` (or a cell front-end fault)."""
    del row, p  # the window is applied by measure() (it also makes the board unknown)
    bad = [b.board for b in m.answering_boards if b.cell_fault]
    if not bad:
        return Verdict("ok")
    lo, hi = m.cell_window_v
    parts = []
    for b in m.answering_boards:
        if not b.cell_fault:
            continue
        odd = [
            f"cell {i} {v:.3f} V"
            for i, v in enumerate(b.cell_voltages_v, start=1)
            if not (math.isfinite(v) and lo <= v <= hi)
        ]
        parts.append(f"board {b.board}: " + (", ".join(odd) or "cell measurement fault"))
    return Verdict("breach", float(len(bad)), "; ".join(parts))


def check_current_sensor(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Current missing or stale, or the sensor reference outside its plausible window."""
    del row
    if m.current_a is None:
        if not m.current_ever and (not m.controller or m.grace):
            return _absent(m, "current data", frozenset())
        return Verdict("breach", None, "current missing or stale")
    lo, hi, vref = p.threshold, p.tolerant, m.vref_v
    if vref is not None and lo is not None and hi is not None and not lo <= vref <= hi:
        return Verdict("breach", vref, f"Vref {vref:.3f} V")
    return Verdict("ok", m.vref_v)


def check_board_temperature(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Hottest Logic board against its maximum."""
    temps = [b.board_temperature_c for b in m.fresh_boards]
    if any(t is None for t in temps):
        return Verdict("unknown", None, "board temperature missing")  # no diagnosis: a breach
    known = _limit(row, p, [t for t in temps if t is not None], "max")
    return _judge(m, known, m.cell_causes, "board temperature")


def check_humidity(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Enclosure humidity against its maximum (no diagnosis: unknown counts as a breach)."""
    if m.humidity_pct is None:
        if not m.humidity_ever:
            return _absent(m, "humidity data", frozenset())
        return Verdict("unknown", None, "humidity missing or stale")
    return _above(m.humidity_pct, p, row.unit)


def check_cell_spread(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """Max - min of the known cell voltages against its maximum."""
    cells = m.cells()
    known = _above(max(cells) - min(cells), p, row.unit) if cells else None
    return _judge(m, known, m.cell_causes, "cell data")


def check_contactor_feedback(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """A feedback input that disagrees with its relay's command."""
    del row, p
    for signal, function in FEEDBACK_INPUTS.items():
        if signal not in m.inputs or function not in m.relay_commands:
            continue
        fb = m.inputs[signal]
        if fb is None:
            return Verdict("band") if m.grace else Verdict("unknown", None, f"{signal} stale")
        if fb != m.relay_commands[function]:
            cmd = "closed" if m.relay_commands[function] else "open"
            return Verdict("breach", None, f"{function} commanded {cmd}, feedback disagrees")
    return Verdict("ok")


# Charger status points (published by the CAN charger code, docs/can.md) that mean a fault.
CHARGER_FAULT_POINTS = ("charger.fault", "charger.hardware_failure", "charger.over_temperature")


def check_charger_fault(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """The charger's last status reports a failure (no charger status at all: fine)."""
    del row, p
    flags = [k.removeprefix("charger.") for k in CHARGER_FAULT_POINTS if m.points.get(k) is True]
    if flags:
        return Verdict("breach", 1.0, "charger reports " + ", ".join(flags))
    return Verdict("ok", 0.0)


def check_fault_report(m: Measurements, row: ProtectionRow, p: Params) -> Verdict:
    """A fault reported to the engine by the layer that saw it (a driver, the state writer)."""
    del p
    reason = m.faults.get(row.name)
    if reason:
        return Verdict("breach", 1.0, reason)
    return Verdict("ok", 0.0)


CHECKS: dict[Check, Callable[[Measurements, ProtectionRow, Params], Verdict]] = {
    "cell_voltage_max": check_cell_voltage,
    "cell_voltage_min": check_cell_voltage,
    "current_charge": check_current,
    "current_discharge": check_current,
    "temperature_min": check_temperature,
    "temperature_max": check_temperature,
    "input_active": check_input,
    "board_silent": check_board_silent,
    "sensor_fault": check_sensor_fault,
    "cell_count": check_cell_count,
    "current_sensor": check_current_sensor,
    "board_temperature_max": check_board_temperature,
    "humidity_max": check_humidity,
    "cell_spread": check_cell_spread,
    "contactor_feedback": check_contactor_feedback,
    "charger_fault": check_charger_fault,
    "fault_report": check_fault_report,
    "cell_plausible": check_cell_plausible,
}

# Rows whose check applies the set delay itself (the debouncer then sets at once).
SELF_TIMED = frozenset({"logic_offline"})


def _root_cause(v: Verdict, params: dict[str, Params]) -> Verdict:
    """Unknown data holds the protection only while every diagnosis that owns it is on."""
    if v.state != "unknown":
        return v
    if v.causes and all(params[c].enable for c in v.causes):
        return v
    return Verdict("breach", v.value, v.detail, v.causes, v.at_s)


# Which reading each check judges: its timestamp starts the set/clear delays.
DATA_TIME: dict[Check, str] = {
    **dict.fromkeys(
        (
            "cell_voltage_max",
            "cell_voltage_min",
            "temperature_min",
            "temperature_max",
            "sensor_fault",
            "cell_count",
            "board_temperature_max",
            "cell_spread",
            "cell_plausible",
        ),
        "cells_at_s",
    ),
    **dict.fromkeys(("current_charge", "current_discharge", "current_sensor"), "current_at_s"),
    **dict.fromkeys(("input_active", "contactor_feedback"), "inputs_at_s"),
    "humidity_max": "humidity_at_s",
}


def detect(m: Measurements, params: dict[str, Params]) -> dict[str, Verdict]:
    """Return the verdict of every enabled protection (see the module doc for `unknown`)."""
    out = {}
    for row in PROTECTIONS:
        if not params[row.name].enable:
            continue
        v = _root_cause(CHECKS[row.check](m, row, params[row.name]), params)
        if (key := DATA_TIME.get(row.check)) is not None:
            v = Verdict(v.state, v.value, v.detail, v.causes, getattr(m, key))
        out[row.name] = v
    return out
