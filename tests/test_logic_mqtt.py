"""End to end: simulated Logic boards on a pty -> Logic adapter -> state -> MQTT on Mosquitto."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.adapters.logic import LogicAdapter
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.core.context import GatewayContext
from gateway.publishers.mqtt import MqttPublisher
from gateway.sim.embedded import embedded_simulator
from gateway.sim.pack import PackModel
from tests.support.broker import Broker
from tests.support.mqtt import watching
from tests.support.tasks import running
from tests.support.waiting import until

pytestmark = pytest.mark.broker

BOARDS, CELLS = 3, 16


@contextlib.asynccontextmanager
async def gateway(broker: Broker) -> AsyncIterator[tuple[GatewayContext, PackModel]]:
    """The embedded simulator, the Logic adapter, the state store and the MQTT publisher."""
    config = load_config(
        overrides={
            "gateway": {"id": "gw-logic", "state_dir": str(broker.workdir / "state")},
            "mqtt": {"host": broker.host, "port": broker.port, "publish_interval_s": 0.2},
            "logic": {
                "boards": BOARDS,
                "cells_per_board": CELLS,
                "poll_interval_s": 0.1,
                "timeout_s": 0.05,
                "offline_after": 2,
            },
            "simulator": {"current_amplitude_a": 0.0},
        },
        env=False,
    )
    async with embedded_simulator(config) as (port, pack):
        logic = config.logic.model_copy(update={"port": port})
        ctx = build_context(config.model_copy(update={"logic": logic}), RealClock(), pack)
        for b in range(1, BOARDS + 1):  # a distinct voltage per cell exposes any mix-up
            for c in range(1, CELLS + 1):
                pack.force_cell_voltage(b, c, 3.1 + b * 0.05 + c * 0.0071)
        async with running(ctx, LogicAdapter(ctx), MqttPublisher(ctx)):
            yield ctx, pack


def complete(message: dict[str, Any]) -> bool:
    return message.get("boards_online") == BOARDS and all(
        len(b["cell_voltages"]) == CELLS for b in message["boards"]
    )


async def test_every_simulated_cell_voltage_arrives_in_the_mqtt_state(broker: Broker) -> None:
    async with (
        watching(broker, "bms/gw-logic/state") as states,
        gateway(broker) as (_, pack),
    ):
        await until(lambda: any(complete(m) for m in states), "a complete state message")
        message = next(m for m in states if complete(m))
        assert [b["board"] for b in message["boards"]] == list(range(1, BOARDS + 1))
        for board in message["boards"]:
            want = pack.cell_voltages_v(board["board"])
            assert len(board["cell_voltages"]) == len(want)
            for got_v, want_v in zip(board["cell_voltages"], want, strict=True):
                assert abs(got_v - want_v) <= 0.001
        assert abs(message["voltage"] - pack.pack_voltage_v) <= 0.001 * BOARDS * CELLS


async def test_a_silent_board_is_announced_offline_then_online_on_events(broker: Broker) -> None:
    async with (
        watching(broker, "bms/gw-logic/events") as events,
        watching(broker, "bms/gw-logic/state") as states,
        gateway(broker) as (ctx, pack),
    ):
        await until(lambda: ctx.store.state.boards_online == BOARDS, "all boards online")
        pack.set_board_online(2, False)
        await until(
            lambda: any(e.get("type") == "board_offline" for e in events), "board_offline event"
        )
        offline = next(e for e in events if e.get("type") == "board_offline")
        assert offline["board"] == 2
        assert offline["reason"] == "timeout"
        assert offline["consecutive_failures"] == 2
        await until(
            lambda: any(m.get("boards_online") == BOARDS - 1 for m in states),
            "a state with board 2 offline",
        )
        pack.set_board_online(2, True)
        await until(
            lambda: any(
                e.get("type") == "board_online" and e["board"] == 2 and e["seq"] > offline["seq"]
                for e in events
            ),
            "board_online event after the offline one",
        )
        failures = ctx.registry.get_sample_value(
            "bms_logic_poll_errors_total", {"board": "2", "kind": "timeout"}
        )
        assert failures is not None and failures >= 2
