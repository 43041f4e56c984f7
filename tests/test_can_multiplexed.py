"""Multiplexed DBC messages: each frame yields only its own signals; coalescing by mux value."""

from __future__ import annotations

from pathlib import Path

import pytest
from cantools.database.can import Database, Message, Signal

from gateway.config import load_config


def _db(byte_order: str) -> Database:
    mux_start = 7 if byte_order == "big_endian" else 0
    signals = [Signal("Index", mux_start, 8, byte_order=byte_order, is_multiplexer=True)]
    for m in range(4):
        start = 15 if byte_order == "big_endian" else 8
        signals.append(
            Signal(
                f"Value{m}",
                start,
                16,
                byte_order=byte_order,
                multiplexer_ids=[m],
                multiplexer_signal="Index",
            )
        )
    return Database([Message(0x321, "Muxed", 8, signals)])


def _decoder(tmp_path: Path, byte_order: str = "little_endian"):  # type: ignore[no-untyped-def]
    from gateway.adapters.can.decoder import FrameDecoder

    path = tmp_path / f"muxed-{byte_order}.dbc"
    path.write_text(_db(byte_order).as_dbc_string(), encoding="utf-8")
    cfg = load_config(
        None,
        {
            "can": {
                "dbc_files": [str(path)],
                "messages": [
                    {"message": "Muxed", "signals": {f"Value{m}": f"muxed.v{m}" for m in range(4)}}
                ],
            }
        },
        env=False,
    )
    return FrameDecoder(cfg.can)


@pytest.mark.parametrize("byte_order", ["little_endian", "big_endian"])
def test_a_multiplexed_frame_yields_only_the_signals_of_its_multiplexer_value(
    tmp_path: Path, byte_order: str
) -> None:
    d = _decoder(tmp_path, byte_order)
    msg = _db(byte_order).get_message_by_name("Muxed")
    data = msg.encode({"Index": 2, "Value2": 1234})
    r = d.decode(0x321, bytes(data), False)
    assert r is not None
    assert r.points == {"muxed.v2": 1234}


@pytest.mark.parametrize("byte_order", ["little_endian", "big_endian"])
def test_the_multiplexer_value_read_from_the_bits_is_the_one_cantools_decodes(
    byte_order: str,
) -> None:
    import cantools

    from gateway.adapters.can.decoder import multiplexer_variant

    text = _db(byte_order).as_dbc_string()
    msg = cantools.database.load_string(text).get_message_by_name("Muxed")
    variant = multiplexer_variant(msg)
    assert variant is not None
    for index in range(4):
        for value in (0, 1, 0x1234, 0xFFFF):
            data = msg.encode({"Index": index, f"Value{index}": value})
            assert variant(data) == index
            assert msg.decode(data)["Index"] == index


def _adapter(tmp_path: Path):  # type: ignore[no-untyped-def]
    from gateway.adapters.can.adapter import CanAdapter
    from gateway.app import build_context

    path = tmp_path / "muxed.dbc"
    path.write_text(_db("little_endian").as_dbc_string(), encoding="utf-8")
    cfg = load_config(
        None,
        {
            "can": {
                "enabled": True,
                "interface": "virtual",
                "dbc_files": [str(path)],
                "messages": [
                    {
                        "message": "Muxed",
                        "signals": {"Value0": "muxed.a", "Value1": "muxed.a", "Value2": "muxed.v2"},
                    }
                ],
            }
        },
        env=False,
    )
    ctx = build_context(cfg)
    return ctx, CanAdapter(ctx)


def test_a_batch_keeps_the_newest_frame_of_each_multiplexer_value(tmp_path: Path) -> None:
    import can

    ctx, adapter = _adapter(tmp_path)
    msg = _db("little_endian").get_message_by_name("Muxed")

    def frame(index: int, value: int, *, short: bool = False) -> can.Message:
        data = bytes(msg.encode({"Index": index, f"Value{index}": value}))
        return can.Message(
            arbitration_id=0x321, is_extended_id=False, data=data[:3] if short else data
        )

    batch = [
        frame(0, 10),
        frame(1, 11),
        frame(0, 20),  # newer than the first value 0 frame
        frame(2, 12),
        frame(2, 99, short=True),  # a decode error, counted; the older frame still counts
        can.Message(arbitration_id=0x7FF, data=bytes(8)),  # unknown
    ]
    adapter.on_frames(batch)
    ctx.store.drain()
    points = ctx.store.state.points
    assert points["muxed.v2"] == 12
    # Values 0 and 1 write the same point: the newest value 0 frame came after the value 1
    # frame, so it wins, as if every frame had been decoded in order.
    assert points["muxed.a"] == 20
    reg = ctx.registry
    assert reg.get_sample_value("bms_can_rx_frames_total") == 6
    assert reg.get_sample_value("bms_can_decode_errors_total") == 1
    assert reg.get_sample_value("bms_can_rx_unknown_total") == 1
