"""BMS Logic cell-board register map (Modbus RTU slave, addresses 1..23).

Sans-IO: registers in, typed values out, and back. The layout is documented in
`docs/protocols/bms-logic.md`; the constants below are that table.

Input registers (function 04), all unsigned 16-bit unless noted:

| addr | name | unit / meaning |
| ---- | ---- | --- |
| 0 | device_id | 0x4C47 ("LG") |
| 1 | firmware_version | major << 8 | minor |
| 2 | hardware_version | major << 8 | minor |
| 3-4 | serial_number | U32, low word first |
| 5 | cell_count | 0..18 |
| 6 | sensor_count | 0..18 |
| 7 | status_bits | see `STATUS_*` |
| 8 | board_temperature | S16, 0.1 °C |
| 9-10 | balancing_active | U32 bitmask, low word first, bit n-1 = cell n |
| 11-15 | reserved | 0 |
| 16-33 | cell_voltage[1..18] | mV |
| 34-51 | temperature[1..18] | S16, 0.1 °C; 0x8000 = sensor missing or shorted |

Holding registers (functions 03/06/16):

| addr | name | meaning |
| ---- | ---- | --- |
| 0-1 | balancing_request | U32 bitmask, low word first, bit n-1 = cell n |
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.errors import FrameRangeError, FrameTruncatedError

DEVICE_ID = 0x4C47
MAX_CELLS = 18
MAX_SENSORS = 18
MAX_BOARDS = 23

REG_DEVICE_ID = 0
REG_FIRMWARE = 1
REG_HARDWARE = 2
REG_SERIAL = 3
REG_CELL_COUNT = 5
REG_SENSOR_COUNT = 6
REG_STATUS = 7
REG_BOARD_TEMPERATURE = 8
REG_BALANCING_ACTIVE = 9
REG_CELL_VOLTAGES = 16
REG_TEMPERATURES = 34
INPUT_REGISTER_COUNT = REG_TEMPERATURES + MAX_SENSORS  # 52

HOLD_BALANCING_REQUEST = 0
HOLDING_REGISTER_COUNT = 2

SENSOR_FAULT = 0x8000  # as raw U16: S16 -32768

STATUS_CELL_MEASUREMENT_FAULT = 1 << 0
STATUS_SENSOR_FAULT = 1 << 1
STATUS_OVER_TEMPERATURE = 1 << 2
STATUS_BALANCING = 1 << 3
STATUS_RESET_OCCURRED = 1 << 15

MAX_CELL_MV = 6000  # a reading above this is not a cell voltage


@dataclass(frozen=True, slots=True)
class LogicBoardReading:
    """One decoded board block."""

    firmware: str
    hardware: str
    serial_number: int
    cell_voltages_v: tuple[float, ...]
    temperatures_c: tuple[float | None, ...]
    board_temperature_c: float | None
    status_bits: int
    balancing_mask: int


def registers_to_read(cells: int, sensors: int) -> int:
    """Return how many input registers one poll must read (from address 0)."""
    if not 0 <= cells <= MAX_CELLS or not 0 <= sensors <= MAX_SENSORS:
        raise ValueError(f"cells/sensors out of range: {cells}/{sensors}")
    return REG_TEMPERATURES + sensors if sensors else REG_CELL_VOLTAGES + cells


def _s16(raw: int) -> int:
    return raw - 0x10000 if raw & 0x8000 else raw


def _to_s16(value: int) -> int:
    if not -0x8000 <= value <= 0x7FFF:
        raise FrameRangeError(f"value {value} does not fit in S16")
    return value & 0xFFFF


def _scaled(value: float, scale: int, what: str) -> int:
    """Round `value * scale` to an int; NaN and infinities are range errors."""
    scaled = value * scale
    if not math.isfinite(scaled):
        raise FrameRangeError(f"{what} {value} is not a finite number in range")
    return round(scaled)


def _version(raw: int) -> str:
    return f"{raw >> 8}.{raw & 0xFF}"


def _temp(raw: int) -> float | None:
    return None if raw == SENSOR_FAULT else _s16(raw) / 10.0


def decode_input_registers(
    regs: Sequence[int], expected_cells: int, expected_sensors: int
) -> LogicBoardReading:
    """Decode a board's input-register block read from address 0.

    The cells are decoded as the board reports them: a count other than `expected_cells` is
    not a frame error but data (the engine raises `cell_count_mismatch` on it), as long as
    the registers read cover it.

    Raises:
        FrameTruncatedError: fewer registers than the board's counts need.
        FrameRangeError: a register outside 0..65535, a wrong device id, counts above the
            maximum, a sensor count differing from `expected_sensors`, or a cell voltage
            above 6 V.
    """
    del expected_cells  # reported, not enforced (see above)
    if len(regs) < REG_CELL_VOLTAGES:
        raise FrameTruncatedError(f"{len(regs)} registers, header needs {REG_CELL_VOLTAGES}")
    for i, r in enumerate(regs):
        if not 0 <= r <= 0xFFFF:
            raise FrameRangeError(f"register {i} = {r} is not a 16-bit value")
    if regs[REG_DEVICE_ID] != DEVICE_ID:
        raise FrameRangeError(f"device id 0x{regs[REG_DEVICE_ID]:04X} is not a BMS Logic")
    cells, sensors = regs[REG_CELL_COUNT], regs[REG_SENSOR_COUNT]
    if cells > MAX_CELLS or sensors > MAX_SENSORS:
        raise FrameRangeError(f"board reports {cells} cells / {sensors} sensors")
    if sensors != expected_sensors:
        raise FrameRangeError(f"board reports {sensors} sensors, configured {expected_sensors}")
    need = registers_to_read(cells, sensors)
    if len(regs) < need:
        raise FrameTruncatedError(f"{len(regs)} registers, {cells} cells need {need}")
    mv = regs[REG_CELL_VOLTAGES : REG_CELL_VOLTAGES + cells]
    for i, m in enumerate(mv, start=1):
        if m > MAX_CELL_MV:
            raise FrameRangeError(f"cell {i} reads {m} mV")
    temps = regs[REG_TEMPERATURES : REG_TEMPERATURES + sensors]
    return LogicBoardReading(
        firmware=_version(regs[REG_FIRMWARE]),
        hardware=_version(regs[REG_HARDWARE]),
        serial_number=regs[REG_SERIAL] | (regs[REG_SERIAL + 1] << 16),
        cell_voltages_v=tuple(m / 1000.0 for m in mv),
        temperatures_c=tuple(_temp(t) for t in temps),
        board_temperature_c=_temp(regs[REG_BOARD_TEMPERATURE]),
        status_bits=regs[REG_STATUS],
        balancing_mask=regs[REG_BALANCING_ACTIVE] | (regs[REG_BALANCING_ACTIVE + 1] << 16),
    )


def encode_input_registers(
    *,
    cell_voltages_v: Sequence[float],
    temperatures_c: Sequence[float | None],
    board_temperature_c: float | None = 25.0,
    status_bits: int = 0,
    balancing_mask: int = 0,
    firmware: tuple[int, int] = (2, 1),
    hardware: tuple[int, int] = (2, 0),
    serial_number: int = 0,
) -> list[int]:
    """Encode a board's full input-register block (52 registers).

    Raises:
        FrameRangeError: too many cells/sensors or a value that does not fit its field.
    """
    if len(cell_voltages_v) > MAX_CELLS or len(temperatures_c) > MAX_SENSORS:
        raise FrameRangeError("too many cells or sensors for one board")
    regs = [0] * INPUT_REGISTER_COUNT
    regs[REG_DEVICE_ID] = DEVICE_ID
    regs[REG_FIRMWARE] = (firmware[0] & 0xFF) << 8 | (firmware[1] & 0xFF)
    regs[REG_HARDWARE] = (hardware[0] & 0xFF) << 8 | (hardware[1] & 0xFF)
    regs[REG_SERIAL] = serial_number & 0xFFFF
    regs[REG_SERIAL + 1] = (serial_number >> 16) & 0xFFFF
    regs[REG_CELL_COUNT] = len(cell_voltages_v)
    regs[REG_SENSOR_COUNT] = len(temperatures_c)
    regs[REG_STATUS] = status_bits & 0xFFFF
    regs[REG_BOARD_TEMPERATURE] = (
        SENSOR_FAULT
        if board_temperature_c is None
        else _to_s16(_scaled(board_temperature_c, 10, "board temperature"))
    )
    regs[REG_BALANCING_ACTIVE] = balancing_mask & 0xFFFF
    regs[REG_BALANCING_ACTIVE + 1] = (balancing_mask >> 16) & 0xFFFF
    for i, v in enumerate(cell_voltages_v):
        mv = _scaled(v, 1000, f"cell {i + 1} voltage")
        if not 0 <= mv <= MAX_CELL_MV:
            raise FrameRangeError(f"cell {i + 1} voltage {v} V out of range")
        regs[REG_CELL_VOLTAGES + i] = mv
    for i, t in enumerate(temperatures_c):
        regs[REG_TEMPERATURES + i] = (
            SENSOR_FAULT if t is None else _to_s16(_scaled(t, 10, f"temperature {i + 1}"))
        )
    return regs


def encode_balancing_mask(mask: int) -> list[int]:
    """Encode a balancing bitmask (bit n-1 = cell n) as two holding registers."""
    if not 0 <= mask < 1 << MAX_CELLS:
        raise FrameRangeError(f"balancing mask 0x{mask:X} has bits above cell {MAX_CELLS}")
    return [mask & 0xFFFF, (mask >> 16) & 0xFFFF]


def decode_balancing_mask(regs: Sequence[int]) -> int:
    """Decode two holding registers into a balancing bitmask."""
    if len(regs) < HOLDING_REGISTER_COUNT:
        raise FrameTruncatedError("balancing mask needs 2 registers")
    mask = (regs[0] & 0xFFFF) | ((regs[1] & 0xFFFF) << 16)
    if mask >= 1 << MAX_CELLS:
        raise FrameRangeError(f"balancing mask 0x{mask:X} has bits above cell {MAX_CELLS}")
    return mask


def cells_of_mask(mask: int) -> list[int]:
    """Return the 1-based cell numbers set in a bitmask."""
    return [i + 1 for i in range(MAX_CELLS) if mask >> i & 1]


def mask_of_cells(cells: Sequence[int]) -> int:
    """Return the bitmask of 1-based cell numbers."""
    mask = 0
    for c in cells:
        if not 1 <= c <= MAX_CELLS:
            raise ValueError(f"cell {c} out of 1..{MAX_CELLS}")
        mask |= 1 << (c - 1)
    return mask
