"""Logic scan: the real LogicAdapter vs the wire time and vs a bare pyserial master.

Both masters read the same boards (one read-input-registers request each) over the same
paced link, which runs in its own process (`bench.paced_link`).
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import time
from typing import Any

import serial

from bench.common import Bounds, Row
from bench.paced_link import bits_per_char, exchange_s, spawn
from gateway.adapters.logic import LogicAdapter
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.protocols import logic_map
from gateway.protocols.modbus_rtu import crc_ok, rtu_frame

REQUEST_BYTES = 8


def wire_time_s(boards: int, registers: int, baud: int, bits: int) -> float:
    """Physical time of one scan: per board a request, a reply and two silences."""
    return boards * exchange_s(REQUEST_BYTES, 5 + 2 * registers, baud, bits)


def bare_master(path: str, boards: int, registers: int, baud: int, cycles: int) -> list[float]:
    """Time `cycles` scans by a plain pyserial loop (request, read the reply, check CRC)."""
    requests = [rtu_frame(b, struct.pack(">BHH", 0x04, 0, registers)) for b in range(1, boards + 1)]
    size = 5 + 2 * registers
    times = []
    with serial.Serial(path, baudrate=baud, timeout=1.0) as port:
        for _ in range(cycles + 1):  # the first cycle warms up
            t0 = time.perf_counter()
            for req in requests:
                port.write(req)
                reply = port.read(size)
                if len(reply) != size or not crc_ok(reply):
                    raise RuntimeError("bare master: bad reply")
                struct.unpack(f">{registers}H", reply[3:-2])
            times.append(time.perf_counter() - t0)
    return times[1:]


async def gateway_master(path: str, boards: int, cells: int, baud: int, cycles: int) -> list[float]:
    """Time `cycles` poll cycles of the real adapter (after two warm-up cycles)."""
    config = load_config(
        overrides={
            "logic": {
                "port": path,
                "baudrate": baud,
                "boards": boards,
                "cells_per_board": cells,
                "timeout_s": 0.5,
            }
        },
        env=False,
    )
    ctx = build_context(config, RealClock())
    adapter = LogicAdapter(ctx)
    try:
        await adapter.poll_cycle()  # opens the port, first balancing writes
        await adapter.poll_cycle()
        times = []
        for _ in range(cycles):
            t0 = time.perf_counter()
            await adapter.poll_cycle()
            times.append(time.perf_counter() - t0)
    finally:
        adapter.close()
    failed = sum(
        s.value
        for m in ctx.health.poll_errors.collect()
        for s in m.samples
        if s.name.endswith("_total")
    )
    if failed:
        raise RuntimeError(f"{int(failed)} failed polls during the Logic scan benchmark")
    return times


def run(b: Bounds) -> dict[str, Any]:
    """Measure and return rows + details."""
    boards = b.count(logic_map.MAX_BOARDS, 2)
    cells = logic_map.MAX_CELLS
    baud = 115200
    cycles = b.count(8, 1)
    registers = logic_map.registers_to_read(cells, cells)
    bits = bits_per_char()
    wire = wire_time_s(boards, registers, baud, bits)
    with spawn(boards, cells, baud) as (path, _pid):
        bare = statistics.median(bare_master(path, boards, registers, baud, cycles))
        gw = statistics.median(asyncio.run(gateway_master(path, boards, cells, baud, cycles)))
    label = f"{boards}×{cells} cells, {baud} Bd"
    return {
        "rows": [
            Row(
                "logic_scan",
                f"scan {label} vs wire",
                "ms",
                gw * 1e3,
                "wire time",
                wire * 1e3,
                "≤ 1.05",
            ),
            Row(
                "logic_scan",
                f"scan {label} vs bare",
                "ms",
                gw * 1e3,
                "bare pyserial master",
                bare * 1e3,
                "≤ 1.03",
                extra={"bare_vs_wire": round(bare / wire, 3)},
            ),
        ],
        "details": {
            "boards": boards,
            "cells": cells,
            "baud": baud,
            "bits_per_char": bits,
            "registers": registers,
            "cycles": cycles,
        },
    }
