"""Home Assistant rows of issue 13: energy sensors for the Energy dashboard, relay reasons."""

from __future__ import annotations

import json
from typing import Any

import jinja2.sandbox

from gateway.config import load_config
from gateway.core.clock import VirtualClock
from gateway.core.state import EnergyTotals, GatewayState, SwitchState
from gateway.publishers.homeassistant import discovery_messages, entity_descriptions
from gateway.publishers.payloads import state_message


def render(template: str, value_json: dict[str, Any]) -> str:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(value_json=value_json).strip()


def test_energy_sensors_fit_the_energy_dashboard() -> None:
    config = load_config(env=False)
    configs = {m.topic.split("/")[-2]: json.loads(m.payload) for m in discovery_messages(config)}
    for key in ("energy_in_kwh", "energy_out_kwh"):
        p = configs[key]
        assert (p["device_class"], p["state_class"], p["unit_of_measurement"]) == (
            "energy", "total_increasing", "kWh",
        )  # fmt: skip
    assert configs["charge_in_ah"]["unit_of_measurement"] == "Ah"
    assert configs["cycles"]["state_class"] == "total_increasing"
    assert configs["relay_3_reason"]["name"] == "Charge contactor (relay 3) reason"


def test_templates_render_energy_and_reasons_in_words() -> None:
    config = load_config(env=False)
    state = GatewayState()
    state.energy = EnergyTotals(1.23456, 0.5, 25.0, 10.0, 0.1)
    state.control.relays = {
        1: SwitchState("discharge_contactor", True, ("discharge_allowed",), 1.0),
        2: SwitchState("allow_charging", False, ("low_temperature_charge",), 1.0),
        4: SwitchState("heater", False, (), 1.0),
    }
    value_json = json.loads(json.dumps(state_message(state, VirtualClock(), config)))
    rows = {d.key: d for d in entity_descriptions(config)}
    out = {
        k: render(rows[k].value_template or "", value_json) for k in rows if rows[k].value_template
    }
    assert float(out["energy_in_kwh"]) == 1.235
    assert float(out["cycles"]) == 0.1
    assert out["relay_1_reason"] == "discharging allowed: discharge_allowed"
    assert out["relay_2_reason"] == "charging blocked: low_temperature_charge"
    assert out["relay_3_reason"] == "None"  # not reported: unknown in HA
    assert out["relay_4_reason"] == "heater off: -"
    empty = json.loads(json.dumps(state_message(GatewayState(), VirtualClock(), config)))
    assert render(rows["energy_out_kwh"].value_template or "", empty) == "None"
