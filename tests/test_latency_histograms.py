"""Observers of the health histograms: Logic poll latency and protection reaction time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.logic import LogicAdapter
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import VirtualClock
from gateway.core.context import GatewayContext
from gateway.scenario.world import World
from gateway.sim.logic_server import LogicRtuServer, serve_on_pty
from gateway.sim.pack import PackModel


def sample(ctx: GatewayContext, name: str, **labels: str) -> float:
    return ctx.registry.get_sample_value(name, labels) or 0.0


# --- bms_logic_poll_latency_seconds -------------------------------------------------------


class SteppedClock(VirtualClock):
    """A virtual clock the fake wire moves forward while a reply is on its way."""

    def jump(self, seconds: float) -> None:
        self._now_s += seconds


async def test_poll_latency_is_observed_per_answered_poll_on_the_gateway_clock() -> None:
    clock = SteppedClock()
    wire_s = {1: 0.004, 2: 0.3}  # board 3 never answers

    def reply_filter(board: int, reply: bytes) -> bytes | None:
        if board not in wire_s:
            return None
        clock.jump(wire_s[board])
        return reply

    pack = PackModel(boards=3, cells_per_board=16)
    server = LogicRtuServer(pack, reply_filter=reply_filter)
    async with serve_on_pty(server) as path:
        config = load_config(
            overrides={
                "logic": {"port": path, "boards": 3, "cells_per_board": 16, "timeout_s": 0.05}
            },
            env=False,
        )
        ctx = build_context(config, clock, pack)
        adapter = LogicAdapter(ctx)
        try:
            await adapter.poll_cycle()
        finally:
            adapter.close()
    name = "bms_logic_poll_latency_seconds"
    assert sample(ctx, f"{name}_count") == 2  # the timed-out poll is not a latency
    assert sample(ctx, f"{name}_sum") == pytest.approx(0.304)
    assert sample(ctx, f"{name}_bucket", le="0.005") == 1
    assert sample(ctx, f"{name}_bucket", le="0.2") == 1
    assert sample(ctx, f"{name}_bucket", le="0.5") == 2
    assert sample(ctx, "bms_logic_poll_errors_total", board="3", kind="timeout") == 1


# --- bms_protection_reaction_seconds ------------------------------------------------------


def make_world(tmp_path: Path, **extra: Any) -> World:
    data: dict[str, Any] = {"gateway": {"state_dir": str(tmp_path)}, **extra}
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


def run(world: World, start_s: float, until_s: float) -> None:
    t = start_s
    while t <= until_s + 1e-9:
        world.logic.poll(t)
        world.engine.cycle(t)
        t = round(t + world.config.engine.cycle_s, 6)


REACTION = "bms_protection_reaction_seconds"


def test_reaction_spans_the_set_delay_to_the_relay_command(tmp_path: Path) -> None:
    world = make_world(tmp_path, protections={"cell_overvoltage": {"set_delay_ms": 1000}})
    ctx = world.ctx
    run(world, 0.0, 2.0)
    assert ctx.drivers.relays.relay_closed(3)
    world.pack.force_cells(3.70)
    run(world, 2.1, 5.0)
    assert not ctx.drivers.relays.relay_closed(3)
    assert "cell_overvoltage" in ctx.store.state.control.errors_active
    # one observation per raise, although it opened two relays (allow charging, charge)
    assert sample(ctx, f"{REACTION}_count", error="cell_overvoltage") == 1
    cycle = world.config.engine.cycle_s
    assert sample(ctx, f"{REACTION}_sum", error="cell_overvoltage") == pytest.approx(
        1.0, abs=cycle + 1e-9
    )
    # released and tripped again: a second observation
    world.pack.force_cells(3.30)
    run(world, 5.1, 12.0)
    assert ctx.drivers.relays.relay_closed(3)
    world.pack.force_cells(3.70)
    run(world, 12.1, 14.0)
    assert sample(ctx, f"{REACTION}_count", error="cell_overvoltage") == 2


def test_no_reaction_without_a_relay_command(tmp_path: Path) -> None:
    # a warning never moves a relay; an error raised while its relays are already open
    # caused no command either
    world = make_world(
        tmp_path,
        protections={"cell_imbalance": {"set_delay_ms": 500}},
        charge_control={"mode": "charge_request"},
    )
    ctx = world.ctx
    run(world, 0.0, 2.0)
    assert not ctx.drivers.relays.relay_closed(3)  # no charge request: charge side open
    world.pack.force_cell_voltage(1, 1, 3.70)  # overvoltage and a 0.4 V spread
    run(world, 2.1, 14.0)
    active = ctx.store.state.control.errors_active
    assert "cell_imbalance" in active and "cell_overvoltage" in active
    assert sample(ctx, f"{REACTION}_count", error="cell_imbalance") == 0
    assert sample(ctx, f"{REACTION}_count", error="cell_overvoltage") == 0


# --- engine counters follow Prometheus conventions -------------------------------------

ENGINE_COUNTERS = {
    "bms_engine_cycles_total",
    "bms_engine_driver_failures_total",
    "bms_errors_raised_total",
    "bms_relay_switches_total",
    "bms_relay_lease_lapses_total",
}


def test_engine_counters_render_with_total_and_are_documented(tmp_path: Path) -> None:
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    world = make_world(tmp_path)
    run(world, 0.0, 2.0)
    world.pack.force_cells(3.70)
    run(world, 2.1, 4.0)
    body = generate_latest(world.ctx.registry).decode()
    samples: dict[str, str] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            samples[s.name] = family.type
    for name in ENGINE_COUNTERS:
        assert f"# TYPE {name} counter" in body, name
    assert samples["bms_engine_cycles_total"] == "counter"
    assert samples["bms_errors_raised_total"] == "counter"
    assert samples["bms_relay_switches_total"] == "counter"
    assert "bms_engine_cycles " not in body and "bms_errors_raised{" not in body
    assert samples["bms_engine_running"] == "gauge"
    doc = (Path(__file__).parent.parent / "docs" / "protections.md").read_text(encoding="utf-8")
    for name in ENGINE_COUNTERS:
        assert f"`{name}" in doc, name
