"""Protection reaction: relay command time minus (breaching reading + set delay).

A gateway on the real clock with 23 boards × 18 cells (414 cells) polled continuously by the
real `LogicAdapter` (an in-memory link that holds each reply for its 115200 baud wire
time), CAN at half load (the `can_ingest` frame mix at 4,504 frames/s into the real
`CanAdapter`), the real `EngineComponent.run()` loop and the sim relay driver. Each trial
forces one cell of a random board above `cell_overvoltage.max`; the reaction is the time
the charge contactor is commanded open minus the timestamp of the first scan that showed
the breach, minus the set delay. The anchor is the same rig with the engine stepped every
`engine.cycle_s` (the periodic loop the gateway had before the event-driven engine); the
CPU of both runs is reported too.

    python -m bench.reaction [--trials N] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import can
import cantools

from bench.can_ingest import FPS, bench_database, mix
from bench.common import Bounds, Row, process_cpu_s
from gateway.adapters.can.adapter import CanAdapter
from gateway.adapters.logic import LogicAdapter
from gateway.app import build_context
from gateway.config import load_config
from gateway.control.component import EngineComponent
from gateway.core.clock import RealClock
from gateway.core.events import BoardScanned, InputsRead, PackMeasured
from gateway.hal.drivers import sim_drivers
from gateway.protocols import logic_map
from gateway.sim.memory_link import MemoryLogicClient, Reply
from gateway.sim.pack import PackModel

BOARDS, CELLS = logic_map.MAX_BOARDS, logic_map.MAX_CELLS
CAN_LOAD = 0.5  # of a full 1 Mbit/s bus (FPS frames/s)
SET_DELAY_MS = 200
CLEAR_DELAY_S = 0.2
TRIP_V, NORMAL_V = 3.80, 3.30
CHARGE_RELAY = 3  # relays.3 = charge_contactor (seed default)
# One Logic exchange at 115200 baud, 8N1: request 8 B + reply 5 + 2×52 B, plus the gaps.
WIRE_S = (8 + 5 + 2 * 52 + 7) * 10 / 115200


class CanLoad(threading.Thread):
    """Plays the frame mix onto a python-can virtual bus in real time, until stopped."""

    def __init__(self, channel: str, frames: list[can.Message]) -> None:
        super().__init__(name="bench-can-load", daemon=True)
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.frames = frames
        self.stop = threading.Event()

    def run(self) -> None:
        period = self.frames[-1].timestamp + 1 / (FPS * CAN_LOAD)
        t0 = time.perf_counter()
        loop = 0
        while not self.stop.is_set():
            for msg in self.frames:
                ahead = t0 + loop * period + msg.timestamp - time.perf_counter()
                if ahead > 0.002:
                    time.sleep(ahead)
                if self.stop.is_set():
                    break
                self.bus.send(msg)
            loop += 1
        self.bus.shutdown()


class PacedLogicClient(MemoryLogicClient):
    """The in-memory boards, each reply held back for its wire time (other tasks run)."""

    async def read_input_registers(self, address: int, *, count: int, device_id: int) -> Reply:
        """Read after the exchange's wire time."""
        await asyncio.sleep(WIRE_S)
        return await super().read_input_registers(address, count=count, device_id=device_id)


def _config(state_dir: Path, dbc: Path, channel: str, poll_interval_s: float, can_on: bool) -> Any:
    return load_config(
        overrides={
            "gateway": {"state_dir": str(state_dir)},
            "logic": {
                "boards": BOARDS,
                "cells_per_board": CELLS,
                "poll_interval_s": poll_interval_s,
            },
            "protections": {
                "cell_overvoltage": {"set_delay_ms": SET_DELAY_MS, "clear_delay_s": CLEAR_DELAY_S}
            },
            "limits": {"ramp_a_per_s": 1e6},
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "homeassistant": {"enabled": False},
            "can": {
                "enabled": can_on,
                "interface": "virtual",
                "channel": channel,
                "bitrate": 1000000,
                "dbc_files": [str(dbc)],
                "messages": [],
                "charger": {"enabled": True},
                "inverter": {"enabled": True},
            },
        },
        env=False,
    )


