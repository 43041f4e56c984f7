"""The `sysfs_led` indicator backend: `/sys/class/leds/<name>/brightness`.

On writes `max_brightness` (or 1 when that file is missing), off writes 0. Indicators
without a mapped LED are kept in memory only. `root` is configurable so tests run the
driver on a temporary tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, model_validator

from gateway.core.section import Section
from gateway.hal.backend import DriverEnv, DriverError, Indicators, check_names
from gateway.hal.base import INDICATORS


class SysfsLedOptions(Section):
    """Options of the `sysfs_led` backend (concern `indicators`)."""

    root: Path = Field(Path("/sys/class/leds"), description="LED class directory.")
    leds: dict[str, str] = Field(
        default_factory=dict,
        description="Indicator (DS2-DS8) -> LED directory name, e.g. {DS2: 'bms:green:run'}.",
    )

    @model_validator(mode="after")
    def _check(self) -> SysfsLedOptions:
        check_names("indicators", self.leds, INDICATORS)
        return self


class SysfsLeds(Indicators):
    """Indicators driven through the LED class in sysfs."""

    def __init__(self, options: SysfsLedOptions) -> None:
        super().__init__(list(INDICATORS))
        self._paths: dict[str, Path] = {}
        self._max: dict[str, str] = {}
        for indicator, led in options.leds.items():
            d = options.root / led
            if not (d / "brightness").exists():
                raise DriverError(f"LED {d} has no brightness file")
            self._paths[indicator] = d / "brightness"
            try:
                self._max[indicator] = (d / "max_brightness").read_text().strip() or "1"
            except OSError:
                self._max[indicator] = "1"
        self._start()

    def _write(self, name: Any, on: bool) -> None:
        path = self._paths.get(name)
        if path is not None:
            path.write_text(self._max[name] if on else "0", encoding="ascii")


class SysfsLedBackend:
    """Entry point `sysfs_led` of `bms_gateway.drivers`."""

    name = "sysfs_led"
    concerns = frozenset({"indicators"})

    def options_model(self, concern: str) -> type[BaseModel]:
        """Options for the indicators."""
        del concern
        return SysfsLedOptions

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Open the LEDs (each must exist)."""
        del concern, env
        assert isinstance(options, SysfsLedOptions)
        return SysfsLeds(options)


BACKEND = SysfsLedBackend()
