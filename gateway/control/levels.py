"""The indication levels `low_soc` and `high_charging_current` (`signal_levels.*`).

Each is a debounced level (`thermal.level` with the section's `min`/`max`/`tolerant`,
then its set and clear delays); a disabled level holds its state. They drive signals and
reasons only, never a contactor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gateway.control.debounce import Debounced
from gateway.control.thermal import level

if TYPE_CHECKING:
    from gateway.control.settings import LevelSettings, SignalLevelsSection


class IndicationLevels:
    """`low_soc` (by SOC) and `high_charging_current` (by the pack current)."""

    def __init__(self, config: SignalLevelsSection) -> None:
        self.config = config
        self.low_soc = Debounced()
        self.high_charging_current = Debounced()

    def update(self, now_s: float, soc: float | None, current_a: float | None) -> None:
        """Debounce both levels at `now_s` (None: unknown, the level holds)."""
        ls, hc = self.config.low_soc, self.config.high_charging_current
        self.low_soc.update(
            level(soc, above=ls.max, below=ls.min, tol=ls.tolerant) if ls.enable else None,
            now_s=now_s,
            set_delay_s=ls.set_delay_ms / 1000,
            clear_delay_s=ls.clear_delay_s,
        )
        self.high_charging_current.update(
            level(current_a, above=hc.max, below=hc.min, tol=hc.tolerant) if hc.enable else None,
            now_s=now_s,
            set_delay_s=hc.set_delay_ms / 1000,
            clear_delay_s=hc.clear_delay_s,
        )

    def pairs(self) -> Iterator[tuple[LevelSettings, Debounced]]:
        """Each level's settings and debounce state (for `deadlines.next_decision_s`)."""
        yield self.config.low_soc, self.low_soc
        yield self.config.high_charging_current, self.high_charging_current
