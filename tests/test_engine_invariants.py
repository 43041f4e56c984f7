"""Safety invariants of the engine under random battery stories, with an independent oracle.

Hypothesis drives a rig (2 boards x 4 cells, four assigned inputs) through random cell
voltages (also implausible ones), temperatures (also missing and implausible), currents,
a silent current sensor, silent inputs, silent boards, cell front-end faults, contacts and
go-safe, with one root-cause diagnosis (or the battery cover, which would catch stale
inputs at the same instant) disabled in some stories. The engine runs
event-driven, as in the gateway: it decides when an input arrives and at its own
deadlines. Every 100 ms the oracle (tests/support/engine_oracle.py) computes from the raw
readings in the state store and the configuration alone what must hold, and the relays,
the outputs, the balancing masks and the active errors are checked against it. It never
reads the engine's own bookkeeping (`errors_active` is only checked *against* it).

The rig's relays carry both contactors, the heater and `charger_connected` (a signal no
safety rule switches off: only the all-open rule opens its relay); its outputs carry the
heater and the three contactor functions, so each decision is checked before the all-open
rule as well as at the relay.

Invariants at every check:
- no contactor closed (relay or function) while a condition that blocks it has held past
  its set delay;
- every relay open on stale or implausible data, before the first valid scan, while a
  critical condition has held past its delay, under go-safe;
- the heater (relay and signal) never on under a critical condition, with an unknown
  temperature, with one of `heater.off_on_errors` past its delay (too hot) or after the
  coldest cell has stayed above its release temperature for its clear delay;
- balancing never on an over-temperature board, during an undervoltage past its delay, or
  on stale data;
- no dependent error active unless a real breach in valid data once held past its delay,
  or its data was unknown while the root-cause diagnosis was disabled (nothing raised or
  latched from missing data while its diagnosis is enabled; a disabled one makes unknown
  data a breach, so disabling it never makes the pack less safe).
CI runs a bounded number of examples; BMSGW_SLOW=1 runs many more.
"""

from __future__ import annotations

import os
import tempfile

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from gateway.config import load_config
from gateway.core.events import Event, InputsRead
from gateway.hal.sim import SimOutputs
from gateway.protocols.logic_map import STATUS_CELL_MEASUREMENT_FAULT
from gateway.scenario.world import World
from gateway.sim.pack import PackModel
from tests.support.engine_oracle import DEPENDENT, DIAGNOSES, EPS, Oracle

