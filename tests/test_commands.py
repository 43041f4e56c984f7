"""MQTT command topics end to end: a real Mosquitto, the real MQTT publisher and the engine.

The engine runs in a scenario `World` (virtual clock, simulated pack, sim relay driver) and
is cycled by the test; network I/O is real. A command is sent by an independent aiomqtt
client; the test waits (poll with timeout) until the extension has accepted it, then runs
the engine's next cycle and checks the relays, the reply on `command/result` and the audit
notices on `events`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.control.commands import GO_SAFE
from gateway.control.latches import GO_SAFE_FILE, LEGACY_GO_SAFE_FILE
from gateway.control.names import ERROR_NAMES
from gateway.publishers import commands
from gateway.publishers.commands import CommandTopics, Rejected, parse_command
from gateway.publishers.mqtt import MqttPublisher
from gateway.scenario.world import World
from gateway.sim.pack import PackModel
from tests.support.broker import Broker
from tests.support.mqtt import watching
from tests.support.tasks import cancel_for_sure
from tests.support.waiting import until as wait_until
from tests.support.world import WorldStepper

GW = "gw-cmd"
BASE = f"bms/{GW}"
RESULT = f"{BASE}/command/result"
EVENTS = f"{BASE}/events"
RELAYS = range(1, 5)
until = functools.partial(wait_until, timeout_s=10.0, poll_s=0.01)
TOKEN = "test-token-0123"
RELEASE = {"allow_go_safe_release": True, "token": TOKEN}


def make_world(tmp_path: Path, broker: Broker | None, **extra: Any) -> World:
    mqtt: dict[str, Any] = {"enabled": False}
    if broker is not None:
        mqtt = {
            "host": broker.host,
            "port": broker.port,
            "publish_interval_s": 1.0,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 1.0,
        }
    data: dict[str, Any] = {
        "gateway": {"id": GW, "state_dir": str(tmp_path / "state")},
        "mqtt": mqtt,
        "logic": {"boards": 2, "cells_per_board": 16},
        "homeassistant": {"enabled": False},
        **extra,
    }
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


class Rig(WorldStepper):
    """A World, the MQTT publisher with the command extension, and a commanding client."""

    def __init__(self, world: World, ext: CommandTopics, client: aiomqtt.Client) -> None:
        super().__init__(world)
        self.ext = ext
        self.client = client

    async def send(self, command: str, payload: str | bytes, *, retain: bool = False) -> None:
        await self.client.publish(f"{BASE}/command/{command}", payload, qos=1, retain=retain)

    async def command(self, command: str, payload: str) -> None:
        """Send a valid command and wait until the extension has handed it to the engine."""
        before = self.received(command)
        await self.send(command, payload)
        await until(lambda: self.received(command) > before, f"{command} accepted")

    def received(self, command: str) -> float:
        return self.metric("bms_commands_received_total", command=command)

    def rejected(self, reason: str) -> float:
        return self.metric("bms_commands_rejected_total", reason=reason)

    def metric(self, name: str, **labels: str) -> float:
        return self.world.ctx.registry.get_sample_value(name, labels) or 0.0

    def closed(self) -> list[int]:
        return [n for n in RELAYS if self.world.ctx.drivers.relays.relay_closed(n)]

    @property
    def control(self) -> Any:
        return self.world.ctx.store.state.control


@contextlib.asynccontextmanager
async def rig(world: World, broker: Broker) -> AsyncIterator[Rig]:
    ext = commands.create(world.ctx)
    assert ext is not None
    publisher = MqttPublisher(world.ctx)
    tasks = [
        asyncio.create_task(publisher.run(), name="mqtt"),
        asyncio.create_task(ext.run(), name="commands"),
    ]
    try:
        async with aiomqtt.Client(broker.host, broker.port) as client:
            await until(lambda: ext.ready, "command extension subscribed")
            yield Rig(world, ext, client)
    finally:
        for t in tasks:
            await cancel_for_sure(t, retry_s=0.1)


def go_safe_on_disk(tmp_path: Path) -> set[str]:
    """The go-safe sources in the engine's state file."""
    data = json.loads((tmp_path / "state" / GO_SAFE_FILE).read_text(encoding="utf-8"))
    return set(data["requests"])


