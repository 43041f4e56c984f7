"""Config section `modbus`: the devices the Modbus adapter polls."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.core.errors import ConfigError
from gateway.core.section import Section
from gateway.links.modbus_client import ModbusEndpoint
from gateway.protocols.modbus_profile import Profile


class ModbusDeviceConfig(Section):
    """One Modbus device (RTU on a serial port, or TCP)."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Device name: the `source` of its points and the `device` metric label.",
    )
    transport: Literal["tcp", "rtu"] = Field("tcp", description="tcp or rtu (RS-485 serial).")
    host: str = Field("127.0.0.1", description="TCP: host name or address.")
    port: int | None = Field(
        None, ge=1, lt=65536, description="TCP: port (default: the profile's, else 502)."
    )
    serial_port: str | None = Field(None, description="RTU: serial device, e.g. /dev/ttyUSB0.")
    baudrate: int | None = Field(
        None, ge=300, le=921600, description="RTU: bit/s (default: the profile's, else 9600)."
    )
    parity: Literal["N", "E", "O"] | None = Field(
        None, description="RTU: parity (default: the profile's, else N)."
    )
    stopbits: Literal[1, 2] | None = Field(None, description="RTU: stop bits (default 1).")
    unit_id: int | None = Field(
        None, ge=0, le=247, description="Modbus unit/slave id (default: the profile's, else 1)."
    )
    poll_interval_s: float = Field(1.0, gt=0, le=3600, description="Time between poll cycles.")
    timeout_s: float = Field(1.0, gt=0, le=30, description="Per-request response timeout.")
    profile: str = Field(
        "bms-main-2x", description="Bundled profile name (bms-main-2x, eastron-sdm) or a path."
    )
    offline_after: int = Field(
        3, ge=1, le=1000, description="Failed poll cycles in a row before the device is offline."
    )
    prefix: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="Prepended to every point name (leave empty for the bridge device, whose "
        "error.* points the engine reads).",
    )
    max_registers: int = Field(
        125, ge=1, le=125, description="Largest read request (registers); lower for picky devices."
    )

    @model_validator(mode="after")
    def _check(self) -> ModbusDeviceConfig:
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError(f"device {self.name}: transport rtu needs serial_port")
        from gateway.protocols.profiles import load_profile  # noqa: PLC0415

        try:
            load_profile(self.profile)
        except ConfigError as err:
            raise ValueError(f"device {self.name}: {err}") from err
        return self


def device_endpoint(device: ModbusDeviceConfig, profile: Profile) -> ModbusEndpoint:
    """The device's link settings, the profile's defaults filled in where the config is unset."""
    d = profile.defaults
    return ModbusEndpoint(
        transport=device.transport,
        unit_id=device.unit_id if device.unit_id is not None else int(d.get("unit_id", 1)),
        timeout_s=device.timeout_s,
        host=device.host,
        port=device.port or int(d.get("port", 502)),
        serial_port=device.serial_port,
        baudrate=device.baudrate or int(d.get("baudrate", 9600)),
        parity=device.parity or str(d.get("parity", "N")),
        stopbits=device.stopbits or int(d.get("stopbits", 1)),
    )


class ModbusSection(Section):
    """Modbus client: devices to poll (empty = adapter disabled)."""

    devices: list[ModbusDeviceConfig] = Field(
        default_factory=list, description="Devices to poll; each has its own poll loop."
    )

    @model_validator(mode="after")
    def _unique(self) -> ModbusSection:
        names = [d.name for d in self.devices]
        if len(set(names)) != len(names):
            raise ValueError("modbus.devices: device names must be unique")
        return self
