"""Replay a fully loaded 500 kbit/s CAN bus into the gateway's CAN adapter and count drops.

Usage: .venv/bin/python bench/can_replay.py [--fps 4000] [--seconds 60] [--file capture.log]

Generates (or reads) a capture, plays it in real time onto a python-can `virtual` bus, and
runs the real `CanAdapter` (reader thread, decoder, PointsRead on the event bus, state store)
on the other side. Reports frames/s sent and received, drops, decode/unknown counts and the
CPU time the gateway process used. A final unpaced run measures the ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
import uuid
from pathlib import Path
from typing import Any

import can

from gateway.adapters.can.adapter import CanAdapter
from gateway.adapters.can.replay import replay_send, synthetic_frames
from gateway.config import load_config
from gateway.core.bus import EventBus
from gateway.core.clock import RealClock
from gateway.core.context import GatewayContext
from gateway.core.state import StateStore


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(messages: list[can.Message], speed: float) -> dict[str, Any]:
    channel = f"bench-{uuid.uuid4().hex}"
    cfg = load_config(
        None,
        {
            "can": {
                "enabled": True,
                "interface": "virtual",
                "channel": channel,
                "bitrate": 500000,
                "charger": {"enabled": True},
                "inverter": {"enabled": True},
            }
        },
        env=False,
    )
    clock = RealClock()
    bus = EventBus()
    store = StateStore(bus, clock, [1])
    ctx = GatewayContext(config=cfg, clock=clock, bus=bus, store=store)
    adapter = CanAdapter(ctx)
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(adapter.run()), tg.create_task(store.run())]
        while not adapter.link.up:  # noqa: ASYNC110 (a thread flips it)
            await asyncio.sleep(0.01)
        sender = can.Bus(interface="virtual", channel=channel)
        cpu0, t0 = _cpu_s(), time.perf_counter()
        sent = await asyncio.to_thread(replay_send, messages, sender, speed)
        t_sent = time.perf_counter() - t0

        def rx() -> float:
            return ctx.registry.get_sample_value("bms_can_rx_frames_total") or 0.0

        deadline = time.perf_counter() + 30
        while rx() < sent and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        t_rx = time.perf_counter() - t0
        cpu = _cpu_s() - cpu0
        sender.shutdown()
        for t in tasks:
            t.cancel()

    def m(name: str) -> int:
        return int(ctx.registry.get_sample_value(name) or 0)

    return {
        "sent": sent,
        "received": m("bms_can_rx_frames_total"),
        "dropped": m("bms_can_rx_dropped_total"),
        "decode_errors": m("bms_can_decode_errors_total"),
        "unknown": m("bms_can_rx_unknown_total"),
        "send_seconds": round(t_sent, 2),
        "receive_seconds": round(t_rx, 2),
        "frames_per_s": round(m("bms_can_rx_frames_total") / t_rx),
        "cpu_seconds": round(cpu, 2),
        "points": {k: v for k, v in store.state.points.items() if k.endswith("connected")},
    }


def main() -> None:
    """Run the benchmark and print JSON results."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fps", type=float, default=4000)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--file", type=Path, help="replay this capture instead of a synthetic one")
    p.add_argument("--no-unpaced", action="store_true", help="skip the unpaced ceiling run")
    args = p.parse_args()
    if args.file:
        with can.LogReader(str(args.file)) as reader:
            messages = list(reader)
    else:
        messages = list(synthetic_frames(args.fps, args.seconds))
    results = {"paced": asyncio.run(run(messages, 1.0))}
    if not args.no_unpaced:
        results["unpaced"] = asyncio.run(run(messages, 0.0))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
