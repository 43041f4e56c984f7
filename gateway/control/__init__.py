"""The control engine: protections, charge/discharge control, heater, balancing, relays.

Layers (style lesson 11): `measure` (snapshot with freshness) -> `detect` (pure verdicts
from the `table` of protections) -> `debounce` -> `engine` (the one actor) -> `component`
(the clocked loop that drives the relays and publishes notices).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.context import Component, GatewayContext


def build_engine(ctx: GatewayContext) -> Component | None:
    """Build the control engine component (it runs in both modes)."""
    from gateway.control.component import EngineComponent  # noqa: PLC0415

    return EngineComponent(ctx)
