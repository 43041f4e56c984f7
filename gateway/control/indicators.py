"""Indicators DS2-DS8 as on the BMS Main 2.1 board, computed from the clock. Pure.

DS2 blinks at 1 Hz while the engine runs; DS3 blinks at 2 Hz while the Logic boards are
being brought up (before the first complete scan) and at 25 Hz once communication is
established; DS4 blinks at 4 Hz while a Logic board is stale or silent; DS5, DS6, DS7 and
DS8 follow relays 3, 4, 1 and 2. A blink is on during the first half of each period.
"""

from __future__ import annotations

import math

from gateway.board import RELAY_INDICATORS


def blink(now_s: float, hz: float) -> bool:
    """On during the first half of each period of `hz`."""
    phase = now_s * hz - math.floor(now_s * hz)
    return phase < 0.5


def indicators(
    now_s: float,
    *,
    running: bool,
    logic_established: bool,
    logic_errors: bool,
    relays_closed: dict[int, bool],
) -> tuple[dict[str, bool], dict[str, str]]:
    """Return each indicator's state and its pattern (`off`, `on`, `blink_<hz>hz`)."""
    patterns: dict[str, str] = {
        "DS2": "blink_1hz" if running else "off",
        "DS3": "blink_25hz" if logic_established else "blink_2hz",
        "DS4": "blink_4hz" if logic_errors else "off",
    }
    for name, relay in RELAY_INDICATORS.items():
        patterns[name] = "on" if relays_closed.get(relay, False) else "off"
    states = {}
    for name, pattern in patterns.items():
        if pattern.startswith("blink_"):
            states[name] = blink(now_s, float(pattern[6:-2]))
        else:
            states[name] = pattern == "on"
    return states, patterns