async def _analog(ctx: Any, pack: PackModel) -> None:
    """The board I/O adapter's part: current, humidity and inputs every 100 ms."""
    while True:
        now = ctx.clock.now()
        ctx.bus.publish(PackMeasured(at_s=now, current_a=pack.current_a, humidity_pct=40.0))
        ctx.bus.publish(InputsRead(at_s=now, closed=(False, False, False, False)))
        await asyncio.sleep(0.1)


async def _periodic(component: EngineComponent) -> None:
    """The anchor: the engine stepped every `engine.cycle_s`, as before the event-driven loop."""
    clock = component.ctx.clock
    next_s = clock.now()
    try:
        while True:
            component.cycle(clock.now())
            next_s = max(next_s + component.cycle_s, clock.now())
            await clock.sleep_until(next_s)
    finally:
        component.shutdown()


async def _rig(
    trials: int,
    *,
    periodic: bool,
    seed: int,
    idle_s: float = 0.0,
    poll_interval_s: float = 0.001,
    can_load: bool = True,
) -> dict[str, Any]:
    rng = random.Random(seed)
    db = bench_database()
    channel = f"bench-reaction-{uuid.uuid4().hex}"
    with tempfile.TemporaryDirectory(prefix="bench-reaction-") as tmp:
        dbc = Path(tmp) / "bench.dbc"
        dbc.write_text(db.as_dbc_string(), encoding="utf-8")
        cfg = _config(Path(tmp), dbc, channel, poll_interval_s, can_load)
        pack = PackModel(boards=BOARDS, cells_per_board=CELLS)
        ctx = build_context(cfg, RealClock(), pack)
        ctx.drivers = sim_drivers(pack)
        relays = ctx.drivers.relays
        opened_at: list[float] = []
        real_set = relays.set_relay

        def set_relay(relay: int, closed: bool) -> None:
            if relay == CHARGE_RELAY and not closed and relays.relay_closed(relay):
                opened_at.append(ctx.clock.now())
            real_set(relay, closed)

        relays.set_relay = set_relay  # type: ignore[method-assign]
        scans = ctx.bus.subscribe("bench-scans", BoardScanned, maxsize=100_000)
        component = EngineComponent(ctx, initial_soc=0.6)
        logic = LogicAdapter(ctx, PacedLogicClient(pack))
        can_adapter = CanAdapter(ctx)
        frames = mix(cantools.database.load_file(str(dbc)), FPS * CAN_LOAD, 2.0)
        results: list[float] = []
        cpu0 = wall0 = 0.0
        async with asyncio.TaskGroup() as tg:
            tasks = [
                tg.create_task(ctx.store.run()),
                tg.create_task(logic.run()),
                *([tg.create_task(can_adapter.run())] if can_load else []),
                tg.create_task(_analog(ctx, pack)),
                tg.create_task(_periodic(component) if periodic else component.run()),
            ]
            while can_load and not can_adapter.link.up:  # noqa: ASYNC110 (a thread flips it)
                await asyncio.sleep(0.01)
            sender = CanLoad(channel, frames)
            if can_load:
                sender.start()
            try:
                while not relays.relay_closed(CHARGE_RELAY):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
                cpu0, wall0 = process_cpu_s(), time.monotonic()
                for _ in range(trials):
                    board, cell = rng.randint(1, BOARDS), rng.randint(1, CELLS)
                    while scans.get_nowait() is not None:
                        pass
                    opened_at.clear()
                    await asyncio.sleep(rng.uniform(0.0, 0.3))  # out of phase with everything
                    pack.force_cell_voltage(board, cell, TRIP_V)
                    seen_s = None
                    while not opened_at:
                        await asyncio.sleep(0.005)
                        while (ev := scans.get_nowait()) is not None:
                            tripped = ev.board == board and ev.cell_voltages_v[cell - 1] > 3.65
                            if seen_s is None and tripped:
                                seen_s = ev.at_s
                    if seen_s is not None:
                        results.append(opened_at[0] - seen_s - SET_DELAY_MS / 1000)
                    pack.force_cell_voltage(board, cell, NORMAL_V)
                    while not relays.relay_closed(CHARGE_RELAY):  # noqa: ASYNC110
                        await asyncio.sleep(0.01)
                await asyncio.sleep(idle_s)
                cpu, wall = process_cpu_s() - cpu0, time.monotonic() - wall0
            finally:
                sender.stop.set()
                if can_load:
                    await asyncio.to_thread(sender.join)
                for t in tasks:
                    t.cancel()
        return {
            "beyond_s": results,
            "cpu_fraction": cpu / wall if wall else None,
            "decisions": ctx.registry.get_sample_value("bms_engine_cycles_total"),
            "wall_s": wall,
        }


