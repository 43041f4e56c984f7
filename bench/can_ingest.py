"""CAN ingest at a fully loaded 1 Mbit/s bus (9,009 frames/s), every frame a known message.

The mix (8 frames): a J1939 charger status, an inverter keep-alive, two plain 8-signal
messages of a user DBC and four frames of a multiplexed message (8 multiplexer values of 3
signals). A sender thread paces the frames onto a python-can `virtual` bus; the receiver is
either the gateway's real `CanAdapter` (reader thread, decoder, points on the event bus,
state store), a bare python-can + cantools loop, or a naive script that decodes each frame
and publishes it with paho-mqtt. CPU per frame is the process' CPU minus the sender
thread's own CPU time, divided by the frames sent.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import can
import cantools
from cantools.database.can import Database, Message, Signal
from cantools.database.conversion import LinearConversion

from bench.common import Bounds, Row, mosquitto, process_cpu_s
from gateway.adapters.can.adapter import CanAdapter
from gateway.adapters.can.dbc import CHARGER_STATUS_ID, INVERTER_KEEPALIVE_ID, shipped
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.core.errors import FrameError

FPS = 9009
MUX_VALUES = 8


def _sig(name: str, start: int, length: int, scale: float = 1.0, **kw: Any) -> Signal:
    return Signal(
        name,
        start,
        length,
        byte_order="little_endian",
        conversion=LinearConversion(scale=scale, offset=0, is_float=False),
        **kw,
    )


def bench_database() -> Database:
    """The user DBC of the mix: two plain messages and one multiplexed message."""
    plain = [
        Message(0x100 + k, f"Status{k}", 8, [_sig(f"S{k}_{i}", 8 * i, 8, 0.5) for i in range(8)])
        for k in range(2)
    ]
    mux_signals = [_sig("Index", 0, 8, is_multiplexer=True)]
    for m in range(MUX_VALUES):
        for i in range(3):
            mux_signals.append(
                _sig(
                    f"Cell{3 * m + i}",
                    8 + 16 * i,
                    16,
                    0.001,
                    multiplexer_ids=[m],
                    multiplexer_signal="Index",
                )
            )
    mux = Message(0x200, "Cells", 8, mux_signals)
    return Database([*plain, mux])


def mix(db: Database, fps: float, seconds: float, seed: int = 1) -> list[can.Message]:
    """The frames of the run, timestamped at `fps`."""
    rng = random.Random(seed)
    status = [db.get_message_by_name(f"Status{k}") for k in range(2)]
    cells = db.get_message_by_name("Cells")
    frames = []
    for i in range(int(fps * seconds)):
        kind = i % 8
        if kind == 0:
            volts = rng.randint(400, 600)
            data = volts.to_bytes(2, "big") + rng.randint(0, 500).to_bytes(2, "big") + bytes(4)
            fid, ext = CHARGER_STATUS_ID, True
        elif kind == 1:
            fid, ext, data = INVERTER_KEEPALIVE_ID, False, bytes(8)
        elif kind in (2, 3):
            msg = status[kind - 2]
            fid, ext, data = msg.frame_id, False, rng.randbytes(8)
        else:
            index = (i // 8 * 4 + kind - 4) % MUX_VALUES
            fid, ext = cells.frame_id, False
            data = bytes([index]) + rng.randbytes(7)
        frames.append(
            can.Message(timestamp=i / fps, arbitration_id=fid, is_extended_id=ext, data=data)
        )
    return frames


class Sender(threading.Thread):
    """Plays the frames in real time; records its own CPU time (excluded from the figures)."""

    def __init__(self, channel: str, frames: list[can.Message]) -> None:
        super().__init__(name="bench-sender", daemon=True)
        self.bus = can.Bus(interface="virtual", channel=channel)
        self.frames = frames
        self.cpu_s = 0.0
        self.sent = 0

    def run(self) -> None:
        c0 = time.thread_time()
        t0 = time.perf_counter()
        for msg in self.frames:
            ahead = t0 + msg.timestamp - time.perf_counter()
            if ahead > 0.002:
                time.sleep(ahead)
            self.bus.send(msg)
            self.sent += 1
        self.cpu_s = time.thread_time() - c0
        self.bus.shutdown()


def _measure_thread(
    channel: str, frames: list[can.Message], handle: Callable[[can.Message], None]
) -> dict[str, Any]:
    """Receive with a blocking loop calling `handle` per frame until every frame arrived."""
    bus = can.Bus(interface="virtual", channel=channel)
    sender = Sender(channel, frames)
    received = 0
    cpu0 = process_cpu_s()
    sender.start()
    deadline = time.monotonic() + frames[-1].timestamp + 10
    while received < len(frames) and time.monotonic() < deadline:
        msg = bus.recv(timeout=0.2)
        if msg is not None:
            handle(msg)
            received += 1
    sender.join()
    cpu = process_cpu_s() - cpu0 - sender.cpu_s
    bus.shutdown()
    return {"sent": sender.sent, "received": received, "cpu_us_per_frame": cpu / sender.sent * 1e6}


def bare_loop(db: Database, channel: str, frames: list[can.Message]) -> dict[str, Any]:
    """python-can recv + cantools decode of every frame, latest values in one dict."""
    known = {**{m.frame_id: m for m in db.messages}}
    charger = shipped("charger_j1939").get_message_by_frame_id(CHARGER_STATUS_ID | 1 << 31)
    known[CHARGER_STATUS_ID] = charger
    values: dict[str, Any] = {}

    def handle(msg: can.Message) -> None:
        m = known.get(msg.arbitration_id)
        if m is not None:
            values.update(m.decode(msg.data, decode_choices=False))

    return _measure_thread(channel, frames, handle)


def paho_per_frame(
    db: Database, channel: str, frames: list[can.Message], port: int
) -> dict[str, Any]:
    """The naive script: decode each frame and publish it as JSON with paho-mqtt (QoS 0)."""
    import paho.mqtt.client as paho  # noqa: PLC0415

    known = {m.frame_id: m for m in db.messages}
    known[CHARGER_STATUS_ID] = shipped("charger_j1939").get_message_by_frame_id(
        CHARGER_STATUS_ID | 1 << 31
    )
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex}")
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()

    def handle(msg: can.Message) -> None:
        m = known.get(msg.arbitration_id)
        values = {} if m is None else m.decode(msg.data, decode_choices=False)
        client.publish(f"can/{msg.arbitration_id:x}", json.dumps(values), qos=0)

    try:
        return _measure_thread(channel, frames, handle)
    finally:
        client.loop_stop()
        client.disconnect()


class EveryFrameAdapter(CanAdapter):
    """The adapter as it was before the batch coalescing: every frame decoded, in order."""

    def on_frames(self, batch: list[can.Message]) -> None:
        now = self.ctx.clock.now()
        points: dict[str, Any] = {}
        notices: list[Any] = []
        self.metrics.rx_frames.inc(len(batch))
        for msg in batch:
            if msg.is_error_frame or msg.is_remote_frame:
                continue
            try:
                decoded = self.decoder.decode(
                    msg.arbitration_id, bytes(msg.data), msg.is_extended_id
                )
            except FrameError:
                self.metrics.decode_errors.inc()
                continue
            if decoded is None:
                self.metrics.rx_unknown.inc()
                continue
            points.update(decoded.points)
            if decoded.peer is not None:
                p, n = self.peers.seen(decoded.peer, now)
                points.update(p)
                notices.extend(n)
        self._emit(now, points, notices)


async def _gateway(
    db_path: Path,
    db: Database,
    channel: str,
    frames: list[can.Message],
    adapter_cls: type[CanAdapter] = CanAdapter,
) -> dict[str, Any]:
    messages = [
        {
            "message": m.name,
            "signals": {
                s.name: f"bench.{s.name.lower()}" for s in m.signals if not s.is_multiplexer
            },
        }
        for m in db.messages
    ]
    cfg = load_config(
        overrides={
            "can": {
                "enabled": True,
                "interface": "virtual",
                "channel": channel,
                "bitrate": 1000000,
                "dbc_files": [str(db_path)],
                "messages": messages,
                "charger": {"enabled": True},
                "inverter": {"enabled": True},
            }
        },
        env=False,
    )
    ctx = build_context(cfg, RealClock())
    store = ctx.store
    adapter = adapter_cls(ctx)

    def metric(name: str) -> int:
        return int(ctx.registry.get_sample_value(name) or 0)

    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(adapter.run()), tg.create_task(store.run())]
        while not adapter.link.up:  # noqa: ASYNC110 (a thread flips it)
            await asyncio.sleep(0.01)
        sender = Sender(channel, frames)
        cpu0 = process_cpu_s()
        sender.start()
        deadline = time.monotonic() + frames[-1].timestamp + 10
        handled = 0
        while handled < len(frames) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polls a counter: registry reads cost CPU, not too often
            handled = metric("bms_can_rx_frames_total") + metric("bms_can_rx_dropped_total")
        queued = store.drain()  # points still queued for the store count as work
        while queued:
            await asyncio.sleep(0)
            queued = store.drain()
        await asyncio.to_thread(sender.join)
        cpu = process_cpu_s() - cpu0 - sender.cpu_s
        for t in tasks:
            t.cancel()
    points = [k for k in store.state.points if k.startswith("bench.")]
    return {
        "sent": sender.sent,
        "received": metric("bms_can_rx_frames_total"),
        "dropped": metric("bms_can_rx_dropped_total"),
        "decode_errors": metric("bms_can_decode_errors_total"),
        "unknown": metric("bms_can_rx_unknown_total"),
        "bench_points": len(points),
        "cpu_us_per_frame": cpu / sender.sent * 1e6,
    }


def run(b: Bounds) -> dict[str, Any]:
    """Measure the three receivers on the same frames (bare and gateway alternate, medians)."""
    seconds = b.seconds(3.0, 0.2)
    repeats = b.count(3, 1)
    db = bench_database()
    frames = mix(db, FPS, seconds)
    bares, gws, befores = [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-can-") as tmp:
        db_path = Path(tmp) / "bench.dbc"
        db_path.write_text(db.as_dbc_string(), encoding="utf-8")
        db = cantools.database.load_file(str(db_path))
        for _ in range(repeats):
            bares.append(bare_loop(db, f"bench-{uuid.uuid4().hex}", frames))
            gws.append(asyncio.run(_gateway(db_path, db, f"bench-{uuid.uuid4().hex}", frames)))
            befores.append(
                asyncio.run(
                    _gateway(db_path, db, f"bench-{uuid.uuid4().hex}", frames, EveryFrameAdapter)
                )
            )
        with mosquitto() as (port, _proc):
            naive = paho_per_frame(db, f"bench-{uuid.uuid4().hex}", frames, port)
    bare_us = statistics.median(r["cpu_us_per_frame"] for r in bares)
    gw_us = statistics.median(r["cpu_us_per_frame"] for r in gws)
    before_us = statistics.median(r["cpu_us_per_frame"] for r in befores)
    lost = sum(r["sent"] - r["received"] + r["dropped"] for r in gws)
    sent = sum(r["sent"] for r in gws)
    return {
        "rows": [
            Row(
                "can_ingest",
                f"CAN {FPS} frames/s, CPU per frame",
                "µs",
                gw_us,
                "bare python-can + cantools",
                bare_us,
                "≤ 1.5",
            ),
            Row(
                "can_ingest",
                f"CAN {FPS} frames/s vs every frame decoded",
                "µs",
                gw_us,
                "the adapter decoding every frame (before)",
                before_us,
                "< 1",
                extra={"before_vs_bare": round(before_us / bare_us, 3)},
            ),
            Row(
                "can_ingest",
                f"CAN {FPS} frames/s vs naive script",
                "µs",
                gw_us,
                "naive paho-per-frame",
                naive["cpu_us_per_frame"],
                "< 1",
            ),
            Row(
                "can_ingest",
                "CAN frames lost",
                "frames",
                float(lost),
                "frames sent",
                float(sent),
                "0",
            ),
        ],
        "details": {
            "seconds": seconds,
            "repeats": repeats,
            "fps": FPS,
            "gateway": gws,
            "bare": bares,
            "before": befores,
            "naive": naive,
        },
    }
