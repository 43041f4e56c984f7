"""The actor: the one place that decides relays, outputs, signals, limits and indicators.

`Engine.step(now_s)` is synchronous and does no I/O except the latch file: it reads the
`GatewayState`, runs detect -> debounce, decides, writes `state.control` and returns what
the drivers must do plus the notices to publish. Safety rules, in order:

1. Before the first complete valid scan, every relay is open.
2. A critical error or a "go safe" request opens every relay.
3. Stale or missing data (a board older than `engine.cell_timeout_s`, current older than
   `engine.current_timeout_s`, an assigned input older than `engine.inputs_timeout_s`)
   opens every relay at once; the protections that depend on it trip after their delays.
4. A contactor is open while any active error blocks its direction.
5. In bridge mode no relay is ever commanded.

It wires the pieces, each in its own module: `readings` (measure, stale data, input
signals), `error_book` (debounce, latches, acknowledgement, go-safe requests),
`contactor_stage`, `thermal`, `pack_soc` + `levels`, `balancer`, `signals`, `reasons`,
`limiting` (+ `bridge` in bridge mode), `relays`, `indicators`, `reason_times`;
`deadlines` says when to step next.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from gateway.board import RELAY_COUNT
from gateway.control import bridge
from gateway.control.balancer import Balancer
from gateway.control.bridge import BRIDGED_LIMIT_POINTS, BRIDGED_SOC_POINTS
from gateway.control.contactor_stage import ContactorStage
from gateway.control.deadlines import next_decision_s
from gateway.control.debounce import Debounced
from gateway.control.detect import detect
from gateway.control.error_book import ErrorBook
from gateway.control.indicators import blink, indicators
from gateway.control.levels import IndicationLevels
from gateway.control.limiting import Limiter
from gateway.control.limits import LimitInputs
from gateway.control.names import SIGNAL_NAMES
from gateway.control.pack_soc import make_estimator, step_soc
from gateway.control.readings import Reader, complete_scan, input_signals, stale_reasons
from gateway.control.reason_times import ReasonTimes
from gateway.control.reasons import decide_reasons
from gateway.control.relays import decide_outputs, decide_relays
from gateway.control.settings import EXTRA_SIGNALS, resolve
from gateway.control.signals import signal_states
from gateway.control.table import BY_NAME
from gateway.control.thermal import decide_thermal
from gateway.core.events import Notice
from gateway.core.state import GatewayState

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

__all__ = ["BRIDGED_LIMIT_POINTS", "BRIDGED_SOC_POINTS", "Engine", "StepResult"]


@dataclass
class StepResult:
    """What the drivers must do after one step, and what to tell users."""

    relays: dict[int, bool] | None  # None: do not command relays (bridge mode)
    outputs: dict[int, bool]
    indicators: dict[str, bool]
    notices: list[Notice] = field(default_factory=list)
    # (error, seconds) from the first cycle its breach was seen to the relay command it
    # caused this cycle (the `bms_protection_reaction_seconds` histogram)
    reactions: list[tuple[str, float]] = field(default_factory=list)


class Engine:
    """Protections, charge/discharge control, heater, balancing, SOC, limits, relays."""

    def __init__(
        self,
        config: GatewayConfig,
        state: GatewayState,
        *,
        started_s: float,
        wall: Callable[[float], datetime] | None = None,
        initial_soc: float | None = None,
    ) -> None:
        self.config = config
        self.settings = resolve(config)
        self.state = state
        self.started_s = started_s
        self._wall = wall
        self.controller = config.gateway.mode == "controller"
        self.boards = config.logic.addresses
        self.relay_functions = config.relays.functions()
        self.output_functions = config.outputs.functions()
        self.contactors = ContactorStage(config, self.settings)
        self.heater = Debounced()
        self.cooler = Debounced()
        self.levels = IndicationLevels(config.signal_levels)
        self.balancer = Balancer(
            config.balancing, self.settings, self.boards, controller=self.controller
        )
        self.soc = make_estimator(config, self.settings, initial_soc)
        self.limiter = Limiter(self.settings, config.limits)
        self.first_valid_scan = False
        self.vref_v: float | None = None
        self.relay_commands: dict[int, bool] = dict.fromkeys(range(1, RELAY_COUNT + 1), False)
        self.reader = Reader(
            config, self.settings, started_s=started_s, relay_commands=self.relay_commands
        )
        self._reason_times = ReasonTimes()
        self._switch_since: dict[str, float] = {}
        self._indicator_patterns: tuple[dict[str, bool], dict[str, str]] = ({}, {})
        self.book = ErrorBook(
            config, started_s=started_s, wall_iso=self._wall_iso, points=state.points
        )
        # The book's containers, under the names other layers use (never rebound).
        self.errors = self.book.errors
        self.faults = self.book.faults  # faults reported by other layers: error -> reason
        self.persisted = self.book.persisted
        self.go_safe_requests = self.book.go_safe_requests

    # --- commands (call them only on the engine's task, between steps) ---------------

    def request_go_safe(self, source: str, active: bool = True) -> None:
        """Open every relay while any source requests it (always honoured).

        Like `acknowledge`/`reset_errors`, call it only on the engine's task between steps;
        other tasks send a `gateway.control.commands.CommandRequested` over the bus instead.
        """
        self.book.request_go_safe(source, active, self._wall_iso(self.started_s))

    def acknowledge(self, name: str, now_s: float) -> bool:
        """Acknowledge one latched error; return True when its latch was released.

        The one acknowledgement rule (also for the MQTT `ack` command and the Modbus error
        reset): a latch is released only when its condition has cleared (the verdict is
        back within the release threshold, data fresh); one still in breach, unknown or
        between trip and release stays latched.
        """
        cleared, _ = self.reset_errors(now_s, [name])
        return bool(cleared)

    def reset_errors(
        self, now_s: float, names: Iterable[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """An error reset: acknowledge every latched error whose condition has cleared.

        `names` limits the reset to those errors (None: all). Returns the names cleared
        and the names kept (see `acknowledge` and `ErrorBook.reset`).
        """
        return self.book.reset(now_s, names)

    def relay_opened_by_driver(self, relay: int, now_s: float) -> None:
        """The driver opened a relay on its own (lease lapse, fault): follow it."""
        if self.relay_commands.get(relay):
            self.relay_commands = {**self.relay_commands, relay: False}
            self.reader.commanded(now_s, self.relay_commands)

    # --- helpers --------------------------------------------------------------------

    def _wall_iso(self, t: float) -> str | None:
        return self._wall(t).isoformat() if self._wall is not None else None

    # --- when to decide next -------------------------------------------------------

    def indicator_states(self, now_s: float) -> dict[str, bool]:
        """The indicators at `now_s` from the last decision's patterns (heartbeat blinking)."""
        states, patterns = self._indicator_patterns
        return {
            name: blink(now_s, float(p[6:-2])) if p.startswith("blink_") else states[name]
            for name, p in patterns.items()
        }

    def next_decision_s(self, now_s: float) -> float:
        """The earliest clock time after `now_s` at which a decision falls due on its own.

        The engine is stepped again then even if no input changes (see `deadlines`);
        `math.inf` when nothing is pending.
        """
        cfg = self.config
        return next_decision_s(
            now_s,
            config=cfg,
            protections=self.settings.protections,
            errors=self.errors,
            levels=(
                (cfg.heater, self.heater),
                (cfg.cooler, self.cooler),
                *self.levels.pairs(),
            ),
            controls=(self.contactors.charge, self.contactors.discharge),
            boards=self.boards,
            state=self.state,
            started_s=self.started_s,
            ramping=self.limiter.ramping,
            controller=self.controller,
        )

    # --- the decision ---------------------------------------------------------------

    def step(self, now_s: float) -> StepResult:
        """Decide everything for this instant."""
        cfg = self.config
        book = self.book
        book.apply_releases(now_s)
        m = self.reader.read(
            self.state,
            now_s,
            relay_commands=self.relay_commands,
            vref_v=self.vref_v,
            faults=self.faults,
        )
        verdicts = detect(m, self.settings.protections)
        notices = book.step(now_s, verdicts, self.settings.protections, self.state.points)
        active = book.active()
        critical = [n for n in active if BY_NAME[n].severity == "critical"]

        # data validity: nothing closes on stale or missing data
        stale = stale_reasons(m, self.controller)
        self.first_valid_scan = self.first_valid_scan or complete_scan(m)

        # input signals
        ins = input_signals(m)
        go_safe = bool(self.go_safe_requests) or ins.go_safe

        # contactors
        cells = m.cells() if m.cells_complete else []
        cell_max = max(cells) if cells else None
        cell_min = min(cells) if cells else None
        cs = self.contactors.step(
            now_s,
            ins=ins,
            first_valid_scan=self.first_valid_scan,
            controller=self.controller,
            stale=stale,
            go_safe=go_safe,
            active=active,
            errors=self.errors,
            cell_max_v=cell_max,
        )
        c, b, eoc = cs.c, cs.b, self.contactors.eoc

        # heater / cooler
        stopping = b.common + critical
        th = decide_thermal(
            now_s,
            m,
            cfg.heater,
            cfg.cooler,
            self.heater,
            self.cooler,
            stopping=stopping,
            active=active,
        )

        # SOC and indication levels
        timeout_s = cfg.soc.bridge_timeout_s
        soc = step_soc(
            self.soc,
            now_s,
            current_a=m.current_a,
            cells=cells,
            end_of_charge_reached=cs.eoc_edge is True,
            bridged=None if self.controller else bridge.bridged_soc(self.state, now_s, timeout_s),
        )
        self.levels.update(now_s, soc, m.current_a)

        # balancing
        balancing = self.balancer.step(
            m,
            requested=ins.balancing_request,
            stopping=stopping,
            undervoltage="cell_undervoltage" in active,
            hot_error=self.errors["logic_high_temperature"].active,
        )

        # signals
        signals, functions = signal_states(
            c,
            th,
            charger_connected=ins.charger_connected,
            balancing=any(balancing.masks.values()),
            low_soc=self.levels.low_soc.active,
            high_charging_current=self.levels.high_charging_current.active,
            critical=bool(critical),
            end_of_charge=eoc.active,
            go_safe=go_safe,
            any_error=bool(active),
        )

        # reasons
        reasons = decide_reasons(
            now_s,
            c=c,
            b=b,
            charge_ctl=self.contactors.charge,
            discharge_ctl=self.contactors.discharge,
            end_of_charge=eoc.active,
            end_of_charge_v=self.settings.end_of_charge_voltage,
            power_down=ins.power_down,
            thermal=th,
            heater_cfg=cfg.heater,
            cooler_cfg=cfg.cooler,
            heater_level=self.heater.active,
            cooler_level=self.cooler.active,
            balancing=balancing,
            critical=critical,
            active=active,
            charger_connected=ins.charger_connected,
            charger_override="charger_connected" in m.overrides,
            charger_input=ins.charger_input,
            soc=soc,
            current_a=m.current_a,
            low_soc=self.levels.low_soc.active,
            high_charging_current=self.levels.high_charging_current.active,
            go_safe_sources=sorted(self.go_safe_requests) + (["input"] if ins.go_safe else []),
        )

        # limits
        limits, limit_reasons = self.limiter.decide(
            now_s,
            LimitInputs(
                cell_max_v=cell_max,
                cell_min_v=cell_min,
                temperature_min_c=th.tmin,
                temperature_max_c=th.tmax,
                soc=soc,
                charge_blocked=() if c.allow else tuple(reasons["allow_charging"]),
                discharge_blocked=()
                if c.discharge_closed
                else tuple(reasons["discharge_contactor"]),
                end_of_charge=eoc.active,
                cells=self.settings.cells_in_series or len(self.boards) * cfg.logic.cells_per_board,
            ),
            # bridge mode: the bridged board's own limits, while fresh
            [] if self.controller else bridge.bridged_limits(self.state, now_s, timeout_s),
        )
        reasons.update(limit_reasons)  # cvl, ccl, dcl

        # relays (every rule that opens them all comes last) and outputs
        all_open: list[str] = [] if self.first_valid_scan else ["waiting_first_scan"]
        all_open += stale + critical + (["go_safe"] if go_safe else [])
        rel = decide_relays(
            now_s,
            functions=functions,
            reasons=reasons,
            all_open=all_open,
            relay_functions=self.relay_functions,
            previous=self.relay_commands,
            controller=self.controller,
            switch_since=self._switch_since,
            breach_since=book.breach_since_s,
        )
        notices += rel.notices
        commands = rel.commands
        if self.controller:
            if commands != self.relay_commands:
                self.reader.commanded(now_s, commands)
            self.relay_commands = commands
        out = decide_outputs(
            now_s,
            functions=functions,
            reasons=reasons,
            output_functions=self.output_functions,
            previous=self.state.control.outputs,
            switch_since=self._switch_since,
        )

        # indicators
        logic_errors = bool(m.stale_boards) or "logic_offline" in active
        ind, patterns = self._indicator_patterns = indicators(
            now_s,
            running=True,
            logic_established=self.first_valid_scan and not logic_errors,
            logic_errors=logic_errors,
            relays_closed=commands if self.controller else {},
        )
        for name, pattern in patterns.items():
            reasons[name] = [pattern]

        # publish into the state
        since_s = self._reason_times.record(reasons, functions, now_s)
        ctl = self.state.control
        ctl.running = True
        ctl.first_valid_scan = self.first_valid_scan
        ctl.errors_active = active
        ctl.signals = {k: signals[k] for k in (*SIGNAL_NAMES, *EXTRA_SIGNALS)}
        ctl.relays = rel.states if self.controller else {}
        ctl.outputs = out.states
        ctl.indicators = ind
        ctl.soc = None if soc is None else round(soc, 6)
        ctl.limits = limits
        ctl.reasons = reasons
        ctl.reasons_since_s = since_s
        ctl.balancing = dict(self.balancer.masks)
        return StepResult(
            relays=commands if self.controller else None,
            outputs=out.commands,
            indicators=ind,
            notices=notices,
            reactions=rel.reactions,
        )
