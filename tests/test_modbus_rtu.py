"""Modbus RTU framing (pure): CRC-16 and frame building."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.protocols.modbus_rtu import crc16, crc_ok, rtu_frame


def test_crc16_matches_the_modbus_reference_vector() -> None:
    # 01 04 00 00 00 0A -> CRC 0x0D70, sent as 70 0D
    assert rtu_frame(1, bytes.fromhex("040000000A")) == bytes.fromhex("01040000000A700D")
    assert crc16(b"") == 0xFFFF


@given(st.binary(max_size=64))
def test_crc16_agrees_with_pymodbus(data: bytes) -> None:
    from pymodbus.framer.rtu import FramerRTU

    assert crc16(data).to_bytes(2, "little") == FramerRTU.compute_CRC(data).to_bytes(2, "big")


@given(st.integers(0, 247), st.binary(max_size=64))
def test_built_frames_pass_their_crc_and_a_flipped_bit_fails_it(address: int, pdu: bytes) -> None:
    frame = rtu_frame(address, pdu)
    assert crc_ok(frame)
    assert not crc_ok(frame[:-1] + bytes([frame[-1] ^ 0x01]))
