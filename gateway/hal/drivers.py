"""The set of drivers one gateway uses, chosen by name in the config (`drivers.*`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.hal.base import AdcDriver, IndicatorDriver, InputDriver, OutputDriver, RelayDriver
from gateway.hal.sim import SimIndicators, SimInputs, SimOutputs, SimRelays


@dataclass
class Drivers:
    """One driver per concern; `adc` may be None when no analog backend is configured."""

    relays: RelayDriver
    outputs: OutputDriver
    inputs: InputDriver
    indicators: IndicatorDriver
    adc: AdcDriver | None = None


def sim_drivers(pack: Any = None) -> Drivers:
    """All-`sim` drivers, attached to a pack model when given."""
    return Drivers(
        relays=SimRelays(),
        outputs=SimOutputs(),
        inputs=SimInputs(pack),
        indicators=SimIndicators(),
    )
