"""Cell chemistry data: open-circuit-voltage curves and nominal limits, as tables.

Shared by the simulator (to produce cell voltages) and the SOC estimator (to recalibrate
after rest). Curves are (soc 0..1, volts) points, interpolated linearly.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Literal

Chemistry = Literal["lfp", "nmc"]

OCV_CURVES: dict[str, tuple[tuple[float, float], ...]] = {
    # Typical LFP rest voltage at 25 °C: steep ends, a long flat plateau in between.
    "lfp": (
        (0.00, 2.500),
        (0.02, 2.900),
        (0.05, 3.100),
        (0.10, 3.200),
        (0.20, 3.250),
        (0.30, 3.270),
        (0.40, 3.285),
        (0.50, 3.295),
        (0.60, 3.300),
        (0.70, 3.310),
        (0.80, 3.325),
        (0.90, 3.335),
        (0.95, 3.345),
        (0.98, 3.400),
        (1.00, 3.500),
    ),
    # Typical NMC rest voltage at 25 °C.
    "nmc": (
        (0.00, 3.000),
        (0.05, 3.300),
        (0.10, 3.450),
        (0.20, 3.550),
        (0.30, 3.620),
        (0.40, 3.680),
        (0.50, 3.740),
        (0.60, 3.820),
        (0.70, 3.900),
        (0.80, 3.980),
        (0.90, 4.080),
        (1.00, 4.180),
    ),
}


def ocv_v(chemistry: str, soc: float) -> float:
    """Return the open-circuit voltage of a cell at `soc` (clamped to 0..1)."""
    curve = OCV_CURVES[chemistry]
    s = min(1.0, max(0.0, soc))
    socs = [p[0] for p in curve]
    i = bisect.bisect_right(socs, s)
    if i <= 0:
        return curve[0][1]
    if i >= len(curve):
        return curve[-1][1]
    (s0, v0), (s1, v1) = curve[i - 1], curve[i]
    return v0 + (v1 - v0) * (s - s0) / (s1 - s0)


def soc_from_ocv(chemistry: str, voltage_v: float) -> float:
    """Invert the OCV curve (monotonic), clamped to 0..1."""
    curve = OCV_CURVES[chemistry]
    if voltage_v <= curve[0][1]:
        return 0.0
    if voltage_v >= curve[-1][1]:
        return 1.0
    for (s0, v0), (s1, v1) in itertools.pairwise(curve):
        if v0 <= voltage_v <= v1:
            return s0 + (s1 - s0) * (voltage_v - v0) / (v1 - v0)
    return 1.0
