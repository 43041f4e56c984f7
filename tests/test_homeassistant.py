"""Home Assistant discovery: pure builders, HA's rules, templates against a real `state`, broker."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import aiomqtt
import jinja2
import jinja2.sandbox
import pytest

from gateway.config import GatewayConfig, load_config
from gateway.control.names import ERROR_NAMES, RELAY_FUNCTIONS_DEFAULT
from gateway.core.clock import VirtualClock
from gateway.core.state import BoardState, GatewayState, SwitchState
from gateway.publishers.homeassistant import (
    DESCRIPTIONS,
    HomeAssistantDiscovery,
    config_payload,
    device_block,
    discovery_messages,
    entity_descriptions,
    removal_message,
)
from gateway.publishers.payloads import encode, state_message
from tests.support.broker import Broker
from tests.support.tasks import cancel_for_sure
from tests.support.waiting import until

GOLDEN = Path(__file__).parent / "golden"

# --- Home Assistant's documented rules (developers.home-assistant.io, sensor/binary_sensor) ---
# Units each sensor device class accepts (None = no unit). Only classes a BMS could use are
# listed; an entity using a class missing here fails the test, so the table grows on purpose.
SENSOR_DEVICE_CLASS_UNITS: dict[str, set[str | None]] = {
    "apparent_power": {"mVA", "VA", "kVA"},
    "battery": {"%"},
    "current": {"A", "mA"},
    "duration": {"d", "h", "min", "s", "ms", "µs"},
    "energy": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh", "cal", "kcal"},
    "energy_storage": {"J", "kJ", "MJ", "GJ", "mWh", "Wh", "kWh", "MWh", "GWh", "TWh"},
    "enum": {None},
    "frequency": {"Hz", "kHz", "MHz", "GHz"},
    "humidity": {"%"},
    "power": {"mW", "W", "kW", "MW", "GW", "TW", "BTU/h"},
    "power_factor": {"%", None},
    "reactive_power": {"mvar", "var", "kvar"},
    "signal_strength": {"dB", "dBm"},
    "temperature": {"°C", "°F", "K"},
    "timestamp": {None},
    "voltage": {"V", "mV", "µV", "kV", "MV"},
}
# Device classes whose state is not a number: no state_class, no unit allowed.
NON_NUMERIC_SENSOR_CLASSES = {"timestamp", "enum", "date"}
STATE_CLASSES = {"measurement", "measurement_angle", "total", "total_increasing"}
BINARY_DEVICE_CLASSES = {
    "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door",
    "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy",
    "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound",
    "tamper", "update", "vibration", "window",
}  # fmt: skip
ENTITY_CATEGORIES = {"config", "diagnostic"}
# Keys every entity carries (availability, device, identity).
BASE_REQUIRED = {
    "name", "unique_id", "availability_topic", "payload_available", "payload_not_available",
    "device",
}  # fmt: skip
STATE_KEYS = {"state_topic", "value_template"}
# Required per component: HA's schema requires `command_topic` for switch (MQTT_RW_SCHEMA)
# and button; the state and payload keys below are ours (explicit, never HA's defaults:
# HA's switch/binary_sensor default to ON/OFF, the button to PRESS, which commands.py would
# reject).
REQUIRED = {
    "sensor": BASE_REQUIRED | STATE_KEYS,
    "binary_sensor": BASE_REQUIRED | STATE_KEYS | {"payload_on", "payload_off"},
    "switch": BASE_REQUIRED | STATE_KEYS | {
        "command_topic", "payload_on", "payload_off", "state_on", "state_off",
    },
    "button": BASE_REQUIRED | {"command_topic", "payload_press"},
}  # fmt: skip
# Keys each component accepts (HA's MQTT platform schemas; a button has no state).
COMMON_OPTIONAL = {"entity_category", "icon"}
ALLOWED = {
    "sensor": REQUIRED["sensor"] | COMMON_OPTIONAL | {
        "device_class", "state_class", "unit_of_measurement", "suggested_display_precision",
    },
    "binary_sensor": REQUIRED["binary_sensor"] | COMMON_OPTIONAL | {"device_class"},
    "switch": REQUIRED["switch"] | COMMON_OPTIONAL | {"device_class"},
    "button": REQUIRED["button"] | COMMON_OPTIONAL | {"device_class"},
}  # fmt: skip
SWITCH_DEVICE_CLASSES = {"outlet", "switch"}
BUTTON_DEVICE_CLASSES = {"identify", "restart", "update"}
TOPIC = re.compile(
    r"^homeassistant/(sensor|binary_sensor|switch|button)/([A-Za-z0-9_-]+)/([A-Za-z0-9_-]+)"
    r"/config$"
)


def make_config(commands: dict[str, Any] | None = None, **ha: Any) -> GatewayConfig:
    return load_config(
        overrides={
            "logic": {"boards": 3, "cells_per_board": 3},
            "homeassistant": ha,
            "commands": commands or {},
        },
        env=False,
    )


# Every combination of the command options that changes which controls exist.
TRUST_HA = {"trusted_identities": ["homeassistant"]}
COMMAND_CONFIGS = [
    {},
    {"enabled": False},
    {"allow_ack": True, **TRUST_HA},
    {"allow_go_safe_release": True, **TRUST_HA},
    {"allow_ack": True, "allow_go_safe_release": True, **TRUST_HA},
    {"allow_ack": True, "token": "a-long-secret"},  # HA cannot carry the token: no ack button
]


def real_state() -> GatewayState:
    """Two boards online, one offline; the engine's decisions filled in."""
    state = GatewayState(
        boards={
            1: BoardState(
                board=1,
                online=True,
                cell_voltages_v=(3.301, 3.299, 3.311),
                temperatures_c=(24.96, None, 25.04),
                board_temperature_c=31.26,
                updated_s=99.5,
            ),
            2: BoardState(
                board=2,
                online=True,
                cell_voltages_v=(3.287, 3.300, 3.299),
                temperatures_c=(23.0, 23.11, 22.95),
                board_temperature_c=None,
                updated_s=99.6,
            ),
            3: BoardState(board=3, online=False, cell_voltages_v=(3.1, 3.1, 3.1)),
        },
        current_a=-12.5,
        humidity_pct=41.2,
        inputs=(True, False, False, True),
        inputs_updated_s=99.0,
    )
    c = state.control
    c.errors_active = ["cell_imbalance", "high_humidity"]
    c.signals = {"charge_allowed": False, "discharge_allowed": True, "go_safe": True}
    c.relays = {
        1: SwitchState("discharge_contactor", True, ("discharge_allowed",), 10.0),
        3: SwitchState("charge_contactor", False, (), None),
    }
    c.outputs = {2: SwitchState("critical_error", True)}
    c.soc = 0.615
    c.limits = {"cvl_v": 55.2, "ccl_a": 0.0, "dcl_a": 100.0}
    return state


