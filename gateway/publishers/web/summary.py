"""The part of the 10-second summary log line that says what the battery does and why."""

from __future__ import annotations

from gateway.core.state import GatewayState

# Relays whose open state blocks charging or discharging (the "first blocking reason").
BLOCKING_FUNCTIONS = ("discharge_contactor", "charge_contactor", "allow_charging")


def summary_fields(state: GatewayState) -> str:
    """`SOC 61.2 %, current -12.3 A, relays 1:closed 2:open …, blocking: <relay>: <reason>`."""
    c = state.control
    soc = "-" if c.soc is None else f"{c.soc * 100:.1f} %"
    current = "-" if state.current_a is None else f"{state.current_a:.1f} A"
    relays = (
        " ".join(f"{n}:{'closed' if sw.on else 'open'}" for n, sw in sorted(c.relays.items()))
        or "-"
    )
    blocking = "none"
    for n, sw in sorted(c.relays.items()):
        if sw.function in BLOCKING_FUNCTIONS and not sw.on:
            why = sw.reasons[0] if sw.reasons else "no reason given"
            blocking = f"relay {n} ({sw.function}) open: {why}"
            break
    return f"SOC {soc}, current {current}, relays {relays}, blocking: {blocking}"
