"""Scenario `set` actions for faults reported from outside the engine (issue 9).

- `relay_driver_fault: "reason"` makes the simulated relay driver report that it lost its
  link (the reason); `null` (or "") brings it back. The engine raises the critical error
  `relay_driver_fault` with the driver's text.

Registered through the `bms_gateway.scenario` entry point `faults`.
"""

from __future__ import annotations

from typing import Any

from gateway.config import GatewayConfig
from gateway.scenario.registry import ScenarioError, SetAction, register_set_action
from gateway.scenario.world import World


def _parse_reason(value: Any, path: str, config: GatewayConfig) -> str | None:
    del config
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScenarioError(path, "expected the fault's reason (text), or null when healthy")
    return value


def _set_relay_driver_fault(w: World, reason: str | None) -> None:
    relays = w.ctx.drivers.relays
    if not hasattr(relays, "injected_fault"):
        raise RuntimeError("the scenario's relay driver cannot simulate a fault")
    relays.injected_fault = reason


def register() -> None:
    """Register the fault set actions."""
    register_set_action(SetAction("relay_driver_fault", _parse_reason, _set_relay_driver_fault))
