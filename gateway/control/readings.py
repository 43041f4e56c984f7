"""What the engine reads each step: the measurements and whether they can be trusted.

`Reader` calls `measure` with the engine's fixed settings (boards, timeouts, input
assignments, plausibility windows) and keeps the relay command log: contactor feedback
sampled at clock time t is judged against the command in force just before t, never one
issued after it. `stale_reasons` and `complete_scan` are the engine's safety rules 1 and
3: every relay opens on stale or missing data and until the first complete valid scan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.control.measure import CHARGER_CONNECTED_POINT, Measurements, measure
from gateway.control.settings import CONTACTOR_FUNCTIONS
from gateway.core.state import GatewayState

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.control.settings import ControlSettings


class Reader:
    """`measure` with the engine's settings, and the log of the relay commands issued."""

    def __init__(
        self,
        config: GatewayConfig,
        settings: ControlSettings,
        *,
        started_s: float,
        relay_commands: dict[int, bool],
    ) -> None:
        self.config = config
        self.settings = settings
        self.started_s = started_s
        self.controller = config.gateway.mode == "controller"
        self.relay_functions = config.relays.functions()
        self.input_assignments: dict[int, tuple[str, bool]] = {
            n: (str(a.signal), a.invert) for n, a in config.inputs.assignments().items()
        }
        # Plausibility windows: a value outside is unknown for control (even while the
        # diagnosis itself is disabled: it then counts as a breach where it is needed).
        self.windows: dict[str, tuple[float, float]] = {}
        for name in ("cell_voltage_implausible", "temperature_sensor_fault"):
            w = settings.protections[name]
            self.windows[name] = (
                -math.inf if w.threshold is None else w.threshold,
                math.inf if w.tolerant is None else w.tolerant,
            )
        # (clock time, relay commands from then on)
        self._log: list[tuple[float, dict[int, bool]]] = [(-math.inf, dict(relay_commands))]

    def commanded(self, now_s: float, relay_commands: dict[int, bool]) -> None:
        """Record the relay commands in force from `now_s` on."""
        self._log.append((now_s, dict(relay_commands)))

    def commands_at(self, t_s: float | None, current: dict[int, bool]) -> dict[int, bool]:
        """The relay commands in force just before clock time `t_s` (None: now, `current`)."""
        if t_s is None:
            return current
        log_ = self._log
        # drop what no later sample can need (samples arrive in time order)
        while len(log_) > 1 and log_[1][0] < t_s:
            log_.pop(0)
        return log_[0][1]

    def read(
        self,
        state: GatewayState,
        now_s: float,
        *,
        relay_commands: dict[int, bool],
        vref_v: float | None,
        faults: dict[str, str],
    ) -> Measurements:
        """This step's measurements (`relay_commands`: the commands in force now)."""
        in_force = self.commands_at(state.inputs_updated_s, relay_commands)
        by_function = {
            fn: in_force[n] for n, fn in self.relay_functions.items() if fn in CONTACTOR_FUNCTIONS
        }
        lg = self.config.logic
        e = self.config.engine
        return measure(
            state,
            now_s=now_s,
            started_s=self.started_s,
            controller=self.controller,
            boards=lg.addresses,
            cells_per_board=lg.cells_per_board,
            sensors_per_board=lg.sensors,
            cells_in_series=self.settings.cells_in_series,
            cell_timeout_s=e.cell_timeout_s,
            current_timeout_s=e.current_timeout_s,
            inputs_timeout_s=e.inputs_timeout_s,
            input_assignments=self.input_assignments,
            relay_commands=by_function if self.controller else {},
            vref_v=vref_v,
            startup_grace_s=e.startup_grace_s,
            faults=faults,
            cell_window_v=self.windows["cell_voltage_implausible"],
            temperature_window_c=self.windows["temperature_sensor_fault"],
        )


def stale_reasons(m: Measurements, controller: bool) -> list[str]:
    """Why data is stale or missing (every relay opens while any); empty when all fresh.

    Bridge mode counts only boards it has read (it never polls the others).
    """
    stale = [b.reason for b in m.boards if not b.fresh and (controller or b.scanned)]
    if controller:
        if m.current_a is None:
            stale.append("stale_current")
        stale += [f"stale_input_{s}" for s, v in m.inputs.items() if v is None]
    return stale


def complete_scan(m: Measurements) -> bool:
    """Whether this is a complete valid scan: every board read with all its cells."""
    if not m.cells_complete:
        return False
    return all(len(b.cell_voltages_v) == m.cells_per_board for b in m.boards) and (
        m.cells_in_series is None or len(m.cells()) == m.cells_in_series
    )


@dataclass(frozen=True, slots=True)
class InputSignals:
    """The input signals of one step (`override.<signal>` points included).

    An unknown safety input (`go_safe`, `inhibit_*`) reads as set; any other as clear.
    """

    charger_connected: bool  # the input, else the point (unless overridden)
    charger_input: bool  # the input alone
    go_safe: bool
    power_down: bool
    inhibit_charging: bool
    inhibit_discharging: bool
    charge_request: bool
    discharge_request: bool
    balancing_request: bool


def input_signals(m: Measurements) -> InputSignals:
    """Read the input signals from this step's measurements."""

    def sig(name: str, unknown: bool = False) -> bool:
        v = m.signal(name)
        return unknown if v is None else v

    point_cc = m.points.get(CHARGER_CONNECTED_POINT)
    return InputSignals(
        charger_connected=sig("charger_connected")
        or (point_cc is True and "charger_connected" not in m.overrides),
        charger_input=sig("charger_connected"),
        go_safe=sig("go_safe", unknown=True),
        power_down=sig("power_down_request"),
        inhibit_charging=sig("inhibit_charging", unknown=True),
        inhibit_discharging=sig("inhibit_discharging", unknown=True),
        charge_request=sig("charge_request"),
        discharge_request=sig("discharge_request"),
        balancing_request=sig("balancing_request"),
    )
