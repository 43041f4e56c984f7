"""The measurement table feeds the four outputs: every row reaches the MQTT `state`, the
Prometheus scrape, Home Assistant discovery and the Modbus extension block, with its unit and
precision; the MQTT topics come from one module (a trailing slash in the prefix is harmless)."""

from __future__ import annotations

import json
import math
import struct
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from gateway.config import load_config
from gateway.core.clock import VirtualClock
from gateway.core.state import GatewayState
from gateway.protocols.modbus_profile import encode_image
from gateway.publishers.homeassistant import discovery_messages
from gateway.publishers.measurements import MEASUREMENTS, OUTPUTS, Measurement, rounded
from gateway.publishers.modbus_server import extension_profile, extension_values
from gateway.publishers.payloads import encode, state_message
from gateway.publishers.prometheus import StateCollector
from gateway.publishers.topics import Topics
from tests.test_homeassistant import render
from tests.test_payloads import fixed_state

ROWS = [pytest.param(m, id=m.key) for m in MEASUREMENTS]


def known_state() -> GatewayState:
    """A state in which every measurement of the table is known."""
    state = fixed_state()
    state.external_temperature_c = 18.46
    for m in MEASUREMENTS:
        assert m.value(state) is not None, f"{m.key}: the test state leaves it unknown"
    return state


def config() -> Any:
    return load_config(overrides={"logic": {"boards": 3, "cells_per_board": 3}}, env=False)


def _path(message: dict[str, Any], path: str) -> Any:
    value: Any = message
    for part in path.split("."):
        value = value[part]
    return value


def test_rows_are_unique_and_complete() -> None:
    for field in ("key", "metric", "modbus_point", "modbus_address"):
        values = [getattr(m, field) for m in MEASUREMENTS]
        assert len(values) == len(set(values)), f"duplicate {field}"
    assert all(m.outputs == OUTPUTS for m in MEASUREMENTS)  # every row feeds all four


@pytest.mark.parametrize("m", ROWS)
def test_row_reaches_the_state_message(m: Measurement) -> None:
    state = known_state()
    message = json.loads(encode(state_message(state, VirtualClock(100.0), config())))
    assert _path(message, m.path) == rounded(m.value(state), m.precision)


@pytest.mark.parametrize("m", ROWS)
def test_row_reaches_prometheus(m: Measurement) -> None:
    state = known_state()
    registry = CollectorRegistry()
    registry.register(StateCollector(SimpleNamespace(state=state)))  # type: ignore[arg-type]
    name = m.metric if m.kind == "measurement" else m.metric.removesuffix("_total") + "_total"
    value = registry.get_sample_value(name)
    expected = m.value(state)
    assert value is not None and expected is not None
    assert value == pytest.approx(expected / 100 if m.unit == "%" else expected * m.metric_scale)


@pytest.mark.parametrize("m", ROWS)
def test_row_reaches_home_assistant(m: Measurement) -> None:
    state, cfg = known_state(), config()
    value_json = json.loads(encode(state_message(state, VirtualClock(100.0), cfg)))
    payloads = [json.loads(d.payload) for d in discovery_messages(cfg)]
    (p,) = [p for p in payloads if p["unique_id"] == f"{cfg.gateway.id}_{m.key}"]
    assert p["unit_of_measurement"] == m.unit
    assert p.get("device_class") == m.device_class  # left out when None (Ah, cycles)
    assert p["suggested_display_precision"] == m.display_precision
    assert p["state_class"] == ("measurement" if m.kind == "measurement" else "total_increasing")
    assert p["state_topic"] == Topics.from_config(cfg).state
    assert float(render(p["value_template"], value_json)) == _path(value_json, m.path)


@pytest.mark.parametrize("m", ROWS)
def test_row_reaches_the_modbus_extension_block(m: Measurement) -> None:
    state = known_state()
    profile = extension_profile()
    (point,) = [p for p in profile.points if p.name == m.modbus_point]
    assert (point.address, point.type, point.unit) == (m.modbus_address, "REAL32", m.unit)
    image = encode_image(profile, extension_values(state, bridge=False), 4)
    low, high = image[m.modbus_address], image[m.modbus_address + 1]  # low word first
    (value,) = struct.unpack(">f", struct.pack(">HH", high, low))
    expected = m.value(state)
    assert expected is not None and math.isfinite(value)
    assert value == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("prefix", ["bms", "bms/", "site/a/bms/"])
def test_home_assistant_listens_where_the_gateway_publishes(prefix: str) -> None:
    cfg = load_config(overrides={"mqtt": {"topic_prefix": prefix}}, env=False)
    topics = Topics.from_config(cfg)
    assert topics.state == f"{prefix.rstrip('/')}/bms-gateway/state"
    for message in discovery_messages(cfg):
        p = json.loads(message.payload)
        assert p["availability_topic"] == topics.availability
        if "state_topic" in p:
            assert p["state_topic"] == topics.state
        if "command_topic" in p:
            assert p["command_topic"].startswith(topics.base + "/command/")
        assert not any("//" in v for k, v in p.items() if k.endswith("_topic"))
