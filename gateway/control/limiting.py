"""The limits of one engine step: the targets, ramped, and in bridge mode the bridged ones.

`Limiter` resolves the `LimitParams` once from the settings, then each step computes the
target CVL/CCL/DCL (`limits.target_limits`), lets rising current limits ramp
(`limits.ramp_a_per_s`, reason `ramp`) and, in bridge mode, replaces a current limit by the
bridged board's own while that is fresh (reason `bridged <point>`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.control.limits import LimitInputs, LimitParams, LimitRamp, target_limits

if TYPE_CHECKING:
    from gateway.control.settings import ControlSettings, LimitsSection


def limit_params(st: ControlSettings, lim: LimitsSection) -> LimitParams:
    """The limit parameters from the resolved settings and the `limits` section."""
    p = st.protections

    def thr(name: str) -> float | None:
        return p[name].threshold if p[name].enable else None

    return LimitParams(
        max_charge_a=lim.max_charge_current_a,
        max_discharge_a=lim.max_discharge_current_a,
        cvl_cell_v=st.cvl_cell_v,
        charge_start_v=st.charge_derate_start_v,
        charge_end_v=st.charge_derate_end_v,
        charge_tail=lim.charge_tail_fraction,
        discharge_start_v=st.discharge_derate_start_v,
        discharge_end_v=st.discharge_derate_end_v,
        band_c=lim.temperature_band_c,
        charge_t_min=thr("low_temperature_charge"),
        charge_t_max=thr("high_temperature_charge"),
        discharge_t_min=thr("low_temperature_discharge"),
        discharge_t_max=thr("high_temperature_discharge"),
        charge_soc_start=lim.charge_soc_derate_start,
        charge_soc_min=lim.charge_soc_min_fraction,
        discharge_soc_start=lim.discharge_soc_derate_start,
        ramp_a_per_s=lim.ramp_a_per_s,
    )


class Limiter:
    """CVL/CCL/DCL step by step (the ramp keeps state between steps)."""

    def __init__(self, settings: ControlSettings, lim: LimitsSection) -> None:
        self.ramp = LimitRamp(lim.ramp_a_per_s)
        self.params = limit_params(settings, lim)
        self.ramping = False  # a current limit is still ramping up: step again next cycle

    def decide(
        self,
        now_s: float,
        inputs: LimitInputs,
        bridged: list[tuple[str, str, tuple[float, str]]],
    ) -> tuple[dict[str, float], dict[str, list[str]]]:
        """The limits (`cvl_v`, `ccl_a`, `dcl_a`) and the reasons for each (`cvl`, ...).

        `bridged`: the bridged board's fresh limits (bridge mode), which win.
        """
        targets, reasons = target_limits(inputs, self.params)
        limits, ramping = self.ramp.apply(now_s, targets)
        self.ramping = bool(ramping)
        for key, name in (("ccl_a", "ccl"), ("dcl_a", "dcl")):
            if key in ramping:
                reasons[name].append("ramp")
        for key, name, (value, point) in bridged:
            limits[key] = value
            reasons[name] = [f"bridged {point}"]
        return limits, reasons
