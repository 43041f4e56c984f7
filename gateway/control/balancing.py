"""Whole-pack balancing decision: cell voltages in, one bitmask per board out. Pure.

A cell starts balancing when it is above `start_voltage` and more than `delta_start` above
the pack's lowest cell; a balancing cell stops when it falls below `stop_voltage` or within
`delta_stop` of the pack minimum. Nothing balances on an over-temperature board, on stale
data, or outside the mode's condition (the balancing-request input overrides the mode).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BalancingParams:
    """Thresholds of the balancing decision."""

    start_voltage: float
    stop_voltage: float
    delta_start: float
    delta_stop: float


def mode_allows(mode: str, current_a: float | None, rest_current_a: float) -> bool:
    """Whether the configured mode lets balancing run at this current."""
    if mode == "always":
        return True
    if current_a is None:
        return False
    if mode == "charge":
        return current_a > rest_current_a
    return current_a > -rest_current_a  # charge_or_rest


def decide(
    cells: dict[int, tuple[float, ...]],
    previous: dict[int, int],
    params: BalancingParams,
    excluded_boards: set[int],
    requested: bool = False,
) -> dict[int, int]:
    """Return board -> bitmask (bit n-1 = cell n) of the cells to bleed.

    With the balancing-request input active, a cell starts at `delta_stop` (vendor rule:
    "every cell above the start voltage whose difference to the minimum exceeds the stop
    threshold").
    """
    start_delta = params.delta_stop if requested else params.delta_start
    every = [v for vs in cells.values() for v in vs]
    out = dict.fromkeys(cells, 0)
    if not every:
        return out
    vmin = min(every)
    for board, volts in cells.items():
        if board in excluded_boards:
            continue
        mask, before = 0, previous.get(board, 0)
        for i, v in enumerate(volts):
            delta = v - vmin
            if before >> i & 1:
                keep = v >= params.stop_voltage and delta > params.delta_stop
            else:
                keep = v > params.start_voltage and delta > start_delta
            if keep:
                mask |= 1 << i
        out[board] = mask
    return out


@dataclass(frozen=True)
class Balancing:
    """The balancing decision of one step."""

    masks: dict[int, int]
    blocked: list[str]  # why nothing balances (empty: the thresholds decide)
    hot: set[int]  # boards too hot (or of unknown temperature) to balance


def hot_boards(
    board_temperatures_c: dict[int, float | None], limit_c: float | None, enabled: bool
) -> set[int]:
    """Boards at or above `limit_c`, or whose temperature is unknown."""
    if not enabled or limit_c is None:
        return set()
    return {n for n, t in board_temperatures_c.items() if t is None or t >= limit_c}


def decide_balancing(
    *,
    enable: bool,
    mode: str,
    rest_current_a: float,
    current_a: float | None,
    requested: bool,
    stopping: list[str],
    undervoltage: bool,
    cells_by_board: dict[int, tuple[float, ...]],
    previous: dict[int, int],
    params: BalancingParams,
    hot: set[int],
) -> Balancing:
    """Decide the masks; `stopping` (stale data, go-safe, critical errors) stops everything."""
    blocked: list[str] = [] if enable else ["disabled"]
    blocked += stopping
    if undervoltage:
        blocked.append("cell_undervoltage")
    if not requested and not mode_allows(mode, current_a, rest_current_a):
        blocked.append(f"mode_{mode}")
    if blocked:
        return Balancing(dict.fromkeys(previous, 0), blocked, hot)
    masks = decide(cells_by_board, previous, params, hot, requested=requested)
    return Balancing(masks, blocked, hot)
