"""Modbus register-map profiles: parse, plan reads, decode and encode (sans-IO).

A profile is data (usually YAML; see docs/modbus.md): read *blocks* (function code, start,
count) and *points* (name, address, type, word order, scale, unit, what it feeds). This
module is pure: dicts in, a `Profile` out; registers in, named values out; values in,
registers out. The profile document's schema and `parse_profile` are in
`gateway.protocols.profile_schema`; transports live in `gateway/links`.

Types: `U16`, `S16`, `U32`, `S32`, `REAL32` (IEEE-754 single), `bitfield16`, `bitfield32`
(one bool point per named bit, plus the raw integer), `U8[n]` (n bytes in ceil(n/2)
registers, byte 0 in the low byte of the first register unless `byte_order: high_first`;
rendered with `format` as a string, optionally BCD-decoded).
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gateway.core.errors import FrameRangeError, FrameTruncatedError

PointValue = float | int | bool | str
WordOrder = Literal["low_first", "high_first"]

READ_FUNCTIONS = (3, 4)  # holding registers, input registers
MAX_READ_REGISTERS = 125  # Modbus limit for functions 03/04
FEEDS = ("current_a", "humidity_pct", "temperature_c")  # PackMeasured fields; or extra.<key>

SCALAR_WIDTH = {"U16": 1, "S16": 1, "U32": 2, "S32": 2, "REAL32": 2, "bitfield16": 1,
                 "bitfield32": 2}  # fmt: skip
U8_RE = re.compile(r"^U8\[(\d+)\]$")


@dataclass(frozen=True, slots=True)
class Point:
    """One value in the register map."""

    name: str
    address: int
    type: str
    function: int = 4
    word_order: WordOrder = "low_first"
    byte_order: WordOrder = "low_first"  # U8[n] only: which byte of a register comes first
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    feeds: str | None = None
    bits: Mapping[int, str] = field(default_factory=dict)  # bitfields: bit -> point name
    fmt: str | None = None  # U8[n]: str.format template over the bytes
    bcd: bool = False  # U8[n]: bytes are BCD
    missing: int | None = None  # raw value meaning "unknown" (decoded as absent)
    description: str = ""

    @property
    def count(self) -> int:
        """Registers this point occupies."""
        if (m := U8_RE.match(self.type)) is not None:
            return (int(m.group(1)) + 1) // 2
        return SCALAR_WIDTH[self.type]

    @property
    def end(self) -> int:
        """First address after this point."""
        return self.address + self.count

    @property
    def is_bitfield(self) -> bool:
        """True for bitfield16/bitfield32."""
        return self.type.startswith("bitfield")

    def names(self) -> list[str]:
        """Every point name this entry produces (the raw value plus named bits)."""
        return [self.name, *self.bits.values()]


@dataclass(frozen=True, slots=True)
class Block:
    """One read request: function code, first register, register count."""

    function: int
    start: int
    count: int
    every: int = 1  # read on every n-th poll cycle

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.count

    def covers(self, point: Point) -> bool:
        """True when `point` lies inside this block."""
        return (
            point.function == self.function
            and self.start <= point.address
            and point.end <= self.end
        )


@dataclass(frozen=True, slots=True)
class Unknown:
    """A register range the vendor documentation does not describe (left out on purpose)."""

    function: int
    start: int
    count: int
    note: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A parsed register map."""

    name: str
    description: str
    points: tuple[Point, ...]
    blocks: tuple[Block, ...]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    unknown: tuple[Unknown, ...] = ()

    def point(self, name: str) -> Point:
        """Return the point named `name` (raw value name)."""
        for p in self.points:
            if p.name == name:
                return p
        raise KeyError(name)

    def point_names(self) -> list[str]:
        """Every value name the profile can produce."""
        return [n for p in self.points for n in p.names()]

    def feeds(self) -> dict[str, str]:
        """Point name -> gateway measurement it feeds."""
        return {p.name: p.feeds for p in self.points if p.feeds}


# --- planning -----------------------------------------------------------------------


def plan_reads(
    profile: Profile, max_registers: int = MAX_READ_REGISTERS, max_gap: int = 0
) -> list[Block]:
    """Return the read requests for one full poll, as few as the layout allows.

    With declared blocks: contiguous (or overlapping) blocks of the same function and
    `every` are merged, then split at `max_registers`, and blocks holding no point are
    dropped. Without declared blocks: points are grouped by function and merged while the
    gap between them is at most `max_gap` registers (0 = only truly contiguous points).
    """
    if max_registers < 1:
        raise ValueError("max_registers must be >= 1")
    if profile.blocks:
        spans = [(b.function, b.every, b.start, b.end) for b in profile.blocks]
        gap = 0
    else:
        spans = [(p.function, 1, p.address, p.end) for p in profile.points]
        gap = max_gap
    merged: list[list[int]] = []
    for fc, every, start, end in sorted(spans):
        last = merged[-1] if merged else None
        if last is not None and last[0] == fc and last[1] == every and start <= last[3] + gap:
            last[3] = max(last[3], end)
        else:
            merged.append([fc, every, start, end])
    out: list[Block] = []
    for fc, every, start, end in merged:
        out.extend(_split(profile.points, fc, every, start, end, max_registers))
    return out


