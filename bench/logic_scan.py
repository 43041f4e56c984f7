"""Measure a full Logic scan over a pty against the theoretical RS-485 wire time.

The simulated boards pace each reply by the wire time of the request and the reply plus the
two 3.5-character silences (a pty has no baud rate), so the ratio measured / theoretical shows
what the gateway's software adds on top of the physical link. Not run by the tests.

    .venv/bin/python bench/logic_scan.py                 # 23 boards × 18 cells at 115200 Bd
    .venv/bin/python bench/logic_scan.py --baud 9600 115200 --cycles 5
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from gateway.adapters.logic import LogicAdapter
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.protocols import logic_map
from gateway.sim.logic_server import LogicRtuServer, serve_on_pty
from gateway.sim.pack import PackModel

REQUEST_BYTES = 8  # address, function, start (2), count (2), CRC (2)
GAP_CHARS = 7  # 3.5 characters of silence before the request and before the reply


def wire_time_s(boards: int, registers: int, baud: int, bits_per_char: int = 10) -> float:
    """Physical time of one scan: one read per board, request + reply + silences."""
    reply_bytes = 5 + 2 * registers  # address, function, byte count, data, CRC (2)
    return boards * (REQUEST_BYTES + reply_bytes + GAP_CHARS) * bits_per_char / baud


async def measure(boards: int, cells: int, baud: int, cycles: int) -> list[float]:
    """Time `cycles` full poll cycles of the real adapter against paced simulated boards."""
    pack = PackModel(boards=boards, cells_per_board=cells)
    server = LogicRtuServer(pack, baudrate=baud, pace=True)
    async with serve_on_pty(server) as path:
        config = load_config(
            overrides={
                "logic": {
                    "port": path,
                    "baudrate": baud,
                    "boards": boards,
                    "cells_per_board": cells,
                    "timeout_s": max(0.2, 3 * wire_time_s(1, 52, baud)),
                }
            },
            env=False,
        )
        ctx = build_context(config, RealClock(), pack)
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
            print(f"warning: {int(failed)} failed polls during the run", file=sys.stderr)
        return times


def main() -> int:
    """Run the benchmark and print the table."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--boards", type=int, default=logic_map.MAX_BOARDS)
    p.add_argument("--cells", type=int, default=logic_map.MAX_CELLS)
    p.add_argument("--baud", type=int, nargs="+", default=[115200])
    p.add_argument("--cycles", type=int, default=10)
    args = p.parse_args()
    registers = logic_map.registers_to_read(args.cells, args.cells)
    print(
        f"{args.boards} boards × {args.cells} cells × {args.cells} sensors: "
        f"{args.boards} requests/cycle, {registers} registers each"
    )
    print(f"{'baud':>7} {'wire ms':>9} {'median ms':>10} {'p95 ms':>8} {'min ms':>8} {'ratio':>6}")
    for baud in args.baud:
        times = asyncio.run(measure(args.boards, args.cells, baud, args.cycles))
        wire = wire_time_s(args.boards, registers, baud)
        med = statistics.median(times)
        p95 = sorted(times)[max(0, round(0.95 * len(times)) - 1)]
        print(
            f"{baud:>7} {wire * 1000:>9.1f} {med * 1000:>10.1f} {p95 * 1000:>8.1f} "
            f"{min(times) * 1000:>8.1f} {med / wire:>6.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
