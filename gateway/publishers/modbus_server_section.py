"""Config section `modbus_server` (kept apart from the server so gateway.config stays light)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gateway.core.section import Section


class ModbusServerRtu(Section):
    """Optional Modbus RTU listener on a serial port (e.g. the external RS-485)."""

    port: str = Field(description="Serial device, e.g. /dev/ttyS1.")
    baudrate: int = Field(9600, ge=300, le=921600, description="bit/s.")
    parity: Literal["N", "E", "O"] = Field("N", description="Parity.")
    stopbits: Literal[1, 2] = Field(1, description="Stop bits.")


class ModbusServerSection(Section):
    """The gateway's own Modbus server (bms-main-2x layout + extension block)."""

    enabled: bool = Field(False, description="Serve the gateway's data over Modbus.")
    host: str = Field("127.0.0.1", description="TCP listen address (0.0.0.0 = all).")
    port: int | None = Field(
        5020, ge=1, lt=65536, description="TCP port (502 needs privileges); null = no TCP."
    )
    unit_id: int = Field(32, ge=1, le=247, description="Unit id answered (as a BMS Main 2.x).")
    writes_enabled: bool = Field(
        False,
        description="Accept the input-signal overrides (HR 0x5100+bit, 0x5110+bit) and the "
        "error reset (HR 0x3000); otherwise every write is refused with ILLEGAL FUNCTION.",
    )
    allow_less_safe_writes: bool = Field(
        False,
        description="With `writes_enabled`, also accept writes that may let a relay close "
        "again: the error reset, releasing a safe override, forcing a safety input to its "
        "fine state (docs/modbus.md). Modbus has no authentication: anyone who reaches the "
        "server may then do so.",
    )
    update_interval_s: float = Field(
        1.0, gt=0, le=60, description="How often the register image is rebuilt from the state."
    )
    rtu: ModbusServerRtu | None = Field(None, description="Also serve Modbus RTU on this port.")
