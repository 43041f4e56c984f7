"""Home Assistant controls end to end: press what was discovered, on a real Mosquitto.

The gateway side is the real MQTT publisher carrying both extensions (Home Assistant
discovery and the command topics) and the engine in a scenario `World` (virtual clock,
simulated pack, sim relay driver), cycled by the test. The Home Assistant side is an
independent client that knows nothing but the discovery configs it received: it "presses" a
control the way Home Assistant does, by publishing the discovered payload (non-retained) to
the discovered `command_topic`, and reads the switch state through the discovered
`value_template` from the retained `state` message.
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
import jinja2
import jinja2.sandbox
import pytest

from gateway.config import load_config
from gateway.publishers import commands, homeassistant
from gateway.publishers.mqtt import MqttPublisher
from gateway.scenario.world import World
from gateway.sim.pack import PackModel
from tests.support.broker import Broker
from tests.support.mqtt import watching
from tests.support.tasks import cancel_for_sure
from tests.support.waiting import until as wait_until
from tests.support.world import WorldStepper

GW = "gw-ha-cmd"
BASE = f"bms/{GW}"
RESULT = f"{BASE}/command/result"
RELAYS = range(1, 5)
until = functools.partial(wait_until, timeout_s=10.0, poll_s=0.01)

pytestmark = pytest.mark.broker


def make_world(tmp_path: Path, broker: Broker, commands_: dict[str, Any], **extra: Any) -> World:
    data: dict[str, Any] = {
        "gateway": {"id": GW, "state_dir": str(tmp_path / "state")},
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "publish_interval_s": 0.5,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 1.0,
        },
        "logic": {"boards": 2, "cells_per_board": 16},
        "commands": commands_,
        **extra,
    }
    return World.build(load_config(None, data, env=False), PackModel(2, 16), initial_soc=0.6)


def render(template: str, value_json: dict[str, Any]) -> str:
    """Render like Home Assistant does for MQTT (`value_json`, strict undefined)."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=value_json).strip()


class HomeAssistant:
    """The Home Assistant side: discovered configs, the latest state, command publishing."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.configs: dict[str, dict[str, Any]] = {}  # config topic -> payload
        self.state: dict[str, Any] | None = None

    async def run(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else b""
            topic = m.topic.value
            if topic.endswith("/config"):
                if payload:
                    self.configs[topic] = json.loads(payload)
                else:
                    self.configs.pop(topic, None)
            elif topic == f"{BASE}/state":
                self.state = json.loads(payload)

    def control(self, component: str, object_id: str) -> dict[str, Any]:
        return self.configs[f"homeassistant/{component}/{GW}/{object_id}/config"]

    async def press(self, config: dict[str, Any], payload_key: str) -> None:
        """What HA does on a switch turn_on/turn_off or a button press (retain false)."""
        await self.client.publish(config["command_topic"], config[payload_key], qos=0)

    def switch_state(self, config: dict[str, Any]) -> str | None:
        """The switch's state as HA derives it: the template against the state message."""
        if self.state is None:
            return None
        out = render(config["value_template"], self.state)
        return {config["state_on"]: "on", config["state_off"]: "off"}.get(out, out)


class Rig(WorldStepper):
    def __init__(self, world: World, ha: HomeAssistant) -> None:
        super().__init__(world)
        self.ha = ha

    def received(self, command: str) -> float:
        value = self.world.ctx.registry.get_sample_value(
            "bms_commands_received_total", {"command": command}
        )
        return value or 0.0

    async def press(self, config: dict[str, Any], payload_key: str) -> None:
        """Press, wait until the command extension accepted it, run the next engine cycle."""
        command = config["command_topic"].split("/")[-2]
        before = self.received(command)
        await self.ha.press(config, payload_key)
        await until(lambda: self.received(command) > before, f"{command} accepted")
        await self.run_until(self.t)

    def closed(self) -> list[int]:
        return [n for n in RELAYS if self.world.ctx.drivers.relays.relay_closed(n)]


