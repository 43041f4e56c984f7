"""The async Modbus client link: pymodbus behind our own error types (wrap it, don't imitate).

`ModbusLink(endpoint).read` returns exactly the registers asked for or raises one of the
errors below; both raised pymodbus exceptions and `isError()` replies are mapped here, so
nothing from pymodbus leaks into its users (the `modbus` adapter's pollers). A
`ModbusEndpoint` says where the device is (TCP or RTU) and how long to wait for it.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass
from typing import Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.core.errors import AdapterUnavailableError, FrameTruncatedError

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


@dataclass(frozen=True, kw_only=True)
class ModbusEndpoint:
    """Where one device is and how to talk to it."""

    transport: Literal["tcp", "rtu"]
    unit_id: int
    timeout_s: float
    host: str = "127.0.0.1"  # tcp
    port: int = 502  # tcp
    serial_port: str | None = None  # rtu
    baudrate: int = 9600  # rtu
    parity: str = "N"  # rtu
    stopbits: int = 1  # rtu


class ModbusLink:
    """One device connection; reconnects lazily on the next read after a failure."""

    def __init__(self, endpoint: ModbusEndpoint) -> None:
        self.settings = endpoint
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None

    @property
    def unit_id(self) -> int:
        """The unit id requests are addressed to."""
        return self.settings.unit_id

    @property
    def endpoint(self) -> str:
        """Human-readable address of the device."""
        s = self.settings
        if s.transport == "rtu":
            return f"{s.serial_port}@{s.baudrate}"
        return f"{s.host}:{s.port}"

    def _make_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        s = self.settings
        if s.transport == "rtu":
            assert s.serial_port is not None
            return AsyncModbusSerialClient(
                s.serial_port,
                baudrate=s.baudrate,
                parity=s.parity,
                stopbits=s.stopbits,
                bytesize=8,
                timeout=s.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        return AsyncModbusTcpClient(
            s.host, port=s.port, timeout=s.timeout_s, retries=0, reconnect_delay=0
        )

    async def _connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.close()
        client = self._make_client()
        try:
            async with asyncio.timeout(self.settings.timeout_s + 1.0):  # not wait_for: 3.11
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
            async with asyncio.timeout(self.settings.timeout_s + 1.0):
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
