"""Bridge mode: the state's SOC comes from the bridged board while its point is fresh."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.can.canopen import tpdo1_points, tpdo_frames
from gateway.adapters.can.dbc import decode, shipped
from gateway.config import load_config
from gateway.core.events import PointsRead
from gateway.core.state import GatewayState
from gateway.protocols.profiles import load_profile
from gateway.scenario.world import World
from gateway.sim.pack import PackModel


def make_world(tmp_path: Path, mode: str, **extra: Any) -> World:
    data: dict[str, Any] = {
        "gateway": {"state_dir": str(tmp_path), "mode": mode},
        "soc": {"bridge_timeout_s": 5.0},
        **extra,
    }
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


class Run:
    def __init__(self, world: World) -> None:
        self.world = world
        self.t = 0.0

    def until(self, until_s: float) -> None:
        while self.t <= until_s + 1e-9:
            self.world.logic.poll(self.t)
            self.world.engine.cycle(self.t)
            self.t = round(self.t + 0.1, 6)

    def points(self, source: str, **values: float | int) -> None:
        pts = {k.replace("__", "."): v for k, v in values.items()}
        self.world.ctx.bus.publish(PointsRead(at_s=self.t, source=source, values=pts))

    @property
    def soc(self) -> float | None:
        soc: float | None = self.world.ctx.store.state.control.soc
        return soc


def test_profile_and_can_publish_the_points_the_engine_reads() -> None:
    soc = next(p for p in load_profile("bms-main-2x").points if p.name == "main2x.soc_pct")
    assert soc.type == "REAL32" and soc.unit == "%" and soc.scale == 1
    state = GatewayState()
    state.control.soc = 0.55
    tpdo1 = tpdo_frames(state, node_id=1)[0]
    msg = shipped("bms_main_canopen").get_message_by_name("TPDO1")
    assert tpdo1_points(decode(msg, tpdo1.data))["bms_main.soc_pct"] == 55


def test_bridged_soc_wins_while_fresh_then_the_own_estimate_carries_on(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge"))
    run.until(1.0)
    assert run.soc == pytest.approx(0.6)  # nothing bridged yet: the gateway's own estimate
    run.points("bms", main2x__soc_pct=73.5)
    run.until(2.0)
    assert run.soc == pytest.approx(0.735)
    run.points("can", bms_main__soc_pct=40)  # both fresh: the Modbus REAL32 is preferred
    run.until(3.0)
    assert run.soc == pytest.approx(0.735)
    run.until(6.5)  # main2x.soc_pct is now older than bridge_timeout_s: CAN takes over
    assert run.soc == pytest.approx(0.40)
    run.world.pack.set_current(-36.0)  # -36 A on 100 Ah: -1 % per 100 s
    run.until(20.0)  # every bridged point stale: coulomb counting continues from 40 %
    soc = run.soc
    assert soc is not None and 0.385 < soc < 0.40


def test_bridged_soc_must_be_a_plausible_percentage(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "bridge"))
    run.until(1.0)
    run.points("bms", main2x__soc_pct=math.nan, bms_main__soc_pct=250)
    run.until(2.0)
    assert run.soc == pytest.approx(0.6)


def test_controller_mode_ignores_bridged_soc(tmp_path: Path) -> None:
    run = Run(make_world(tmp_path, "controller"))
    run.until(1.0)
    run.points("bms", main2x__soc_pct=12.0)
    run.until(2.0)
    assert run.soc == pytest.approx(0.6)


def test_bridged_soc_edges_and_the_can_point_alone(tmp_path: Path) -> None:
    """0 % and 100 % are SOCs; 100.5 % is not; the CAN point counts without the Modbus one."""
    run = Run(make_world(tmp_path, "bridge"))
    run.until(1.0)
    run.points("can", bms_main__soc_pct=0)
    run.until(2.0)
    assert run.soc == pytest.approx(0.0)
    run.points("can", bms_main__soc_pct=100)
    run.until(3.0)
    assert run.soc == pytest.approx(1.0)
    run.points("bms", main2x__soc_pct=100.5)  # implausible: the CAN point still counts
    run.until(4.0)
    assert run.soc == pytest.approx(1.0)
