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
