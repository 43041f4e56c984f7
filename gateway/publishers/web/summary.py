"""The first blocking reason for the summary log line: which contactor is open, and why."""

from __future__ import annotations

from gateway.core.state import GatewayState

# Relays whose open state blocks charging or discharging (the "first blocking reason").
BLOCKING_FUNCTIONS = ("discharge_contactor", "charge_contactor", "allow_charging")


def blocking_reason(state: GatewayState) -> str:
    """`relay 2 (allow_charging) open: low_temperature_charge`, or `none`."""
    for n, sw in sorted(state.control.relays.items()):
        if sw.function in BLOCKING_FUNCTIONS and not sw.on:
            why = sw.reasons[0] if sw.reasons else "no reason given"
            return f"relay {n} ({sw.function}) open: {why}"
    return "none"
