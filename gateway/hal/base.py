"""The driver contract every hardware backend implements (sim, gpiod, Modbus I/O, IIO, sysfs).

Relays fail open: a `RelayDriver` opens every relay when its lease lapses, when it is closed,
and when it is built. Numbers are 1-based as on the board (relays 1-4, inputs 1-4, outputs 1-4).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

# The board's counts and names are declared once in gateway.board; re-exported for drivers.
from gateway.board import ADC_CHANNELS, INDICATORS, INPUT_COUNT, OUTPUT_COUNT, RELAY_COUNT

__all__ = [
    "ADC_CHANNELS",
    "INDICATORS",
    "INPUT_COUNT",
    "OUTPUT_COUNT",
    "RELAY_COUNT",
    "AdcDriver",
    "IndicatorDriver",
    "InputDriver",
    "OutputDriver",
    "RelayDriver",
]


@runtime_checkable
class RelayDriver(Protocol):
    """Drives relays 1-4; opens all of them when the engine's lease lapses."""

    def set_relay(self, relay: int, closed: bool) -> None:
        """Command one relay (1-4)."""
        ...

    def relay_closed(self, relay: int) -> bool:
        """Return the commanded state of one relay."""
        ...

    def renew_lease(self, until_s: float) -> None:
        """Keep the relays as commanded until clock time `until_s`."""
        ...

    def check_lease(self, now_s: float) -> bool:
        """Open every relay if the lease has lapsed at `now_s`; return True when it had."""
        ...

    def open_all(self) -> None:
        """Drive every relay open (idempotent, never raises)."""
        ...


@runtime_checkable
class OutputDriver(Protocol):
    """Drives discrete outputs 1-4."""

    def set_output(self, output: int, on: bool) -> None:
        """Switch one output."""
        ...


@runtime_checkable
class InputDriver(Protocol):
    """Reads dry-contact inputs 1-4.

    A driver whose readings stand for nothing (the `sim` inputs without a simulator) has a
    true attribute `placeholder`; the board I/O adapter then publishes no inputs.
    """

    def read_inputs(self) -> tuple[bool, ...]:
        """Return (closed?) for inputs 1-4."""
        ...


@runtime_checkable
class AdcDriver(Protocol):
    """Reads the analog inputs in volts."""

    def read_volts(self, channel: str) -> float | None:
        """Return one channel's voltage (see `ADC_CHANNELS`), or None when unreadable."""
        ...


@runtime_checkable
class IndicatorDriver(Protocol):
    """Lights the board's indicators DS2-DS8."""

    def set_indicator(self, name: str, on: bool) -> None:
        """Switch one indicator."""
        ...
