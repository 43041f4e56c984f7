"""An in-memory Logic bus: the boards of a `PackModel` answering the real `LogicAdapter`.

`MemoryLogicClient` has the shape of the pymodbus client the adapter talks to (connect,
read_input_registers, write_registers, close), so scenarios and tests run the adapter's own
poll, decode, online/offline and balancing-write code over it, without a pty or a serial
timeout: a board that is offline (or beyond the pack) does not answer, which the adapter
counts as a timeout. Nothing here ever waits: every call completes at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pymodbus.exceptions import ModbusIOException

from gateway.protocols import logic_map
from gateway.sim.pack import PackModel

ILLEGAL_DATA_ADDRESS = 0x02


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply: registers, or a Modbus exception code (the part of pymodbus' response the
    adapter reads)."""

    registers: list[int] = field(default_factory=list)
    exception_code: int = 0

    def isError(self) -> bool:
        """True for an exception reply."""
        return self.exception_code != 0


class MemoryLogicClient:
    """The Logic boards of one pack model, reached without bytes or time."""

    def __init__(self, pack: PackModel) -> None:
        self.pack = pack
        self.connected = False
        self.reads = 0
        self.writes = 0

    async def connect(self) -> bool:
        """Open the (in-memory) link: always succeeds."""
        self.connected = True
        return True

    def close(self) -> None:
        """Close the link (idempotent)."""
        self.connected = False

    def _answers(self, board: int) -> bool:
        return board <= self.pack.board_count and self.pack.board(board).online

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        """Read a board's input registers; a silent board raises as pymodbus does."""
        self.reads += 1
        if not self._answers(device_id):
            raise ModbusIOException(f"No response received from device {device_id}")
        registers = self.pack.input_registers(device_id)
        if address + count > len(registers):  # as the board (and gateway.sim.logic_server)
            return Reply(exception_code=ILLEGAL_DATA_ADDRESS)
        return Reply(list(registers[address : address + count]))

    async def write_registers(
        self, address: int, values: Sequence[int], *, device_id: int
    ) -> Reply:
        """Write the balancing request (holding registers 0-1) to a board."""
        if not self._answers(device_id):
            raise ModbusIOException(f"No response received from device {device_id}")
        if address != logic_map.HOLD_BALANCING_REQUEST:
            raise ModbusIOException(f"board {device_id}: no holding register {address}")
        self.writes += 1
        self.pack.write_balancing(device_id, logic_map.decode_balancing_mask(list(values)))
        return Reply()
