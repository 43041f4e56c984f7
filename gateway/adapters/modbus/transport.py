"""The pymodbus client behind our own error types (style: wrap it, don't imitate it).

`ModbusLink.read` returns exactly the registers asked for or raises one of the errors
below; both raised pymodbus exceptions and `isError()` replies are mapped here, so nothing
from pymodbus leaks into the poller.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.adapters.modbus.config import ModbusDeviceConfig
from gateway.core.errors import AdapterUnavailableError, FrameTruncatedError
from gateway.protocols.modbus_profile import Profile

log = logging.getLogger(__name__)

# pymodbus logs every unanswered request at ERROR; our poller logs transitions instead.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ModbusDeviceError(AdapterUnavailableError):
    """A request to a device failed; `kind` is the metric label."""

    kind = "io"


class ModbusConnectError(ModbusDeviceError):
    """The device (or the serial port) cannot be opened."""

    kind = "connect"


class ModbusTimeoutError(ModbusDeviceError, TimeoutError):
    """No (complete) reply within the timeout."""

    kind = "timeout"


class ModbusExceptionReplyError(ModbusDeviceError):
    """The device answered with a Modbus exception code."""

    kind = "exception"

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class ModbusMalformedReplyError(ModbusDeviceError, FrameTruncatedError):
    """The reply has the wrong number of registers (byte count)."""

    kind = "malformed"


def resolved(device: ModbusDeviceConfig, profile: Profile) -> dict[str, Any]:
    """Link settings with the profile's defaults filled in."""
    d = profile.defaults
    return {
        "port": device.port or int(d.get("port", 502)),
        "baudrate": device.baudrate or int(d.get("baudrate", 9600)),
        "parity": device.parity or str(d.get("parity", "N")),
        "stopbits": device.stopbits or int(d.get("stopbits", 1)),
        "unit_id": device.unit_id if device.unit_id is not None else int(d.get("unit_id", 1)),
    }


class ModbusLink:
    """One device connection; reconnects lazily on the next read after a failure."""

    def __init__(self, device: ModbusDeviceConfig, profile: Profile) -> None:
        self.device = device
        self.settings = resolved(device, profile)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def unit_id(self) -> int:
        """The unit id requests are addressed to."""
        return int(self.settings["unit_id"])

    @property
    def endpoint(self) -> str:
        """Human-readable address of the device."""
        if self.device.transport == "rtu":
            return f"{self.device.serial_port}@{self.settings['baudrate']}"
        return f"{self.device.host}:{self.settings['port']}"

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        timeout = self.device.timeout_s
        if self.device.transport == "rtu":
            assert self.device.serial_port is not None
            return AsyncModbusSerialClient(
                self.device.serial_port,
                baudrate=self.settings["baudrate"],
                parity=self.settings["parity"],
                stopbits=self.settings["stopbits"],
                bytesize=8,
                timeout=timeout,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            self.device.host,
            port=self.settings["port"],
            timeout=timeout,
            retries=0,
            reconnect_delay=0,
        )

    async def _connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = self._make_client()
        try:
            async with asyncio.timeout(self.device.timeout_s + 1.0):  # not wait_for: 3.11
                ok = await client.connect()  # wait_for can swallow a cancellation
        except (TimeoutError, OSError, ModbusException) as err:
            client.close()
            raise ModbusConnectError(f"{self.endpoint}: cannot connect: {err}") from None
        if not ok:
            client.close()
            raise ModbusConnectError(f"{self.endpoint}: cannot connect")
        self._client = client
        return client

    async def read(self, function: int, address: int, count: int) -> list[int]:
        """Read `count` registers (function 3 or 4) starting at `address`.

        Raises:
            ModbusDeviceError: a subclass saying what went wrong.
        """
        client = await self._connected()
        call = client.read_input_registers if function == 4 else client.read_holding_registers
        try:
            async with asyncio.timeout(self.device.timeout_s + 1.0):
                reply = await call(address, count=count, device_id=self.unit_id)
        except (TimeoutError, ModbusIOException) as err:
            self.close()  # a late reply would be taken for the next request's answer
            raise ModbusTimeoutError(f"{self.endpoint}: no reply to 0x{address:04X}") from err
        except ConnectionException as err:
            self.close()
            raise ModbusConnectError(f"{self.endpoint}: connection lost: {err}") from None
        except (ModbusException, OSError, ValueError, struct.error) as err:
            self.close()
            raise ModbusDeviceError(f"{self.endpoint}: {err}") from None
        if reply.isError():
            code = int(getattr(reply, "exception_code", 0))
            raise ModbusExceptionReplyError(
                f"{self.endpoint}: exception {code} for {function}:0x{address:04X}+{count}", code
            )
        regs = list(getattr(reply, "registers", []))
        if len(regs) != count:
            self.close()
            raise ModbusMalformedReplyError(
                f"{self.endpoint}: {len(regs)} registers for {function}:0x{address:04X}, "
                f"asked for {count}"
            )
        return regs

    def close(self) -> None:
        """Drop the connection (idempotent)."""
        if self._client is not None:
            self._client.close()
            self._client = None