def state_json(state: GatewayState, config: GatewayConfig) -> dict[str, Any]:
    """The `state` message exactly as the MQTT publisher sends it (bytes -> JSON)."""
    data: dict[str, Any] = json.loads(encode(state_message(state, VirtualClock(100.0), config)))
    return data


def render(template: str, value_json: dict[str, Any]) -> str:
    """Render like HA does for MQTT: the payload parsed as `value_json` (strict undefined)."""
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=value_json).strip()


def payloads(config: GatewayConfig) -> dict[str, dict[str, Any]]:
    return {m.topic: json.loads(m.payload) for m in discovery_messages(config)}


# --- the table and HA's rules ---------------------------------------------------------


@pytest.mark.parametrize("commands", COMMAND_CONFIGS)
@pytest.mark.parametrize("per_cell", [False, True])
def test_every_config_is_valid_for_home_assistant(per_cell: bool, commands: dict[str, Any]) -> None:
    config = make_config(commands, per_cell_entities=per_cell)
    messages = discovery_messages(config)
    unique_ids: set[str] = set()
    for m in messages:
        assert m.retain
        match = TOPIC.match(m.topic)
        assert match, m.topic
        component, node, object_id = match.groups()
        assert node == "bms-gateway"
        p = json.loads(m.payload)
        assert REQUIRED[component] <= set(p), (m.topic, REQUIRED[component] - set(p))
        assert set(p) <= ALLOWED[component], (m.topic, set(p) - ALLOWED[component])
        assert p["unique_id"] == f"bms-gateway_{object_id}"
        assert p["unique_id"] not in unique_ids
        unique_ids.add(p["unique_id"])
        if component != "button":
            assert p["state_topic"] == "bms/bms-gateway/state"
        assert p["availability_topic"] == "bms/bms-gateway/availability"
        assert (p["payload_available"], p["payload_not_available"]) == ("online", "offline")
        # HA prefixes the device name: entity names must not repeat it.
        assert p["device"]["name"].lower() not in p["name"].lower()
        assert "bms" not in p["name"].lower()
        assert p.get("entity_category", "diagnostic") in ENTITY_CATEGORIES
        dc, unit, sc = p.get("device_class"), p.get("unit_of_measurement"), p.get("state_class")
        if component in {"switch", "button"}:
            # The command topic is exactly what the command extension subscribes to.
            assert p["command_topic"] == f"bms/bms-gateway/command/{object_id}/homeassistant"
            assert dc is None or dc in (
                SWITCH_DEVICE_CLASSES if component == "switch" else BUTTON_DEVICE_CLASSES
            )
            assert unit is None and sc is None
        elif component == "sensor":
            if dc is not None:
                assert dc in SENSOR_DEVICE_CLASS_UNITS, dc
                assert unit in SENSOR_DEVICE_CLASS_UNITS[dc], (p["name"], dc, unit)
            if dc in NON_NUMERIC_SENSOR_CLASSES:
                assert sc is None and unit is None
            if sc is not None:
                assert sc in STATE_CLASSES
        else:
            assert dc is None or dc in BINARY_DEVICE_CLASSES, dc
            assert unit is None and sc is None
    per_cell_count = 3 * (3 + 3)
    controls = {"switch", "button"}
    fixed = [d for d in DESCRIPTIONS if d.component not in controls]
    assert len(messages) == len(fixed) + len(expected_controls(commands)) + (
        per_cell_count if per_cell else 0
    )
    assert {
        TOPIC.match(m.topic).group(1, 3)  # type: ignore[union-attr]
        for m in messages
        if m.topic.split("/")[1] in controls
    } == expected_controls(commands)


