"""The `iio` ADC backend: Linux Industrial I/O sysfs (`/sys/bus/iio/devices/iio:deviceN`).

volts = (in_voltageN_raw + in_voltageN_offset) * scale / 1000 * gain, where scale is
`in_voltageN_scale` or the shared `in_voltage_scale` (mV per LSB) and `gain` undoes an
external voltage divider. Each read is one small sysfs file read (non-blocking in practice).
`root` is configurable so tests run the driver on a temporary tree.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from gateway.core.section import Section
from gateway.hal.backend import DriverEnv, DriverError, check_names
from gateway.hal.base import ADC_CHANNELS

log = logging.getLogger(__name__)


class IioChannel(Section):
    """One ADC input mapped to an IIO voltage channel."""

    index: int = Field(ge=0, description="N of in_voltageN_raw.")
    gain: float = Field(
        1.0, gt=0, description="Multiplier after scaling (e.g. 2.0 for a 1:2 divider)."
    )


class IioOptions(Section):
    """Options of the `iio` backend (concern `adc`)."""

    root: Path = Field(Path("/sys/bus/iio/devices"), description="IIO devices directory.")
    device: str | None = Field(
        None, description="Device directory, e.g. iio:device0 (default: the one named `name`)."
    )
    name: str | None = Field(None, description="Pick the device whose `name` file matches.")
    channels: dict[str, IioChannel] = Field(
        default_factory=lambda: {c: IioChannel(index=i) for i, c in enumerate(ADC_CHANNELS)},
        description="vcs, vref, vhs, vts -> {index, gain}; unmapped channels read null.",
    )

    @model_validator(mode="after")
    def _check(self) -> IioOptions:
        check_names("channels", self.channels, ADC_CHANNELS)
        if self.device is None and self.name is None:
            self.device = "iio:device0"
        return self


def _read_number(path: Path) -> float:
    return float(path.read_text(encoding="ascii").strip())


class IioAdc:
    """ADC driver reading IIO sysfs voltage channels."""

    def __init__(self, options: IioOptions) -> None:
        self.options = options
        self.device_dir = self._find_device(options)
        self.read_errors = 0

    @staticmethod
    def _find_device(options: IioOptions) -> Path:
        root = options.root
        if options.device is not None:
            path = root / options.device
            if not path.is_dir():
                raise DriverError(f"IIO device {path} does not exist")
            return path
        for candidate in sorted(root.glob("iio:device*")):
            try:
                if (candidate / "name").read_text(encoding="ascii").strip() == options.name:
                    return candidate
            except OSError:
                continue
        raise DriverError(f"no IIO device named {options.name!r} under {root}")

    def read_volts(self, channel: str) -> float | None:
        """Return one channel's voltage, or None when unmapped or unreadable."""
        if channel not in ADC_CHANNELS:
            raise ValueError(
                f"unknown ADC channel {channel!r}; channels: {', '.join(ADC_CHANNELS)}"
            )
        ch = self.options.channels.get(channel)
        if ch is None:
            return None
        d = self.device_dir
        try:
            raw = _read_number(d / f"in_voltage{ch.index}_raw")
            scale_file = d / f"in_voltage{ch.index}_scale"
            if not scale_file.exists():
                scale_file = d / "in_voltage_scale"
            scale_mv = _read_number(scale_file)
            offset_file = d / f"in_voltage{ch.index}_offset"
            offset = _read_number(offset_file) if offset_file.exists() else 0.0
        except (OSError, ValueError) as err:
            self.read_errors += 1
            log.debug("IIO read of %s failed: %s", channel, err)
            return None
        return (raw + offset) * scale_mv / 1000.0 * ch.gain

    def close(self) -> None:
        """Nothing to release."""


class IioBackend:
    """Entry point `iio` of `bms_gateway.drivers`."""

    name = "iio"
    concerns = frozenset({"adc"})

    def options_model(self, concern: str) -> type[BaseModel]:
        """Options for the ADC."""
        del concern
        return IioOptions

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Open the IIO device."""
        del concern, env
        assert isinstance(options, IioOptions)
        return IioAdc(options)


BACKEND = IioBackend()
