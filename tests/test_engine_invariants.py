"""Safety invariants of the engine under random battery stories, with an independent oracle.

Hypothesis drives a rig (2 boards x 4 cells, four assigned inputs) through random cell
voltages (also implausible ones), temperatures (also missing and implausible), currents,
a silent current sensor, silent inputs, silent boards, cell front-end faults, contacts and
go-safe. The engine runs event-driven, as in the gateway: it decides when an input arrives
and at its own deadlines. Every 100 ms the oracle checks the relays, the heater and the
balancing decision against what it computes itself from the raw readings in the state
store and the configuration: which limits are breached in valid data and since when, which
data is stale or implausible, which inputs are asserted. It never reads the engine's own
bookkeeping (`errors_active` is only checked *against* the oracle, never used by it).

Invariants at every check:
- no contactor closed while a condition that blocks it has held past its set delay;
- every relay open on stale or implausible data, before the first valid scan, while a
  critical condition has held past its delay, under go-safe;
- the heater never on under a critical condition, with an unknown temperature or after
  the coldest cell has stayed above its release temperature for its clear delay;
- balancing never on an over-temperature board, during an undervoltage past its delay, or
  on stale data;
- no dependent error active unless a real breach in valid data once held past its delay
  (nothing raised or latched from missing data while its diagnosis is enabled).
CI runs a bounded number of examples; BMSGW_SLOW=1 runs many more.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from gateway.config import GatewayConfig, load_config
from gateway.control.settings import resolve
from gateway.core.events import Event, InputsRead
from gateway.core.state import GatewayState
from gateway.protocols.logic_map import STATUS_CELL_MEASUREMENT_FAULT
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

SLOW = os.environ.get("BMSGW_SLOW") == "1"
BOARDS, CELLS = 2, 4
TICK_S, POLL_S, EPS = 0.1, 1.0, 1e-6
CHARGE_SIDE = ("charge_contactor", "allow_charging")
# mostly nominal values, so that relays are closed often enough for the checks to matter
VOLTS = st.one_of(st.floats(3.2, 3.4), st.floats(2.0, 4.0), st.sampled_from([0.0, 5.5]))
TEMPS = st.one_of(
    st.floats(10, 35), st.floats(-5, 4), st.none(), st.floats(-30, 80), st.sampled_from([-60.0])
)
# errors whose condition is a limit on measured data: only a real breach may raise them
DEPENDENT = (
    "cell_overvoltage",
    "cell_undervoltage",
    "overcurrent_charge",
    "overcurrent_discharge",
    "low_temperature_charge",
    "low_temperature_discharge",
    "high_temperature_charge",
    "high_temperature_discharge",
)


@dataclass
class Oracle:
    """What must hold, from the raw readings and the configuration only."""

    config: GatewayConfig
    since: dict[str, float] = field(default_factory=dict)  # condition -> held since
    justified: set[str] = field(default_factory=set)  # errors a real breach once justified
    ever_valid: bool = False

    def __post_init__(self) -> None:
        self.p = resolve(self.config).protections

    def held(self, name: str, now: bool, t: float, delay_s: float) -> bool:
        """Track a condition; True when it has held for `delay_s` at time t."""
        if not now:
            self.since.pop(name, None)
            return False
        start = self.since.setdefault(name, t)
        return t - start >= delay_s - EPS

    def observe(self, s: GatewayState, t: float, go_safe: bool) -> dict[str, object]:
        """Evaluate every condition at t; return what the outputs must respect."""
        e, p = self.config.engine, self.p
        cell_lo, cell_hi = (
            p["cell_voltage_implausible"].threshold,
            p["cell_voltage_implausible"].tolerant,
        )
        t_lo, t_hi = p["temperature_sensor_fault"].threshold, p["temperature_sensor_fault"].tolerant
        assert None not in (cell_lo, cell_hi, t_lo, t_hi)
        fresh = []
        for n in range(1, BOARDS + 1):
            b = s.boards.get(n)
            ok = (
                b is not None
                and b.online
                and b.updated_s is not None
                and t <= b.updated_s + e.cell_timeout_s
                and not b.status_bits & STATUS_CELL_MEASUREMENT_FAULT
                and len(b.cell_voltages_v) == CELLS
                and all(math.isfinite(v) and cell_lo <= v <= cell_hi for v in b.cell_voltages_v)  # type: ignore[operator]
            )
            if ok:
                assert b is not None
                fresh.append(b)
        all_fresh = len(fresh) == BOARDS
        self.ever_valid = self.ever_valid or all_fresh
        cur_t = s.current_updated_s
        current = (
            s.current_a
            if cur_t is not None
            and t <= cur_t + e.current_timeout_s
            and s.current_a is not None
            and math.isfinite(s.current_a)
            else None
        )
        in_t = s.inputs_updated_s
        inputs = s.inputs if in_t is not None and t <= in_t + e.inputs_timeout_s else None
        stale = not all_fresh or current is None or inputs is None
        cells = [v for b in fresh for v in b.cell_voltages_v]
        sensors = [x for b in fresh for x in b.temperatures_c]
        temps_known = bool(sensors) and all(x is not None and t_lo <= x <= t_hi for x in sensors)  # type: ignore[operator]
        temps = [x for x in sensors if x is not None and t_lo <= x <= t_hi]  # type: ignore[operator]
        raw_temp_fault = any(
            len(b.temperatures_c) < CELLS
            or any(x is None or not t_lo <= x <= t_hi for x in b.temperatures_c)  # type: ignore[operator]
            for b in fresh
        )

        def limit(name: str, value: float | None, above: bool) -> bool:
            q = p[name]
            if value is None or not q.enable or q.threshold is None:
                self.since.pop(name, None)
                return False
            breach = value > q.threshold if above else value < q.threshold
            if self.held(name, breach, t, q.set_delay_s):
                self.justified.add(name)
                return True
            return False

        trips = {
            "cell_overvoltage": limit("cell_overvoltage", max(cells, default=None), True),
            "cell_undervoltage": limit("cell_undervoltage", min(cells, default=None), False),
            "overcurrent_charge": limit("overcurrent_charge", current, True),
            "overcurrent_discharge": limit(
                "overcurrent_discharge", None if current is None else -current, True
            ),
            "low_temperature_charge": limit(
                "low_temperature_charge", min(temps, default=None), False
            ),
            "low_temperature_discharge": limit(
                "low_temperature_discharge", min(temps, default=None), False
            ),
            "high_temperature_charge": limit(
                "high_temperature_charge", max(temps, default=None), True
            ),
            "high_temperature_discharge": limit(
                "high_temperature_discharge", max(temps, default=None), True
            ),
        }
        cover = inputs is not None and inputs[0]
        critical = self.held(
            "battery_cover", cover, t, p["battery_cover"].set_delay_s
        ) or self.held(
            "temperature_sensor_fault", raw_temp_fault, t, p["temperature_sensor_fault"].set_delay_s
        )
        h = self.config.heater
        coldest = min(temps) if temps_known else None
        warm = self.held(
            "heater_release", coldest is not None and coldest > h.tolerant, t, h.clear_delay_s
        )
        lht = p["logic_high_temperature"].threshold
        assert lht is not None
        hot_boards = {
            b.board for b in fresh if b.board_temperature_c is None or b.board_temperature_c >= lht
        }
        return {
            "all_open": not self.ever_valid or stale or critical or go_safe,
            "stale": stale,
            "critical": critical,
            "charge_blocked": trips["cell_overvoltage"]
            or any(trips[n] for n in ("low_temperature_charge", "high_temperature_charge"))
            or trips["overcurrent_charge"]
            or trips["overcurrent_discharge"]
            or (inputs is not None and inputs[1]),
            "discharge_blocked": trips["cell_undervoltage"]
            or any(trips[n] for n in ("low_temperature_discharge", "high_temperature_discharge"))
            or trips["overcurrent_charge"]
            or trips["overcurrent_discharge"]
            or (inputs is not None and inputs[3]),
            "heater_forbidden": critical or go_safe or stale or not temps_known or warm,
            "undervoltage": trips["cell_undervoltage"],
            "hot_boards": hot_boards,
        }


class EngineStory(RuleBasedStateMachine):
    """Random cell voltages, temperatures, currents, dropouts and inputs."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="bmsgw-inv-")
        self.t = 0.0
        self.acted = False
        self.inputs_silent = False
        self.go = False
        self.world: World | None = None
        self.oracle: Oracle | None = None

    @initialize(
        charge_mode=st.sampled_from(["always", "charger_connected"]),
        latch=st.booleans(),
        ton=st.sampled_from([0.0, 1.0]),
    )
    def build(self, charge_mode: str, latch: bool, ton: float) -> None:
        cfg = load_config(
            None,
            {
                "gateway": {"state_dir": self._tmp.name},
                "logic": {"boards": BOARDS, "cells_per_board": CELLS},
                "charge_control": {"mode": charge_mode, "ton_s": ton},
                "inputs": {
                    1: {"signal": "battery_cover"},
                    2: {"signal": "inhibit_charging"},
                    3: {"signal": "charger_connected"},
                    4: {"signal": "inhibit_discharging"},
                },
                "protections": {
                    "cell_overvoltage": {"latch": latch},
                    "low_temperature_charge": {"latch": latch},
                },
            },
            env=False,
        )
        self.world = World.build(cfg, PackModel(boards=BOARDS, cells_per_board=CELLS), 0.6)
        self.oracle = Oracle(cfg)
        bus = self.world.ctx.bus
        publish = bus.publish

        def filtered(event: Event) -> None:  # the rig can silence the discrete inputs
            if not (self.inputs_silent and isinstance(event, InputsRead)):
                publish(event)

        bus.publish = filtered  # type: ignore[method-assign]

    @property
    def w(self) -> World:
        assert self.world is not None
        return self.world

    @rule(board=st.integers(1, BOARDS), cell=st.integers(1, CELLS), v=VOLTS)
    def cell_voltage(self, board: int, cell: int, v: float) -> None:
        self.w.pack.force_cell_voltage(board, cell, v)

    @rule(v=VOLTS)
    def all_cells(self, v: float) -> None:
        self.w.pack.force_cells(v)

    @rule(board=st.integers(1, BOARDS), sensor=st.integers(1, CELLS), value=TEMPS)
    def temperature(self, board: int, sensor: int, value: float | None) -> None:
        self.w.pack.force_temperature(value, board, sensor)

    @rule()
    def release(self) -> None:
        self.w.pack.release("all")

    @rule(a=st.one_of(st.floats(-50, 50), st.floats(-300, 300)))
    def current(self, a: float) -> None:
        self.w.pack.set_current(a)

    @rule(missing=st.booleans())
    def current_sensor(self, missing: bool) -> None:
        self.w.logic.current_missing = missing

    @rule(silent=st.booleans())
    def inputs_link(self, silent: bool) -> None:
        self.inputs_silent = silent

    @rule(board=st.integers(1, BOARDS), online=st.booleans())
    def board_link(self, board: int, online: bool) -> None:
        self.w.pack.set_board_online(board, online)

    @rule(board=st.integers(1, BOARDS), fault=st.booleans())
    def cell_front_end(self, board: int, fault: bool) -> None:
        self.w.pack.board(board).status_bits = STATUS_CELL_MEASUREMENT_FAULT if fault else 0

    @rule(n=st.integers(1, 4), closed=st.booleans())
    def contact(self, n: int, closed: bool) -> None:
        self.w.pack.inputs_closed[n - 1] = closed

    @rule(go=st.booleans())
    def go_safe(self, go: bool) -> None:
        self.go = go
        self.w.engine.engine.request_go_safe("test", go)
        self.acted = True

    @rule(ticks=st.integers(1, 60))
    def advance(self, ticks: int) -> None:
        w = self.w
        for _ in range(ticks):
            target = round(self.t + TICK_S, 6)
            # the engine's own deadlines before the tick, as the gateway loop does
            while (due := w.engine.next_decision_s()) < target - EPS:
                w.pack.step(due - self.t)
                self.t = due
                w.engine.cycle(due)
                w.logic.write_balancing()
            w.pack.step(target - self.t)
            self.t = target
            if round(self.t / POLL_S, 6).is_integer():
                w.logic.poll(self.t)
            woke = w.engine.input_pending()
            beat = w.engine.heartbeat(self.t)
            if woke or beat or self.acted or self.t >= w.engine.next_decision_s() - EPS:
                w.engine.cycle(self.t)
                w.logic.write_balancing()
            self.acted = False
            self.check(self.t)

    def check(self, t: float) -> None:
        w = self.w
        assert self.oracle is not None
        w.ctx.store.drain()  # what the engine saw (it drains on every decision)
        state = w.ctx.store.state
        must = self.oracle.observe(state, t, self.go)
        relays = w.ctx.drivers.relays
        closed = {fn: relays.relay_closed(n) for n, fn in w.config.relays.functions().items()}
        if must["all_open"]:
            assert not any(closed.values()), f"t={t}: a relay is closed: {must} {closed}"
        if must["charge_blocked"]:
            for fn in CHARGE_SIDE:
                assert not closed[fn], f"t={t}: {fn} closed while charging is blocked"
        if must["discharge_blocked"]:
            assert not closed["discharge_contactor"], f"t={t}: discharge closed while blocked"
        if must["heater_forbidden"]:
            assert not closed["heater"], f"t={t}: heater on: {must}"
        masks = state.control.balancing
        if must["stale"] or must["undervoltage"] or must["critical"] or self.go:
            assert not any(masks.values()), f"t={t}: balancing on {masks}: {must}"
        for board in must["hot_boards"]:  # type: ignore[attr-defined]
            assert not masks.get(board), f"t={t}: balancing on hot board {board}"
        for error in state.control.errors_active:
            if error in DEPENDENT:
                assert error in self.oracle.justified, f"t={t}: {error} without a real breach"

    def teardown(self) -> None:
        if self.world is not None:
            self.world.engine.shutdown()
            assert not any(self.world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
        self._tmp.cleanup()


EngineStory.TestCase.settings = settings(
    max_examples=400 if SLOW else 60,
    stateful_step_count=60 if SLOW else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineInvariants = EngineStory.TestCase