def expected_controls(commands: dict[str, Any]) -> set[tuple[str, str]]:
    """(component, object_id) of the controls the `commands` options should produce."""
    if not commands.get("enabled", True):
        return set()
    trusted = "homeassistant" in commands.get("trusted_identities", [])
    release = commands.get("allow_go_safe_release", False) and trusted
    out = {("switch" if release else "button", "go_safe")}
    if commands.get("allow_ack", False) and trusted:
        out.add(("button", "ack"))
    return out


def test_controls_send_what_the_command_extension_accepts() -> None:
    """Each control's payloads parse as the intended command (commands.parse_command)."""
    from gateway.publishers.commands import parse_command

    for commands in COMMAND_CONFIGS:
        for topic, p in payloads(make_config(commands)).items():
            component = topic.split("/")[1]
            if component not in {"switch", "button"}:
                continue
            name = p["command_topic"].split("/")[-2]
            if component == "switch":
                assert parse_command(name, p["payload_on"].encode()).active is True
                assert parse_command(name, p["payload_off"].encode()).active is False
            elif name == "go_safe":
                assert parse_command(name, p["payload_press"].encode()).active is True
            else:
                assert parse_command(name, p["payload_press"].encode()).errors is None  # all


def test_the_table_has_every_required_entity() -> None:
    keys = {d.key: d for d in entity_descriptions(make_config())}
    for key, dc, unit in [
        ("voltage", "voltage", "V"),
        ("current", "current", "A"),
        ("power", "power", "W"),
        ("soc", "battery", "%"),
        ("cell_voltage_min", "voltage", "V"),
        ("cell_voltage_max", "voltage", "V"),
        ("cell_voltage_delta", "voltage", "V"),
        ("temperature_min", "temperature", "°C"),
        ("temperature_max", "temperature", "°C"),
        ("humidity", "humidity", "%"),
    ]:
        d = keys[key]
        assert (d.component, d.device_class, d.unit, d.state_class) == (
            "sensor", dc, unit, "measurement"
        )  # fmt: skip
    assert keys["boards_online"].entity_category == "diagnostic"
    config = make_config()
    for n, function in RELAY_FUNCTIONS_DEFAULT.items():
        assert keys[f"relay_{n}"].component == "binary_sensor"
        name = config_payload(config, keys[f"relay_{n}"])["name"]
        assert name == f"{function.replace('_', ' ').capitalize()} (relay {n})"
    for n in range(1, 5):
        assert keys[f"input_{n}"].component == keys[f"output_{n}"].component == "binary_sensor"
    for error in ERROR_NAMES:
        assert keys[f"error_{error}"].device_class == "problem"
    assert {"charge_allowed", "discharge_allowed"} <= set(keys)


