"""Captures: `bms-gateway can record/replay`, and a loaded bus replayed without a dropped frame."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path

import can
import pytest

from gateway.adapters.can.replay import replay_send, synthetic_frames
from gateway.cli import main
from tests.test_can_adapter import metric, running, wait_for

FORMATS = [".log", ".asc", ".blf"]


def write_capture(path: Path, messages: list[can.Message]) -> None:
    with can.Logger(str(path)) as writer:
        for msg in messages:
            writer.on_message_received(msg)


@pytest.mark.parametrize("suffix", FORMATS)
def test_replay_decodes_a_capture(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = [
        can.Message(
            timestamp=1.0, arbitration_id=0x18FF50E5, data=bytes.fromhex("021f007d02000000")
        ),
        can.Message(timestamp=1.1, arbitration_id=0x305, is_extended_id=False, data=bytes(8)),
        can.Message(
            timestamp=1.2,
            arbitration_id=0x2A0,
            is_extended_id=False,
            data=bytes.fromhex("0180000000020000"),
        ),
        can.Message(timestamp=1.3, arbitration_id=0x7FF, is_extended_id=False, data=b"\x01"),
        can.Message(timestamp=1.4, arbitration_id=0x18FF50E5, data=b"\x01"),  # wrong DLC
    ]
    path = tmp_path / f"capture{suffix}"
    write_capture(path, frames)
    assert main(["can", "replay", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 5
    assert out["decoded"] == 3
    assert out["unknown"] == 1 and out["unknown_ids"] == {"0x7FF": 1}
    assert out["decode_errors"] == 1
    assert out["points"]["charger.output_voltage_v"] == 54.3
    assert out["points"]["error.logic_offline"] is True


def test_replay_of_a_missing_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["can", "replay", str(tmp_path / "nope.log")]) == 1
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".log", ".blf"])
def test_record_then_replay_onto_a_bus(tmp_path: Path, suffix: str) -> None:
    # A channel name ending in a large number used to break BLF (a 16-bit channel field).
    channel = f"rec-{uuid.uuid4().hex}-{uuid.uuid4().int}"
    path = tmp_path / f"rec{suffix}"
    result: list[int] = []
    rec = threading.Thread(
        target=lambda: result.append(
            main(
                [
                    "can",
                    "record",
                    str(path),
                    "--interface",
                    "virtual",
                    "--channel",
                    channel,
                    "--count",
                    "50",
                    "--duration",
                    "20",
                ]
            )
        )
    )
    rec.start()
    sender = can.Bus(interface="virtual", channel=channel)
    try:
        i = 0
        while rec.is_alive() and i < 1000:
            sender.send(
                can.Message(
                    arbitration_id=0x100 + i % 50, is_extended_id=False, data=bytes([i % 256])
                )
            )
            i += 1
            rec.join(0.002)
        rec.join(20)
    finally:
        sender.shutdown()
    assert result == [0]
    with can.LogReader(str(path)) as reader:
        recorded = list(reader)
    assert len(recorded) == 50

    listener = can.Bus(interface="virtual", channel=channel)
    try:
        assert (
            main(
                [
                    "can",
                    "replay",
                    str(path),
                    "--send",
                    "--speed",
                    "0",
                    "--interface",
                    "virtual",
                    "--channel",
                    channel,
                ]
            )
            == 0
        )
        got = []
        while (m := listener.recv(timeout=0)) is not None:
            got.append(m)
    finally:
        listener.shutdown()
    assert [(m.arbitration_id, bytes(m.data)) for m in got] == [
        (m.arbitration_id, bytes(m.data)) for m in recorded
    ]


async def test_a_loaded_bus_replays_without_a_dropped_frame(tmp_path: Path) -> None:
    """~4,000 frames/s (a full 500 kbit/s bus) for a bounded time; bench/can_replay.py runs 60 s."""
    fps, seconds = 4000, 1.5
    path = tmp_path / "loaded.log"
    write_capture(path, list(synthetic_frames(fps, seconds)))
    cfg = {"bitrate": 500000, "charger": {"enabled": True}, "inverter": {"enabled": True}}
    async with running(cfg) as h:
        channel = h.ctx.config.can.channel
        sender = can.Bus(interface="virtual", channel=channel)
        try:
            with can.LogReader(str(path)) as reader:
                sent = await asyncio.to_thread(replay_send, reader, sender, 1.0)
            await wait_for(lambda: metric(h.ctx, "bms_can_rx_frames_total") >= sent)
        finally:
            sender.shutdown()
        assert sent == int(fps * seconds)
        assert metric(h.ctx, "bms_can_rx_frames_total") == sent
        assert metric(h.ctx, "bms_can_rx_dropped_total") == 0
        assert metric(h.ctx, "bms_can_decode_errors_total") == 0
        assert metric(h.ctx, "bms_can_rx_unknown_total") == sent * 5 // 8
        assert h.points()["charger.connected"] is True
        assert h.points()["inverter.connected"] is True
