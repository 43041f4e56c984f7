"""Config sections owned by the hardware layer: `drivers`, `board_io` and the analog sensors.

`drivers.<concern>` names a backend from the `bms_gateway.drivers` entry-point group plus that
backend's own options (validated by the backend's typed model, see `gateway.hal.backend`).
The sensor sections describe how ADC volts become amperes, %RH and °C
(`gateway.protocols.analog` does the arithmetic).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from gateway.core.section import Section

CONCERNS = ("relays", "outputs", "inputs", "adc", "indicators")


class DriverChoice(Section):
    """One concern's backend and that backend's options (any further keys)."""

    model_config = ConfigDict(extra="allow")

    backend: str = Field(
        "sim",
        description="Backend name in the `bms_gateway.drivers` group: sim, gpiod, modbus, iio, "
        "sysfs_led, or a plugin's.",
    )

    @property
    def options(self) -> dict[str, Any]:
        """The backend-specific keys."""
        return dict(self.model_extra or {})


class DriversSection(Section):
    """Which hardware backend drives each concern (see docs/hardware.md)."""

    relays: DriverChoice = Field(
        default_factory=DriverChoice, description="Relays 1-4 (P8, P9, P6, P7)."
    )
    outputs: DriverChoice = Field(
        default_factory=DriverChoice, description="Discrete outputs 1-4 (P11)."
    )
    inputs: DriverChoice = Field(
        default_factory=DriverChoice, description="Dry-contact inputs 1-4 (P11)."
    )
    adc: DriverChoice | None = Field(
        default_factory=DriverChoice,
        description="Analog inputs vcs/vref (P12) and vhs/vts (P13); null = no ADC.",
    )
    indicators: DriverChoice = Field(
        default_factory=DriverChoice, description="Indicators DS2-DS8."
    )
    lease_check_interval_s: float = Field(
        0.1,
        gt=0,
        le=10,
        description="How often the driver service checks the relay lease (its length is "
        "`engine.relay_lease_s`, renewed by the control engine every cycle).",
    )

    @model_validator(mode="after")
    def _check_backends(self) -> DriversSection:
        from gateway.hal.backend import validate_choice  # noqa: PLC0415 (registry is lazy)

        for concern in CONCERNS:
            choice = getattr(self, concern)
            if choice is not None and (choice.backend != "sim" or choice.options):
                validate_choice(concern, choice.backend, choice.options)
        return self


class BoardIoSection(Section):
    """The board I/O adapter: polls the ADC and the discrete inputs."""

    enabled: bool = Field(True, description="Poll the ADC and inputs drivers.")
    poll_interval_s: float = Field(0.5, gt=0, le=60, description="Poll period.")


class CurrentSensorSection(Section):
    """The bidirectional Hall current sensor on P12 (LEM HASS/HTFS style)."""

    nominal_current_a: float = Field(200.0, gt=0, description="Sensor nominal current I_PN (A).")
    sensitivity_v: float = Field(
        0.625, gt=0, description="Output swing Vcs - Vref at the nominal current (V)."
    )
    zero_offset_v: float = Field(
        0.0,
        ge=-0.5,
        le=0.5,
        description="Vcs - Vref with no current flowing (`bms-gateway calibrate-current`).",
    )
    invert: bool = Field(False, description="Sensor mounted against the charging direction.")
    use_vref_input: bool = Field(
        True, description="Read Vref from its ADC input; false uses `vref_v` (3-wire sensors)."
    )
    vref_v: float = Field(2.5, gt=0, lt=5, description="Nominal reference voltage (V).")
    vref_min_v: float = Field(2.3, description="Vref below this is a current_sensor_fault.")
    vref_max_v: float = Field(2.7, description="Vref above this is a current_sensor_fault.")
    vcs_min_v: float = Field(0.2, description="Vcs below this (rail) is a current_sensor_fault.")
    vcs_max_v: float = Field(4.8, description="Vcs above this (rail) is a current_sensor_fault.")

    @model_validator(mode="after")
    def _windows(self) -> CurrentSensorSection:
        if not self.vref_min_v < self.vref_max_v:
            raise ValueError("vref_min_v must be below vref_max_v")
        if not self.vcs_min_v < self.vcs_max_v:
            raise ValueError("vcs_min_v must be below vcs_max_v")
        return self


class SensorCurveSection(Section):
    """A volts -> value curve: linear (`gain`, `offset`) or an interpolated table."""

    curve: Literal["linear", "table"] = Field("linear", description="linear or table.")
    gain: float = Field(1.0, description="linear: value = volts * gain + offset.")
    offset: float = Field(0.0, description="linear: value = volts * gain + offset.")
    table: list[tuple[float, float]] | None = Field(
        None,
        description="table: [[volts, value], ...], volts strictly increasing, values strictly "
        "monotonic; volts outside the table read as a sensor fault (null).",
    )
    valid_min: float | None = Field(None, description="Results below this read as null.")
    valid_max: float | None = Field(None, description="Results above this read as null.")

    @model_validator(mode="after")
    def _table(self) -> SensorCurveSection:
        if self.curve == "table":
            from gateway.protocols.analog import check_table  # noqa: PLC0415

            if not self.table:
                raise ValueError("curve 'table' needs `table: [[volts, value], ...]`")
            check_table(self.table)
        elif self.gain == 0:
            raise ValueError("gain must not be 0")
        return self


class HumiditySensorSection(SensorCurveSection):
    """Humidity sensor on P13 Vhs (default: HIH-4000 at 5 V, RH = (V - 0.8) / 0.031)."""

    gain: float = Field(32.258, description="linear: %RH per volt.")
    offset: float = Field(-25.806, description="linear: %RH at 0 V.")
    valid_min: float | None = Field(-5.0, description="Results below this read as null.")
    valid_max: float | None = Field(105.0, description="Results above this read as null.")


class TemperatureSensorSection(SensorCurveSection):
    """External temperature sensor on P13 Vts (default: TMP36, T = (V - 0.5) * 100)."""

    gain: float = Field(100.0, description="linear: °C per volt.")
    offset: float = Field(-50.0, description="linear: °C at 0 V.")
    valid_min: float | None = Field(-55.0, description="Results below this read as null.")
    valid_max: float | None = Field(150.0, description="Results above this read as null.")
