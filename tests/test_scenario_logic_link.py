"""Scenarios poll the Logic boards through the real `LogicAdapter` (over the in-memory link),
not through a copy of its poll: its reads, decode, verdicts and balancing writes are used."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.config import load_config
from gateway.core.bus import Overflow, Subscription
from gateway.core.events import BoardScanned, BoardWentOffline
from gateway.scenario.world import World
from gateway.sim.pack import PackModel


def _world() -> World:
    cfg = load_config(None, {"logic": {"boards": 2, "cells_per_board": 4}}, env=False)
    return World.build(cfg, PackModel(boards=2, cells_per_board=4), initial_soc=0.5)


def _sub(world: World) -> Subscription[Any]:
    return world.ctx.bus.subscribe(
        "test", BoardScanned, BoardWentOffline, overflow=Overflow.NEVER_DROP
    )


def _drain(sub: Subscription[Any]) -> list[Any]:
    out = []
    while (e := sub.get_nowait()) is not None:
        out.append(e)
    return out


def _poll_errors(world: World, kind: str) -> float:
    value = world.ctx.registry.get_sample_value(
        "bms_logic_poll_errors_total", {"board": "2", "kind": kind}
    )
    return value or 0.0


async def test_the_adapter_reads_every_board_over_the_memory_link() -> None:
    world = _world()
    sub = _sub(world)
    world.logic.poll(0.0)
    assert world.logic.client.reads == 2  # one read request per board, by the adapter
    scanned = [e for e in _drain(sub) if isinstance(e, BoardScanned)]
    assert [e.board for e in scanned] == [1, 2]
    expected = [round(v, 3) for v in world.pack.cell_voltages_v(2)]  # 1 mV registers
    assert list(scanned[1].cell_voltages_v) == pytest.approx(expected)


async def test_a_silent_board_goes_offline_by_the_adapters_rule() -> None:
    world = _world()
    sub = _sub(world)
    world.pack.board(2).online = False
    offline_after = world.config.logic.offline_after
    for i in range(offline_after):
        world.logic.poll(float(i))
    assert _poll_errors(world, "timeout") == offline_after
    went = [e for e in _drain(sub) if isinstance(e, BoardWentOffline)]
    assert [(e.board, e.reason) for e in went] == [(2, "timeout")]


async def test_balancing_masks_reach_the_boards_through_the_adapter() -> None:
    world = _world()
    world.logic.poll(0.0)
    world.ctx.store.state.control.balancing = {1: 0b0101}
    world.logic.write_balancing()
    assert world.pack.board(1).balancing_mask == 0b0101
    assert world.logic.adapter.written_masks[1] == 0b0101
