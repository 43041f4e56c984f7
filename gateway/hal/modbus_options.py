"""Options of the `modbus` driver backend (Modbus I/O modules), one model per concern."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from gateway.core.section import Section
from gateway.hal.backend import check_names
from gateway.hal.base import ADC_CHANNELS, INDICATORS

# --- options ------------------------------------------------------------------------


class ModbusLinkOptions(Section):
    """Where the module is."""

    transport: Literal["tcp", "rtu"] = Field("tcp", description="tcp or rtu (RS-485).")
    host: str = Field("127.0.0.1", description="tcp: module address.")
    port: int = Field(502, ge=1, lt=65536, description="tcp: port.")
    serial_port: str | None = Field(None, description="rtu: serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0, description="rtu: baud rate.")
    parity: Literal["N", "E", "O"] = Field("N", description="rtu: parity.")
    stopbits: Literal[1, 2] = Field(1, description="rtu: stop bits.")
    device_id: int = Field(1, ge=0, le=247, description="Modbus device (slave) id.")
    timeout_s: float = Field(0.5, gt=0, le=10, description="Per-request timeout.")
    poll_interval_s: float = Field(0.2, gt=0, le=60, description="Write/read period.")

    def link_key(self) -> tuple[str, ...]:
        """Identify the bus so drivers on it share one client."""
        if self.transport == "tcp":
            return ("tcp", self.host, str(self.port))
        return ("rtu", str(self.serial_port))


class ModbusCoilOptions(ModbusLinkOptions):
    """`relays` / `outputs`: coil addresses of numbers 1-4."""

    coils: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], description="Coils 1-4.")

    @field_validator("coils")
    @classmethod
    def _four(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or len(set(v)) != 4 or any(not 0 <= a <= 0xFFFF for a in v):
            raise ValueError("coils: four distinct addresses 0-65535 (numbers 1-4)")
        return v


class ModuleWatchdog(Section):
    """The relay module's own communication watchdog (opens its outputs when we go quiet)."""

    address: int = Field(
        ge=0, le=0xFFFF, description="Holding register that arms/refreshes the module's watchdog."
    )
    value: int = Field(
        ge=0, le=0xFFFF, description="Value written (usually the timeout, in the module's units)."
    )


class ModbusRelayOptions(ModbusCoilOptions):
    """`relays`: coils of relays 1-4 (read back every poll) and the module's watchdog."""

    module_watchdog: ModuleWatchdog | None = Field(
        None,
        description="Register/value written at start and refreshed while the relay lease is "
        "renewed, so the module opens its relays by itself when the gateway freezes or dies. "
        "Without it a module keeps its coils as last written (docs/hardware.md).",
    )


class ModbusIndicatorOptions(ModbusLinkOptions):
    """`indicators`: coil per indicator."""

    coils: dict[str, int] = Field(default_factory=dict, description="DS2-DS8 -> coil.")

    @field_validator("coils")
    @classmethod
    def _names(cls, v: dict[str, int]) -> dict[str, int]:
        check_names("indicators", v, INDICATORS)
        return v


class ModbusInputOptions(ModbusLinkOptions):
    """`inputs`: discrete-input addresses of inputs 1-4."""

    discrete_inputs: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3], description="Discrete inputs 1-4."
    )
    invert: bool = Field(False, description="A set bit means the contact is open.")

    @field_validator("discrete_inputs")
    @classmethod
    def _four(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or any(not 0 <= a <= 0xFFFF for a in v):
            raise ValueError("discrete_inputs: four addresses 0-65535 (inputs 1-4)")
        return v


class ModbusAdcChannel(Section):
    """One analog input: volts = (signed?) register value * scale + offset."""

    address: int = Field(ge=0, le=0xFFFF, description="Register address.")
    scale: float = Field(0.001, description="Volts per count (0.001 for a module in mV).")
    offset: float = Field(0.0, description="Volts added after scaling.")
    signed: bool = Field(False, description="Register holds a signed 16-bit value.")


class ModbusAdcOptions(ModbusLinkOptions):
    """`adc`: analog-input module registers."""

    register_type: Literal["input", "holding"] = Field("input", description="Register table.")
    channels: dict[str, ModbusAdcChannel] = Field(
        default_factory=lambda: {
            c: ModbusAdcChannel(address=i) for i, c in enumerate(ADC_CHANNELS)
        },
        description="vcs, vref, vhs, vts -> {address, scale, offset, signed}.",
    )

    @field_validator("channels")
    @classmethod
    def _names(cls, v: dict[str, ModbusAdcChannel]) -> dict[str, ModbusAdcChannel]:
        check_names("channels", v, ADC_CHANNELS)
        return v
