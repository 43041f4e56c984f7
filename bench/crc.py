"""Modbus CRC-16 of one Logic reply (109 bytes): the gateway's table vs the bitwise loop.

The bitwise loop is what `gateway.protocols.modbus_rtu.crc16` was before the table; it stays
here as the anchor so the gain is measured in every run. pymodbus' own CRC is a second
anchor.
"""

from __future__ import annotations

import os
import timeit
from typing import Any

from pymodbus.framer.rtu import FramerRTU

from bench.common import Bounds, Row
from gateway.protocols.modbus_rtu import crc16


def bitwise_crc16(data: bytes) -> int:
    """The eight-steps-a-byte CRC-16/MODBUS (the previous implementation)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def _us(fn: Any, data: bytes, number: int) -> float:
    return min(timeit.repeat(lambda: fn(data), number=number, repeat=3)) / number * 1e6


def run(b: Bounds) -> dict[str, Any]:
    """Time the three CRCs on the same bytes."""
    data = os.urandom(109)
    if crc16(data) != bitwise_crc16(data):
        raise RuntimeError("table CRC disagrees with the bitwise CRC")
    number = b.count(2000, 50)
    table = _us(crc16, data, number)
    return {
        "rows": [
            Row(
                "crc",
                "CRC-16 of a 109-byte reply",
                "µs",
                table,
                "bitwise loop (before)",
                _us(bitwise_crc16, data, number),
                "< 1",
            ),
            Row(
                "crc",
                "CRC-16 vs pymodbus",
                "µs",
                table,
                "pymodbus compute_CRC",
                _us(FramerRTU.compute_CRC, data, number),
                "≤ 1",
            ),
        ],
        "details": {"bytes": len(data), "number": number},
    }
