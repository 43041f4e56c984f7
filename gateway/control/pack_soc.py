"""The pack SOC of each step: the own estimate, or in bridge mode the bridged board's.

`make_estimator` wires the `soc` section and the resolved chemistry/capacity into a
`SocEstimator`; `step_soc` steps it with this step's current and mean cell voltage. In
bridge mode the bridged board's SOC wins while fresh; the own estimate carries on from it
(and is persisted) so it takes over without a jump when the bridge goes quiet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.control.soc import SocEstimator

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.control.settings import ControlSettings


def make_estimator(
    config: GatewayConfig, settings: ControlSettings, initial: float | None
) -> SocEstimator:
    """The SOC estimator of the configured pack (`initial`: the persisted SOC, if any)."""
    s = config.soc
    return SocEstimator(
        chemistry=settings.chemistry,
        capacity_ah=settings.capacity_ah,
        charge_efficiency=s.charge_efficiency,
        rest_current_a=s.rest_current_a,
        rest_time_s=s.rest_time_s,
        ocv_recalibration=s.ocv_recalibration,
        initial=initial,
    )


def step_soc(
    est: SocEstimator,
    now_s: float,
    *,
    current_a: float | None,
    cells: list[float],
    end_of_charge_reached: bool,
    bridged: tuple[float, str] | None,
) -> float | None:
    """Step the estimator; return this step's SOC (0..1, None: unknown).

    `cells`: the cell voltages of a complete scan (empty: none); `bridged`: the bridged
    board's fresh SOC and its point (bridge mode), which wins.
    """
    mean_v = sum(cells) / len(cells) if cells else None
    soc = est.update(
        now_s=now_s,
        current_a=current_a,
        mean_cell_v=mean_v,
        end_of_charge_reached=end_of_charge_reached,
    )
    if bridged is not None:
        soc, point = bridged
        est.soc, est.source = soc, point
    return soc
