"""Decider: relay and output commands from the functions, with notices and reactions. Pure.

Every rule that opens all relays (`all_open`: waiting for the first scan, stale or
implausible data, a critical error, go-safe) comes last and wins over every function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from gateway.core.events import Notice, RelaySwitched
from gateway.core.state import SwitchState

log = logging.getLogger("gateway.control.engine")


@dataclass
class Switched:
    """Relay or output decisions of one step."""

    states: dict[int, SwitchState]
    commands: dict[int, bool]
    notices: list[Notice] = field(default_factory=list)
    # (error, seconds from its breaching reading to the first relay command it caused)
    reactions: list[tuple[str, float]] = field(default_factory=list)


def decide_relays(
    now_s: float,
    *,
    functions: dict[str, bool],
    reasons: dict[str, list[str]],
    all_open: list[str],
    relay_functions: dict[int, str],
    previous: dict[int, bool],
    controller: bool,
    switch_since: dict[str, float],
    breach_since: dict[str, float],
) -> Switched:
    """Command each relay; `switch_since` and `breach_since` are updated in place."""
    out = Switched({}, {})
    for n, fn in relay_functions.items():
        closed = functions[fn] and not all_open
        why = all_open or reasons.get(fn, [])
        out.commands[n] = closed
        key = f"relay_{n}"
        if controller and closed != previous[n]:
            out.notices.append(
                RelaySwitched(at_s=now_s, relay=n, function=fn, closed=closed, reasons=tuple(why))
            )
            log.info(
                "relay %d (%s) %s: %s",
                n,
                fn,
                "closed" if closed else "opened",
                ", ".join(why) or "none",
            )
            for name in why:  # the first relay command an error caused: its reaction
                if (first := breach_since.pop(name, None)) is not None:
                    out.reactions.append((name, now_s - first))
        if key not in switch_since or previous[n] != closed:
            switch_since[key] = now_s
        out.states[n] = SwitchState(fn, closed, tuple(why), switch_since[key])
    return out


def decide_outputs(
    now_s: float,
    *,
    functions: dict[str, bool],
    reasons: dict[str, list[str]],
    output_functions: dict[int, str],
    previous: dict[int, SwitchState],
    switch_since: dict[str, float],
) -> Switched:
    """Outputs follow their function also during a critical error (a lamp can show it)."""
    out = Switched({}, {})
    for n, fn in output_functions.items():
        on = functions[fn]
        out.commands[n] = on
        key = f"output_{n}"
        if key not in switch_since or (n in previous and previous[n].on != on):
            switch_since[key] = now_s
        out.states[n] = SwitchState(fn, on, tuple(reasons.get(fn, [])), switch_since[key])
    return out
