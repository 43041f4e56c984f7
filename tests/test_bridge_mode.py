"""Bridge mode: the bridged board's limits win while fresh; data never read is no fault.

In bridge mode the bridged BMS Main decides and this gateway drives no relay; what it shows
must still be right: the current limits the bridged board sends (not the gateway's own),
the reason `bridge_mode` before it has read a board, and no error for boards or sensors it
never read (it does not poll them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.core.events import PointsRead
from gateway.scenario.world import World
from tests.support.world import SyncStepper, build_world


def make_world(tmp_path: Path, mode: str, **extra: Any) -> World:
    return build_world(tmp_path, mode, soc={"bridge_timeout_s": 5.0}, **extra)


class Run(SyncStepper):
    """Virtual time in 0.1 s steps; `poll=False` leaves the boards unread."""

    def points(self, **values: float) -> None:
        pts = {k.replace("__", "."): v for k, v in values.items()}
        self.world.ctx.bus.publish(PointsRead(at_s=self.t, source="bms", values=pts))


def test_bridged_limits_win_while_fresh_then_the_own_limits_return(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge"))
    run.until(30.0)  # the own limits have ramped up to their targets
    own_ccl, own_dcl = run.control.limits["ccl_a"], run.control.limits["dcl_a"]
    assert own_ccl not in (0.0, 12.5) and own_dcl not in (0.0, 33.0)
    run.points(main2x__charge_current_limit_a=12.5, main2x__discharge_current_limit_a=33.0)
    run.until(31.0)
    assert run.control.limits["ccl_a"] == pytest.approx(12.5)
    assert run.control.limits["dcl_a"] == pytest.approx(33.0)
    assert run.control.reasons["ccl"] == ["bridged main2x.charge_current_limit_a"]
    assert run.control.reasons["dcl"] == ["bridged main2x.discharge_current_limit_a"]
    run.until(36.5)  # older than soc.bridge_timeout_s (5 s): the own limits take over, ramping
    assert not any(r.startswith("bridged") for r in run.control.reasons["ccl"])
    assert 12.5 <= run.control.limits["ccl_a"] < own_ccl
    run.until(45.0)
    assert run.control.limits["ccl_a"] == pytest.approx(own_ccl)
    assert run.control.limits["dcl_a"] == pytest.approx(own_dcl)
    assert not any(r.startswith("bridged") for r in run.control.reasons["ccl"])


def test_bridged_limits_must_be_finite_and_not_negative(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge"))
    run.until(30.0)
    own_ccl = run.control.limits["ccl_a"]
    run.points(main2x__charge_current_limit_a=-5.0, main2x__discharge_current_limit_a=float("inf"))
    run.until(31.0)
    assert run.control.limits["ccl_a"] == pytest.approx(own_ccl)
    assert not any(r.startswith("bridged") for r in run.control.reasons["dcl"])


def test_controller_mode_ignores_bridged_limits(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "controller"))
    run.until(30.0)
    own_ccl = run.control.limits["ccl_a"]
    run.points(main2x__charge_current_limit_a=12.5)
    run.until(31.0)
    assert run.control.limits["ccl_a"] == pytest.approx(own_ccl)


@pytest.mark.parametrize(
    ("mode", "word"), [("bridge", "bridge_mode"), ("controller", "waiting_first_scan")]
)
def test_the_reason_before_any_board_is_read(tmp_path: Path, mode: str, word: str) -> None:
    run = Run(make_world(tmp_path, mode), poll=False)
    run.until(1.0)
    for relay in ("discharge_contactor", "charge_contactor"):
        assert word in run.control.reasons[relay]


def test_bridge_mode_raises_nothing_for_boards_it_never_read(tmp_path: Path) -> None:
    """Unread boards are not silent, their cells and sensors not missing, in bridge mode.

    With `logic_offline` disabled an unknown cell would count as a breach (the rule that
    makes a disabled diagnosis never less safe): in controller mode the same silence raises
    the cell errors, which shows the test would see them.
    """
    off = {"protections": {"logic_offline": {"enable": False}}}
    bridge = Run(make_world(tmp_path / "b", "bridge", **off), poll=False)
    bridge.until(30.0)
    assert bridge.control.errors_active == []
    controller = Run(make_world(tmp_path / "c", "controller", **off), poll=False)
    controller.until(30.0)
    assert "cell_overvoltage" in controller.control.errors_active


@pytest.mark.parametrize(("unread", "drops"), [(None, 2), (2, 1)])
def test_bridge_mode_sees_a_board_it_read_go_silent_and_not_one_it_never_read(
    tmp_path: Path, unread: int | None, drops: int
) -> None:
    """`unread` never answers (the gateway never read it): no fault; `drops` was read, goes
    silent (logic_offline) and returns."""
    run = Run(make_world(tmp_path, "bridge"))
    if unread is not None:
        run.world.pack.set_board_online(unread, False)
    run.until(30.0)
    assert run.control.errors_active == []
    run.world.pack.set_board_online(drops, False)
    run.until(60.0)
    assert run.control.errors_active == ["logic_offline"]
    run.world.pack.set_board_online(drops, True)
    run.until(75.0)
    assert run.control.errors_active == []


def test_bridge_mode_reports_a_current_sensor_it_lost(tmp_path: Path) -> None:
    """Never read is no fault in bridge mode, but a current once read and then lost is."""
    run = Run(make_world(tmp_path, "bridge"))
    run.until(10.0)
    assert run.control.errors_active == []
    run.world.logic.current_missing = True
    run.until(30.0)
    assert run.control.errors_active == ["current_sensor_fault"]


def test_errors_reported_by_the_bridged_bms_follow_its_points(tmp_path: Path) -> None:
    """`error.<name>` points (already debounced by the bridged board) show as they are."""
    run = Run(make_world(tmp_path, "bridge"))
    run.until(2.0)
    run.points(error__cell_undervoltage=False, error__cell_overvoltage=True)
    run.until(2.5)
    assert run.control.errors_active == ["cell_overvoltage"]
    run.points(error__cell_overvoltage=False, error__not_an_error=True)
    run.until(3.0)
    assert run.control.errors_active == []


def test_bridge_mode_judges_no_contactor_feedback_and_shows_stale_boards(tmp_path: Path) -> None:
    """The gateway commands no relay in bridge mode: a closed feedback input is no fault.
    A board it has read and that went silent is shown as stale."""
    extra = {"inputs": {2: {"signal": "charge_contactor_feedback"}}}
    run = Run(make_world(tmp_path, "bridge", **extra))
    run.world.pack.inputs_closed[1] = True  # the bridged BMS closed the contactor
    run.until(10.0)
    assert run.control.errors_active == []
    run.world.pack.set_board_online(2, False)
    run.until(15.0)
    assert "stale_board_2" in run.control.reasons["discharge_contactor"]


def test_bridge_mode_balances_no_board_that_is_too_hot(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge", balancing={"mode": "always"}))
    run.world.pack.force_cells(3.30)
    run.world.pack.force_cell_voltage(1, 3, 3.45)
    run.world.pack.force_cell_voltage(2, 5, 3.45)
    run.until(3.0)
    assert run.control.balancing == {1: 1 << 2, 2: 1 << 4}
    run.world.pack.board(1).board_temperature_c = 75.0
    run.until(4.0)
    assert run.control.balancing == {1: 0, 2: 1 << 4}


def test_a_bridged_limit_of_zero_forbids_that_direction(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge"))
    run.until(30.0)
    run.points(main2x__charge_current_limit_a=0.0, main2x__discharge_current_limit_a=0.5)
    run.until(31.0)
    assert run.control.limits["ccl_a"] == 0.0
    assert run.control.limits["dcl_a"] == pytest.approx(0.5)
