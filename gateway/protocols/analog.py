"""Analog sensor arithmetic (pure): Hall current sensor, humidity and temperature curves.

Current sensor, LEM HASS/HTFS style: the sensor outputs `Vcs = Vref + offset + s * I / I_PN`
where `s` is the sensitivity (0.625 V at the nominal current `I_PN`). So
`I = (Vcs - Vref - zero_offset_v) * I_PN / s`, negated when the sensor is mounted inverted.
Positive current charges the pack.
"""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CurrentReading:
    """One current-sensor evaluation."""

    current_a: float | None  # None when the sensor is implausible
    fault: bool
    reason: str = ""


def current_from_volts(
    vcs_v: float,
    vref_v: float,
    *,
    nominal_current_a: float,
    sensitivity_v: float = 0.625,
    zero_offset_v: float = 0.0,
    invert: bool = False,
) -> float:
    """Return the current (A, + = charging) for a sensor output and its reference."""
    current = (vcs_v - vref_v - zero_offset_v) * nominal_current_a / sensitivity_v
    return -current if invert else current


def volts_from_current(
    current_a: float,
    vref_v: float,
    *,
    nominal_current_a: float,
    sensitivity_v: float = 0.625,
    zero_offset_v: float = 0.0,
    invert: bool = False,
) -> float:
    """Return the Vcs a sensor outputs for a current (the inverse of `current_from_volts`)."""
    signed = -current_a if invert else current_a
    return vref_v + zero_offset_v + signed * sensitivity_v / nominal_current_a


def sensor_fault(
    vcs_v: float | None,
    vref_v: float | None,
    *,
    vref_min_v: float,
    vref_max_v: float,
    vcs_min_v: float,
    vcs_max_v: float,
) -> str:
    """Return why the sensor readings are implausible, or "" when they are fine."""
    if vcs_v is None or not math.isfinite(vcs_v):
        return "vcs_unreadable"
    if vref_v is None or not math.isfinite(vref_v):
        return "vref_unreadable"
    if not vref_min_v <= vref_v <= vref_max_v:
        return "vref_out_of_window"
    if not vcs_min_v <= vcs_v <= vcs_max_v:
        return "vcs_at_rail"
    return ""


def evaluate_current(
    vcs_v: float | None,
    vref_v: float | None,
    *,
    nominal_current_a: float,
    sensitivity_v: float = 0.625,
    zero_offset_v: float = 0.0,
    invert: bool = False,
    vref_min_v: float = 2.3,
    vref_max_v: float = 2.7,
    vcs_min_v: float = 0.2,
    vcs_max_v: float = 4.8,
) -> CurrentReading:
    """Check plausibility, then convert; an implausible sensor yields no current."""
    reason = sensor_fault(
        vcs_v,
        vref_v,
        vref_min_v=vref_min_v,
        vref_max_v=vref_max_v,
        vcs_min_v=vcs_min_v,
        vcs_max_v=vcs_max_v,
    )
    if reason:
        return CurrentReading(None, True, reason)
    assert vcs_v is not None and vref_v is not None
    current = current_from_volts(
        vcs_v,
        vref_v,
        nominal_current_a=nominal_current_a,
        sensitivity_v=sensitivity_v,
        zero_offset_v=zero_offset_v,
        invert=invert,
    )
    return CurrentReading(current, False)


def zero_offset(samples: Iterable[tuple[float, float]]) -> float:
    """Return the mean Vcs - Vref over (vcs, vref) samples taken with no current flowing.

    Raises:
        ValueError: no samples, or a sample is not a finite number.
    """
    diffs = []
    for vcs, vref in samples:
        if not (math.isfinite(vcs) and math.isfinite(vref)):
            raise ValueError(f"sample ({vcs}, {vref}) is not finite")
        diffs.append(vcs - vref)
    if not diffs:
        raise ValueError("no samples")
    return sum(diffs) / len(diffs)


# --- curves -------------------------------------------------------------------------


def check_table(table: Sequence[tuple[float, float]]) -> None:
    """Validate a curve table: >= 2 rows, volts strictly increasing, values strictly monotonic.

    Raises:
        ValueError: the table is unusable (the message says why).
    """
    if len(table) < 2:
        raise ValueError("table needs at least two [volts, value] rows")
    volts = [v for v, _ in table]
    values = [x for _, x in table]
    if not all(math.isfinite(v) for v in volts + values):
        raise ValueError("table entries must be finite numbers")
    if any(b <= a for a, b in itertools.pairwise(volts)):
        raise ValueError("table volts must be strictly increasing")
    rising = all(b > a for a, b in itertools.pairwise(values))
    falling = all(b < a for a, b in itertools.pairwise(values))
    if not (rising or falling):
        raise ValueError("table values must be strictly increasing or strictly decreasing")


def interpolate(table: Sequence[tuple[float, float]], x: float) -> float | None:
    """Linear interpolation in a table of (x, y) with x increasing; None outside it."""
    xs = [p[0] for p in table]
    if not xs[0] <= x <= xs[-1]:
        return None
    i = min(bisect_right(xs, x), len(xs) - 1)
    x0, y0 = table[i - 1]
    x1, y1 = table[i]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)


def value_from_volts(
    volts: float | None,
    *,
    curve: str = "linear",
    gain: float = 1.0,
    offset: float = 0.0,
    table: Sequence[tuple[float, float]] | None = None,
    valid_min: float | None = None,
    valid_max: float | None = None,
) -> float | None:
    """Turn ADC volts into a physical value through a linear or table curve.

    Returns None when the volts are missing, outside the table, or the result falls outside
    [valid_min, valid_max] (a broken or shorted sensor).
    """
    if volts is None or not math.isfinite(volts):
        return None
    if curve == "table":
        if not table:
            return None
        value = interpolate(table, volts)
    else:
        value = volts * gain + offset
    if value is None:
        return None
    if valid_min is not None and value < valid_min:
        return None
    if valid_max is not None and value > valid_max:
        return None
    return value


def volts_from_value(
    value: float,
    *,
    curve: str = "linear",
    gain: float = 1.0,
    offset: float = 0.0,
    table: Sequence[tuple[float, float]] | None = None,
) -> float | None:
    """Return the volts a sensor outputs for `value` (the inverse curve; used by the sim ADC)."""
    if curve == "table":
        if not table:
            return None
        inverse = sorted((y, x) for x, y in table)
        return interpolate(inverse, value)
    if gain == 0:
        return None
    return (value - offset) / gain