def _pct(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def measure(trials: int = 100, *, periodic: bool = False, seed: int = 1) -> dict[str, Any]:
    """Reaction beyond the set delay (p50/p99, seconds) with 414 cells polled and CAN load."""
    r = asyncio.run(_rig(trials, periodic=periodic, seed=seed))
    v = r["beyond_s"]
    return {
        "p50_s": statistics.median(v) if v else None,
        "p99_s": _pct(v, 0.99) if v else None,
        "max_s": max(v) if v else None,
        "trials": len(v),
        "cpu_fraction": r["cpu_fraction"],
        "decisions": r["decisions"],
        "wall_s": r["wall_s"],
    }


def idle_cpu(seconds: float = 10.0, *, periodic: bool = False) -> float:
    """CPU fraction of the same gateway at rest: boards polled every 1 s, no CAN, no breach."""
    r = asyncio.run(
        _rig(0, periodic=periodic, seed=1, idle_s=seconds, poll_interval_s=1.0, can_load=False)
    )
    return float(r["cpu_fraction"])


def run(b: Bounds) -> dict[str, Any]:
    """The suite entry: event-driven engine against the periodic loop, same rig."""
    trials = b.count(30, 2)  # the suite's 5-minute budget; `python -m bench.reaction` runs 100
    event = measure(trials)
    anchor = measure(trials, periodic=True)
    idle_s = b.seconds(10.0, 0.5)
    event["idle_cpu_fraction"] = idle_cpu(idle_s)
    anchor["idle_cpu_fraction"] = idle_cpu(idle_s, periodic=True)

    def ms(x: float | None) -> float | None:
        return None if x is None else x * 1000

    return {
        "rows": [
            Row(
                "reaction",
                "protection reaction beyond set delay, p50",
                "ms",
                ms(event["p50_s"]),
                "periodic engine loop",
                ms(anchor["p50_s"]),
                "≤ 5 (p99)",
            ),
            Row(
                "reaction",
                "protection reaction beyond set delay, p99",
                "ms",
                ms(event["p99_s"]),
                "periodic engine loop",
                ms(anchor["p99_s"]),
                "≤ 5",
            ),
            Row(
                "reaction",
                "process CPU while protecting (414 cells, CAN 50 %)",
                "%",
                100 * event["cpu_fraction"],
                "periodic engine loop",
                100 * anchor["cpu_fraction"],
                "< anchor",
            ),
            Row(
                "reaction",
                "process CPU at rest (414 cells polled every 1 s, no CAN)",
                "%",
                100 * event["idle_cpu_fraction"],
                "periodic engine loop",
                100 * anchor["idle_cpu_fraction"],
                "< anchor",
            ),
        ],
        "details": {"event_driven": event, "periodic": anchor, "trials": trials},
    }


def main(argv: list[str] | None = None) -> None:
    """Print both measurements as JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--smoke", action="store_true", help="5 trials")
    a = p.parse_args(argv)
    n = 5 if a.smoke else a.trials
    out = {"event_driven": measure(n), "periodic": measure(n, periodic=True)}
    secs = 2.0 if a.smoke else 10.0
    out["event_driven"]["idle_cpu_fraction"] = idle_cpu(secs)
    out["periodic"]["idle_cpu_fraction"] = idle_cpu(secs, periodic=True)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