def test_names_follow_relay_input_and_output_assignments() -> None:
    config = load_config(
        overrides={
            "relays": {"2": "none", "4": "cooler"},
            "inputs": {"1": {"signal": "battery_cover"}},
            "outputs": {"3": "critical_error"},
        },
        env=False,
    )
    names = {m.topic.split("/")[3]: json.loads(m.payload) for m in discovery_messages(config)}
    assert names["relay_1"]["name"] == "Discharge contactor (relay 1)"
    assert names["relay_2"]["name"] == "Relay 2"
    assert names["relay_4"]["name"] == "Cooler (relay 4)"
    assert names["input_1"]["name"] == "Input 1 (battery cover)"
    assert names["input_2"]["name"] == "Input 2"
    assert names["output_3"]["name"] == "Output 3 (critical error)"
    # The unique_id stays with the relay number: reassigning a relay keeps HA's history.
    assert names["relay_4"]["unique_id"] == "bms-gateway_relay_4"


def test_device_block_and_overrides() -> None:
    config = make_config(
        node_id="garage", device_name="Garage battery", configuration_url="http://gw.local:8080/"
    )
    device = device_block(config)
    assert device["identifiers"] == ["bms_gateway_garage"]
    assert device["name"] == "Garage battery"
    assert device["model"] == "BMS Main 2.1"
    assert device["configuration_url"] == "http://gw.local:8080/"
    assert device["sw_version"]
    topics = [m.topic for m in discovery_messages(config)]
    assert "homeassistant/sensor/garage/voltage/config" in topics
    assert "configuration_url" not in device_block(make_config())  # no web page, no link


def test_prefixes_follow_the_config() -> None:
    config = load_config(
        overrides={
            "gateway": {"id": "gw7"},
            "mqtt": {"topic_prefix": "site/a"},
            "homeassistant": {"discovery_prefix": "ha"},
        },
        env=False,
    )
    m = discovery_messages(config)[0]
    assert m.topic == "ha/sensor/gw7/voltage/config"
    p = json.loads(m.payload)
    assert p["state_topic"] == "site/a/gw7/state"
    assert p["availability_topic"] == "site/a/gw7/availability"
    assert removal_message(m.topic) == (m.topic, b"", True)


def test_disabled_config_adds_no_extension() -> None:
    from gateway.app import build_context
    from gateway.publishers.homeassistant import create

    ctx = build_context(make_config(enabled=False))
    assert create(ctx) is None
    assert ctx.mqtt_extensions == []
    ctx = build_context(make_config())
    assert create(ctx) is None
    assert [type(e) for e in ctx.mqtt_extensions] == [HomeAssistantDiscovery]


# --- golden files (byte for byte) -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "topic"),
    [
        ("ha_discovery_voltage", "homeassistant/sensor/bms-gateway/voltage/config"),
        ("ha_discovery_relay_1", "homeassistant/binary_sensor/bms-gateway/relay_1/config"),
        (
            "ha_discovery_error_cell_overvoltage",
            "homeassistant/binary_sensor/bms-gateway/error_cell_overvoltage/config",
        ),
    ],
)
def test_payload_matches_golden_file(name: str, topic: str) -> None:
    messages = {m.topic: m.payload for m in discovery_messages(load_config(env=False))}
    path = GOLDEN / f"{name}.json"
    if os.environ.get("BMSGW_UPDATE_GOLDEN"):
        path.write_bytes(messages[topic])
    assert messages[topic] == path.read_bytes()


# --- value templates against a real `state` message -------------------------------------


def _numeric_or_none(text: str) -> float | None:
    return None if text == "None" else float(text)


