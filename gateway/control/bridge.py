"""Bridge mode: the bridged board's own SOC and current limits, while they are fresh.

In bridge mode the gateway drives no relay; it reports what the bridged board says. Its
SOC wins over the own estimate and its CCL/DCL over the computed limits for as long as
the point was updated within `soc.bridge_timeout_s`.
"""

from __future__ import annotations

import math

from gateway.core.state import GatewayState

# The bridged board's own SOC (percent), in order of preference (the Modbus REAL32 before
# the CAN TPDO1 whole percent).
BRIDGED_SOC_POINTS = ("main2x.soc_pct", "bms_main.soc_pct")
# The bridged board's current limits (Modbus registers 0x219F/0x21A1).
BRIDGED_LIMIT_POINTS = (
    ("ccl_a", "ccl", ("main2x.charge_current_limit_a",)),
    ("dcl_a", "dcl", ("main2x.discharge_current_limit_a",)),
)


def bridged_soc(state: GatewayState, now_s: float, timeout_s: float) -> tuple[float, str] | None:
    """The bridged board's SOC (0..1) and its point, when present and fresh."""
    for point in BRIDGED_SOC_POINTS:
        value = state.points.get(point)
        at = state.point_updated_s.get(point)
        if isinstance(value, bool) or not isinstance(value, int | float) or at is None:
            continue
        if not math.isfinite(value) or not 0.0 <= value <= 100.0 or now_s - at > timeout_s:
            continue
        return float(value) / 100.0, point
    return None


def bridged_limits(
    state: GatewayState, now_s: float, timeout_s: float
) -> list[tuple[str, str, tuple[float, str]]]:
    """The bridged board's CCL/DCL as (key, reason name, (A, point)), the fresh ones."""
    out = []
    for key, name, points in BRIDGED_LIMIT_POINTS:
        for point in points:
            value = state.points.get(point)
            at = state.point_updated_s.get(point)
            if isinstance(value, bool) or not isinstance(value, int | float) or at is None:
                continue
            if math.isfinite(value) and value >= 0 and now_s - at <= timeout_s:
                out.append((key, name, (float(value), point)))
                break
    return out
