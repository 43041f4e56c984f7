"""Modbus profile codec: hand-computed register vectors, planning, parsing errors, round trips."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.control.names import ERROR_NAMES
from gateway.core.errors import ConfigError, FrameRangeError, FrameTruncatedError
from gateway.protocols.modbus_profile import (
    Block,
    Point,
    decode_block,
    decode_point,
    encode_point,
    plan_reads,
)
from gateway.protocols.profile_schema import parse_profile
from gateway.protocols.profiles import bundled_profiles, load_profile


def _p(**kw: object) -> Point:
    base: dict[str, object] = {"name": "x", "address": 0, "type": "U16"}
    base.update(kw)
    return Point(**base)  # type: ignore[arg-type]


# --- hand-computed vectors ------------------------------------------------------------


def test_real32_low_word_first_matches_hand_vector() -> None:
    # 12.5 = 0x41480000 -> low word 0x0000 first, then high word 0x4148
    assert decode_point(_p(type="REAL32"), [0x0000, 0x4148]) == {"x": 12.5}
    assert encode_point(_p(type="REAL32"), {"x": 12.5}) == [0x0000, 0x4148]


def test_real32_high_word_first_matches_hand_vector() -> None:
    # -230.5 = 0xC3668000 (Eastron order: high word first)
    p = _p(type="REAL32", word_order="high_first")
    assert decode_point(p, [0xC366, 0x8000]) == {"x": -230.5}
    assert encode_point(p, {"x": -230.5}) == [0xC366, 0x8000]


def test_real32_rounds_float32_noise_to_seven_digits() -> None:
    raw = struct.unpack(">I", struct.pack(">f", 2.55))[0]
    assert decode_point(_p(type="REAL32"), [raw & 0xFFFF, raw >> 16]) == {"x": 2.55}


def test_real32_nan_is_a_range_problem_not_a_crash() -> None:
    with pytest.raises(FrameRangeError):
        decode_point(_p(type="REAL32"), [0x0000, 0x7FC0])


def test_integer_types_hand_vectors() -> None:
    assert decode_point(_p(type="U16"), [0xFFFE]) == {"x": 65534}
    assert decode_point(_p(type="S16"), [0xFFFE]) == {"x": -2}
    assert decode_point(_p(type="U32"), [0x5678, 0x1234]) == {"x": 0x12345678}
    assert decode_point(_p(type="U32", word_order="high_first"), [0x1234, 0x5678]) == {
        "x": 0x12345678
    }
    assert decode_point(_p(type="S32"), [0xFFFF, 0xFFFF]) == {"x": -1}
    assert decode_point(_p(type="S16", scale=0.1, offset=1.0), [0xFF9C]) == {"x": -9.0}


def test_bitfield32_low_word_first_names_bits() -> None:
    p = _p(type="bitfield32", bits={5: "error.battery_cover", 19: "error.adc", 21: "e.c"})
    # bit 5 in the low word (0x0020), bit 19 = bit 3 of the high word (0x0008)
    out = decode_point(p, [0x0020, 0x0008])
    assert out == {"x": (1 << 19) | (1 << 5), "error.battery_cover": True, "error.adc": True,
                   "e.c": False}  # fmt: skip
    assert encode_point(p, {"error.battery_cover": True, "error.adc": True}) == [0x0020, 0x0008]


def test_u8_array_byte0_in_low_byte_with_format_and_bcd() -> None:
    hw = _p(type="U8[2]", fmt="{1}.{0}")  # byte0 minor, byte1 major
    assert decode_point(hw, [0x0201]) == {"x": "2.1"}
    assert encode_point(hw, {"x": "2.1"}) == [0x0201]
    rtc = _p(type="U8[6]", bcd=True, fmt="20{2:02d}-{1:02d}-{0:02d}T{3:02d}:{4:02d}:{5:02d}")
    # day 0x25, month 0x11 | year 0x26, hour 0x13 | minute 0x45, second 0x09
    assert decode_point(rtc, [0x1125, 0x1326, 0x0945]) == {"x": "2026-11-25T13:45:09"}
    assert encode_point(rtc, {"x": "2026-11-25T13:45:09"}) == [0x1125, 0x1326, 0x0945]
    with pytest.raises(FrameRangeError):
        decode_point(rtc, [0x11AA, 0x1326, 0x0945])  # 0xAA is not BCD
    raw = _p(type="U8[3]", byte_order="high_first")
    assert decode_point(raw, [0x0102, 0x0300]) == {"x[0]": 1, "x[1]": 2, "x[2]": 3}


def test_missing_sentinel_decodes_as_absent() -> None:
    p = _p(type="U16", scale=0.001, missing=0xFFFF)
    assert decode_point(p, [0xFFFF]) == {}
    assert encode_point(p, {}) == [0xFFFF]
    assert decode_point(p, [3312]) == {"x": pytest.approx(3.312)}


def test_wrong_register_count_is_truncated_error() -> None:
    with pytest.raises(FrameTruncatedError):
        decode_point(_p(type="U32"), [1])
    with pytest.raises(FrameTruncatedError):
        decode_block([_p(type="U16")], Block(4, 0, 2), [1])


def test_encode_out_of_range_is_refused() -> None:
    with pytest.raises(FrameRangeError):
        encode_point(_p(type="U16"), {"x": 70000})
    with pytest.raises(FrameRangeError):
        encode_point(_p(type="S16"), {"x": -40000})
    with pytest.raises(FrameRangeError):
        encode_point(_p(type="REAL32"), {"x": math.inf})


# --- the bundled bms-main-2x profile against the facts document -------------------------


def test_bms_main_2x_known_addresses_and_error_mapping() -> None:
    prof = load_profile("bms-main-2x")
    assert prof.defaults["unit_id"] == 32 and prof.defaults["port"] == 502
    assert prof.defaults["baudrate"] == 9600 and prof.defaults["parity"] == "N"
    addr = {p.name: (p.address, p.type, p.word_order) for p in prof.points}
    assert addr["main2x.current_a"] == (0x2001, "REAL32", "low_first")
    assert addr["main2x.external_temperature_c"][0] == 0x2003
    assert addr["main2x.humidity_pct"][0] == 0x2005
    assert addr["main2x.errors_1"][:2] == (0x2007, "bitfield32")
    assert addr["main2x.errors_2"][:2] == (0x200E, "bitfield32")
    assert addr["main2x.soc_pct"][0] == 0x2100
    assert addr["main2x.logic_boards"][:2] == (0x2102, "U16")
    assert addr["main2x.charge_current_limit_a"][0] == 0x219F
    assert addr["main2x.discharge_current_limit_a"][0] == 0x21A1
    e1 = prof.point("main2x.errors_1").bits
    assert e1[5] == "error.battery_cover" and e1[9] == "error.logic_offline"
    assert e1[12] == "error.cell_count_mismatch" and 0 not in e1  # bits 0-4 unknown
    assert prof.point("main2x.errors_2").bits[0] == "error.low_temperature_charge"
    # every error.* point uses a public gateway error name
    errs = [n for n in prof.point_names() if n.startswith("error.")]
    assert errs and all(n.removeprefix("error.") in ERROR_NAMES for n in errs)
    # undocumented registers are listed, not decoded
    unknown_starts = {u.start for u in prof.unknown}
    assert {0x200C, 0x2011, 0x2103} <= unknown_starts
    for u in prof.unknown:
        if u.function == 4:
            for p in prof.points:
                if p.function == 4:
                    assert p.end <= u.start or p.address >= u.start + u.count, (p.name, u)


def test_bundled_profiles_load_and_plan_within_limits() -> None:
    assert {"bms-main-2x", "eastron-sdm"} <= set(bundled_profiles())
    for name in bundled_profiles():
        prof = load_profile(name)
        plan = plan_reads(prof)
        assert all(1 <= b.count <= 125 for b in plan)
        covered = [p for p in prof.points if any(b.covers(p) for b in plan)]
        assert len(covered) == len(prof.points)


def test_eastron_block_decodes_big_endian_words() -> None:
    prof = load_profile("eastron-sdm")
    block = next(b for b in plan_reads(prof) if b.start == 0)
    regs = [0] * block.count
    regs[0:2] = [0x4366, 0x8000]  # 230.5 V, high word first
    regs[0x46:0x48] = [0x4248, 0x0000]  # 50.0 Hz
    values, problems = decode_block(prof, block, regs)
    assert problems == []
    assert values["meter.voltage_l1_v"] == 230.5 and values["meter.frequency_hz"] == 50.0


# --- planning --------------------------------------------------------------------------


def _profile(points: list[dict[str, object]], blocks: list[dict[str, object]] | None = None):  # type: ignore[no-untyped-def]
    data: dict[str, object] = {"name": "t", "points": points}
    if blocks is not None:
        data["blocks"] = blocks
    return parse_profile(data)


def test_contiguous_points_take_one_request_and_gaps_split() -> None:
    prof = _profile(
        [
            {"name": "a", "address": 10, "type": "U16"},
            {"name": "b", "address": 11, "type": "REAL32"},
            {"name": "c", "address": 13, "type": "U32"},
            {"name": "d", "address": 20, "type": "U16"},
            {"name": "h", "address": 10, "type": "U16", "function": 3},
        ]
    )
    assert plan_reads(prof) == [Block(3, 10, 1), Block(4, 10, 5), Block(4, 20, 1)]
    assert plan_reads(prof, max_gap=5) == [Block(3, 10, 1), Block(4, 10, 11)]


def test_plan_splits_at_max_registers_never_inside_a_point() -> None:
    prof = _profile(
        [{"name": "r{n}", "address": 0, "type": "REAL32", "repeat": {"count": 100, "stride": 2}}]
    )
    plan = plan_reads(prof)
    assert [b.count for b in plan] == [124, 76]
    assert plan_reads(prof, max_registers=3) == [Block(4, 2 * i, 2) for i in range(100)]


def test_declared_adjacent_blocks_merge() -> None:
    prof = _profile(
        [{"name": "a", "address": 0, "type": "U16"}, {"name": "b", "address": 1, "type": "U16"}],
        [{"start": 0, "count": 1}, {"start": 1, "count": 1}],
    )
    assert plan_reads(prof) == [Block(4, 0, 2)]


@pytest.mark.parametrize(
    ("points", "blocks", "message"),
    [
        ([{"name": "a", "address": 0, "type": "U17"}], None, "points.0.type: type must be"),
        ([{"name": "a", "address": 0, "type": "U16", "bogus": 1}], None, "points.0.bogus: unknown"),
        ([{"name": "a", "address": 0, "type": "U32"}, {"name": "b", "address": 1, "type": "U16"}],
         None, "overlap"),
        ([{"name": "a", "address": 0, "type": "U16"}, {"name": "a", "address": 1, "type": "U16"}],
         None, "duplicate"),
        ([{"name": "a", "address": 5, "type": "U16"}], [{"start": 0, "count": 2}], "in no block"),
        ([{"name": "a", "address": 0, "type": "U16", "function": 6}], None,
         "points.0.function: function must be"),
        ([{"name": "a", "address": 0, "type": "U16", "feeds": "voltage"}], None,
         "points.0.feeds: feeds must be"),
        ([{"name": "a", "address": 0, "type": "bitfield16", "bits": {16: "x"}}], None,
         "points.0: bit 16"),
        ([{"name": "a", "address": "zz", "type": "U16"}], None, "points.0.address: .*integer"),
        ([{"name": "a", "address": 0x10000, "type": "U16"}], None, "points.0.address"),
        ([{"name": "a", "address": 0, "type": "U16"}], [{"start": 0, "cuont": 1}],
         "blocks.0.cuont: unknown key \\(did you mean 'count'"),
    ],
)  # fmt: skip
def test_bad_profiles_give_clear_errors(
    points: list[dict[str, object]], blocks: list[dict[str, object]] | None, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _profile(points, blocks)


def test_unknown_profile_name_lists_bundled(tmp_path: object) -> None:
    with pytest.raises(ConfigError, match="bms-main-2x"):
        load_profile("no-such-profile")


# --- property tests ----------------------------------------------------------------------

_orders = st.sampled_from(["low_first", "high_first"])


@given(st.integers(0, 0xFFFF_FFFF), _orders)
def test_u32_round_trip(value: int, order: str) -> None:
    p = _p(type="U32", word_order=order)
    assert decode_point(p, encode_point(p, {"x": value})) == {"x": value}


@given(st.integers(-(2**31), 2**31 - 1), _orders)
def test_s32_round_trip(value: int, order: str) -> None:
    p = _p(type="S32", word_order=order)
    assert decode_point(p, encode_point(p, {"x": value})) == {"x": value}


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), _orders)
def test_real32_round_trip(value: float, order: str) -> None:
    p = _p(type="REAL32", word_order=order)
    regs = encode_point(p, {"x": value})
    assert all(0 <= r <= 0xFFFF for r in regs)
    got = decode_point(p, regs)["x"]
    assert isinstance(got, float)
    assert got == pytest.approx(value, rel=1e-6, abs=1e-37)


@given(st.integers(0, 0xFFFF_FFFF))
def test_bitfield_round_trip(raw: int) -> None:
    bits = {i: f"b{i}" for i in range(0, 32, 3)}
    p = _p(type="bitfield32", bits=bits)
    decoded = decode_point(p, encode_point(p, {"x": raw}))
    assert decoded["x"] == raw
    assert all(decoded[name] == bool(raw >> bit & 1) for bit, name in bits.items())


@given(st.lists(st.integers(0, 255), min_size=1, max_size=9), _orders)
def test_u8_array_round_trip(data: list[int], order: str) -> None:
    p = _p(type=f"U8[{len(data)}]", byte_order=order)
    values = {f"x[{i}]": b for i, b in enumerate(data)}
    assert decode_point(p, encode_point(p, values)) == values


@given(st.lists(st.integers(0, 0xFFFF), min_size=9, max_size=9))
def test_main2x_block_decodes_any_registers_without_crashing(regs: list[int]) -> None:
    prof = load_profile("bms-main-2x")
    values, problems = decode_block(prof, Block(4, 0x2000, 9), regs)
    assert values["main2x.inputs_1"] == regs[0]
    assert len(problems) <= 3  # the three REAL32 may be NaN/inf: reported, not raised


def test_profile_file_errors_name_file_line_and_dotted_path(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_text(
        "name: x\npoints:\n  - {name: a, address: 0, type: U16}\n"
        "  - {name: b, address: 0x10, type: U16, scael: 2}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_profile(str(f))
    assert str(err.value) == f"{f}:4: points.1.scael: unknown key (did you mean 'scale'?)"
