"""The `sim` driver: in-memory relays, outputs, inputs, ADC and indicators.

It is the default backend and passes the same contract tests as the hardware ones. When a
`PackModel` is attached, the ADC reads its current/humidity/temperature and the inputs
read `pack.inputs_closed` (the scenario runner and the simulator set them there).
"""

from __future__ import annotations

import logging
from typing import Any

from gateway.hal.base import INDICATORS, INPUT_COUNT, OUTPUT_COUNT, RELAY_COUNT

log = logging.getLogger(__name__)


class SimRelays:
    """Relays 1-4 in memory, with the fail-open lease."""

    def __init__(self) -> None:
        self.closed: dict[int, bool] = dict.fromkeys(range(1, RELAY_COUNT + 1), False)
        self._lease_until_s: float | None = None
        self.lease_lapses = 0

    def set_relay(self, relay: int, closed: bool) -> None:
        """Command one relay."""
        if relay not in self.closed:
            raise ValueError(f"relay {relay} out of 1..{RELAY_COUNT}")
        self.closed[relay] = closed

    def relay_closed(self, relay: int) -> bool:
        """Return the commanded state."""
        return self.closed[relay]

    def renew_lease(self, until_s: float) -> None:
        """Extend the lease."""
        self._lease_until_s = until_s

    def check_lease(self, now_s: float) -> bool:
        """Open everything when the lease has lapsed."""
        if self._lease_until_s is not None and now_s > self._lease_until_s:
            if any(self.closed.values()):
                log.error("relay lease lapsed at %.3f s: opening every relay", now_s)
            self.lease_lapses += 1
            self._lease_until_s = None
            self.open_all()
            return True
        return False

    def open_all(self) -> None:
        """Drive every relay open."""
        for r in self.closed:
            self.closed[r] = False


class SimOutputs:
    """Discrete outputs 1-4 in memory."""

    def __init__(self) -> None:
        self.on: dict[int, bool] = dict.fromkeys(range(1, OUTPUT_COUNT + 1), False)

    def set_output(self, output: int, on: bool) -> None:
        """Switch one output."""
        if output not in self.on:
            raise ValueError(f"output {output} out of 1..{OUTPUT_COUNT}")
        self.on[output] = on


class SimInputs:
    """Discrete inputs 1-4: read from the attached pack model, else from `closed`."""

    def __init__(self, pack: Any = None) -> None:
        self.pack = pack
        self.closed: list[bool] = [False] * INPUT_COUNT

    def read_inputs(self) -> tuple[bool, ...]:
        """Return the contacts."""
        src = getattr(self.pack, "inputs_closed", None)
        return tuple(src) if src is not None else tuple(self.closed)


class SimIndicators:
    """Indicators DS2-DS8 in memory."""

    def __init__(self) -> None:
        self.on: dict[str, bool] = dict.fromkeys(INDICATORS, False)

    def set_indicator(self, name: str, on: bool) -> None:
        """Switch one indicator."""
        if name not in self.on:
            raise ValueError(f"unknown indicator {name}")
        self.on[name] = on
