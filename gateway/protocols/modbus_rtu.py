"""Modbus RTU framing shared by the Logic adapter and the Logic simulator (pure functions)."""

from __future__ import annotations

import struct


def _crc_table() -> tuple[int, ...]:
    """The 256 CRC-16/MODBUS remainders of one byte (reflected polynomial 0xA001)."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """Return the Modbus CRC-16 of `data` (sent low byte first); table-driven, one step a byte."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc_ok(frame: bytes) -> bool:
    """Say whether the last two bytes of `frame` are the CRC of the bytes before them."""
    return crc16(frame[:-2]) == int.from_bytes(frame[-2:], "little")


def rtu_frame(address: int, pdu: bytes) -> bytes:
    """Build an RTU frame: address, PDU, CRC (low byte first)."""
    body = bytes([address]) + pdu
    return body + struct.pack("<H", crc16(body))
