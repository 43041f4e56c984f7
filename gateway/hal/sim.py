"""The `sim` driver: in-memory relays, outputs, inputs, ADC and indicators.

It is the default backend and passes the same contract tests as the hardware ones. When a
`PackModel` is attached, the ADC reads its current/humidity/temperature (turned into the
volts a real sensor would output, through the inverse of the configured sensor curves) and
the inputs read `pack.inputs_closed` (the scenario runner and the simulator set them there).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import BaseModel

from gateway.board import SENSOR_SUPPLY_V
from gateway.core.section import Section
from gateway.hal.backend import DriverEnv, LeasedRelays
from gateway.hal.base import ADC_CHANNELS, INDICATORS, INPUT_COUNT, OUTPUT_COUNT
from gateway.hal.settings import (
    CurrentSensorSection,
    HumiditySensorSection,
    SensorCurveSection,
    TemperatureSensorSection,
)
from gateway.protocols import analog

log = logging.getLogger(__name__)

RAIL_V = SENSOR_SUPPLY_V  # sensor supply on P12/P13: outputs cannot leave 0..5 V


class SimRelays(LeasedRelays):
    """Relays 1-4 in memory, with the fail-open lease."""

    def __init__(self) -> None:
        super().__init__()
        self.injected_fault: str | None = None  # scenarios/tests: a driver that lost its link
        self._start()

    @property
    def fault(self) -> str | None:
        """An injected fault (scenario `set: {relay_driver_fault: ...}`) or a failed write."""
        if self.injected_fault:
            return f"sim relay driver: {self.injected_fault}"
        return super().fault

    @property
    def closed(self) -> dict[int, bool]:
        """Commanded state by relay number (what the contacts do)."""
        return self._commanded

    def _write(self, relay: int, closed: bool) -> None:
        """Nothing to drive: the state is the commanded dict."""


class SimOutputs:
    """Discrete outputs 1-4 in memory."""

    def __init__(self) -> None:
        self.on: dict[int, bool] = dict.fromkeys(range(1, OUTPUT_COUNT + 1), False)

    def set_output(self, output: int, on: bool) -> None:
        """Switch one output."""
        if output not in self.on:
            raise ValueError(f"output {output} out of 1..{OUTPUT_COUNT}")
        self.on[output] = on

    def close(self) -> None:
        """Switch every output off."""
        for o in self.on:
            self.on[o] = False


class SimInputs:
    """Discrete inputs 1-4: read from the attached pack model, else from `closed`."""

    def __init__(self, pack: Any = None) -> None:
        self.pack = pack
        self.closed: list[bool] = [False] * INPUT_COUNT

    @property
    def placeholder(self) -> bool:
        """True without a pack model: the contacts would be made up (not published)."""
        return self.pack is None

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

    def close(self) -> None:
        """Switch every indicator off."""
        for n in self.on:
            self.on[n] = False


class SimAdc:
    """ADC channels vcs/vref/vhs/vts in volts.

    With a pack model, the volts follow the pack's current, humidity and ambient temperature
    through the inverse sensor curves; without one they come from `volts`. `force(channel,
    volts)` overrides a channel (None = unreadable) until `release()`.
    """

    def __init__(
        self,
        pack: Any = None,
        current_sensor: CurrentSensorSection | None = None,
        humidity_sensor: SensorCurveSection | None = None,
        temperature_sensor: SensorCurveSection | None = None,
    ) -> None:
        self.pack = pack
        self.current_sensor = current_sensor or CurrentSensorSection()
        self.humidity_sensor = humidity_sensor or HumiditySensorSection()
        self.temperature_sensor = temperature_sensor or TemperatureSensorSection()
        self.volts: dict[str, float | None] = dict.fromkeys(ADC_CHANNELS, None)
        self.forced: dict[str, float | None] = {}

    def force(self, channel: str, volts: float | None) -> None:
        """Hold one channel at a voltage (None = unreadable) until released."""
        self._check(channel)
        self.forced[channel] = volts

    def release(self) -> None:
        """Stop forcing channels."""
        self.forced.clear()

    def read_volts(self, channel: str) -> float | None:
        """Return one channel's voltage, or None when unreadable."""
        self._check(channel)
        if channel in self.forced:
            return self.forced[channel]
        if self.pack is None:
            return self.volts[channel]
        return self._from_pack(channel)

    def _from_pack(self, channel: str) -> float | None:
        cs = self.current_sensor
        if channel == "vref":
            return cs.vref_v
        if channel == "vcs":
            v = analog.volts_from_current(
                float(self.pack.current_a),
                cs.vref_v,
                nominal_current_a=cs.nominal_current_a,
                sensitivity_v=cs.sensitivity_v,
                zero_offset_v=cs.zero_offset_v,
                invert=cs.invert,
            )
            return min(max(v, 0.0), RAIL_V)
        if channel == "vhs":
            return _curve_volts(self.humidity_sensor, float(self.pack.humidity_pct))
        ext = getattr(self.pack, "external_temperature_c", None)
        if ext is None:
            ext = self.pack.ambient_c
        return _curve_volts(self.temperature_sensor, float(ext))

    @staticmethod
    def _check(channel: str) -> None:
        if channel not in ADC_CHANNELS:
            raise ValueError(
                f"unknown ADC channel {channel!r}; channels: {', '.join(ADC_CHANNELS)}"
            )


def _curve_volts(curve: SensorCurveSection, value: float) -> float | None:
    v = analog.volts_from_value(
        value, curve=curve.curve, gain=curve.gain, offset=curve.offset, table=curve.table
    )
    return None if v is None else min(max(v, 0.0), RAIL_V)


class SimOptions(Section):
    """The `sim` backend has no options."""


class SimBackend:
    """Entry point `sim` of `bms_gateway.drivers`."""

    name = "sim"
    concerns = frozenset({"relays", "outputs", "inputs", "adc", "indicators"})

    def options_model(self, concern: str) -> type[BaseModel]:
        """No options for any concern."""
        del concern
        return SimOptions

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Build an in-memory driver attached to the pack model (if any)."""
        del options
        if concern == "relays":
            return SimRelays()
        if concern == "outputs":
            return SimOutputs()
        if concern == "inputs":
            return SimInputs(env.pack)
        if concern == "indicators":
            return SimIndicators()
        cfg = env.config
        if cfg is None:
            return SimAdc(env.pack)
        return SimAdc(
            env.pack,
            getattr(cfg, "current_sensor", None),
            getattr(cfg, "humidity_sensor", None),
            getattr(cfg, "temperature_sensor", None),
        )


BACKEND = SimBackend()
