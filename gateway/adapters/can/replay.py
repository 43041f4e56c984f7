"""Captures: decode a recorded bus through the gateway's decoder, or play it onto a bus."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import can

from gateway.adapters.can.dbc import CHARGER_STATUS_ID, INVERTER_KEEPALIVE_ID
from gateway.adapters.can.decoder import FrameDecoder, Points
from gateway.core.errors import FrameError


@dataclass
class ReplayStats:
    """What a replay through the decoder found."""

    frames: int = 0
    decoded: int = 0
    unknown: int = 0
    decode_errors: int = 0
    error_frames: int = 0
    seconds: float = 0.0
    unknown_ids: Counter[int] = field(default_factory=Counter)
    points: Points = field(default_factory=dict)

    def summary(self, top: int = 10) -> dict[str, Any]:
        """Return a JSON-able summary."""
        return {
            "frames": self.frames,
            "decoded": self.decoded,
            "unknown": self.unknown,
            "decode_errors": self.decode_errors,
            "error_frames": self.error_frames,
            "frames_per_s": round(self.frames / self.seconds) if self.seconds > 0 else None,
            "unknown_ids": {f"0x{k:X}": n for k, n in self.unknown_ids.most_common(top)},
            "points": dict(sorted(self.points.items())),
        }


def replay_decode(messages: Iterable[can.Message], decoder: FrameDecoder) -> ReplayStats:
    """Run every frame of a capture through the decoder (no bus, as fast as possible)."""
    stats = ReplayStats()
    start = time.perf_counter()
    for msg in messages:
        stats.frames += 1
        if msg.is_error_frame:
            stats.error_frames += 1
            continue
        try:
            decoded = decoder.decode(msg.arbitration_id, bytes(msg.data), msg.is_extended_id)
        except FrameError:
            stats.decode_errors += 1
            continue
        if decoded is None:
            stats.unknown += 1
            stats.unknown_ids[msg.arbitration_id] += 1
            continue
        stats.decoded += 1
        stats.points.update(decoded.points)
    stats.seconds = time.perf_counter() - start
    return stats


def replay_send(
    messages: Iterable[can.Message],
    bus: can.BusABC,
    speed: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Send a capture onto `bus`, paced by its timestamps / `speed` (0 = unpaced).

    Sleeps only when more than 2 ms ahead of schedule, so high frame rates stay accurate.
    Returns the number of frames sent.
    """
    sent = 0
    t0: float | None = None
    first_ts = 0.0
    for msg in messages:
        if stop():
            break
        if speed > 0:
            if t0 is None:
                t0, first_ts = time.perf_counter(), msg.timestamp
            ahead = t0 + (msg.timestamp - first_ts) / speed - time.perf_counter()
            if ahead > 0.002:
                sleep(ahead)
        bus.send(msg)
        sent += 1
    return sent


def synthetic_frames(fps: float, seconds: float, seed: int = 1) -> Iterator[can.Message]:
    """A loaded-bus capture for benchmarks: charger status, keep-alives and foreign ids.

    One frame in four is a charger status (decoded), one in eight an inverter keep-alive,
    the rest 8-byte frames with ids nothing decodes (counted as unknown).
    """
    rng = random.Random(seed)
    n = int(fps * seconds)
    for i in range(n):
        ts = i / fps
        kind = i % 8
        if kind in (0, 4):
            volts = rng.randint(400, 600)
            data = volts.to_bytes(2, "big") + rng.randint(0, 500).to_bytes(2, "big") + bytes(4)
            yield can.Message(
                timestamp=ts, arbitration_id=CHARGER_STATUS_ID, is_extended_id=True, data=data
            )
        elif kind == 1:
            yield can.Message(
                timestamp=ts,
                arbitration_id=INVERTER_KEEPALIVE_ID,
                is_extended_id=False,
                data=bytes(8),
            )
        else:
            yield can.Message(
                timestamp=ts,
                arbitration_id=0x400 + rng.randint(0, 0xFF),
                is_extended_id=False,
                data=rng.randbytes(8),
            )
