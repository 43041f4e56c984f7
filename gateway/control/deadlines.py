"""When the engine must decide next although no input changed.

Set/clear delays, Ton/Toff, data turning stale, a silent board reaching its
`logic_offline` delay, the end of the start-up grace, limit ramps and (bridge mode) the
bridged SOC turning stale: `next_decision_s` is the earliest such instant after now, and
the engine component steps the engine again then (inputs that change wake it anyway).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from gateway.control.bridge import BRIDGED_SOC_POINTS
from gateway.control.debounce import Debounced
from gateway.control.detect import SELF_TIMED
from gateway.control.switching import ContactorControl
from gateway.control.table import Params
from gateway.core.state import GatewayState

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.control.settings import CoolerSection, HeaterSection, LevelSettings

    Level = HeaterSection | CoolerSection | LevelSettings


def next_decision_s(
    now_s: float,
    *,
    config: GatewayConfig,
    protections: Mapping[str, Params],
    errors: Mapping[str, Debounced],
    levels: Iterable[tuple[Level, Debounced]],
    controls: Iterable[ContactorControl],
    boards: Iterable[int],
    state: GatewayState,
    started_s: float,
    ramping: bool,
    controller: bool,
) -> float:
    """The earliest clock time after `now_s` at which a decision falls due on its own.

    `math.inf` when nothing is pending.
    """
    due: list[float] = []

    def add(t: float | None) -> None:
        if t is not None and t > now_s:
            due.append(t)

    def after(t: float | None) -> None:  # data is fresh through t, stale just after it
        if t is not None:
            add(math.nextafter(t, math.inf))

    for name, err in errors.items():
        p = protections[name]
        add(err.due_s(0.0 if name in SELF_TIMED else p.set_delay_s, p.clear_delay_s))
    for lvl, deb in levels:
        add(deb.due_s(lvl.set_delay_ms / 1000, lvl.clear_delay_s))
    for ctl in controls:
        add(ctl.due_s())
    e = config.engine
    st = state
    lo = protections["logic_offline"]
    for n in boards:
        b = st.boards.get(n)
        updated = None if b is None else b.updated_s
        if updated is not None:
            after(updated + e.cell_timeout_s)
        if lo.enable:
            add((started_s if updated is None else updated) + lo.set_delay_s)
    if st.current_updated_s is not None:
        after(st.current_updated_s + e.current_timeout_s)
    if st.humidity_updated_s is not None:
        after(st.humidity_updated_s + e.current_timeout_s)
    if st.inputs_updated_s is not None:
        after(st.inputs_updated_s + e.inputs_timeout_s)
    add(started_s + e.startup_grace_s)
    if ramping:
        add(now_s + e.cycle_s)
    if not controller:
        for point in BRIDGED_SOC_POINTS:
            after(st.point_updated_s.get(point, -math.inf) + config.soc.bridge_timeout_s)
    return min(due, default=math.inf)