@contextlib.asynccontextmanager
async def rig(world: World, broker: Broker) -> AsyncIterator[Rig]:
    ext = commands.create(world.ctx)
    assert ext is not None
    homeassistant.create(world.ctx)
    assert [e.name for e in world.ctx.mqtt_extensions] == ["commands", "homeassistant"]
    async with aiomqtt.Client(broker.host, broker.port, identifier="home-assistant") as client:
        await client.subscribe("homeassistant/#", qos=1)
        await client.subscribe(f"{BASE}/state", qos=1)
        ha = HomeAssistant(client)
        tasks = [
            asyncio.create_task(ha.run(), name="ha"),
            asyncio.create_task(MqttPublisher(world.ctx).run(), name="mqtt"),
            asyncio.create_task(ext.run(), name="commands"),
        ]
        try:
            await until(lambda: ext.ready, "command extension subscribed")
            expected = {m.topic for m in homeassistant.discovery_messages(world.config)}
            await until(lambda: expected <= set(ha.configs), "discovery received")
            yield Rig(world, ha)
        finally:
            for t in reversed(tasks):
                await cancel_for_sure(t, retry_s=0.1)


def results_for(results: list[dict[str, Any]], command: str) -> list[dict[str, Any]]:
    return [m for m in results if m["command"] == command and m["request"] is not None]


async def test_go_safe_switch_and_ack_button_work_as_discovered(
    tmp_path: Path, broker: Broker
) -> None:
    world = make_world(
        tmp_path,
        broker,
        {"allow_ack": True, "allow_go_safe_release": True, "trusted_identities": ["homeassistant"]},
        protections={"cell_overvoltage": {"latch": True}},
    )
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        switch = r.ha.control("switch", "go_safe")
        ack = r.ha.control("button", "ack")
        assert f"homeassistant/button/{GW}/go_safe/config" not in r.ha.configs
        await r.run_until(3.0)
        assert 1 in r.closed()  # a healthy pack: the discharge contactor is closed
        await until(lambda: r.ha.switch_state(switch) == "off", "switch shows off")

        await r.press(switch, "payload_on")
        assert r.closed() == []  # every relay opened in the engine's next cycle
        await until(lambda: len(results_for(results, "go_safe")) == 1, "go_safe on reply")
        assert results_for(results, "go_safe")[0]["ok"] is True
        await r.run_until(r.t + 1.0)  # the next state messages carry the signal
        await until(lambda: r.ha.switch_state(switch) == "on", "switch shows on")

        await r.press(switch, "payload_off")
        await until(lambda: len(results_for(results, "go_safe")) == 2, "go_safe off reply")
        assert results_for(results, "go_safe")[1]["ok"] is True
        await r.run_until(r.t + 3.0)
        assert 1 in r.closed()
        await until(lambda: r.ha.switch_state(switch) == "off", "switch shows off again")

        # A latched error whose breach is gone: the button acknowledges it.
        world.pack.force_cells(3.70)
        await r.run_until(r.t + 3.0)
        world.pack.force_cells(3.30)
        await r.run_until(r.t + 15.0)
        assert "cell_overvoltage" in world.ctx.store.state.control.errors_active  # latched
        await r.press(ack, "payload_press")
        assert "cell_overvoltage" not in world.ctx.store.state.control.errors_active
        await until(lambda: len(results_for(results, "ack")) == 1, "ack reply")
        reply = results_for(results, "ack")[0]
        assert reply["ok"] is True
        assert (reply["cleared"], reply["kept"]) == (["cell_overvoltage"], [])


async def test_go_safe_is_a_button_when_it_cannot_be_released(
    tmp_path: Path, broker: Broker
) -> None:
    world = make_world(tmp_path, broker, {"allow_go_safe_release": False})
    async with watching(broker, RESULT) as results, rig(world, broker) as r:
        button = r.ha.control("button", "go_safe")
        assert f"homeassistant/switch/{GW}/go_safe/config" not in r.ha.configs
        assert f"homeassistant/button/{GW}/ack/config" not in r.ha.configs  # allow_ack off
        await r.run_until(3.0)
        assert 1 in r.closed()

        await r.press(button, "payload_press")
        assert r.closed() == []
        await until(lambda: len(results_for(results, "go_safe")) == 1, "go_safe reply")
        assert results_for(results, "go_safe")[0]["ok"] is True
        await r.run_until(r.t + 3.0)
        assert r.closed() == []  # and stays open