def test_templates_resolve_against_a_real_state_message() -> None:
    config = make_config(
        {"allow_ack": True, "allow_go_safe_release": True, **TRUST_HA}, per_cell_entities=True
    )
    value_json = state_json(real_state(), config)
    stateful = [d for d in entity_descriptions(config) if d.value_template is not None]
    assert {d.key for d in entity_descriptions(config)} - {d.key for d in stateful} == {"ack"}
    rendered = {d.key: render(d.value_template, value_json) for d in stateful}  # type: ignore[arg-type]
    for d in stateful:
        out = rendered[d.key]
        if d.component == "binary_sensor":
            assert out in {"ON", "OFF", "None"}, (d.key, out)
        elif d.component == "switch":
            assert out in {d.state_on, d.state_off, "None"}, (d.key, out)
        elif d.device_class == "timestamp":
            assert datetime.fromisoformat(out).tzinfo is not None
        elif d.state_class is not None:
            _numeric_or_none(out)  # a number, or None (= unknown in HA)
    assert float(rendered["voltage"]) == value_json["voltage"]
    assert float(rendered["current"]) == -12.5
    assert float(rendered["power"]) == value_json["power"]
    assert float(rendered["soc"]) == 61.5
    assert float(rendered["cell_voltage_min"]) == 3.287
    assert float(rendered["cell_voltage_max"]) == 3.311
    assert float(rendered["cell_voltage_delta"]) == 0.024
    assert float(rendered["temperature_max"]) == 25.0
    assert float(rendered["humidity"]) == 41.2
    assert rendered["boards_online"] == "2"
    assert rendered["mode"] == "controller"
    assert float(rendered["charge_voltage_limit"]) == 55.2
    assert float(rendered["charge_current_limit"]) == 0.0
    assert (rendered["charge_allowed"], rendered["discharge_allowed"]) == ("OFF", "ON")
    assert rendered["go_safe"] == "ON"  # == the switch's state_on
    assert rendered["relay_1"] == "ON"
    assert rendered["relay_3"] == "OFF"
    assert rendered["relay_2"] == "None"  # the engine reports no relay 2: unknown, not OFF
    assert [rendered[f"input_{n}"] for n in range(1, 5)] == ["ON", "OFF", "OFF", "ON"]
    assert rendered["output_2"] == "ON"
    assert rendered["output_1"] == "None"
    assert rendered["error_cell_imbalance"] == rendered["error_high_humidity"] == "ON"
    assert rendered["error_cell_overvoltage"] == "OFF"
    assert float(rendered["board_1_cell_3_voltage"]) == 3.311
    assert float(rendered["board_2_cell_1_voltage"]) == 3.287
    assert rendered["board_1_temperature_2"] == "None"  # sensor missing
    assert float(rendered["board_1_temperature_3"]) == 25.0
    assert rendered["board_3_cell_1_voltage"] == "None"  # board offline


def test_templates_resolve_before_any_reading() -> None:
    """A fresh gateway (nothing measured, engine not started) renders only unknowns."""
    config = make_config(per_cell_entities=True)
    empty = GatewayState(boards={n: BoardState(board=n) for n in (1, 2, 3)})
    value_json = state_json(empty, config)
    for d in entity_descriptions(config):
        if d.value_template is None:
            continue
        out = render(d.value_template, value_json)
        if d.key.startswith("error_"):
            assert out == "OFF"
        elif d.key in {"boards_online", "mode", "last_update"}:
            assert out not in {"", "None"}
        else:
            assert out == "None", (d.key, out)


# --- on a real Mosquitto ----------------------------------------------------------------


class Observer:
    """A second client recording every message under `homeassistant/#`."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.messages: list[tuple[str, bytes, bool]] = []
        self._changed = asyncio.Event()

    async def run(self) -> None:
        async for m in self.client.messages:
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            self.messages.append((m.topic.value, payload, m.retain))
            self._changed.set()

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        async with asyncio.timeout(timeout_s):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()

    def last(self) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for topic, payload, _ in self.messages:
            out[topic] = payload
        return out


@contextlib.asynccontextmanager
async def observing(broker: Broker) -> AsyncIterator[Observer]:
    async with aiomqtt.Client(broker.host, broker.port, identifier="observer") as client:
        await client.subscribe("homeassistant/#", qos=1)
        obs = Observer(client)
        task = asyncio.create_task(obs.run())
        try:
            yield obs
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def driving(ext: HomeAssistantDiscovery, broker: Broker) -> AsyncIterator[aiomqtt.Client]:
    """Drive the extension as the MQTT publisher's contract says: subscribe, connected, route."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="gateway") as client:
        for topic in ext.subscriptions():
            await client.subscribe(topic, qos=1)
        await ext.on_connected(client)

        async def route() -> None:
            async for m in client.messages:
                await ext.on_message(client, m)

        task = asyncio.create_task(route())
        try:
            yield client
        finally:
            await cancel_for_sure(task)


