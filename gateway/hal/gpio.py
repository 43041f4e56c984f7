"""The `gpiod` backend: Linux GPIO character device through libgpiod v2 (`gpiod` package).

Relays, outputs and indicators are output lines requested with their inactive value (relay
open) already set, so they never glitch closed; inputs are input lines. `active_low` makes
the kernel invert a line (a relay board that closes on a low level, a dry contact that pulls
its input low). Each call is one ioctl on the request's file descriptor (microseconds).

Install with `pip install bms-gateway[gpio]`. The request object is created through
`gpiod.request_lines`, or through `DriverEnv.gpio_request_lines` when given: the test suite
injects a fake chip there because CI machines have no GPIO chip (see docs/hardware.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.core.section import Section
from gateway.hal.backend import (
    DriverEnv,
    DriverError,
    DriverUnavailableError,
    Indicators,
    LeasedRelays,
    Outputs,
    check_names,
)
from gateway.hal.base import INDICATORS, INPUT_COUNT, OUTPUT_COUNT, RELAY_COUNT

log = logging.getLogger(__name__)


class GpioLines(Section):
    """Common options: chip and polarity."""

    chip: str = Field("/dev/gpiochip0", description="GPIO character device.")
    active_low: bool = Field(False, description="Active (closed/on) is the low level.")
    consumer: str = Field("bms-gateway", description="Consumer label shown by gpioinfo.")


class GpioSwitchOptions(GpioLines):
    """`relays` / `outputs` / `inputs`: line offsets for numbers 1-4."""

    lines: list[int] = Field(description="Line offsets of numbers 1-4, in order.")

    @field_validator("lines")
    @classmethod
    def _four(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or len(set(v)) != 4 or any(o < 0 for o in v):
            raise ValueError("lines: four distinct, non-negative offsets (numbers 1-4)")
        return v


class GpioInputOptions(GpioSwitchOptions):
    """`inputs`: also the bias."""

    bias: Literal["as_is", "disabled", "pull_up", "pull_down"] = Field(
        "as_is", description="Line bias (pull_up for a contact to ground)."
    )


class GpioIndicatorOptions(GpioLines):
    """`indicators`: one line per indicator; unmapped indicators stay in memory."""

    lines: dict[str, int] = Field(description="Indicator (DS2-DS8) -> line offset.")

    @field_validator("lines")
    @classmethod
    def _names(cls, v: dict[str, int]) -> dict[str, int]:
        check_names("indicators", v, INDICATORS)
        if len(set(v.values())) != len(v):
            raise ValueError("lines: duplicate offset")
        return v


def _gpiod() -> Any:
    try:
        import gpiod  # noqa: PLC0415 (optional extra)
    except ImportError as err:
        raise DriverUnavailableError(
            "the gpiod backend needs `pip install bms-gateway[gpio]`"
        ) from err
    return gpiod


def _request(
    env: DriverEnv, opts: GpioLines, offsets: list[int], direction: str, bias: str = "as_is"
) -> Any:
    """Request `offsets` on the chip as inputs or outputs (outputs start inactive)."""
    gpiod = _gpiod()
    from gpiod.line import Bias, Direction, Value  # noqa: PLC0415

    if direction == "output":
        settings = gpiod.LineSettings(
            direction=Direction.OUTPUT, active_low=opts.active_low, output_value=Value.INACTIVE
        )
    else:
        settings = gpiod.LineSettings(
            direction=Direction.INPUT, active_low=opts.active_low, bias=Bias[bias.upper()]
        )
    request_lines: Callable[..., Any] = env.gpio_request_lines or gpiod.request_lines
    try:
        return request_lines(opts.chip, config={tuple(offsets): settings}, consumer=opts.consumer)
    except OSError as err:
        raise DriverError(f"cannot request lines {offsets} on {opts.chip}: {err}") from err


def _value(on: bool) -> Any:
    from gpiod.line import Value  # noqa: PLC0415

    return Value.ACTIVE if on else Value.INACTIVE


class GpiodRelays(LeasedRelays):
    """Relays 1-4 on output lines."""

    def __init__(self, request: Any, offsets: list[int]) -> None:
        super().__init__()
        self._request = request
        self._offsets = dict(zip(range(1, RELAY_COUNT + 1), offsets, strict=True))
        self._start()

    def _write(self, relay: int, closed: bool) -> None:
        self._request.set_value(self._offsets[relay], _value(closed))

    def _release(self) -> None:
        self._request.release()


class GpiodOutputs(Outputs):
    """Discrete outputs 1-4 on output lines."""

    def __init__(self, request: Any, offsets: list[int]) -> None:
        super().__init__(list(range(1, OUTPUT_COUNT + 1)))
        self._request = request
        self._offsets = dict(zip(range(1, OUTPUT_COUNT + 1), offsets, strict=True))
        self._start()

    def _write(self, name: Any, on: bool) -> None:
        self._request.set_value(self._offsets[name], _value(on))

    def _release(self) -> None:
        self._request.release()


class GpiodIndicators(Indicators):
    """Indicators on output lines."""

    def __init__(self, request: Any, lines: dict[str, int]) -> None:
        super().__init__(list(INDICATORS))
        self._request = request
        self._offsets = lines
        self._start()

    def _write(self, name: Any, on: bool) -> None:
        if name in self._offsets:
            self._request.set_value(self._offsets[name], _value(on))

    def _release(self) -> None:
        if self._request is not None:
            self._request.release()


class GpiodInputs:
    """Dry-contact inputs 1-4 on input lines (active = contact closed)."""

    def __init__(self, request: Any, offsets: list[int]) -> None:
        self._request = request
        self._offsets = offsets
        self._released = False

    def read_inputs(self) -> tuple[bool, ...]:
        """Return (closed?) for inputs 1-4.

        Raises:
            DriverError: the lines cannot be read (or the driver is closed).
        """
        from gpiod.line import Value  # noqa: PLC0415

        if self._released:
            raise DriverError("input driver is closed")
        try:
            values = self._request.get_values(self._offsets)
        except Exception as err:
            raise DriverError(f"reading input lines failed: {err}") from err
        if len(values) != INPUT_COUNT:
            raise DriverError(f"{len(values)} input values instead of {INPUT_COUNT}")
        return tuple(v == Value.ACTIVE for v in values)

    def close(self) -> None:
        """Release the lines (idempotent)."""
        if not self._released:
            self._released = True
            try:
                self._request.release()
            except Exception:
                log.exception("releasing the input lines failed")


class GpiodBackend:
    """Entry point `gpiod` of `bms_gateway.drivers`."""

    name = "gpiod"
    concerns = frozenset({"relays", "outputs", "inputs", "indicators"})

    def options_model(self, concern: str) -> type[BaseModel]:
        """Line options for `concern`."""
        if concern == "inputs":
            return GpioInputOptions
        if concern == "indicators":
            return GpioIndicatorOptions
        return GpioSwitchOptions

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Request the lines and build the driver."""
        if concern == "indicators":
            assert isinstance(options, GpioIndicatorOptions)
            if not options.lines:
                return GpiodIndicators(None, {})
            req = _request(env, options, list(options.lines.values()), "output")
            return GpiodIndicators(req, options.lines)
        assert isinstance(options, GpioSwitchOptions)
        if concern == "inputs":
            assert isinstance(options, GpioInputOptions)
            return GpiodInputs(
                _request(env, options, options.lines, "input", options.bias), options.lines
            )
        req = _request(env, options, options.lines, "output")
        if concern == "relays":
            return GpiodRelays(req, options.lines)
        return GpiodOutputs(req, options.lines)


BACKEND = GpiodBackend()
