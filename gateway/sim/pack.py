"""A pack model: N boards × M cells with capacity/resistance spread, OCV, current, temperatures.

Pure and clock-free: the owner calls `step(dt_s)` with elapsed time. Test and scenario code
may force any value (`force_cell_voltage`, `force_temperature`, ...) until `release`d.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.chemistry import ocv_v
from gateway.protocols import logic_map

BALANCE_CURRENT_A = 0.35  # passive bleed of a BMS Logic 2.0 board


@dataclass
class CellModel:
    """One cell: its own capacity, internal resistance and state of charge."""

    capacity_ah: float
    resistance_ohm: float
    soc: float
    forced_voltage_v: float | None = None


@dataclass
class BoardModel:
    """One BMS Logic board: its cells, temperature sensors and link state."""

    cells: list[CellModel]
    temperatures_c: list[float | None]
    board_temperature_c: float = 25.0
    online: bool = True
    balancing_mask: int = 0
    forced_temperatures: dict[int, float | None] = field(default_factory=dict)
    status_bits: int = 0


class PackModel:
    """A simulated battery pack."""

    def __init__(
        self,
        boards: int = 2,
        cells_per_board: int = 16,
        sensors_per_board: int | None = None,
        chemistry: str = "lfp",
        capacity_ah: float = 100.0,
        soc: float = 0.6,
        temperature_c: float = 25.0,
        current_a: float = 0.0,
        humidity_pct: float = 40.0,
        capacity_spread: float = 0.02,
        resistance_ohm: float = 0.0008,
        resistance_spread: float = 0.10,
        seed: int = 1,
    ) -> None:
        if not 1 <= boards <= logic_map.MAX_BOARDS:
            raise ValueError(f"boards must be 1..{logic_map.MAX_BOARDS}")
        if not 1 <= cells_per_board <= logic_map.MAX_CELLS:
            raise ValueError(f"cells_per_board must be 1..{logic_map.MAX_CELLS}")
        sensors = cells_per_board if sensors_per_board is None else sensors_per_board
        if sensors == 0:
            sensors = 0
        rng = random.Random(seed)
        self.chemistry = chemistry
        self.capacity_ah = capacity_ah
        self.current_a = current_a
        self.current_profile: Callable[[float], float] | None = None
        self.humidity_pct = humidity_pct
        self.ambient_c = temperature_c
        self.time_s = 0.0
        self.inputs_closed: list[bool] = [False] * 4
        self.boards: list[BoardModel] = []
        for _ in range(boards):
            cells = [
                CellModel(
                    capacity_ah=capacity_ah * (1 + rng.uniform(-capacity_spread, capacity_spread)),
                    resistance_ohm=resistance_ohm
                    * (1 + rng.uniform(-resistance_spread, resistance_spread)),
                    soc=min(1.0, max(0.0, soc + rng.uniform(-0.005, 0.005))),
                )
                for _ in range(cells_per_board)
            ]
            temps: list[float | None] = [temperature_c] * sensors
            self.boards.append(
                BoardModel(cells=cells, temperatures_c=temps, board_temperature_c=temperature_c)
            )

    # --- queries --------------------------------------------------------------------

    @property
    def board_count(self) -> int:
        """Number of boards."""
        return len(self.boards)

    def board(self, n: int) -> BoardModel:
        """Return board `n` (1-based)."""
        if not 1 <= n <= len(self.boards):
            raise ValueError(f"board {n} out of 1..{len(self.boards)}")
        return self.boards[n - 1]

    def cell_voltage_v(self, board: int, cell: int) -> float:
        """Terminal voltage of one cell: forced, or OCV + I·R."""
        c = self.board(board).cells[cell - 1]
        if c.forced_voltage_v is not None:
            return c.forced_voltage_v
        return ocv_v(self.chemistry, c.soc) + self.current_a * c.resistance_ohm

    def cell_voltages_v(self, board: int) -> list[float]:
        """Every cell voltage of one board."""
        return [self.cell_voltage_v(board, i + 1) for i in range(len(self.board(board).cells))]

    def all_cell_voltages_v(self) -> list[float]:
        """Every cell voltage, board by board."""
        return [v for b in range(1, len(self.boards) + 1) for v in self.cell_voltages_v(b)]

    def temperatures_c(self, board: int) -> list[float | None]:
        """Every temperature sensor of one board (None = missing/shorted)."""
        b = self.board(board)
        return [
            b.forced_temperatures.get(i + 1, t) if (i + 1) in b.forced_temperatures else t
            for i, t in enumerate(b.temperatures_c)
        ]

    @property
    def pack_voltage_v(self) -> float:
        """Sum of every cell."""
        return sum(self.all_cell_voltages_v())

    @property
    def soc(self) -> float:
        """Pack SOC: the mean of the cells."""
        cells = [c for b in self.boards for c in b.cells]
        return sum(c.soc for c in cells) / len(cells)

    def input_registers(self, board: int) -> list[int]:
        """The board's Logic input-register block (what a real board would answer)."""
        b = self.board(board)
        status = b.status_bits
        if b.balancing_mask:
            status |= logic_map.STATUS_BALANCING
        if any(t is None for t in self.temperatures_c(board)):
            status |= logic_map.STATUS_SENSOR_FAULT
        return logic_map.encode_input_registers(
            cell_voltages_v=[min(max(v, 0.0), 6.0) for v in self.cell_voltages_v(board)],
            temperatures_c=[
                None if t is None else max(-3276.7, min(3276.7, t))
                for t in self.temperatures_c(board)
            ],
            board_temperature_c=b.board_temperature_c,
            status_bits=status,
            balancing_mask=b.balancing_mask,
            serial_number=0x10000 + board,
        )

    # --- changes --------------------------------------------------------------------

    def step(self, dt_s: float) -> None:
        """Advance the model by `dt_s`: integrate current and balancing into each cell."""
        if dt_s <= 0:
            return
        self.time_s += dt_s
        if self.current_profile is not None:
            self.current_a = self.current_profile(self.time_s)
        for b in self.boards:
            for i, c in enumerate(b.cells):
                bleed = BALANCE_CURRENT_A if b.balancing_mask >> i & 1 else 0.0
                c.soc += (self.current_a - bleed) * dt_s / 3600.0 / c.capacity_ah
                c.soc = min(1.0, max(0.0, c.soc))

    def set_current(self, current_a: float) -> None:
        """Set a constant pack current (positive = charging)."""
        self.current_profile = None
        self.current_a = current_a

    def force_cell_voltage(self, board: int, cell: int, voltage_v: float) -> None:
        """Hold one cell at a voltage until released."""
        self.board(board).cells[cell - 1].forced_voltage_v = voltage_v

    def force_cells(self, voltage_v: float, board: int | None = None) -> None:
        """Hold every cell (of one board) at a voltage."""
        for n in [board] if board is not None else range(1, len(self.boards) + 1):
            for c in self.board(n).cells:
                c.forced_voltage_v = voltage_v

    def force_temperature(
        self, value_c: float | None, board: int | None = None, sensor: int | None = None
    ) -> None:
        """Hold temperature sensors (all, one board's, or one) at a value (None = fault)."""
        boards = [board] if board is not None else range(1, len(self.boards) + 1)
        for n in boards:
            b = self.board(n)
            sensors = [sensor] if sensor is not None else range(1, len(b.temperatures_c) + 1)
            for s in sensors:
                b.forced_temperatures[s] = value_c
            if sensor is None and value_c is not None:
                b.board_temperature_c = value_c

    def release(self, what: str = "all") -> None:
        """Stop forcing `cell`/`cells`, `temperature` or `all`."""
        for b in self.boards:
            if what in ("cell", "cells", "all"):
                for c in b.cells:
                    c.forced_voltage_v = None
            if what in ("temperature", "all"):
                b.forced_temperatures.clear()
                b.board_temperature_c = self.ambient_c

    def set_board_online(self, board: int, online: bool) -> None:
        """Make a board stop or resume answering."""
        self.board(board).online = online

    def write_balancing(self, board: int, mask: int) -> None:
        """Apply a balancing request written by the gateway."""
        self.board(board).balancing_mask = mask