def _split(
    points: Sequence[Point], fc: int, every: int, start: int, end: int, max_registers: int
) -> list[Block]:
    """Cut [start, end) into requests of at most `max_registers`, never inside a point."""
    inside = sorted(
        (p for p in points if p.function == fc and start <= p.address and p.end <= end),
        key=lambda p: p.address,
    )
    blocks: list[Block] = []
    cur_start: int | None = None
    cur_end = 0
    for p in inside:
        if cur_start is None:
            cur_start, cur_end = p.address, p.end
        elif p.end - cur_start <= max_registers:
            cur_end = max(cur_end, p.end)
        else:
            blocks.append(Block(fc, cur_start, cur_end - cur_start, every))
            cur_start, cur_end = p.address, p.end
    if cur_start is not None:
        blocks.append(Block(fc, cur_start, cur_end - cur_start, every))
    return blocks


# --- decoding -----------------------------------------------------------------------


def _words_to_int(regs: Sequence[int], word_order: WordOrder) -> int:
    words = list(regs) if word_order == "high_first" else list(reversed(regs))
    value = 0
    for w in words:
        value = (value << 16) | (w & 0xFFFF)
    return value


def _int_to_words(value: int, count: int, word_order: WordOrder) -> list[int]:
    words = [(value >> (16 * i)) & 0xFFFF for i in range(count)]  # low word first
    return words if word_order == "low_first" else list(reversed(words))


def _bytes_of(point: Point, regs: Sequence[int]) -> list[int]:
    out: list[int] = []
    for r in regs:
        lo, hi = r & 0xFF, (r >> 8) & 0xFF
        out.extend((lo, hi) if point.byte_order == "low_first" else (hi, lo))
    m = U8_RE.match(point.type)
    assert m is not None
    return out[: int(m.group(1))]


def _from_bcd(b: int) -> int:
    hi, lo = b >> 4, b & 0xF
    if hi > 9 or lo > 9:
        raise FrameRangeError(f"0x{b:02X} is not a BCD byte")
    return hi * 10 + lo


def decode_point(point: Point, regs: Sequence[int]) -> dict[str, PointValue]:
    """Decode one point from exactly `point.count` registers.

    Raises:
        FrameTruncatedError: wrong number of registers.
        FrameRangeError: a value that cannot be what the type says (NaN, bad BCD).
    """
    if len(regs) != point.count:
        raise FrameTruncatedError(f"{point.name}: {len(regs)} registers, need {point.count}")
    t = point.type
    if t.startswith("U8["):
        raw = _bytes_of(point, regs)
        if point.bcd:
            raw = [_from_bcd(b) for b in raw]
        if point.fmt is not None:
            try:
                return {point.name: point.fmt.format(*raw)}
            except (IndexError, ValueError) as err:
                raise FrameRangeError(f"{point.name}: format {point.fmt!r}: {err}") from err
        return {f"{point.name}[{i}]": b for i, b in enumerate(raw)}
    unsigned = _words_to_int(regs, point.word_order)
    if point.missing is not None and unsigned == point.missing:
        return {}
    if point.is_bitfield:
        out: dict[str, PointValue] = {point.name: unsigned}
        for bit, name in point.bits.items():
            out[name] = bool(unsigned >> bit & 1)
        return out
    value: float
    if t == "REAL32":
        value = struct.unpack(">f", unsigned.to_bytes(4, "big"))[0]
        if not math.isfinite(value):
            raise FrameRangeError(f"{point.name}: not a finite number")
        value = float(f"{value:.7g}")  # a float32 carries ~7 significant digits; drop the noise
    elif t == "S16":
        value = unsigned - 0x10000 if unsigned & 0x8000 else unsigned
    elif t == "S32":
        value = unsigned - 0x1_0000_0000 if unsigned & 0x8000_0000 else unsigned
    else:
        value = unsigned
    if point.scale == 1.0 and point.offset == 0.0:
        return {point.name: value}
    return {point.name: value * point.scale + point.offset}


def decode_block(
    profile: Profile | Iterable[Point], block: Block, regs: Sequence[int]
) -> tuple[dict[str, PointValue], list[str]]:
    """Decode every point inside `block` from its registers.

    Returns `(values, problems)`: a point whose value is out of range is left out and
    described in `problems` (the rest of the block still counts).

    Raises:
        FrameTruncatedError: the device returned a different number of registers.
    """
    if len(regs) != block.count:
        raise FrameTruncatedError(
            f"block {block.function}:0x{block.start:04X}: got {len(regs)} registers, "
            f"asked for {block.count}"
        )
    points = profile.points if isinstance(profile, Profile) else tuple(profile)
    values: dict[str, PointValue] = {}
    problems: list[str] = []
    for p in points:
        if block.covers(p):
            o = p.address - block.start
            try:
                values.update(decode_point(p, regs[o : o + p.count]))
            except FrameRangeError as err:
                problems.append(str(err))
    return values, problems


