"""A Modbus I/O module on loopback (pymodbus server in its own thread).

Coils (a relay / digital-output board), discrete inputs (a digital-input board) and input
registers (an analog-input board) live in `IoModule`; the test reads and sets them directly.
The server runs on its own event loop in a thread because the driver's `close()` does a
short blocking write from the caller's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
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
    # A communication watchdog like many relay modules have: writing `watchdog_register`
    # (function 6) arms it for value x `watchdog_unit_s`; when no such write comes in
    # time, the module opens every coil by itself (`watchdog_trips` counts it).
    watchdog_register: int | None = None
    watchdog_unit_s: float = 0.1
    watchdog_deadline: float | None = None
    watchdog_trips: int = 0
    holding_registers: list[int] = field(default_factory=lambda: [0] * SIZE)

    def check_watchdog(self, now: float) -> None:
        """Open every coil when the armed watchdog was not refreshed in time."""
        if self.watchdog_deadline is not None and now > self.watchdog_deadline:
            self.watchdog_deadline = None
            self.watchdog_trips += 1
            self.coils[:] = [False] * SIZE

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
            elif function_code in (6, 16) and set_values is not None:
                for i, v in enumerate(set_values):
                    self.holding_registers[address + i] = int(v)
                    if address + i == self.watchdog_register:
                        self.watchdog_deadline = time.monotonic() + int(v) * self.watchdog_unit_s
            elif function_code == 3:
                registers[:] = [v & 0xFFFF for v in self.holding_registers]
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
        self._watchdog_task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="modbus-io-server", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._ready.set()
        self._loop.run_forever()
        if self._watchdog_task is not None:
            self._watchdog_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                self._loop.run_until_complete(self._watchdog_task)
        if self._server is not None:
            self._loop.run_until_complete(self._server.shutdown())  # type: ignore[no-untyped-call]
        self._loop.close()

    async def _serve(self) -> None:
        self._server = ModbusTcpServer(
            self.module.device(self.device_id), address=("127.0.0.1", self.port)
        )
        await self._server.serve_forever(background=True)
        self._watchdog_task = self._loop.create_task(self._watchdog())

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.02)
            self.module.check_watchdog(time.monotonic())

    def start(self) -> None:
        """Start serving (waits until listening)."""
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("Modbus test server did not start")

    def stop(self) -> None:
        """Stop the server and its thread."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
