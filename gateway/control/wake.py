"""Which inputs wake an engine decision (the event-driven loop in `component`).

A board scan, the analog readings or the discrete inputs wake a decision when they
differ from the previous reading of their source, when that source is fresh again after
a gap, or when the last decision is older than `REFRESH_S` (the SOC integration and the
published state keep moving). A `PointsRead` wakes one only when a point the engine
decides on changed. Every other event (silence, a board back online, a command) wakes one.
"""

from __future__ import annotations

import math

from gateway.control.bridge import BRIDGED_SOC_POINTS
from gateway.control.detect import CHARGER_FAULT_POINTS
from gateway.control.measure import (
    CHARGER_CONNECTED_POINT,
    ERROR_POINT_PREFIX,
    ERROR_RESET_POINT,
    OVERRIDE_POINT_PREFIX,
)
from gateway.core.events import BoardScanned, Event, InputsRead, PackMeasured, PointsRead

# Points the engine decides on (a PointsRead wakes it only when one of these changes).
ENGINE_POINTS = frozenset(
    {CHARGER_CONNECTED_POINT, ERROR_RESET_POINT, *CHARGER_FAULT_POINTS, *BRIDGED_SOC_POINTS}
)
ENGINE_POINT_PREFIXES = (ERROR_POINT_PREFIX, OVERRIDE_POINT_PREFIX)
# An unchanged reading still wakes a decision when the last one is older than this (s).
REFRESH_S = 1.0


class WakeFilter:
    """Remembers the last reading of each source and the engine's points."""

    def __init__(self, fresh_s: float) -> None:
        self._fresh_s = fresh_s  # a source silent longer than this is fresh again
        self._points_seen: dict[str, object] = {}
        self._seen: dict[object, tuple[object, float]] = {}

    def relevant(self, event: Event, last_decision_s: float | None) -> bool:
        """True when `event` changes something the engine decides on.

        A reading identical to the previous one of its source (a board scan, the analog
        readings, the inputs) changes no decision: only its freshness, which the staleness
        deadlines follow. It still wakes a decision when the last one is older than
        `REFRESH_S`.
        """
        sig: object
        match event:
            case BoardScanned():
                key: object = ("scan", event.board)
                sig = (
                    event.cell_voltages_v,
                    event.temperatures_c,
                    event.board_temperature_c,
                    event.status_bits,
                    event.balancing_mask,
                )
            case PackMeasured():
                key = "analog"
                sig = (event.current_a, event.humidity_pct, tuple(event.extra.items()))
            case InputsRead():
                key, sig = "inputs", event.closed
            case PointsRead():
                return self._points_changed(event)
            case _:
                return True
        prev_sig, prev_at = self._seen.get(key, (self, -math.inf))
        self._seen[key] = (sig, event.at_s)
        if prev_sig != sig or event.at_s - prev_at > self._fresh_s:  # changed, or fresh again
            return True
        return last_decision_s is None or event.at_s - last_decision_s >= REFRESH_S

    def _points_changed(self, event: PointsRead) -> bool:
        changed = False
        for key, value in event.values.items():
            relevant = key in ENGINE_POINTS or key.startswith(ENGINE_POINT_PREFIXES)
            if relevant and self._points_seen.get(key, self) != value:
                self._points_seen[key] = value
                changed = True
        return changed
