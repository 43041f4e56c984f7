"""The set of drivers one gateway uses, chosen by name in the config (`drivers.*`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.hal.backend import DriverEnv, load_backend, validate_choice
from gateway.hal.base import AdcDriver, IndicatorDriver, InputDriver, OutputDriver, RelayDriver
from gateway.hal.settings import CONCERNS
from gateway.hal.sim import SimIndicators, SimInputs, SimOutputs, SimRelays

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)


@dataclass
class Drivers:
    """One driver per concern; `adc` may be None when no analog backend is configured."""

    relays: RelayDriver
    outputs: OutputDriver
    inputs: InputDriver
    indicators: IndicatorDriver
    adc: AdcDriver | None = None

    def all(self) -> list[Any]:
        """Every distinct driver object (relays first)."""
        out: list[Any] = []
        for d in (self.relays, self.outputs, self.inputs, self.indicators, self.adc):
            if d is not None and all(d is not o for o in out):
                out.append(d)
        return out

    def close(self) -> None:
        """Open every relay, switch outputs off and free the hardware (idempotent)."""
        try:
            self.relays.open_all()
        except Exception:
            log.exception("opening the relays failed")
        for d in self.all():
            close: Callable[[], None] | None = getattr(d, "close", None)
            if close is None:
                continue
            try:
                close()
            except Exception:
                log.exception("closing driver %s failed", type(d).__name__)


def sim_drivers(pack: Any = None) -> Drivers:
    """All-`sim` drivers, attached to a pack model when given."""
    return Drivers(
        relays=SimRelays(),
        outputs=SimOutputs(),
        inputs=SimInputs(pack),
        indicators=SimIndicators(),
    )


def build_drivers(config: GatewayConfig, pack: Any = None, env: DriverEnv | None = None) -> Drivers:
    """Build every concern's driver from `config.drivers` through the drivers entry points.

    The `sim` ADC needs a pack model; with `adc: {backend: sim}` and no pack there is no ADC.

    Raises:
        ConfigError: a backend is unknown or cannot drive its concern.
        DriverError: a backend could not open its hardware.
    """
    env = env or DriverEnv()
    env.config = config
    env.pack = pack
    built: dict[str, Any] = {}
    try:
        for concern in CONCERNS:
            choice = getattr(config.drivers, concern)
            if choice is None or (concern == "adc" and choice.backend == "sim" and pack is None):
                built[concern] = None
                continue
            backend = load_backend(choice.backend)
            options = validate_choice(concern, choice.backend, choice.options)
            built[concern] = backend.build(concern, options, env)
            log.debug("driver %s: %s", concern, choice.backend)
    except BaseException:
        for d in built.values():
            if d is not None and hasattr(d, "close"):
                d.close()
        raise
    return Drivers(
        relays=built["relays"],
        outputs=built["outputs"],
        inputs=built["inputs"],
        indicators=built["indicators"],
        adc=built["adc"],
    )


def config_warnings(config: GatewayConfig) -> list[str]:
    """Safety warnings about a valid `drivers` section (printed by `check-config`)."""
    out: list[str] = []
    relays = config.drivers.relays
    if relays.backend == "modbus" and not relays.options.get("module_watchdog"):
        out.append(
            "drivers.relays: the Modbus relay module has no `module_watchdog`: if the gateway "
            "freezes, is killed or loses the link, the module keeps its coils (contactors) as "
            "last written. Configure the module's communication watchdog register "
            "(docs/hardware.md, 'Modbus relay modules')."
        )
    return out
