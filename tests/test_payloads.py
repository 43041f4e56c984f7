"""The MQTT `state` and `events` payload builders (pure functions, golden file)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import GatewayConfig, load_config
from gateway.core.clock import VirtualClock
from gateway.core.events import BoardWentOffline, ErrorRaised, RelaySwitched
from gateway.core.state import BoardState, EnergyTotals, GatewayState, SwitchState
from gateway.publishers.payloads import Topics, encode, event_message, state_message

GOLDEN = Path(__file__).parent / "golden" / "mqtt_state.json"

STATE_KEYS = [
    "timestamp",
    "mode",
    "voltage",
    "current",
    "power",
    "soc",
    "cell_voltage_min",
    "cell_voltage_max",
    "cell_voltage_delta",
    "temperature_min",
    "temperature_max",
    "humidity",
    "external_temperature",
    "energy_in_kwh",
    "energy_out_kwh",
    "charge_in_ah",
    "charge_out_ah",
    "cycles",
    "boards_online",
    "boards",
    "errors",
    "signals",
    "relays",
    "outputs",
    "inputs",
    "indicators",
    "limits",
    "reasons",
    "points",
]


def fixed_state() -> GatewayState:
    """A hand-built state: two boards online, one offline, engine decisions filled in."""
    state = GatewayState(
        boards={
            1: BoardState(
                board=1,
                online=True,
                cell_voltages_v=(3.30012, 3.29949, 3.3105),
                temperatures_c=(24.96, None, 25.04),
                board_temperature_c=31.26,
                balancing_mask=0b100,
                updated_s=99.5,
            ),
            2: BoardState(
                board=2,
                online=True,
                cell_voltages_v=(3.2871, 3.30049, 3.2999),
                temperatures_c=(23.0, 23.11, 22.95),
                board_temperature_c=None,
                updated_s=99.6,
            ),
            3: BoardState(
                board=3,
                online=False,
                cell_voltages_v=(3.1, 3.1, 3.1),
                temperatures_c=(20.0, 20.0, 20.0),
                board_temperature_c=30.0,
                balancing_mask=0b1,
            ),
        },
        current_a=-12.3456,
        current_updated_s=99.0,
        humidity_pct=41.26,
        inputs=(True, False, False, True),
        inputs_updated_s=99.0,
        points={"charger.output_voltage_v": 53.2, "charger.state": "float", "x.nan": math.nan},
    )
    c = state.control
    c.running = True
    c.errors_active = ["cell_imbalance"]
    c.signals = {"charge_allowed": True, "discharge_allowed": True, "critical_error": False}
    c.relays = {
        3: SwitchState("charge_contactor", True, ("charge_allowed",), 12.0),
        1: SwitchState("discharge_contactor", True, ("discharge_allowed",), 10.0),
        4: SwitchState("heater", False, (), None),
    }
    c.outputs = {1: SwitchState("critical_error", False)}
    c.indicators = {"DS2": True, "DS3": False}
    c.soc = 0.61234
    c.limits = {"cvl_v": 55.2, "ccl_a": 49.999, "dcl_a": 100.0}
    c.reasons = {"charge_contactor": ["charge_allowed"], "ccl": ["derate_high_cell_voltage"]}
    state.energy = EnergyTotals(12.34567, 10.5, 250.0, 210.25, 2.1025)
    return state


def config(**overrides: Any) -> GatewayConfig:
    return load_config(overrides={"logic": {"boards": 3, "cells_per_board": 3}, **overrides})


def test_state_message_matches_golden_file() -> None:
    clock = VirtualClock(start_s=100.0)
    message = state_message(fixed_state(), clock, config())
    text = json.dumps(message, indent=2, ensure_ascii=False) + "\n"
    assert text == GOLDEN.read_text(encoding="utf-8")
    assert list(message) == STATE_KEYS


def test_state_message_rounds_and_derives() -> None:
    m = state_message(fixed_state(), VirtualClock(start_s=100.0), config())
    assert m["timestamp"] == "2026-01-01T00:01:40.000Z"
    assert m["mode"] == "controller"
    assert m["voltage"] == round(3.30012 + 3.29949 + 3.3105 + 3.2871 + 3.30049 + 3.2999, 3)
    assert m["current"] == -12.346
    assert m["power"] == round(m["voltage"] * -12.3456, 1)
    assert m["soc"] == 61.2
    assert m["cell_voltage_min"] == 3.287
    assert m["cell_voltage_max"] == 3.311  # 3.3105 rounds to 1 mV
    assert m["cell_voltage_delta"] == 0.024  # max - min of the published (rounded) values
    assert m["temperature_min"] == 22.9  # offline board 3 (20 °C) is excluded
    assert m["temperature_max"] == 25.0
    assert m["boards_online"] == 2
    b1, b2, b3 = m["boards"]
    assert b1["cell_voltages"] == [3.300, 3.299, 3.311]
    assert b1["temperatures"] == [25.0, None, 25.0]
    assert b1["board_temperature"] == 31.3
    assert b1["balancing"] == [3]
    assert b2["board_temperature"] is None
    assert b3 == {
        "board": 3,
        "online": False,
        "cell_voltages": [None, None, None],
        "temperatures": [None, None, None],
        "board_temperature": None,
        "balancing": [],
    }
    assert [r["relay"] for r in m["relays"]] == [1, 3, 4]
    assert m["relays"][0]["since"] == "2026-01-01T00:00:10.000Z"
    assert m["relays"][2] == {
        "relay": 4,
        "function": "heater",
        "closed": False,
        "since": None,
        "reasons": [],
    }
    assert m["relays"][0]["reasons"] == ["discharge_allowed"]
    assert m["energy_in_kwh"] == 12.346 and m["cycles"] == 2.103
    assert m["inputs"] == [
        {"input": 1, "closed": True},
        {"input": 2, "closed": False},
        {"input": 3, "closed": False},
        {"input": 4, "closed": True},
    ]
    assert m["limits"] == {
        "charge_voltage_limit": 55.2,
        "charge_current_limit": 50.0,
        "discharge_current_limit": 100.0,
    }
    assert m["points"]["x.nan"] is None
    assert m["points"]["charger.state"] == "float"


def test_empty_state_is_all_nulls() -> None:
    state = GatewayState(boards={1: BoardState(board=1)})
    m = state_message(state, VirtualClock(), config(gateway={"mode": "bridge"}))
    assert m["mode"] == "bridge"
    for key in ("voltage", "current", "power", "soc", "cell_voltage_min", "cell_voltage_max"):
        assert m[key] is None, key
    for key in ("cell_voltage_delta", "temperature_min", "temperature_max", "humidity"):
        assert m[key] is None, key
    assert m["boards_online"] == 0
    assert m["boards"][0]["cell_voltages"] == [None, None, None]  # configured cell count
    assert all(i["closed"] is None for i in m["inputs"])  # never read
    assert m["limits"] == dict.fromkeys(
        ("charge_voltage_limit", "charge_current_limit", "discharge_current_limit")
    )
    assert m["errors"] == [] and m["relays"] == [] and m["signals"] == {}
    json.loads(encode(m))


def test_event_message_adds_seq_and_timestamp() -> None:
    clock = VirtualClock()
    n = ErrorRaised(at_s=5.25, error="cell_overvoltage", severity="alarm", detail="3.65 V")
    assert event_message(n, 7, clock) == {
        "type": "error_raised",
        "error": "cell_overvoltage",
        "severity": "alarm",
        "detail": "3.65 V",
        "seq": 7,
        "timestamp": "2026-01-01T00:00:05.250Z",
    }
    relay = RelaySwitched(
        at_s=1.0, relay=3, function="charge_contactor", closed=False, reasons=("cell_overvoltage",)
    )
    m = event_message(relay, 8, clock)
    assert m["type"] == "relay_opened" and m["reasons"] == ["cell_overvoltage"]
    off = event_message(
        BoardWentOffline(at_s=0, board=2, reason="timeout", consecutive_failures=3), 9, clock
    )
    assert json.loads(encode(off))["board"] == 2


def test_topics_follow_prefix_and_id() -> None:
    t = Topics.from_config(
        load_config(overrides={"mqtt": {"topic_prefix": "site/bms/"}, "gateway": {"id": "rack-1"}})
    )
    assert t.state == "site/bms/rack-1/state"
    assert t.events == "site/bms/rack-1/events"
    assert t.availability == "site/bms/rack-1/availability"
    assert t.sub("cmd", "ack") == "site/bms/rack-1/cmd/ack"


cell_v = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0.0, 5.0))
temp_c = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@given(
    boards=st.lists(
        st.tuples(
            st.booleans(),
            st.lists(st.floats(0.0, 5.0), max_size=18),
            st.lists(temp_c, max_size=18),
            st.integers(0, 2**18 - 1),
        ),
        max_size=5,
    ),
    current=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    soc=st.one_of(st.none(), st.floats(0.0, 1.0)),
)
def test_any_state_encodes_as_strict_json(
    boards: list[tuple[bool, list[float], list[float | None], int]],
    current: float | None,
    soc: float | None,
) -> None:
    state = GatewayState(
        boards={
            n: BoardState(
                board=n,
                online=on,
                cell_voltages_v=tuple(v),
                temperatures_c=tuple(t),
                balancing_mask=mask,
            )
            for n, (on, v, t, mask) in enumerate(boards, start=1)
        },
        current_a=current,
    )
    state.control.soc = soc
    m = json.loads(encode(state_message(state, VirtualClock(), config())))
    for n, (on, volts, _, mask) in enumerate(boards, start=1):
        board = m["boards"][n - 1]
        if on:
            assert all(
                abs(a - b) <= 0.0005 + 1e-9
                for a, b in zip(board["cell_voltages"], volts, strict=True)
            )
            assert board["balancing"] == [i + 1 for i in range(18) if mask >> i & 1]
        else:
            assert set(board["cell_voltages"]) <= {None}
    if m["voltage"] is not None:
        assert m["cell_voltage_min"] <= m["cell_voltage_max"]


def test_every_state_key_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    m = state_message(fixed_state(), VirtualClock(), config())
    keys = set(m) | set(m["boards"][0]) | set(m["limits"])
    missing = sorted(k for k in keys if f"`{k}`" not in doc)
    assert not missing, f"undocumented in docs/mqtt.md: {missing}"
    for kind in ("board_offline", "board_online", "error_raised", "error_cleared", "relay_opened"):
        assert f"`{kind}`" in doc
