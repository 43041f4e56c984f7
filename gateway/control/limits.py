"""Charge voltage limit (CVL), charge and discharge current limits (CCL, DCL).

Each current limit is its configured maximum times the smallest of its derating factors
(each 0..1, piecewise linear), then ramped: a limit falls at once and rises at most
`limits.ramp_a_per_s`. The curves (documented in docs/protections.md):

- CCL by the highest cell: 1 up to `charge_derate_start_v`, linear down to
  `charge_tail_fraction` at `charge_derate_end_v`, 0 above the end-of-charge voltage.
- DCL by the lowest cell: 1 down to `discharge_derate_start_v`, linear to 0 at
  `discharge_derate_end_v`.
- Temperature: 0 beyond a protection limit, linear to 1 over `temperature_band_c` inside
  it (charge uses the charge temperature limits, discharge the discharge ones).
- SOC: CCL linear from 1 at `charge_soc_derate_start` to `charge_soc_min_fraction` at
  100 %; DCL linear from 1 at `discharge_soc_derate_start` to 0 at 0 %.
- Blocked direction, end of charge or unknown data: 0. CVL is cells x `cvl_cell_v`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def ramp_down(x: float, full_at: float, zero_at: float) -> float:
    """1 at or below `full_at`, 0 at or above `zero_at`, linear between (either direction)."""
    if full_at == zero_at:
        return 1.0 if x < zero_at else 0.0
    f = (zero_at - x) / (zero_at - full_at)
    return min(1.0, max(0.0, f))


@dataclass(frozen=True, slots=True)
class LimitInputs:
    """What the limits depend on this cycle."""

    cell_max_v: float | None
    cell_min_v: float | None
    temperature_min_c: float | None
    temperature_max_c: float | None
    soc: float | None
    charge_blocked: tuple[str, ...]  # reasons; empty = not blocked
    discharge_blocked: tuple[str, ...]
    end_of_charge: bool
    cells: int


@dataclass(frozen=True, slots=True)
class LimitParams:
    """Resolved limit settings."""

    max_charge_a: float
    max_discharge_a: float
    cvl_cell_v: float
    charge_start_v: float
    charge_end_v: float
    charge_tail: float
    discharge_start_v: float
    discharge_end_v: float
    band_c: float
    charge_t_min: float | None  # protection limits (None: protection disabled)
    charge_t_max: float | None
    discharge_t_min: float | None
    discharge_t_max: float | None
    charge_soc_start: float
    charge_soc_min: float
    discharge_soc_start: float
    ramp_a_per_s: float


def _temp_factor(
    tmin: float | None, tmax: float | None, lo: float | None, hi: float | None, band: float
) -> float | None:
    """Temperature derating; None when the temperature is unknown."""
    if tmin is None or tmax is None:
        return None
    f = 1.0
    if lo is not None:
        f = min(f, ramp_down(-tmin, -(lo + band), -lo))
    if hi is not None:
        f = min(f, ramp_down(tmax, hi - band, hi))
    return f


def target_limits(x: LimitInputs, p: LimitParams) -> tuple[dict[str, float], dict[str, list[str]]]:
    """Return the un-ramped limits and the reasons for each."""
    reasons: dict[str, list[str]] = {"cvl": [], "ccl": [], "dcl": []}
    cvl = round(x.cells * p.cvl_cell_v, 3)
    reasons["cvl"].append(f"{x.cells} cells x {p.cvl_cell_v:g} V")

    # charge
    ccl_f: dict[str, float] = {}
    if x.cell_max_v is None:
        ccl_f["unknown_cell_voltage"] = 0.0
    else:
        f = ramp_down(x.cell_max_v, p.charge_start_v, p.charge_end_v)
        ccl_f["derate_high_cell_voltage"] = p.charge_tail + (1 - p.charge_tail) * f
    tf = _temp_factor(
        x.temperature_min_c, x.temperature_max_c, p.charge_t_min, p.charge_t_max, p.band_c
    )
    ccl_f["derate_temperature" if tf is not None else "unknown_temperature"] = tf or 0.0
    if x.soc is not None:
        f = ramp_down(x.soc, p.charge_soc_start, 1.0)
        ccl_f["derate_high_soc"] = p.charge_soc_min + (1 - p.charge_soc_min) * f
    if x.end_of_charge:
        ccl_f["end_of_charge"] = 0.0
    ccl = p.max_charge_a * min(ccl_f.values())
    reasons["ccl"] = [k for k, v in ccl_f.items() if v < 1.0]
    if x.charge_blocked:
        ccl = 0.0
        reasons["ccl"] = [*x.charge_blocked]

    # discharge
    dcl_f: dict[str, float] = {}
    if x.cell_min_v is None:
        dcl_f["unknown_cell_voltage"] = 0.0
    else:
        dcl_f["derate_low_cell_voltage"] = ramp_down(
            -x.cell_min_v, -p.discharge_start_v, -p.discharge_end_v
        )
    tf = _temp_factor(
        x.temperature_min_c, x.temperature_max_c, p.discharge_t_min, p.discharge_t_max, p.band_c
    )
    dcl_f["derate_temperature" if tf is not None else "unknown_temperature"] = tf or 0.0
    if x.soc is not None:
        dcl_f["derate_low_soc"] = ramp_down(-x.soc, -p.discharge_soc_start, 0.0)
    dcl = p.max_discharge_a * min(dcl_f.values())
    reasons["dcl"] = [k for k, v in dcl_f.items() if v < 1.0]
    if x.discharge_blocked:
        dcl = 0.0
        reasons["dcl"] = [*x.discharge_blocked]
    return {"cvl_v": cvl, "ccl_a": round(ccl, 3), "dcl_a": round(dcl, 3)}, reasons


@dataclass
class LimitRamp:
    """Rate-limits rising current limits; falling limits apply at once."""

    rate_a_per_s: float
    values: dict[str, float] = field(default_factory=dict)
    last_s: float | None = None

    def apply(self, now_s: float, target: dict[str, float]) -> tuple[dict[str, float], set[str]]:
        """Return the ramped limits and the keys still ramping."""
        dt = 0.0 if self.last_s is None else max(0.0, now_s - self.last_s)
        self.last_s = now_s
        out, ramping = dict(target), set()
        for key in ("ccl_a", "dcl_a"):
            prev = self.values.get(key, 0.0)
            want = target[key]
            if want > prev + self.rate_a_per_s * dt:
                out[key] = round(prev + self.rate_a_per_s * dt, 3)
                ramping.add(key)
        self.values = out
        return out, ramping
