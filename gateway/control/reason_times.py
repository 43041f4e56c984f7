"""Since when each reason holds: the `since` times the engine publishes with its reasons.

A key's since-time moves when its value or its list of reason words changes, and stays
put while both hold (the web page and MQTT show "since ..." from it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ReasonTimes:
    """The reasons of every key with the value they explained and since when."""

    def __init__(self) -> None:
        self._reasons: dict[str, tuple[tuple[str, ...], Any, float]] = {}

    def record(
        self, reasons: Mapping[str, list[str]], values: Mapping[str, Any], now_s: float
    ) -> dict[str, float]:
        """Record this step's reasons and values; return the since-time of each key."""
        for key, why in reasons.items():
            prev = self._reasons.get(key)
            tup = tuple(why)
            value = values.get(key)
            since = now_s if prev is None or prev[0] != tup or prev[1] != value else prev[2]
            self._reasons[key] = (tup, value, since)
        return {k: v[2] for k, v in self._reasons.items() if k in reasons}
