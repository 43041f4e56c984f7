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
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.board import RELAY_COUNT
from gateway.control import balancing as bal
from gateway.control import contactors as ctr
from gateway.control.debounce import Debounced
from gateway.control.detect import SELF_TIMED, Verdict, detect
from gateway.control.indicators import blink, indicators
from gateway.control.latches import PERSISTENCE_FAULT
from gateway.control.limits import LimitInputs, LimitParams, LimitRamp, target_limits
from gateway.control.measure import (
    CHARGER_CONNECTED_POINT,
    ERROR_POINT_PREFIX,
    ERROR_RESET_POINT,
    Measurements,
    measure,
)
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.control.persisted import PersistedState
from gateway.control.reasons import decide_reasons
from gateway.control.relays import decide_outputs, decide_relays
from gateway.control.settings import CONTACTOR_FUNCTIONS, EXTRA_SIGNALS, resolve
from gateway.control.soc import SocEstimator
from gateway.control.switching import ContactorControl, EndOfCharge
from gateway.control.table import BY_NAME
from gateway.control.thermal import decide_thermal, level
from gateway.core.events import ErrorCleared, ErrorRaised, Notice
from gateway.core.state import GatewayState

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)


# Bridge mode: the bridged board's own SOC (percent), in order of preference (the Modbus
# REAL32 before the CAN TPDO1 whole percent).
BRIDGED_SOC_POINTS = ("main2x.soc_pct", "bms_main.soc_pct")
# Bridge mode: the bridged board's current limits (Modbus registers 0x219F/0x21A1).
BRIDGED_LIMIT_POINTS = (
    ("ccl_a", "ccl", ("main2x.charge_current_limit_a",)),
    ("dcl_a", "dcl", ("main2x.discharge_current_limit_a",)),
)


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
        self.input_assignments: dict[int, tuple[str, bool]] = {
            n: (str(a.signal), a.invert) for n, a in config.inputs.assignments().items()
        }
        self.errors: dict[str, Debounced] = {n: Debounced() for n in ERROR_NAMES}
        self.point_errors: set[str] = set()
        cc, dc = config.charge_control, config.discharge_control
        self.charge = ContactorControl(cc.ton_s, cc.toff_s)
        self.discharge = ContactorControl(dc.ton_s, dc.toff_s)
        self.eoc = EndOfCharge()
        self.heater = Debounced()
        self.cooler = Debounced()
        self.low_soc = Debounced()
        self.high_charging_current = Debounced()
        self.balancing_masks: dict[int, int] = dict.fromkeys(self.boards, 0)
        s = config.soc
        self.soc = SocEstimator(
            chemistry=self.settings.chemistry,
            capacity_ah=self.settings.capacity_ah,
            charge_efficiency=s.charge_efficiency,
            rest_current_a=s.rest_current_a,
            rest_time_s=s.rest_time_s,
            ocv_recalibration=s.ocv_recalibration,
            initial=initial_soc,
        )
        self.ramp = LimitRamp(config.limits.ramp_a_per_s)
        self.limit_params = self._limit_params()
        # Plausibility windows: a value outside is unknown for control (even while the
        # diagnosis itself is disabled: it then counts as a breach where it is needed).
        self._windows: dict[str, tuple[float, float]] = {}
        for name in ("cell_voltage_implausible", "temperature_sensor_fault"):
            w = self.settings.protections[name]
            self._windows[name] = (
                -math.inf if w.threshold is None else w.threshold,
                math.inf if w.tolerant is None else w.tolerant,
            )
        self.first_valid_scan = False
        self.go_safe_requests: set[str] = set()
        self.vref_v: float | None = None
        # Faults reported by other layers (relay driver, state writer): error -> reason.
        self.faults: dict[str, str] = {}
        self.relay_commands: dict[int, bool] = dict.fromkeys(range(1, RELAY_COUNT + 1), False)
        # (clock time, relay commands from then on): a feedback sample is judged against
        # the command in force when it was sampled, not one issued after it
        self._command_log: list[tuple[float, dict[int, bool]]] = [
            (-math.inf, dict(self.relay_commands))
        ]
        self._reasons: dict[str, tuple[tuple[str, ...], Any, float]] = {}
        self._switch_since: dict[str, float] = {}
        self._pending: list[Notice] = []
        self._ramping = False
        self._indicator_patterns: tuple[dict[str, bool], dict[str, str]] = ({}, {})
        self._breach_since_s: dict[str, float] = {}  # raised errors awaiting a relay command
        # `request.error_reset` is a counter: the value at start is the baseline.
        self._reset_seen = self._reset_counter() or 0.0
        self.state_dir = config.gateway.state_dir
        # Latches and persisted go-safe requests; releases wait until written (persisted.py).
        self.persisted = PersistedState(config)
        self.latched = self.persisted.latched
        self.go_safe_requests.update(self.persisted.go_safe)
        for name, info in self.latched.items():
            e = self.errors[name]
            e.active, e.latched, e.since_s = True, True, started_s
            e.detail = f"latched before restart: {info.get('detail', '')}".strip()
            log.warning("error %s is latched from before the restart (ack to clear)", name)

    # --- commands -------------------------------------------------------------------

    def request_go_safe(self, source: str, active: bool = True) -> None:
        """Open every relay while any source requests it (always honoured).

        Like `acknowledge`/`reset_errors`, call it only on the engine's task between steps;
        other tasks send a `gateway.control.commands.CommandRequested` over the bus instead.
        """
        since = self._wall_iso(self.started_s) if self._wall is not None else None
        if active:
            self.go_safe_requests.add(source)
            self.persisted.go_safe_changed(source, True, since)
        elif self.persisted.go_safe_changed(source, False, since):
            self.go_safe_requests.discard(source)
        # else: released once the go-safe file without it is on disk (next steps)

    def acknowledge(self, name: str, now_s: float) -> bool:
        """Acknowledge one latched error; return True when its latch was released.

        The one acknowledgement rule (also for the MQTT `ack` command and the Modbus error
        reset): a latch is released only when its condition has cleared (the verdict is
        back within the release threshold, data fresh); one still in breach, unknown or
        between trip and release stays latched.
        """
        cleared, _ = self.reset_errors(now_s, [name])
        return bool(cleared)

    def relay_opened_by_driver(self, relay: int, now_s: float) -> None:
        """The driver opened a relay on its own (lease lapse, fault): follow it."""
        if self.relay_commands.get(relay):
            self.relay_commands = {**self.relay_commands, relay: False}
            self._command_log.append((now_s, dict(self.relay_commands)))

    def _release_latch(self, name: str, now_s: float) -> None:
        """Release once the latch file without it is on disk (at once when written inline)."""
        self.persisted.release_latch(name)
        self._apply_releases(now_s)

    def _apply_releases(self, now_s: float) -> None:
        """Apply the releases now durably written; report a state that cannot be written."""
        for kind, name in self.persisted.due():
            if kind == "go_safe":
                self.go_safe_requests.discard(name)
            elif self.errors[name].acknowledge(now_s) == "cleared":
                self._pending.append(ErrorCleared(at_s=now_s, error=name))
        fault = self.persisted.fault
        if fault:
            self.faults[PERSISTENCE_FAULT] = fault
        else:
            self.faults.pop(PERSISTENCE_FAULT, None)

    def reset_errors(
        self, now_s: float, names: Iterable[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """An error reset: acknowledge every latched error whose condition has cleared.

        A latched error whose breach (or unknown data) is still present, or whose value is
        still between its trip and release thresholds, stays latched. `names` limits the
        reset to those errors (None: all). Returns the names cleared and the names kept.
        """
        cleared: list[str] = []
        kept: list[str] = []
        wanted = None if names is None else set(names)
        for name in ERROR_NAMES:
            if wanted is not None and name not in wanted:
                continue
            e = self.errors[name]
            if not (e.active and e.latched):
                continue
            if e.bad_since_s is None and e.ok_since_s is not None:
                self._release_latch(name, now_s)
                cleared.append(name)
            else:
                kept.append(name)
        log.warning(
            "error reset requested: cleared %s; still present %s",
            ", ".join(cleared) or "none",
            ", ".join(kept) or "none",
        )
        return cleared, kept

    def _reset_counter(self) -> float | None:
        value = self.state.points.get(ERROR_RESET_POINT)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    # --- helpers --------------------------------------------------------------------

    def _limit_params(self) -> LimitParams:
        st, lim, p = self.settings, self.config.limits, self.settings.protections

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

    def _bridged_soc(self, now_s: float) -> tuple[float, str] | None:
        """Bridge mode: the bridged board's SOC (0..1) and its point, when present and fresh."""
        timeout = self.config.soc.bridge_timeout_s
        for point in BRIDGED_SOC_POINTS:
            value = self.state.points.get(point)
            at = self.state.point_updated_s.get(point)
            if isinstance(value, bool) or not isinstance(value, int | float) or at is None:
                continue
            if not math.isfinite(value) or not 0.0 <= value <= 100.0 or now_s - at > timeout:
                continue
            return float(value) / 100.0, point
        return None

    def _bridged_limits(self, now_s: float) -> list[tuple[str, str, tuple[float, str]]]:
        """Bridge mode: the bridged board's CCL/DCL (key, reason name, (A, point)) when fresh."""
        timeout = self.config.soc.bridge_timeout_s
        out = []
        for key, name, points in BRIDGED_LIMIT_POINTS:
            for point in points:
                value = self.state.points.get(point)
                at = self.state.point_updated_s.get(point)
                if isinstance(value, bool) or not isinstance(value, int | float) or at is None:
                    continue
                if math.isfinite(value) and value >= 0 and now_s - at <= timeout:
                    out.append((key, name, (float(value), point)))
                    break
        return out

    def _wall_iso(self, t: float) -> str | None:
        return self._wall(t).isoformat() if self._wall is not None else None

    def _commands_at(self, t_s: float | None) -> dict[int, bool]:
        """The relay commands in force just before clock time `t_s` (None: now)."""
        if t_s is None:
            return self.relay_commands
        log_ = self._command_log
        # drop what no later sample can need (samples arrive in time order)
        while len(log_) > 1 and log_[1][0] < t_s:
            log_.pop(0)
        return log_[0][1]

    def _measure(self, now_s: float) -> Measurements:
        in_force = self._commands_at(self.state.inputs_updated_s)
        by_function = {
            fn: in_force[n] for n, fn in self.relay_functions.items() if fn in CONTACTOR_FUNCTIONS
        }
        lg = self.config.logic
        e = self.config.engine
        return measure(
            self.state,
            now_s=now_s,
            started_s=self.started_s,
            controller=self.controller,
            boards=self.boards,
            cells_per_board=lg.cells_per_board,
            sensors_per_board=lg.sensors,
            cells_in_series=self.settings.cells_in_series,
            cell_timeout_s=e.cell_timeout_s,
            current_timeout_s=e.current_timeout_s,
            inputs_timeout_s=e.inputs_timeout_s,
            input_assignments=self.input_assignments,
            relay_commands=by_function if self.controller else {},
            vref_v=self.vref_v,
            startup_grace_s=e.startup_grace_s,
            faults=self.faults,
            cell_window_v=self._windows["cell_voltage_implausible"],
            temperature_window_c=self._windows["temperature_sensor_fault"],
        )

    def _debounce(self, now_s: float, verdicts: dict[str, Verdict]) -> list[Notice]:
        notices: list[Notice] = []
        latch_changed = False
        for name in ERROR_NAMES:
            p = self.settings.protections[name]
            v = verdicts.get(name)
            e = self.errors[name]
            t = e.update(
                None if v is None else v.state,
                now_s=now_s,
                set_delay_s=0.0 if name in SELF_TIMED else p.set_delay_s,
                clear_delay_s=p.clear_delay_s,
                latch=p.latch,
                detail="" if v is None else v.detail,
                seen_s=None if v is None else v.at_s,
            )
            if t == "raised":
                row = BY_NAME[name]
                # self-timed rows apply the set delay in the detector: the breach began then
                first = now_s - p.set_delay_s if name in SELF_TIMED else e.bad_since_s
                if first is not None:
                    self._breach_since_s[name] = first
                detail = e.detail
                notices.append(
                    ErrorRaised(at_s=now_s, error=name, severity=row.severity, detail=detail)
                )
                log.warning("error raised: %s (%s) %s", name, row.severity, detail)
                if e.latched:
                    self.latched[name] = {"since": self._wall_iso(now_s), "detail": detail}
                    latch_changed = True
            elif t == "cleared":
                self._breach_since_s.pop(name, None)
                notices.append(ErrorCleared(at_s=now_s, error=name))
                log.info("error cleared: %s", name)
                if self.latched.pop(name, None) is not None:
                    latch_changed = True
        # Errors reported by a bridged BMS (points `error.<name>`), already debounced there.
        reported = {
            key[len(ERROR_POINT_PREFIX) :]
            for key, value in self.state.points.items()
            if key.startswith(ERROR_POINT_PREFIX) and value is True
        } & set(ERROR_NAMES)
        for name in sorted(reported - self.point_errors):
            if not self.errors[name].active:
                notices.append(
                    ErrorRaised(
                        at_s=now_s,
                        error=name,
                        severity=BY_NAME[name].severity,
                        detail="reported by the bridged BMS",
                    )
                )
        for name in sorted(self.point_errors - reported):
            if not self.errors[name].active:
                notices.append(ErrorCleared(at_s=now_s, error=name))
        self.point_errors = reported
        if latch_changed:
            self.persisted.save_latches()
        return notices

    def _since(self, key: str, reasons: list[str], value: Any, now_s: float) -> None:
        """Record reasons; since-time moves when the value or the reasons change."""
        prev = self._reasons.get(key)
        tup = tuple(reasons)
        since = now_s if prev is None or prev[0] != tup or prev[1] != value else prev[2]
        self._reasons[key] = (tup, value, since)

    def _soc(self, now_s: float, m: Measurements, cells: list[float], eoc: bool) -> float | None:
        """Step the SOC estimator and the indication levels low_soc/high_charging_current."""
        mean_v = sum(cells) / len(cells) if cells else None
        soc = self.soc.update(
            now_s=now_s, current_a=m.current_a, mean_cell_v=mean_v, end_of_charge_reached=eoc
        )
        # Bridge mode: the bridged board's SOC wins while fresh; the own estimate carries on
        # from it (and is persisted) so it takes over without a jump when the bridge goes quiet.
        bridged = None if self.controller else self._bridged_soc(now_s)
        if bridged is not None:
            soc, point = bridged
            self.soc.soc, self.soc.source = soc, point
        lv = self.config.signal_levels
        ls, hc = lv.low_soc, lv.high_charging_current
        self.low_soc.update(
            level(soc, above=ls.max, below=ls.min, tol=ls.tolerant) if ls.enable else None,
            now_s=now_s,
            set_delay_s=ls.set_delay_ms / 1000,
            clear_delay_s=ls.clear_delay_s,
        )
        self.high_charging_current.update(
            level(m.current_a, above=hc.max, below=hc.min, tol=hc.tolerant) if hc.enable else None,
            now_s=now_s,
            set_delay_s=hc.set_delay_ms / 1000,
            clear_delay_s=hc.clear_delay_s,
        )
        return soc

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

        Set/clear delays, Ton/Toff, data turning stale, a silent board reaching its
        `logic_offline` delay, the end of the start-up grace and limit ramps: the engine is
        stepped again at that instant even if no input changes (inputs that change wake it
        anyway). `math.inf` when nothing is pending.
        """
        due: list[float] = []

        def add(t: float | None) -> None:
            if t is not None and t > now_s:
                due.append(t)

        def after(t: float | None) -> None:  # data is fresh through t, stale just after it
            if t is not None:
                add(math.nextafter(t, math.inf))

        prot = self.settings.protections
        for name, err in self.errors.items():
            p = prot[name]
            add(err.due_s(0.0 if name in SELF_TIMED else p.set_delay_s, p.clear_delay_s))
        cfg = self.config
        for lvl, deb in (
            (cfg.heater, self.heater),
            (cfg.cooler, self.cooler),
            (cfg.signal_levels.low_soc, self.low_soc),
            (cfg.signal_levels.high_charging_current, self.high_charging_current),
        ):
            add(deb.due_s(lvl.set_delay_ms / 1000, lvl.clear_delay_s))
        for ctl in (self.charge, self.discharge):
            add(ctl.due_s())
        e = cfg.engine
        st = self.state
        lo = prot["logic_offline"]
        for n in self.boards:
            b = st.boards.get(n)
            updated = None if b is None else b.updated_s
            if updated is not None:
                after(updated + e.cell_timeout_s)
            if lo.enable:
                add((self.started_s if updated is None else updated) + lo.set_delay_s)
        if st.current_updated_s is not None:
            after(st.current_updated_s + e.current_timeout_s)
        if st.humidity_updated_s is not None:
            after(st.humidity_updated_s + e.current_timeout_s)
        if st.inputs_updated_s is not None:
            after(st.inputs_updated_s + e.inputs_timeout_s)
        add(self.started_s + e.startup_grace_s)
        if self._ramping:
            add(now_s + e.cycle_s)
        if not self.controller:
            for point in BRIDGED_SOC_POINTS:
                after(st.point_updated_s.get(point, -math.inf) + cfg.soc.bridge_timeout_s)
        return min(due, default=math.inf)

    # --- the decision ---------------------------------------------------------------

    def step(self, now_s: float) -> StepResult:
        """Decide everything for this instant."""
        cfg = self.config
        self._apply_releases(now_s)
        m = self._measure(now_s)
        notices = self._pending + self._debounce(now_s, detect(m, self.settings.protections))
        self._pending = []
        reset = self._reset_counter()
        if reset is not None and reset != self._reset_seen:
            if reset > self._reset_seen:  # a decrease (a restarted source) only rebases
                self.reset_errors(now_s)
                notices += self._pending
                self._pending = []
            self._reset_seen = reset
        active = [n for n in ERROR_NAMES if self.errors[n].active or n in self.point_errors]
        critical = [n for n in active if BY_NAME[n].severity == "critical"]

        # data validity: nothing closes on stale or missing data
        stale: list[str] = [
            b.reason for b in m.boards if not b.fresh and (self.controller or b.scanned)
        ]
        if self.controller:
            if m.current_a is None:
                stale.append("stale_current")
            stale += [f"stale_input_{s}" for s, v in m.inputs.items() if v is None]
        if not self.first_valid_scan and m.cells_complete:
            self.first_valid_scan = all(
                len(b.cell_voltages_v) == m.cells_per_board for b in m.boards
            ) and (m.cells_in_series is None or len(m.cells()) == m.cells_in_series)

        # input signals
        def sig(name: str, unknown: bool = False) -> bool:
            v = m.signal(name)
            return unknown if v is None else v

        point_cc = m.points.get(CHARGER_CONNECTED_POINT)
        charger_connected = sig("charger_connected") or (
            point_cc is True and "charger_connected" not in m.overrides
        )
        go_safe = bool(self.go_safe_requests) or sig("go_safe", unknown=True)
        power_down = sig("power_down_request")

        # contactors
        b = ctr.blocks(
            first_valid_scan=self.first_valid_scan,
            controller=self.controller,
            stale=stale,
            go_safe=go_safe,
            active=active,
            inhibit_charging=sig("inhibit_charging", unknown=True),
            inhibit_discharging=sig("inhibit_discharging", unknown=True),
            errors=self.errors,
        )
        creq = ctr.charge_request(
            cfg.charge_control.mode,
            charger_connected=charger_connected,
            request_input=sig("charge_request"),
            power_down=power_down,
        )
        dreq = ctr.discharge_request(
            cfg.discharge_control.mode,
            charger_connected=charger_connected,
            request_input=sig("discharge_request"),
        )
        cells = m.cells() if m.cells_complete else []
        cell_max = max(cells) if cells else None
        cell_min = min(cells) if cells else None
        eoc_edge = self.eoc.update(
            now_s=now_s,
            cell_max_v=cell_max,
            end_of_charge_v=self.settings.end_of_charge_voltage,
            recharge_v=self.settings.recharge_voltage,
        )
        c = ctr.decide_contactors(
            now_s, b, creq, dreq, self.charge, self.discharge, end_of_charge=self.eoc.active
        )

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
        soc = self._soc(now_s, m, cells, eoc_edge is True)

        # balancing
        lht = self.settings.protections["logic_high_temperature"]
        lht_on = self.errors["logic_high_temperature"].active and lht.tolerant is not None
        bc = cfg.balancing
        requested = sig("balancing_request")
        balancing = bal.decide_balancing(
            enable=bc.enable,
            mode=bc.mode,
            rest_current_a=bc.rest_current_a,
            current_a=m.current_a,
            requested=requested,
            stopping=stopping,
            undervoltage="cell_undervoltage" in active,
            cells_by_board={v.board: v.cell_voltages_v for v in m.boards},
            previous=dict.fromkeys(self.boards, 0) | self.balancing_masks,
            params=bal.BalancingParams(
                self.settings.balancing_start_voltage,
                self.settings.balancing_stop_voltage,
                bc.delta_start,
                bc.delta_stop,
            ),
            hot=bal.hot_boards(
                # bridge: boards it never read are not "hot"
                {v.board: v.board_temperature_c for v in m.boards if self.controller or v.scanned},
                lht.tolerant if lht_on else lht.threshold,
                lht.enable,
            ),
        )
        self.balancing_masks = balancing.masks
        balancing_on = any(self.balancing_masks.values())

        # signals
        signals: dict[str, bool] = {
            "charge_allowed": c.allow,
            "discharge_allowed": c.discharge_closed,
            "charger_connected": charger_connected,
            "heater": th.heater_on,
            "balancing": balancing_on,
            "low_soc": self.low_soc.active,
            "high_charging_current": self.high_charging_current.active,
            "critical_error": bool(critical),
            "cooler": th.cooler_on,
            "end_of_charge": self.eoc.active,
            "go_safe": go_safe,
            "any_error": bool(active),
        }
        functions: dict[str, bool] = {
            **signals,
            "discharge_contactor": c.discharge_closed,
            "allow_charging": c.allow,
            "charge_contactor": c.charge_closed,
            "heater": th.heater_on,
            "cooler": th.cooler_on,
            "none": False,
        }

        # reasons
        reasons = decide_reasons(
            now_s,
            c=c,
            b=b,
            charge_ctl=self.charge,
            discharge_ctl=self.discharge,
            end_of_charge=self.eoc.active,
            end_of_charge_v=self.settings.end_of_charge_voltage,
            power_down=power_down,
            thermal=th,
            heater_cfg=cfg.heater,
            cooler_cfg=cfg.cooler,
            heater_level=self.heater.active,
            cooler_level=self.cooler.active,
            balancing=balancing,
            critical=critical,
            active=active,
            charger_connected=charger_connected,
            charger_override="charger_connected" in m.overrides,
            charger_input=sig("charger_connected"),
            soc=soc,
            current_a=m.current_a,
            low_soc=self.low_soc.active,
            high_charging_current=self.high_charging_current.active,
            go_safe_sources=sorted(self.go_safe_requests)
            + (["input"] if sig("go_safe", unknown=True) else []),
        )

        # limits
        targets, limit_reasons = target_limits(
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
                end_of_charge=self.eoc.active,
                cells=self.settings.cells_in_series or len(self.boards) * cfg.logic.cells_per_board,
            ),
            self.limit_params,
        )
        limits, ramping = self.ramp.apply(now_s, targets)
        self._ramping = bool(ramping)
        for key, name in (("ccl_a", "ccl"), ("dcl_a", "dcl")):
            if key in ramping:
                limit_reasons[name].append("ramp")
        if not self.controller:  # bridge mode: the bridged board's own limits, while fresh
            for key, name, (value, point) in self._bridged_limits(now_s):
                limits[key] = value
                limit_reasons[name] = [f"bridged {point}"]
        reasons["cvl"], reasons["ccl"], reasons["dcl"] = (
            limit_reasons["cvl"],
            limit_reasons["ccl"],
            limit_reasons["dcl"],
        )

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
            breach_since=self._breach_since_s,
        )
        notices += rel.notices
        commands = rel.commands
        if self.controller:
            if commands != self.relay_commands:
                self._command_log.append((now_s, dict(commands)))
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
        for key, why in reasons.items():
            self._since(key, why, functions.get(key), now_s)
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
        ctl.reasons_since_s = {k: v[2] for k, v in self._reasons.items() if k in reasons}
        ctl.balancing = dict(self.balancing_masks)
        return StepResult(
            relays=commands if self.controller else None,
            outputs=out.commands,
            indicators=ind,
            notices=notices,
            reactions=rel.reactions,
        )
