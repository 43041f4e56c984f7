"""Safety invariants of the engine under random battery stories (hypothesis, stateful).

At every engine cycle: no contactor is closed while an error that blocks it is active;
every relay is open while a critical error is active or before the first valid scan; and
no relay is closed on stale data (checked from the state, independently of the engine:
a board older than its timeout, offline, flagging a cell-measurement fault or carrying a
non-finite cell; current or inputs older than their timeouts or non-finite).
CI runs a bounded number of examples; BMSGW_SLOW=1 runs many more.
"""

from __future__ import annotations

import math
import os
import tempfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from gateway.config import load_config
from gateway.control.table import BY_NAME
from gateway.protocols.logic_map import STATUS_CELL_MEASUREMENT_FAULT
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

SLOW = os.environ.get("BMSGW_SLOW") == "1"
BOARDS, CELLS = 2, 4
CONTACTORS_CHARGE = ("charge_contactor", "allow_charging")
# mostly nominal values, so that relays are closed often enough for the checks to matter
VOLTS = st.one_of(st.floats(3.2, 3.4), st.floats(2.0, 4.0))


class EngineStory(RuleBasedStateMachine):
    """Random cell voltages, temperatures, currents, dropouts and inputs."""

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="bmsgw-inv-")
        self.t_ms = 0
        self.world: World | None = None

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
                "protections": {"cell_overvoltage": {"latch": latch}},
            },
            env=False,
        )
        self.world = World.build(cfg, PackModel(boards=BOARDS, cells_per_board=CELLS), 0.6)

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

    @rule(
        board=st.integers(1, BOARDS),
        sensor=st.integers(1, CELLS),
        value=st.one_of(st.floats(10, 35), st.none(), st.floats(-30, 80)),
    )
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
        self.w.engine.engine.request_go_safe("test", go)

    @rule(ticks=st.integers(1, 60))
    def advance(self, ticks: int) -> None:
        for _ in range(ticks):
            self.t_ms += 100
            t = self.t_ms / 1000
            self.w.pack.step(0.1)
            if self.t_ms % 1000 == 0:
                self.w.logic.poll(t)
            self.w.engine.cycle(t)
            self.check(t)

    def check(self, now_s: float) -> None:
        w = self.w
        state = w.ctx.store.state
        ctl = state.control
        relays = w.ctx.drivers.relays
        closed = {fn: relays.relay_closed(n) for n, fn in w.config.relays.functions().items()}
        any_closed = any(closed.values())
        if not ctl.first_valid_scan:
            assert not any_closed, "a relay closed before the first valid scan"
        critical = [e for e in ctl.errors_active if BY_NAME[e].severity == "critical"]
        if critical:
            assert not any_closed, f"a relay is closed during critical {critical}"
        for e in ctl.errors_active:
            row = BY_NAME[e]
            if row.blocks_charge:
                for fn in CONTACTORS_CHARGE:
                    assert not closed[fn], f"{fn} closed while {e} is active"
            if row.blocks_discharge:
                assert not closed["discharge_contactor"], f"discharge closed while {e}"
        timeout = w.config.engine
        stale = any(
            b.updated_s is None or not b.online or now_s - b.updated_s > timeout.cell_timeout_s
            for b in state.boards.values()
        ) or (
            state.current_updated_s is None
            or now_s - state.current_updated_s > timeout.current_timeout_s
        )
        # a board flagging a cell-measurement fault, or a non-finite reading, is not data
        stale = stale or any(
            b.status_bits & STATUS_CELL_MEASUREMENT_FAULT
            or not all(math.isfinite(v) for v in b.cell_voltages_v)
            for b in state.boards.values()
        )
        stale = stale or state.current_a is None or not math.isfinite(state.current_a)
        stale = stale or (
            state.inputs_updated_s is None
            or now_s - state.inputs_updated_s > timeout.inputs_timeout_s
        )
        if stale:
            assert not any_closed, "a relay is closed on stale data"
        if w.engine.engine.go_safe_requests:
            assert not any_closed, "a relay is closed during go-safe"

    def teardown(self) -> None:
        if self.world is not None:
            self.world.engine.shutdown()
            assert not any(self.world.ctx.drivers.relays.relay_closed(n) for n in range(1, 5))
        self._tmp.cleanup()


EngineStory.TestCase.settings = settings(
    max_examples=400 if SLOW else 25,
    stateful_step_count=60 if SLOW else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestEngineInvariants = EngineStory.TestCase
