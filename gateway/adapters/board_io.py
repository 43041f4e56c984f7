"""Board I/O adapter (entry point `board_io`): the ADC and the dry-contact inputs.

Every `board_io.poll_interval_s` on the gateway clock it reads the ADC driver (when one is
configured), turns Vcs/Vref into amperes and Vhs/Vts into %RH and °C
(`gateway.protocols.analog`), and publishes `PackMeasured` (with `extra` vcs_v, vref_v,
vhs_v, vts_v, current_sensor_fault) plus `PointsRead(source="board_io")` with the same raw
values; then it reads the inputs driver and publishes `InputsRead`. `sim` inputs without a
simulator would report made-up contacts, so they are not published (just as there is no
`sim` ADC then). Driver errors are counted in `bms_driver_errors_total{concern,kind}` and
logged once per transition; they never stop the loop. An implausible current sensor
publishes no current (so the engine sees it go stale) and `current_sensor_fault = 1`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import Counter

from gateway.board import INPUT_COUNT
from gateway.core.events import InputsRead, PackMeasured, PointsRead
from gateway.protocols import analog

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext
    from gateway.hal.settings import SensorCurveSection

log = logging.getLogger(__name__)

SOURCE = "board_io"


@dataclass
class AdcSample:
    """One read of the four ADC channels (None = unreadable)."""

    vcs_v: float | None
    vref_v: float | None
    vhs_v: float | None
    vts_v: float | None


class BoardIo:
    """Polls the ADC and inputs drivers and publishes what they read."""

    name = "board_io"

    def __init__(self, ctx: GatewayContext) -> None:
        self.ctx = ctx
        self.errors = Counter(
            "bms_driver_errors",
            "Driver reads that failed, by concern (adc, inputs) and kind (exception, "
            "unreadable, malformed).",
            ["concern", "kind"],
            registry=ctx.registry,
        )
        self.current_sensor_faults = Counter(
            "bms_current_sensor_faults",
            "Polls where the current sensor's Vcs/Vref were implausible.",
            registry=ctx.registry,
        )
        self._failing: dict[str, bool] = {"adc": False, "inputs": False}
        self._sensor_fault = False

    async def run(self) -> None:
        """Poll forever on the gateway clock."""
        clock = self.ctx.clock
        interval = self.ctx.config.board_io.poll_interval_s
        # controller-only remarks: in bridge mode the bridged board supplies these readings
        if self.ctx.config.gateway.mode == "controller":
            if self.ctx.drivers.adc is None:
                log.info("no ADC driver configured: no current, humidity or temperature readings")
            if _invented(self.ctx.drivers.inputs):
                log.info("sim inputs without a simulator: the discrete inputs are not published")
        next_s = clock.now()
        while True:
            self.poll_once()
            next_s += interval
            next_s = max(next_s, clock.now())
            await clock.sleep_until(next_s)

    def poll_once(self) -> None:
        """Read the ADC and the inputs once and publish what was read."""
        if self.ctx.drivers.adc is not None:
            self._poll_adc()
        if not _invented(self.ctx.drivers.inputs):
            self._poll_inputs()

    # --- ADC ------------------------------------------------------------------------

    def _read_channel(self, channel: str) -> float | None:
        adc = self.ctx.drivers.adc
        assert adc is not None
        try:
            v = adc.read_volts(channel)
        except Exception as err:
            self.errors.labels(concern="adc", kind="exception").inc()
            self._transition("adc", True, f"{channel}: {err}")
            return None
        if v is None:
            self.errors.labels(concern="adc", kind="unreadable").inc()
            self._transition("adc", True, f"{channel} unreadable")
        return v

    def read_adc(self) -> AdcSample:
        """Read every channel (Vref from config when `use_vref_input` is false)."""
        cs = self.ctx.config.current_sensor
        vcs = self._read_channel("vcs")
        vref = self._read_channel("vref") if cs.use_vref_input else cs.vref_v
        sample = AdcSample(vcs, vref, self._read_channel("vhs"), self._read_channel("vts"))
        if all(v is not None for v in (sample.vcs_v, sample.vref_v, sample.vhs_v, sample.vts_v)):
            self._transition("adc", False, "")
        return sample

    def _poll_adc(self) -> None:
        cfg = self.ctx.config
        cs = cfg.current_sensor
        s = self.read_adc()
        reading = analog.evaluate_current(
            s.vcs_v,
            s.vref_v,
            nominal_current_a=cs.nominal_current_a,
            sensitivity_v=cs.sensitivity_v,
            zero_offset_v=cs.zero_offset_v,
            invert=cs.invert,
            vref_min_v=cs.vref_min_v,
            vref_max_v=cs.vref_max_v,
            vcs_min_v=cs.vcs_min_v,
            vcs_max_v=cs.vcs_max_v,
        )
        if reading.fault:
            self.current_sensor_faults.inc()
        if reading.fault != self._sensor_fault:
            self._sensor_fault = reading.fault
            if reading.fault:
                log.warning(
                    "current sensor implausible (%s): vcs=%s V vref=%s V",
                    reading.reason,
                    s.vcs_v,
                    s.vref_v,
                )
            else:
                log.info("current sensor plausible again")
        humidity = _curve(cfg.humidity_sensor, s.vhs_v)
        if humidity is not None:
            humidity = min(max(humidity, 0.0), 100.0)
        temperature = _curve(cfg.temperature_sensor, s.vts_v)
        raw = {
            "vcs_v": s.vcs_v,
            "vref_v": s.vref_v,
            "vhs_v": s.vhs_v,
            "vts_v": s.vts_v,
        }
        extra = {k: v for k, v in raw.items() if v is not None}
        extra["current_sensor_fault"] = 1.0 if reading.fault else 0.0
        now = self.ctx.clock.now()
        self.ctx.bus.publish(
            PackMeasured(
                at_s=now,
                current_a=reading.current_a,
                humidity_pct=humidity,
                temperature_c=temperature,
                extra=extra,
            )
        )
        points: dict[str, float | int | bool | str] = {
            f"{SOURCE}.{k}": round(v, 4) for k, v in raw.items() if v is not None
        }
        points[f"{SOURCE}.current_sensor_fault"] = reading.fault
        self.ctx.bus.publish(PointsRead(at_s=now, source=SOURCE, values=points))

    # --- inputs ---------------------------------------------------------------------

    def _poll_inputs(self) -> None:
        try:
            closed = tuple(bool(c) for c in self.ctx.drivers.inputs.read_inputs())
        except Exception as err:
            self.errors.labels(concern="inputs", kind="exception").inc()
            self._transition("inputs", True, str(err))
            return
        if len(closed) != INPUT_COUNT:
            self.errors.labels(concern="inputs", kind="malformed").inc()
            self._transition("inputs", True, f"{len(closed)} inputs instead of {INPUT_COUNT}")
            return
        self._transition("inputs", False, "")
        self.ctx.bus.publish(InputsRead(at_s=self.ctx.clock.now(), closed=closed))

    def _transition(self, concern: str, failing: bool, detail: str) -> None:
        if failing == self._failing[concern]:
            return
        self._failing[concern] = failing
        if failing:
            log.warning("%s driver failing: %s", concern, detail)
        else:
            log.info("%s driver recovered", concern)


def _invented(inputs: object) -> bool:
    """True for an inputs driver that says it is a placeholder (see `hal.base.InputDriver`):
    `sim` inputs with no pack model would report made-up contacts."""
    return bool(getattr(inputs, "placeholder", False))


def _curve(section: SensorCurveSection, volts: float | None) -> float | None:
    return analog.value_from_volts(
        volts,
        curve=section.curve,
        gain=section.gain,
        offset=section.offset,
        table=section.table,
        valid_min=section.valid_min,
        valid_max=section.valid_max,
    )


def create(ctx: GatewayContext) -> BoardIo | None:
    """Entry point: None when `board_io.enabled` is false."""
    if not ctx.config.board_io.enabled:
        return None
    return BoardIo(ctx)