async def retained(broker: Broker, pattern: str = "homeassistant/#") -> dict[str, bytes]:
    """Everything retained under `pattern` (a fresh subscriber gets exactly that)."""
    async with aiomqtt.Client(broker.host, broker.port, identifier="late-reader") as client:
        await client.subscribe(pattern, qos=1)
        out: dict[str, bytes] = {}
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for m in client.messages:
                    assert m.retain
                    out[m.topic.value] = m.payload if isinstance(m.payload, bytes) else b""
        return out


async def test_announce_on_a_real_broker(broker: Broker) -> None:
    config = make_config()
    ext = HomeAssistantDiscovery(config)
    expected = {m.topic: m.payload for m in discovery_messages(config)}
    async with observing(broker) as obs, driving(ext, broker):
        await obs.wait_for(lambda: set(expected) <= set(obs.last()))
    assert obs.last() == expected
    assert await retained(broker) == expected
    assert ext.announcements >= 1
    assert ext.removed == []


async def test_home_assistant_birth_triggers_reannounce(broker: Broker) -> None:
    config = make_config()
    ext = HomeAssistantDiscovery(config)
    n = len(discovery_messages(config))
    async with observing(broker) as obs, driving(ext, broker) as client:
        await obs.wait_for(lambda: len(obs.messages) >= n)
        assert ext.announcements == 1
        await client.publish("homeassistant/status", b"offline", qos=1)
        await client.publish("homeassistant/status", b"online", qos=1)
        await obs.wait_for(
            lambda: len([m for m in obs.messages if m[0].endswith("/config")]) >= 2 * n
        )
    assert ext.announcements == 2
    # The re-announce was live (not a retained replay): HA gets it while subscribed.
    assert sum(1 for _, _, r in obs.messages[-n:] if not r) == n


async def test_entities_the_config_no_longer_makes_are_removed(broker: Broker) -> None:
    # Round 1: per-cell entities on, plus a leftover from an older release.
    with_cells = make_config(per_cell_entities=True)
    async with aiomqtt.Client(broker.host, broker.port, identifier="old") as client:
        await client.publish(
            "homeassistant/sensor/bms-gateway/retired_thing/config", b'{"name":"x"}', retain=True
        )
        for m in discovery_messages(with_cells):
            await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        # A different node's config must survive.
        await client.publish(
            "homeassistant/sensor/other-node/voltage/config", b'{"name":"y"}', retain=True
        )
    before = await retained(broker)
    assert "homeassistant/sensor/bms-gateway/board_1_cell_1_voltage/config" in before

    # Round 2: per-cell entities off.
    config = make_config()
    ext = HomeAssistantDiscovery(config)
    stale = {t for t in before if "/bms-gateway/" in t} - {m.topic for m in ext.messages}
    assert len(stale) == 3 * 6 + 1
    async with observing(broker) as obs, driving(ext, broker):
        await obs.wait_for(lambda: stale <= {t for t, p, _ in obs.messages if p == b""})
        await until(lambda: stale <= set(ext.removed), "removals recorded (after each PUBACK)")
    after = await retained(broker)
    assert set(after) == {m.topic for m in ext.messages} | {
        "homeassistant/sensor/other-node/voltage/config"
    }
    assert set(ext.removed) == stale


