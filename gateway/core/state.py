"""The gateway's live picture of the battery, kept in one place.

`StateStore` applies measurement events to a `GatewayState`; the control engine reads it and
writes its decisions into `state.control`; publishers read it on their own timers. Every
reading carries the clock time it was taken (`updated_s`), so staleness is always known.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway.core.bus import EventBus, Overflow
from gateway.core.clock import Clock
from gateway.core.events import (
    BoardCameOnline,
    BoardScanned,
    BoardWentOffline,
    Event,
    InputsRead,
    PackMeasured,
    PointsRead,
)


@dataclass
class BoardState:
    """The last known readings of one BMS Logic board."""

    board: int
    online: bool = False
    cell_voltages_v: tuple[float, ...] = ()
    temperatures_c: tuple[float | None, ...] = ()
    board_temperature_c: float | None = None
    status_bits: int = 0
    balancing_mask: int = 0
    firmware: str = ""
    updated_s: float | None = None  # clock time of the last good scan; None = never


@dataclass
class SwitchState:
    """A relay, output or indicator: what it is for, its state, and why."""

    function: str
    on: bool = False
    reasons: tuple[str, ...] = ()
    since_s: float | None = None


@dataclass
class ControlState:
    """Decisions of the control engine (written only by it)."""

    running: bool = False
    first_valid_scan: bool = False
    errors_active: list[str] = field(default_factory=list)
    signals: dict[str, bool] = field(default_factory=dict)
    relays: dict[int, SwitchState] = field(default_factory=dict)
    outputs: dict[int, SwitchState] = field(default_factory=dict)
    indicators: dict[str, bool] = field(default_factory=dict)
    soc: float | None = None  # 0..1
    limits: dict[str, float] = field(default_factory=dict)  # cvl_v, ccl_a, dcl_a
    reasons: dict[str, list[str]] = field(default_factory=dict)
    balancing: dict[int, int] = field(default_factory=dict)  # board -> cell bitmask
    reasons_since_s: dict[str, float] = field(default_factory=dict)  # reasons key -> since


@dataclass
class EnergyTotals:
    """Charged/discharged energy and charge since the counters began, and full cycles."""

    energy_in_kwh: float = 0.0
    energy_out_kwh: float = 0.0
    charge_in_ah: float = 0.0
    charge_out_ah: float = 0.0
    cycles: float = 0.0


@dataclass
class GatewayState:
    """Everything the gateway knows right now."""

    boards: dict[int, BoardState] = field(default_factory=dict)
    current_a: float | None = None
    current_updated_s: float | None = None
    humidity_pct: float | None = None
    humidity_updated_s: float | None = None
    external_temperature_c: float | None = None
    inputs: tuple[bool, ...] = (False, False, False, False)
    inputs_updated_s: float | None = None
    points: dict[str, float | int | bool | str] = field(default_factory=dict)
    points_updated_s: dict[str, float] = field(default_factory=dict)  # source -> clock time
    point_updated_s: dict[str, float] = field(default_factory=dict)  # point -> clock time
    control: ControlState = field(default_factory=ControlState)
    energy: EnergyTotals | None = None  # gateway.control.energy; None until it runs
    _readings_cache: (
        tuple[tuple[tuple[BoardState, bool, object, object], ...], _Readings] | None
    ) = field(
        default=None, init=False, repr=False, compare=False
    )

    def online_boards(self) -> list[BoardState]:
        """Return the boards that are online, in board order."""
        return [b for _, b in sorted(self.boards.items()) if b.online]

    @property
    def boards_online(self) -> int:
        """Count the online boards."""
        return sum(1 for b in self.boards.values() if b.online)

    def _readings(self) -> _Readings:
        """The online boards' readings and their extremes, computed once per scan.

        Scans store new value tuples, so the cache holds on to the boards and tuples it was
        computed from and is reused while every one of them is still in place (compared by
        identity); boards holding anything but tuples are never cached.
        """
        cached = self._readings_cache
        boards = self.boards
        if cached is not None and len(cached[0]) == len(boards):
            for b, (was, online, cells_v, temps_c) in zip(boards.values(), cached[0], strict=True):
                if (
                    b is not was
                    or b.online is not online
                    or b.cell_voltages_v is not cells_v
                    or b.temperatures_c is not temps_c
                ):
                    break
            else:
                return cached[1]
        online_boards = [b for _, b in sorted(boards.items()) if b.online]
        readings = _Readings.of(
            [v for b in online_boards for v in b.cell_voltages_v],
            [t for b in online_boards for t in b.temperatures_c if t is not None],
        )
        if all(type(b.cell_voltages_v) is type(b.temperatures_c) is tuple for b in online_boards):
            key = tuple((b, b.online, b.cell_voltages_v, b.temperatures_c) for b in boards.values())
            self._readings_cache = (key, readings)
        else:
            self._readings_cache = None
        return readings

    def cell_voltages_v(self) -> list[float]:
        """Return every cell voltage of the online boards, board by board."""
        return list(self._readings().cells_v)

    def temperatures_c(self) -> list[float]:
        """Return every valid cell temperature of the online boards."""
        return list(self._readings().temperatures_c)

    @property
    def pack_voltage_v(self) -> float | None:
        """Sum of the online boards' cells (None when no board is online)."""
        return self._readings().pack_v

    @property
    def cell_voltage_min_v(self) -> float | None:
        """Lowest cell voltage, or None."""
        return self._readings().cell_min_v

    @property
    def cell_voltage_max_v(self) -> float | None:
        """Highest cell voltage, or None."""
        return self._readings().cell_max_v

    @property
    def temperature_min_c(self) -> float | None:
        """Coldest valid cell temperature, or None."""
        return self._readings().temperature_min_c

    @property
    def temperature_max_c(self) -> float | None:
        """Hottest valid cell temperature, or None."""
        return self._readings().temperature_max_c


