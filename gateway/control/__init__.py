"""The control engine: protections, charge/discharge control, heater, balancing, relays."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.context import Component, GatewayContext


def build_engine(ctx: GatewayContext) -> Component | None:
    """Build the control engine for this config (None until the engine exists)."""
    del ctx
    return None