async def test_controls_the_commands_config_no_longer_allows_are_removed(
    broker: Broker,
) -> None:
    # Round 1: go-safe releasable (a switch) and ack allowed (a button).
    before_cfg = make_config({"allow_ack": True, "allow_go_safe_release": True, **TRUST_HA})
    async with aiomqtt.Client(broker.host, broker.port, identifier="old") as client:
        for m in discovery_messages(before_cfg):
            await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
    switch = "homeassistant/switch/bms-gateway/go_safe/config"
    ack = "homeassistant/button/bms-gateway/ack/config"
    assert {switch, ack} <= set(await retained(broker))

    # Round 2: release and ack no longer allowed: go-safe becomes a button, ack goes away.
    config = make_config({"allow_ack": False, "allow_go_safe_release": False})
    ext = HomeAssistantDiscovery(config)
    async with observing(broker) as obs, driving(ext, broker):
        await obs.wait_for(lambda: {switch, ack} <= {t for t, p, _ in obs.messages if p == b""})
        await until(lambda: {switch, ack} <= set(ext.removed), "removals recorded")
    after = await retained(broker)
    assert set(after) == {m.topic for m in ext.messages}
    assert "homeassistant/button/bms-gateway/go_safe/config" in after
    assert set(ext.removed) == {switch, ack}


def test_config_payload_is_pure() -> None:
    config = make_config()
    d = entity_descriptions(config)[0]
    assert config_payload(config, d) == config_payload(config, d)
    assert discovery_messages(config) == discovery_messages(config)


# --- end to end: the whole gateway (simulator, engine, MQTT publisher) on Mosquitto -----


async def test_gateway_end_to_end_templates_resolve_against_the_published_state(
    broker: Broker, tmp_path: Path
) -> None:
    from gateway.app import run_gateway

    config = load_config(
        overrides={
            "gateway": {"id": "gw-ha", "state_dir": str(tmp_path / "state")},
            "mqtt": {"host": broker.host, "port": broker.port, "publish_interval_s": 0.2},
            "metrics": {"port": 0},
            "web": {"port": 0},
            "logic": {"boards": 2, "cells_per_board": 4, "poll_interval_s": 0.1},
            "homeassistant": {"per_cell_entities": True},
        },
        env=False,
    )
    expected = {m.topic: m.payload for m in discovery_messages(config)}
    states: list[dict[str, Any]] = []

    def complete(s: dict[str, Any]) -> bool:
        return s["boards_online"] == 2 and s["soc"] is not None and len(s["relays"]) == 4

    async with aiomqtt.Client(broker.host, broker.port, identifier="ha") as ha:
        await ha.subscribe("homeassistant/#", qos=1)
        await ha.subscribe("bms/gw-ha/#", qos=1)
        gateway = asyncio.create_task(run_gateway(config))
        configs: dict[str, bytes] = {}
        try:
            async with asyncio.timeout(20):
                async for m in ha.messages:
                    payload = m.payload if isinstance(m.payload, bytes) else b""
                    if m.topic.value.endswith("/config"):
                        configs[m.topic.value] = payload
                    elif m.topic.value == "bms/gw-ha/state":
                        states.append(json.loads(payload))
                    if set(expected) <= set(configs) and any(map(complete, states)):
                        break
        finally:
            await cancel_for_sure(gateway)
    assert configs == expected
    value_json = next(s for s in reversed(states) if s["boards_online"] == 2)
    for topic, payload in configs.items():
        p = json.loads(payload)
        if "value_template" not in p:
            continue
        out = render(p["value_template"], value_json)
        if "/binary_sensor/" in topic:
            assert out in {"ON", "OFF", "None"}, (topic, out)
        elif "/switch/" in topic:
            assert out in {p["state_on"], p["state_off"]}, (topic, out)
        elif "state_class" in p:
            assert (
                out != "None"
                or p["unique_id"].endswith(("_soc", "_humidity"))
                or ("limit" in p["unique_id"])
            ), (topic, out)
            _numeric_or_none(out)
    assert float(render("{{ value_json.voltage }}", value_json)) > 0
    cell = json.loads(configs["homeassistant/sensor/gw-ha/board_2_cell_4_voltage/config"])
    assert (
        float(render(cell["value_template"], value_json))
        == value_json["boards"][1]["cell_voltages"][3]
    )


def test_docs_list_every_entity_and_config_key() -> None:
    from gateway.publishers.homeassistant_section import HomeAssistantSection

    doc = (Path(__file__).parent.parent / "docs" / "home-assistant.md").read_text()
    for d in DESCRIPTIONS:
        assert f"| `{d.key}` | {d.component} |" in doc, (d.key, d.component)
    for key in HomeAssistantSection.model_fields:
        assert f"`homeassistant.{key}`" in doc, key
