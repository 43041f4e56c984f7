"""A simulated BMS Main 2.x: the documented `bms-main-2x` register map served from a PackModel.

Input registers are encoded at request time through the same profile the gateway's adapter
decodes with (`gateway/protocols/profiles/bms-main-2x.yaml`), so the two sides cannot
drift apart silently. Registers the vendor does not document are not served (ILLEGAL DATA
ADDRESS). Holding registers: 0x4000 (Logic board select) and the input-signal overrides
0x5100+bit / 0x5110+bit (0 = force off, 1 = force on, >= 2 = follow the physical input;
see `gateway.protocols.main2x`).

Simulation choices (not vendor facts): Logic offline is raised while a simulated board is
offline; Battery cover while the cover input (after overrides) is active; Vcs/Vref follow
the current as a ±2 V swing around 2.5 V at ±500 A; limits and versions are fixed values.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

from gateway.links.modbus_slave import ExceptionCode, Ranges, serve_rtu, serve_tcp
from gateway.protocols.main2x import (
    HR_LOGIC_SELECT,
    HR_OVERRIDE_1,
    HR_OVERRIDE_2,
    INPUT_BITS_1,
    INPUT_BITS_2,
    OVERRIDE_FOLLOW,
    UNIT_ID,
    override_registers,
)
from gateway.protocols.modbus_profile import PointValue, Profile, encode_image
from gateway.protocols.profiles import load_profile
from gateway.sim.pack import PackModel

log = logging.getLogger(__name__)


class Main2xSimulator:
    """The board's state and its register map (a `RegisterMap` for the slave plumbing)."""

    def __init__(
        self,
        pack: PackModel,
        profile: Profile | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.pack = pack
        self.profile = profile or load_profile("bms-main-2x")
        self.wall = wall or (lambda: datetime.now(UTC))
        self.inputs: dict[str, bool] = {}  # physical inputs by signal name (True = active)
        self.errors: set[str] = set()  # forced error points, e.g. "error.high_humidity"
        self.outputs = [False, False, False, False]
        self.overrides: dict[int, int] = dict.fromkeys(override_registers(), OVERRIDE_FOLLOW)
        self.logic_select = 1
        self.charge_current_limit_a = 100.0
        self.discharge_current_limit_a = 150.0
        self.max_charge_current_a = 120.0
        self.max_discharge_current_a = 200.0
        self.versions = {"hardware": "2.1", "firmware": "5.0.3", "bootloader": "1.2.0"}
        self.reads = 0
        self.writes = 0
        self._ranges = [(p.address, p.count) for p in self.profile.points if p.function == 4]

    # --- state ----------------------------------------------------------------------

    def signal(self, name: str) -> bool:
        """An input signal after the software override."""
        for reg, sig in override_registers().items():
            if sig == name:
                mode = self.overrides[reg]
                if mode in (0, 1):
                    return bool(mode)
        return self.inputs.get(name, False)

    def active_errors(self) -> set[str]:
        """Error points currently set (forced + simulated)."""
        errs = set(self.errors)
        if any(not b.online for b in self.pack.boards):
            errs.add("error.logic_offline")
        if self.signal("battery_cover"):
            errs.add("error.battery_cover")
        return errs

    def values(self) -> dict[str, PointValue]:
        """Every point of the profile, from the pack model and the board state."""
        p = self.pack
        now = self.wall()
        vref = 2.5
        v: dict[str, PointValue] = {
            "main2x.hardware_version": self.versions["hardware"],
            "main2x.firmware_version": self.versions["firmware"],
            "main2x.bootloader_version": self.versions["bootloader"],
            "main2x.rtc": now.strftime("%Y-%m-%dT%H:%M:%S"),
            "main2x.current_a": p.current_a,
            "main2x.external_temperature_c": p.ambient_c,
            "main2x.humidity_pct": p.humidity_pct,
            "main2x.soc_pct": p.soc * 100.0,
            "main2x.logic_boards": p.board_count,
            "main2x.current_sensor_reference_line_v": vref,
            "main2x.vcs_v": vref + p.current_a / 250.0,
            "main2x.vref_v": vref,
            "main2x.aux_vcs_v": vref,
            "main2x.aux_vref_v": vref,
            "main2x.charge_current_limit_a": self.charge_current_limit_a,
            "main2x.discharge_current_limit_a": self.discharge_current_limit_a,
            "main2x.max_charge_current_a": self.max_charge_current_a,
            "main2x.max_discharge_current_a": self.max_discharge_current_a,
            "main2x.journal.last_index": 0,
        }
        for bit_names in (INPUT_BITS_1, INPUT_BITS_2):
            for name in bit_names.values():
                v[f"main2x.input.{name}"] = self.signal(name)
        for i, on in enumerate(self.outputs, start=1):
            v[f"output.{i}"] = on
        for name in self.active_errors():
            v[name] = True
        return v

    # --- RegisterMap ----------------------------------------------------------------

    def input_ranges(self) -> Ranges:
        """The documented input registers."""
        return self._ranges

    def holding_ranges(self) -> Ranges:
        """Logic select and the override registers."""
        return [(HR_LOGIC_SELECT, 1), (HR_OVERRIDE_1, 16), (HR_OVERRIDE_2, 6)]

    def read(self, function: int, address: int, count: int) -> list[int] | ExceptionCode:
        """Answer a read from the live model."""
        self.reads += 1
        if function == 4:
            image = encode_image(self.profile, self.values(), 4)
        else:
            image = {HR_LOGIC_SELECT: self.logic_select}
            image.update({HR_OVERRIDE_1 + b: OVERRIDE_FOLLOW for b in range(16)})
            image.update(self.overrides)
        try:
            return [image[a] for a in range(address, address + count)]
        except KeyError:
            return ExceptionCode.ILLEGAL_DATA_ADDRESS

    def write(self, address: int, values: Sequence[int]) -> ExceptionCode | None:
        """Accept the documented holding-register writes."""
        known = override_registers()
        addrs = range(address, address + len(values))
        if not all(a in known or a == HR_LOGIC_SELECT for a in addrs):
            return ExceptionCode.ILLEGAL_DATA_ADDRESS
        for a, value in zip(addrs, values, strict=True):
            if a == HR_LOGIC_SELECT:
                if not 1 <= value <= 23:
                    return ExceptionCode.ILLEGAL_DATA_VALUE
                self.logic_select = value
            else:
                self.overrides[a] = value
        self.writes += 1
        return None


@contextlib.asynccontextmanager
async def serve_main2x(
    sim: Main2xSimulator,
    tcp: tuple[str, int] | None = None,
    rtu: str | None = None,
    unit_id: int = UNIT_ID,
    baudrate: int = 9600,
) -> AsyncIterator[Main2xSimulator]:
    """Serve the simulator over Modbus TCP and/or RTU while the block runs."""
    async with contextlib.AsyncExitStack() as stack:
        if tcp is not None:
            await stack.enter_async_context(serve_tcp(sim, tcp[0], tcp[1], unit_id))
            log.info("simulated BMS Main 2.x on tcp %s:%d unit %d", tcp[0], tcp[1], unit_id)
        if rtu is not None:
            await stack.enter_async_context(serve_rtu(sim, rtu, unit_id, baudrate=baudrate))
            log.info("simulated BMS Main 2.x on rtu %s unit %d", rtu, unit_id)
        yield sim


async def run_main2x(
    pack: PackModel,
    tcp: tuple[str, int] | None = None,
    rtu: str | None = None,
    step_s: float = 1.0,
) -> None:
    """Serve a pack as a BMS Main 2.x until cancelled, stepping the model in real time."""
    sim = Main2xSimulator(pack)
    async with serve_main2x(sim, tcp=tcp, rtu=rtu):
        while True:
            await asyncio.sleep(step_s)
            pack.step(step_s)


def parse_host_port(text: str) -> tuple[str, int]:
    """Split `HOST:PORT` (an IPv6 host in brackets); raise ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def main2x_endpoint(
    pack: PackModel,
    tcp: tuple[str, int] | None = None,
    rtu: str | None = None,
    unit_id: int = UNIT_ID,
    baudrate: int = 9600,
) -> AsyncIterator[str]:
    """Serve `pack` as a BMS Main 2.x; yield a one-line description of where."""
    sim = Main2xSimulator(pack)
    async with serve_main2x(sim, tcp=tcp, rtu=rtu, unit_id=unit_id, baudrate=baudrate):
        where = [f"tcp {tcp[0]}:{tcp[1]}"] if tcp else []
        where += [f"rtu {rtu} {baudrate} 8N1"] if rtu else []
        yield f"BMS Main 2.x unit {unit_id} on {', '.join(where)}"