async def wait_for(got: list[dict[str, Any]], what: str, **match: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((m for m in got if all(m.get(k) == v for k, v in match.items())), None)

    await until(lambda: found() is not None, what)
    m = found()
    assert m is not None
    return m


@pytest.mark.broker
async def test_go_safe_on_opens_every_relay_next_cycle_and_off_releases(
    tmp_path: Path, broker: Broker
) -> None:
    world = make_world(tmp_path, broker, commands=RELEASE)
    async with (
        watching(broker, RESULT) as results,
        watching(broker, EVENTS) as events,
        rig(world, broker) as r,
    ):
        await r.run_until(3.0)
        assert 1 in r.closed()  # the discharge contactor closed on a healthy pack

        await r.command("go_safe", "on")
        await r.run_until(r.t)  # the next engine cycle
        assert r.closed() == []
        assert r.control.reasons["go_safe"] == ["mqtt"]
        reply = await wait_for(results, "go_safe reply", command="go_safe")
        assert reply["ok"] is True and isinstance(reply["request"], int)
        await wait_for(events, "command_received", type="command_received", argument="on")
        await wait_for(events, "command_applied", type="command_applied", ok=True)
        assert go_safe_on_disk(tmp_path) == {"mqtt"}  # the engine's file, the one that counts
        assert not (tmp_path / "state" / LEGACY_GO_SAFE_FILE).exists()  # no second copy

        await r.run_until(r.t + 3.0)
        assert r.closed() == []  # and stays open

        await r.command("go_safe", json.dumps({"active": False, "token": TOKEN}))
        await r.run_until(r.t + 3.0)
        assert 1 in r.closed()
        assert go_safe_on_disk(tmp_path) == set()
        await until(
            lambda: len([m for m in results if m["command"] == "go_safe" and m["ok"]]) == 2,
            "release reply",
        )


@pytest.mark.broker
async def test_go_safe_off_leaves_other_sources_in_force(tmp_path: Path, broker: Broker) -> None:
    world = make_world(tmp_path, broker, commands=RELEASE, inputs={2: {"signal": "go_safe"}})
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        await r.run_until(3.0)
        assert 1 in r.closed()
        await r.command("go_safe", "ON")
        world.pack.inputs_closed[1] = True  # the go-safe input closes too
        await r.run_until(r.t + 1.0)
        await r.command("go_safe", json.dumps({"active": False, "token": TOKEN}))
        await r.run_until(r.t + 3.0)
        assert r.closed() == []
        assert r.control.reasons["go_safe"] == ["input"]
        off = await wait_for(results, "release reply", command="go_safe", ok=True)
        assert off["detail"]
        world.pack.inputs_closed[1] = False
        await r.run_until(r.t + 3.0)
        assert 1 in r.closed()


@pytest.mark.broker
async def test_ack_clears_a_gone_breach_and_keeps_a_present_one(
    tmp_path: Path, broker: Broker
) -> None:
    world = make_world(
        tmp_path,
        broker,
        commands={"allow_ack": True, "token": TOKEN},
        protections={"cell_overvoltage": {"latch": True}},
    )
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        await r.run_until(1.0)
        world.pack.force_cells(3.70)
        await r.run_until(3.0)
        assert "cell_overvoltage" in r.control.errors_active

        await r.command("ack", json.dumps({"error": "cell_overvoltage", "token": TOKEN}))  # kept
        await r.run_until(r.t + 1.0)
        kept = await wait_for(results, "ack reply (kept)", command="ack")
        assert kept["ok"] is False and kept["kept"] == ["cell_overvoltage"]
        assert "cell_overvoltage" in r.control.errors_active

        world.pack.force_cells(3.30)  # breach gone; the latch holds the error
        await r.run_until(r.t + 15.0)
        assert "cell_overvoltage" in r.control.errors_active

        await r.command("ack", json.dumps({"error": "all", "token": TOKEN}))
        await r.run_until(r.t + 15.0)
        assert "cell_overvoltage" not in r.control.errors_active
        done = await wait_for(results, "ack reply (cleared)", command="ack", ok=True)
        assert done["cleared"] == ["cell_overvoltage"] and done["kept"] == []


@pytest.mark.broker
async def test_bad_commands_get_ok_false_and_are_counted(tmp_path: Path, broker: Broker) -> None:
    world = make_world(tmp_path, broker)  # allow_ack defaults to false
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        await r.run_until(3.0)
        cases = [
            ("reboot", "now", "unknown_command"),
            ("go_safe", "maybe", "malformed"),
            ("go_safe", '{"active": "yes"}', "malformed"),
            ("go_safe", b"\xff\xfe", "malformed"),
            ("ack", "cell_overvoltage", "not_allowed"),
            ("go_safe", "off", "not_allowed"),
        ]
        for command, payload, reason in cases:
            before = r.rejected(reason)
            await r.send(command, payload)
            await until(lambda reason=reason, b=before: r.rejected(reason) > b, reason)
        await until(lambda: len(results) == len(cases), "every reply")
        assert all(m["ok"] is False and m["detail"] for m in results)
        assert [m["command"] for m in results] == [c for c, _, _ in cases]
        await r.run_until(r.t + 1.0)
        assert 1 in r.closed()  # nothing happened to the relays
        assert r.received("go_safe") == 0


@pytest.mark.broker
async def test_unknown_error_name_is_rejected(tmp_path: Path, broker: Broker) -> None:
    world = make_world(tmp_path, broker, commands={"allow_ack": True, "token": TOKEN})
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        await r.send("ack", "no_such_error")
        reply = await wait_for(results, "ack reply", command="ack")
        assert reply["ok"] is False and "no_such_error" in reply["detail"]
        assert r.rejected("unknown_error") == 1


@pytest.mark.broker
async def test_retained_commands_are_ignored(tmp_path: Path, broker: Broker) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as early:
        await early.publish(f"{BASE}/command/go_safe", "on", qos=1, retain=True)
    world = make_world(tmp_path, broker)
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        await until(lambda: r.rejected("retained") == 1, "retained command dropped")
        await r.run_until(3.0)
        assert 1 in r.closed()
        assert r.received("go_safe") == 0
        reply = await wait_for(results, "retained reply", command="go_safe")
        assert reply["ok"] is False and "retained" in reply["detail"]


@pytest.mark.broker
async def test_an_mqtt_go_safe_request_survives_a_restart_through_the_engines_file(
    tmp_path: Path, broker: Broker
) -> None:
    world = make_world(tmp_path, broker)
    async with rig(world, broker) as r:
        await r.run_until(3.0)
        assert 1 in r.closed()
        await r.command("go_safe", "on")
        await r.run_until(r.t)
        assert r.closed() == []
    world.engine.shutdown()

    # Restarted without MQTT (no command front end at all): the engine restores the request.
    again = make_world(tmp_path, None)
    stepper = WorldStepper(again)
    await stepper.run_until(5.0)
    assert not any(again.ctx.drivers.relays.relay_closed(n) for n in RELAYS)
    assert again.ctx.store.state.control.reasons["go_safe"] == ["mqtt"]
    assert go_safe_on_disk(tmp_path) == {"mqtt"}


def test_disabled_commands_register_nothing(tmp_path: Path) -> None:
    world = make_world(tmp_path, None)
    assert commands.create(world.ctx) is None  # mqtt off
    cfg = load_config(None, {"commands": {"enabled": False}}, env=False)
    assert cfg.commands.enabled is False


def test_parse_accepts_the_documented_payloads() -> None:
    for text in ("on", "ON", "true", "1", '{"active": true}', '"on"'):
        assert parse_command(GO_SAFE, text.encode()).active is True, text
    for text in ("off", "OFF", "false", "0", '{"active": false}'):
        assert parse_command(GO_SAFE, text.encode()).active is False, text
    assert parse_command("ack", b"all").errors is None
    assert parse_command("ack", b" cell_overvoltage\n").errors == ("cell_overvoltage",)
    assert parse_command("ack", b'{"error": "logic_offline"}').errors == ("logic_offline",)


@given(command=st.sampled_from(["go_safe", "ack", "result", "x"]), payload=st.binary(max_size=300))
def test_parse_never_raises_anything_but_rejected(command: str, payload: bytes) -> None:
    try:
        cmd = parse_command(command, payload)
    except Rejected as err:
        assert err.reason in {"unknown_command", "malformed", "unknown_error"}
        assert err.detail
    else:
        assert cmd.command == command
        assert cmd.errors is None or set(cmd.errors) <= set(ERROR_NAMES)
        json.dumps(cmd.argument)
