"""pymodbus server plumbing shared by the simulated BMS Main 2.x and the gateway's server.

A `RegisterMap` answers reads from a live source at request time and judges every write;
`serve_tcp`/`serve_rtu` run it as one unit id on pymodbus' server. Addresses the map does
not serve answer ILLEGAL DATA ADDRESS (pymodbus does that for the gaps between ranges).
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusBaseServer, ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

log = logging.getLogger(__name__)
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)


class ExceptionCode(enum.IntEnum):
    """Modbus exception codes we answer with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_DATA_ADDRESS = 2
    ILLEGAL_DATA_VALUE = 3
    DEVICE_FAILURE = 4


_EXC = {
    ExceptionCode.ILLEGAL_FUNCTION: ExcCodes.ILLEGAL_FUNCTION,
    ExceptionCode.ILLEGAL_DATA_ADDRESS: ExcCodes.ILLEGAL_ADDRESS,
    ExceptionCode.ILLEGAL_DATA_VALUE: ExcCodes.ILLEGAL_VALUE,
    ExceptionCode.DEVICE_FAILURE: ExcCodes.DEVICE_FAILURE,
}

Ranges = Sequence[tuple[int, int]]  # (start, count)


class RegisterMap(Protocol):
    """A live register space: which ranges exist, what they read, which writes are taken."""

    def input_ranges(self) -> Ranges:
        """Input-register ranges served (function 04)."""
        ...

    def holding_ranges(self) -> Ranges:
        """Holding-register ranges served (functions 03/06/16)."""
        ...

    def read(self, function: int, address: int, count: int) -> list[int] | ExceptionCode:
        """Registers for a read (3 or 4), or an exception code."""
        ...

    def write(self, address: int, values: Sequence[int]) -> ExceptionCode | None:
        """Apply a write (06/16) or refuse it with an exception code."""
        ...


def _merge(ranges: Ranges) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, count in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], start + count)
        else:
            out.append([start, start + count])
    return [(s, e - s) for s, e in out]


def build_device(regmap: RegisterMap, unit_id: int) -> SimDevice:
    """A pymodbus SimDevice whose every access goes through `regmap`."""

    async def action(
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if function_code in (1, 2, 5, 15):
            return ExcCodes.ILLEGAL_FUNCTION
        if set_values is not None:
            code = regmap.write(address, [int(v) for v in set_values])
            return None if code is None else _EXC[code]
        try:
            result = regmap.read(function_code, address, count)
        except Exception:  # a source bug must not kill the server
            log.exception("register map read failed")
            return ExcCodes.DEVICE_FAILURE
        if isinstance(result, ExceptionCode):
            return _EXC[result]
        if len(result) != count:
            return ExcCodes.DEVICE_FAILURE
        offset = address - start_address
        registers[offset : offset + count] = [r & 0xFFFF for r in result]
        return None

    def blocks(ranges: Ranges) -> list[SimData]:
        merged = _merge(ranges) or [(0xFFFE, 1)]
        return [SimData(s, count=c, datatype=DataType.REGISTERS) for s, c in merged]

    bit = [SimData(0, datatype=DataType.BITS)]
    return SimDevice(
        id=unit_id,
        simdata=(bit, list(bit), blocks(regmap.holding_ranges()), blocks(regmap.input_ranges())),
        action=action,
    )


@contextlib.asynccontextmanager
async def _serving(server: ModbusBaseServer, failure: str) -> AsyncIterator[None]:
    """Start `server` in the background (OSError `failure: ...` if it cannot); stop it after."""
    try:
        await server.serve_forever(background=True)
    except RuntimeError as err:
        raise OSError(f"{failure}: {err}") from None
    try:
        yield
    finally:
        await server.shutdown()  # type: ignore[no-untyped-call]


@contextlib.asynccontextmanager
async def serve_tcp(
    regmap: RegisterMap, host: str, port: int, unit_id: int
) -> AsyncIterator[ModbusTcpServer]:
    """Serve `regmap` on Modbus TCP while the block runs."""
    server = ModbusTcpServer(build_device(regmap, unit_id), address=(host, port))
    async with _serving(server, f"cannot listen on {host}:{port}"):
        yield server


@contextlib.asynccontextmanager
async def serve_rtu(
    regmap: RegisterMap,
    port: str,
    unit_id: int,
    baudrate: int = 9600,
    parity: str = "N",
    stopbits: int = 1,
) -> AsyncIterator[ModbusSerialServer]:
    """Serve `regmap` on Modbus RTU (a serial port or pty) while the block runs."""
    server = ModbusSerialServer(
        build_device(regmap, unit_id),
        port=port,
        baudrate=baudrate,
        parity=parity,
        stopbits=stopbits,
        bytesize=8,
    )
    async with _serving(server, f"cannot open {port}"):
        yield server