# --- encoding (simulators, the Modbus server, round-trip tests) ---------------------


def encode_point(point: Point, values: Mapping[str, PointValue]) -> list[int]:
    """Encode a point's value(s) from `values` into `point.count` registers.

    Bitfields take their raw value (`values[point.name]`, default 0) OR-ed with every named
    bit that is True in `values`. Missing scalar values encode as 0.

    Raises:
        FrameRangeError: a value does not fit the type.
    """
    t = point.type
    if t.startswith("U8["):
        m = U8_RE.match(t)
        assert m is not None
        n = int(m.group(1))
        raw_bytes = [int(values.get(f"{point.name}[{i}]", 0)) for i in range(n)]
        if point.fmt is not None and isinstance(values.get(point.name), str):
            raw_bytes = _parse_formatted(point, str(values[point.name]), n)
        if point.bcd:
            raw_bytes = [_to_bcd(b) for b in raw_bytes]
        if any(not 0 <= b <= 255 for b in raw_bytes):
            raise FrameRangeError(f"{point.name}: byte outside 0..255")
        raw_bytes += [0] * (point.count * 2 - n)
        regs = []
        for i in range(point.count):
            first, second = raw_bytes[2 * i], raw_bytes[2 * i + 1]
            lo, hi = (first, second) if point.byte_order == "low_first" else (second, first)
            regs.append(hi << 8 | lo)
        return regs
    width_bits = 16 * point.count
    if point.is_bitfield:
        raw = int(values.get(point.name, 0))
        for bit, name in point.bits.items():
            if values.get(name):
                raw |= 1 << bit
            elif name in values:
                raw &= ~(1 << bit)
        if not 0 <= raw < 1 << width_bits:
            raise FrameRangeError(f"{point.name}: {raw} does not fit {t}")
        return _int_to_words(raw, point.count, point.word_order)
    if point.missing is not None and (point.name not in values or _is_nan(values[point.name])):
        return _int_to_words(point.missing, point.count, point.word_order)
    value = float(values.get(point.name, 0.0))
    value = (value - point.offset) / point.scale
    if t == "REAL32":
        if math.isinf(value):
            raise FrameRangeError(f"{point.name}: not a finite number")  # NaN = unknown is ok
        try:
            packed = struct.pack(">f", value)
        except OverflowError as err:
            raise FrameRangeError(f"{point.name}: {value} does not fit REAL32") from err
        return _int_to_words(int.from_bytes(packed, "big"), 2, point.word_order)
    if not math.isfinite(value):
        raise FrameRangeError(f"{point.name}: not a finite number")
    ivalue = round(value)
    signed = t.startswith("S")
    lo_lim = -(1 << (width_bits - 1)) if signed else 0
    hi_lim = (1 << (width_bits - 1)) - 1 if signed else (1 << width_bits) - 1
    if not lo_lim <= ivalue <= hi_lim:
        raise FrameRangeError(f"{point.name}: {ivalue} does not fit {t}")
    return _int_to_words(ivalue & ((1 << width_bits) - 1), point.count, point.word_order)


def _is_nan(value: PointValue) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _to_bcd(b: int) -> int:
    if not 0 <= b <= 99:
        raise FrameRangeError(f"{b} does not fit one BCD byte")
    return (b // 10) << 4 | (b % 10)


def _parse_formatted(point: Point, text: str, n: int) -> list[int]:
    """Invert a simple `format` (fields `{i}` / `{i:02d}` separated by literal text)."""
    assert point.fmt is not None
    pattern = ""
    order: list[int] = []
    pos = 0
    for m in re.finditer(r"\{(\d+)(?::[^}]*)?\}", point.fmt):
        pattern += re.escape(point.fmt[pos : m.start()]) + r"(\d+)"
        order.append(int(m.group(1)))
        pos = m.end()
    pattern += re.escape(point.fmt[pos:])
    match = re.fullmatch(pattern, text)
    if match is None:
        raise FrameRangeError(f"{point.name}: {text!r} does not match {point.fmt!r}")
    out = [0] * n
    for idx, group in zip(order, match.groups(), strict=True):
        out[idx] = int(group)
    return out


def encode_image(
    profile: Profile, values: Mapping[str, PointValue], function: int = 4
) -> dict[int, int]:
    """Encode every point of one function into an address -> register map."""
    image: dict[int, int] = {}
    for p in profile.points:
        if p.function != function:
            continue
        for i, reg in enumerate(encode_point(p, values)):
            image[p.address + i] = reg
    return image