@dataclass(frozen=True, slots=True)
class _Readings:
    """The online boards' cell voltages and valid temperatures, with their extremes."""

    cells_v: list[float]
    temperatures_c: list[float]
    pack_v: float | None
    cell_min_v: float | None
    cell_max_v: float | None
    temperature_min_c: float | None
    temperature_max_c: float | None

    @classmethod
    def of(cls, cells: list[float], temps: list[float]) -> _Readings:
        return cls(
            cells,
            temps,
            round(sum(cells), 4) if cells else None,
            min(cells) if cells else None,
            max(cells) if cells else None,
            min(temps) if temps else None,
            max(temps) if temps else None,
        )


class StateStore:
    """Owns the `GatewayState` and keeps it current from bus events."""

    def __init__(self, bus: EventBus, clock: Clock, boards: list[int]) -> None:
        self.state = GatewayState(boards={n: BoardState(board=n) for n in boards})
        self._clock = clock
        self._sub = bus.subscribe(
            "state",
            BoardScanned,
            BoardWentOffline,
            BoardCameOnline,
            PackMeasured,
            InputsRead,
            PointsRead,
            overflow=Overflow.NEVER_DROP,
        )

    def apply(self, event: Event) -> None:
        """Fold one event into the state."""
        s = self.state
        match event:
            case BoardScanned():
                b = s.boards.setdefault(event.board, BoardState(board=event.board))
                b.cell_voltages_v = event.cell_voltages_v
                b.temperatures_c = event.temperatures_c
                b.board_temperature_c = event.board_temperature_c
                b.status_bits = event.status_bits
                b.balancing_mask = event.balancing_mask
                b.firmware = event.firmware
                b.updated_s = event.at_s
                b.online = True
            case BoardWentOffline():
                s.boards.setdefault(event.board, BoardState(board=event.board)).online = False
            case BoardCameOnline():
                s.boards.setdefault(event.board, BoardState(board=event.board)).online = True
            case PackMeasured():
                if event.current_a is not None:
                    s.current_a = event.current_a
                    s.current_updated_s = event.at_s
                if event.humidity_pct is not None:
                    s.humidity_pct = event.humidity_pct
                    s.humidity_updated_s = event.at_s
                if event.temperature_c is not None:
                    s.external_temperature_c = event.temperature_c
            case InputsRead():
                s.inputs = event.closed
                s.inputs_updated_s = event.at_s
            case PointsRead():
                s.points.update(event.values)
                s.points_updated_s[event.source] = event.at_s
                s.point_updated_s.update(dict.fromkeys(event.values, event.at_s))
            case _:
                pass

    def drain(self) -> int:
        """Apply every queued event now (used by the engine before each decision)."""
        n = 0
        while (event := self._sub.get_nowait()) is not None:
            self.apply(event)
            n += 1
        return n

    async def run(self) -> None:
        """Apply events as they arrive, forever."""
        while True:
            self.apply(await self._sub.get())
            self.drain()
            await asyncio.sleep(0)