SLOW = os.environ.get("BMSGW_SLOW") == "1"
BOARDS, CELLS = 2, 4
TICK_S, POLL_S = 0.1, 1.0
INPUTS = ("battery_cover", "inhibit_charging", "charger_connected", "inhibit_discharging")
RELAYS = {1: "discharge_contactor", 2: "charger_connected", 3: "charge_contactor", 4: "heater"}
OUTPUTS = {1: "heater", 2: "allow_charging", 3: "charge_contactor", 4: "discharge_contactor"}
CONTACTORS = ("discharge_contactor", "allow_charging", "charge_contactor")
CHARGE_SIDE = ("charge_contactor", "allow_charging")
# mostly nominal values, so that relays are closed often enough for the checks to matter
VOLTS = st.one_of(st.floats(3.2, 3.4), st.floats(2.0, 4.0), st.sampled_from([0.0, 5.5]))
TEMPS = st.one_of(
    st.floats(10, 35), st.floats(-5, 4), st.none(), st.floats(-30, 80), st.sampled_from([-60.0])
)
FAULT_CELL_V = {"overvoltage": 3.8, "undervoltage": 2.5, "cell_zero": 0.0, "cell_high": 5.5}
FAULT_TEMP_C = {
    "hot": 50.0,
    "very_hot": 60.0,
    "cold": -5.0,
    "frozen": -25.0,
    "sensor_lost": None,
    "sensor_implausible": -60.0,
}
FAULTS = (
    *(f"contact_{n}" for n in (1, 2, 4)),
    *FAULT_CELL_V,
    *FAULT_TEMP_C,
    "warm_up",
    "board_hot",
    "board_silent",
    "front_end",
    "current_silent",
    "inputs_silent",
    "overcurrent",
    "go_safe",
)
# Protections a story may disable: the root-cause diagnoses, and the battery cover (which
# would otherwise catch stale inputs as a critical error at the same instant).
DISABLED = (*DIAGNOSES, "battery_cover")
# the faults whose unknown data each of them would catch: each meets it disabled
DISABLED_FAULTS = {
    "current_sensor_fault": ("current_silent", "overcurrent"),
    "temperature_sensor_fault": ("sensor_lost", "sensor_implausible", "hot"),
    "logic_offline": ("board_silent",),
    "cell_voltage_implausible": ("cell_zero", "cell_high", "front_end"),
    "battery_cover": ("inputs_silent", "contact_1"),
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
        disabled=st.one_of(st.none(), st.sampled_from(DISABLED)),
    )
    def build(
        self,
        charge_mode: str,
        latch: bool,
        ton: float,
        disabled: str | None = None,
        never_valid: bool = False,
    ) -> None:
        """The rig; `disabled`: that protection has `enable: false`;
        `never_valid`: the boards' cell total never matches `pack.cells_in_series` (with
        `cell_count_mismatch` disabled, only the first-scan rule keeps the relays open)."""
        protections: dict[str, dict[str, object]] = {
            "cell_overvoltage": {"latch": latch},
            "low_temperature_charge": {"latch": latch},
        }
        if disabled is not None:
            protections[disabled] = {"enable": False}
        if never_valid:
            protections["cell_count_mismatch"] = {"enable": False}
        cfg = load_config(
            None,
            {
                "gateway": {"state_dir": self._tmp.name},
                "logic": {"boards": BOARDS, "cells_per_board": CELLS},
                "pack": {"cells_in_series": BOARDS * CELLS + 1 if never_valid else None},
                "charge_control": {"mode": charge_mode, "ton_s": ton},
                "inputs": {n: {"signal": s} for n, s in enumerate(INPUTS, start=1)},
                "relays": RELAYS,
                "outputs": OUTPUTS,
                "heater": {"clear_delay_s": 2.0},  # short: the release is met within a story
                "protections": protections,
            },
            env=False,
        )
        self.world = World.build(cfg, PackModel(boards=BOARDS, cells_per_board=CELLS), 0.6)
        self.oracle = Oracle(cfg, INPUTS, started_s=self.t)
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

    @rule(current=st.floats(-40, 40), cold=st.booleans())
    def heal(self, current: float, cold: bool) -> None:
        """Everything nominal again (so that single faults hit closed contactors)."""
        w = self.w
        w.pack.release("all")
        w.pack.force_cells(3.3)
        if current > 0:  # the balancing zone: one cell above the others
            w.pack.force_cells(3.42)
            w.pack.force_cell_voltage(1, 1, 3.44)
            w.pack.force_cell_voltage(2, 4, 3.44)
        if cold:  # the heater's zone
            w.pack.force_temperature(2.0)
        w.pack.set_current(current)
        w.logic.current_missing = False
        self.inputs_silent = False
        for n in range(1, BOARDS + 1):
            w.pack.set_board_online(n, True)
            w.pack.board(n).status_bits = 0
        w.pack.inputs_closed[:] = [False, False, True, False]  # charger connected
        self.go = False
        w.engine.engine.request_go_safe("test", False)
        self.acted = True

    @rule(
        fault=st.sampled_from(FAULTS),
        board=st.integers(1, BOARDS),
        current=st.floats(-40, 40),
        cold=st.booleans(),
        after=st.integers(1, 40),
    )
    def episode(self, fault: str, board: int, current: float, cold: bool, after: int) -> None:
        """A healthy pack with closed contactors, then one fault, then time passes."""
        self.heal(current, cold)
        self.advance(30)
        w = self.w
        if fault.startswith("contact_"):
            self.contact(int(fault[-1]), True)
        elif fault in FAULT_CELL_V:
            w.pack.force_cell_voltage(board, 2, FAULT_CELL_V[fault])
        elif fault in FAULT_TEMP_C:
            w.pack.force_temperature(FAULT_TEMP_C[fault], board, 3)
        elif fault == "warm_up":  # the heater's zone left: it must stop after its clear delay
            w.pack.release("temperature")
        elif fault == "board_hot":
            w.pack.board(board).board_temperature_c = 75.0
        elif fault == "board_silent":
            w.pack.set_board_online(board, False)
        elif fault == "front_end":
            w.pack.board(board).status_bits = STATUS_CELL_MEASUREMENT_FAULT
        elif fault == "current_silent":
            w.logic.current_missing = True
        elif fault == "inputs_silent":
            self.inputs_silent = True
        elif fault == "overcurrent":
            w.pack.set_current(150.0 if current > 0 else -250.0)
        elif fault == "go_safe":
            self.go_safe(True)
        self.advance(after)

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
        outputs = w.ctx.drivers.outputs
        assert isinstance(outputs, SimOutputs)
        relay = {fn: w.ctx.drivers.relays.relay_closed(n) for n, fn in RELAYS.items()}
        output = {fn: outputs.on[n] for n, fn in OUTPUTS.items()}

        def off(functions: tuple[str, ...], why: str) -> None:
            for fn in functions:
                assert not relay.get(fn), f"t={t}: relay {fn} closed while {why}: {must}"
                assert not output.get(fn), f"t={t}: output {fn} on while {why}: {must}"

        if must.all_open:
            assert not any(relay.values()), f"t={t}: a relay is closed: {must} {relay}"
            off(CONTACTORS, "every relay must be open")
        if must.charge_blocked:
            off(CHARGE_SIDE, "charging is blocked")
        if must.discharge_blocked:
            off(("discharge_contactor",), "discharging is blocked")
        if must.heater_forbidden:
            off(("heater",), "the heater must be off")
        masks = state.control.balancing
        if must.stale or must.undervoltage or must.critical or self.go:
            assert not any(masks.values()), f"t={t}: balancing on {masks}: {must}"
        for board in must.hot_boards:
            assert not masks.get(board), f"t={t}: balancing on hot board {board}"
        for error in state.control.errors_active:
            if error in DEPENDENT:
                assert error in self.oracle.justified, f"t={t}: {error} without a real breach"

    def teardown(self) -> None:
        if self.world is not None:
            self.world.engine.shutdown()
            assert not any(self.world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
        self._tmp.cleanup()


def episodes(fault: str, cold: bool, **variant: object) -> None:
    """The fault on every board of a healthy pack (charging, then discharging)."""
    story = EngineStory()
    try:
        story.build(charge_mode="always", latch=True, ton=0.0, **variant)  # type: ignore[arg-type]
        for board in range(1, BOARDS + 1):
            story.episode(fault, board, 5.0, cold, 40)
        story.episode(fault, 1, -5.0, cold, 40)
    finally:
        story.teardown()


# The deterministic passes come first: each safety line meets closed contactors (and a
# heater on, when cold) at least once, whatever hypothesis draws.
@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_on_a_healthy_pack_keeps_the_invariants(fault: str, cold: bool) -> None:
    episodes(fault, cold)


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "cold"])
@pytest.mark.parametrize(
    ("disabled", "fault"), [(d, f) for d, faults in DISABLED_FAULTS.items() for f in faults]
)
def test_a_disabled_protection_never_makes_the_pack_less_safe(
    disabled: str, fault: str, cold: bool
) -> None:
    """With the root-cause diagnosis of the fault's data (or the battery cover) disabled, the
    relays still open on the unknown data and its dependent protections count it as a
    breach."""
    episodes(fault, cold, disabled=disabled)


@pytest.mark.parametrize("fault", ["go_safe", "contact_2"])
def test_no_relay_closes_before_a_valid_scan(fault: str) -> None:
    """Boards that answer with plausible cells but never a valid scan (the total differs
    from `pack.cells_in_series`, `cell_count_mismatch` disabled): every relay stays open."""
    episodes(fault, True, never_valid=True)


# `make mutants` runs it once per mutant: BMSGW_INVARIANT_EXAMPLES bounds it there.
EXAMPLES = int(os.environ.get("BMSGW_INVARIANT_EXAMPLES", "0")) or (400 if SLOW else 60)
EngineStory.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=60 if SLOW else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineInvariants = EngineStory.TestCase
