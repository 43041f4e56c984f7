"""Balancing step by step: the masks kept between steps, with the engine's settings.

`Balancer` feeds `balancing.decide_balancing` from the `balancing` section, the resolved
start/stop voltages and the `logic_high_temperature` protection (a board at or above its
limit, or of unknown temperature, never balances; while that error is active the release
threshold applies), and keeps the masks for the next step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.control import balancing as bal
from gateway.control.measure import Measurements

if TYPE_CHECKING:
    from gateway.control.settings import BalancingSection, ControlSettings


class Balancer:
    """The balancing masks of every board (one bit per cell)."""

    def __init__(
        self,
        config: BalancingSection,
        settings: ControlSettings,
        boards: list[int],
        *,
        controller: bool,
    ) -> None:
        self.config = config
        self.boards = boards
        self.controller = controller
        self.params = bal.BalancingParams(
            settings.balancing_start_voltage,
            settings.balancing_stop_voltage,
            config.delta_start,
            config.delta_stop,
        )
        self.hot_limit = settings.protections["logic_high_temperature"]
        self.masks: dict[int, int] = dict.fromkeys(boards, 0)

    def step(
        self,
        m: Measurements,
        *,
        requested: bool,
        stopping: list[str],
        undervoltage: bool,
        hot_error: bool,
    ) -> bal.Balancing:
        """Decide this step's masks (`hot_error`: `logic_high_temperature` is active)."""
        lht, bc = self.hot_limit, self.config
        balancing = bal.decide_balancing(
            enable=bc.enable,
            mode=bc.mode,
            rest_current_a=bc.rest_current_a,
            current_a=m.current_a,
            requested=requested,
            stopping=stopping,
            undervoltage=undervoltage,
            cells_by_board={v.board: v.cell_voltages_v for v in m.boards},
            previous=dict.fromkeys(self.boards, 0) | self.masks,
            params=self.params,
            hot=bal.hot_boards(
                # bridge: boards it never read are not "hot"
                {v.board: v.board_temperature_c for v in m.boards if self.controller or v.scanned},
                lht.tolerant if hot_error and lht.tolerant is not None else lht.threshold,
                lht.enable,
            ),
        )
        self.masks = balancing.masks
        return balancing
