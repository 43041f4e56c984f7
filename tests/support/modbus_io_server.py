"""A Modbus I/O module on loopback (pymodbus server in its own thread).

Coils (a relay / digital-output board), discrete inputs (a digital-input board) and input
registers (an analog-input board) live in `IoModule`; the test reads and sets them directly.
The server runs on its own event loop in a thread because the driver's `close()` does a
short blocking write from the caller's thread.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from tests.support.broker import free_port

SIZE = 32  # bits / registers of each table


@dataclass
class IoModule:
    """The module's tables as the test sees them."""

    coils: list[bool] = field(default_factory=lambda: [False] * SIZE)
    discrete_inputs: list[bool] = field(default_factory=lambda: [False] * SIZE)
    input_registers: list[int] = field(default_factory=lambda: [0] * SIZE)
    fail: bool = False  # answer every request with a device-failure exception
    requests: int = 0

    def device(self, device_id: int) -> SimDevice:
        """A SimDevice whose accesses go through this module."""

        async def action(
            function_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            del start_address, count
            self.requests += 1
            if self.fail:
                return ExcCodes.DEVICE_FAILURE
            if function_code in (5, 15) and set_values is not None:
                for i, v in enumerate(set_values):
                    self.coils[address + i] = bool(v)
            elif function_code == 1:
                registers[:] = SimUtils.bitsToRegisters(self.coils)
            elif function_code == 2:
                registers[:] = SimUtils.bitsToRegisters(self.discrete_inputs)
            elif function_code == 4:
                registers[:] = [v & 0xFFFF for v in self.input_registers]
            return None

        bits = [SimData(0, count=SIZE, datatype=DataType.BITS)]
        regs = [SimData(0, count=SIZE, datatype=DataType.REGISTERS)]
        return SimDevice(
            id=device_id,
            simdata=(bits, list(bits), list(regs), list(regs)),
            action=action,
        )


class ModbusIoServer:
    """Serve an `IoModule` on 127.0.0.1:port from a background thread."""

    def __init__(self, module: IoModule, device_id: int = 1) -> None:
        self.module = module
        self.device_id = device_id
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._server: ModbusTcpServer | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="modbus-io-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        if self._server is not None:
            self._loop.run_until_complete(self._server.shutdown())  # type: ignore[no-untyped-call]
        self._loop.close()

    async def _serve(self) -> None:
        self._server = ModbusTcpServer(
            self.module.device(self.device_id), address=("127.0.0.1", self.port)
        )
        await self._server.serve_forever(background=True)

    def start(self) -> None:
        """Start serving (waits until listening)."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("Modbus test server did not start")

    def stop(self) -> None:
        """Stop the server and its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
