"""The Logic register codec: round trips, out-of-range values and truncated blocks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.errors import FrameError, FrameRangeError, FrameTruncatedError
from gateway.protocols import logic_map as lm

MV = st.integers(0, lm.MAX_CELL_MV)
DECI_C = st.integers(-0x7FFF, 0x7FFF)  # -0x8000 is the "sensor fault" marker
TEMP = st.one_of(st.none(), DECI_C.map(lambda d: d / 10))


@st.composite
def boards(draw: st.DrawFn) -> dict[str, object]:
    cells = draw(st.integers(0, lm.MAX_CELLS))
    sensors = draw(st.integers(0, lm.MAX_SENSORS))
    return {
        "cell_voltages_v": [m / 1000 for m in draw(st.lists(MV, min_size=cells, max_size=cells))],
        "temperatures_c": draw(st.lists(TEMP, min_size=sensors, max_size=sensors)),
        "board_temperature_c": draw(TEMP),
        "status_bits": draw(st.integers(0, 0xFFFF)),
        "balancing_mask": draw(st.integers(0, 0xFFFF_FFFF)),
        "firmware": (draw(st.integers(0, 255)), draw(st.integers(0, 255))),
        "hardware": (draw(st.integers(0, 255)), draw(st.integers(0, 255))),
        "serial_number": draw(st.integers(0, 0xFFFF_FFFF)),
    }


@given(boards())
@settings(max_examples=300)
def test_round_trip_reads_back_what_the_board_holds(b: dict[str, object]) -> None:
    cells_v = b["cell_voltages_v"]
    temps = b["temperatures_c"]
    assert isinstance(cells_v, list) and isinstance(temps, list)
    regs = lm.encode_input_registers(**b)  # type: ignore[arg-type]
    assert len(regs) == lm.INPUT_REGISTER_COUNT
    assert all(0 <= r <= 0xFFFF for r in regs)
    n = lm.registers_to_read(len(cells_v), len(temps))
    r = lm.decode_input_registers(regs[:n], len(cells_v), len(temps))
    assert r.cell_voltages_v == tuple(cells_v)
    assert r.temperatures_c == tuple(temps)
    assert r.board_temperature_c == b["board_temperature_c"]
    assert r.status_bits == b["status_bits"]
    assert r.balancing_mask == b["balancing_mask"]
    assert r.serial_number == b["serial_number"]
    fw = b["firmware"]
    assert isinstance(fw, tuple)
    assert r.firmware == f"{fw[0]}.{fw[1]}"
    # reading the whole block decodes the same
    assert lm.decode_input_registers(regs, len(cells_v), len(temps)) == r


@given(boards(), st.data())
def test_truncated_blocks_are_rejected_as_truncated(
    b: dict[str, object], data: st.DataObject
) -> None:
    cells_v, temps = b["cell_voltages_v"], b["temperatures_c"]
    assert isinstance(cells_v, list) and isinstance(temps, list)
    regs = lm.encode_input_registers(**b)  # type: ignore[arg-type]
    need = lm.registers_to_read(len(cells_v), len(temps))
    cut = data.draw(st.integers(0, need - 1))
    with pytest.raises(FrameTruncatedError):
        lm.decode_input_registers(regs[:cut], len(cells_v), len(temps))


@given(
    st.lists(st.integers(-100_000, 100_000), max_size=60), st.integers(0, 18), st.integers(0, 18)
)
@settings(max_examples=500)
def test_decode_of_any_block_returns_a_reading_or_a_frame_error(
    regs: list[int], cells: int, sensors: int
) -> None:
    try:
        r = lm.decode_input_registers(regs, cells, sensors)
    except FrameError:
        return
    assert len(r.cell_voltages_v) == cells
    assert all(0 <= v <= lm.MAX_CELL_MV / 1000 for v in r.cell_voltages_v)


def _block(cells: int = 4, sensors: int = 4) -> list[int]:
    return lm.encode_input_registers(cell_voltages_v=[3.3] * cells, temperatures_c=[25.0] * sensors)


@given(
    st.integers(0, lm.INPUT_REGISTER_COUNT - 1),
    st.one_of(st.integers(max_value=-1), st.integers(min_value=0x10000)),
)
def test_a_register_outside_16_bits_is_out_of_range(index: int, value: int) -> None:
    regs = _block(18, 18)
    regs[index] = value
    with pytest.raises(FrameRangeError):
        lm.decode_input_registers(regs, 18, 18)


@given(st.integers(lm.MAX_CELL_MV + 1, 0xFFFF), st.integers(1, 4))
def test_a_cell_reading_above_6_v_is_out_of_range(mv: int, cell: int) -> None:
    regs = _block()
    regs[lm.REG_CELL_VOLTAGES + cell - 1] = mv
    with pytest.raises(FrameRangeError, match=f"cell {cell}"):
        lm.decode_input_registers(regs, 4, 4)


@given(st.integers(0, 0xFFFF).filter(lambda v: v != lm.DEVICE_ID))
def test_a_foreign_device_id_is_rejected(device_id: int) -> None:
    regs = _block()
    regs[lm.REG_DEVICE_ID] = device_id
    with pytest.raises(FrameRangeError, match="device id"):
        lm.decode_input_registers(regs, 4, 4)


def test_a_cell_count_differing_from_the_configuration_is_decoded_as_reported() -> None:
    # the engine compares the count with the configuration (cell_count_mismatch)
    regs = _block(4, 4)
    assert len(lm.decode_input_registers(regs, 5, 4).cell_voltages_v) == 4
    assert len(lm.decode_input_registers(regs, 3, 4).cell_voltages_v) == 4


def test_counts_differing_from_the_configuration_are_rejected() -> None:
    regs = _block(4, 4)
    with pytest.raises(FrameRangeError, match="sensors, configured 3"):
        lm.decode_input_registers(regs, 4, 3)
    regs[lm.REG_CELL_COUNT] = 19
    with pytest.raises(FrameRangeError, match="19 cells"):
        lm.decode_input_registers(regs, 4, 4)


@given(
    st.one_of(
        st.floats(max_value=-0.0006, allow_nan=False, allow_infinity=False),
        st.floats(min_value=6.0006, max_value=1e6, allow_nan=False),
    )
)
def test_encoding_a_cell_voltage_outside_0_to_6_v_fails(volts: float) -> None:
    with pytest.raises(FrameRangeError):
        lm.encode_input_registers(cell_voltages_v=[volts], temperatures_c=[])


@given(
    st.one_of(
        st.floats(max_value=-3276.86, min_value=-1e9), st.floats(min_value=3276.76, max_value=1e9)
    )
)
def test_encoding_a_temperature_outside_s16_fails(celsius: float) -> None:
    with pytest.raises(FrameRangeError):
        lm.encode_input_registers(cell_voltages_v=[3.3], temperatures_c=[celsius])
    with pytest.raises(FrameRangeError):
        lm.encode_input_registers(
            cell_voltages_v=[], temperatures_c=[], board_temperature_c=celsius
        )


def test_too_many_cells_or_sensors_fail_to_encode() -> None:
    with pytest.raises(FrameRangeError):
        lm.encode_input_registers(cell_voltages_v=[3.3] * 19, temperatures_c=[])
    with pytest.raises(FrameRangeError):
        lm.encode_input_registers(cell_voltages_v=[], temperatures_c=[20.0] * 19)


def test_registers_to_read_covers_exactly_what_is_configured() -> None:
    assert lm.registers_to_read(18, 18) == 52
    assert lm.registers_to_read(16, 16) == 50
    assert lm.registers_to_read(16, 0) == 32
    for bad in ((19, 0), (0, 19), (-1, 0)):
        with pytest.raises(ValueError, match="out of range"):
            lm.registers_to_read(*bad)


@given(st.integers(0, (1 << lm.MAX_CELLS) - 1))
def test_balancing_mask_round_trip(mask: int) -> None:
    regs = lm.encode_balancing_mask(mask)
    assert all(0 <= r <= 0xFFFF for r in regs)
    assert lm.decode_balancing_mask(regs) == mask
    assert lm.mask_of_cells(lm.cells_of_mask(mask)) == mask


@given(st.integers(1 << lm.MAX_CELLS, 0xFFFF_FFFF))
def test_balancing_mask_above_cell_18_is_rejected_both_ways(mask: int) -> None:
    with pytest.raises(FrameRangeError):
        lm.encode_balancing_mask(mask)
    with pytest.raises(FrameRangeError):
        lm.decode_balancing_mask([mask & 0xFFFF, mask >> 16])


def test_balancing_mask_truncated_and_bad_cells() -> None:
    with pytest.raises(FrameTruncatedError):
        lm.decode_balancing_mask([1])
    with pytest.raises(FrameRangeError):
        lm.encode_balancing_mask(-1)
    with pytest.raises(ValueError, match="cell 19"):
        lm.mask_of_cells([1, 19])
    assert lm.cells_of_mask(0b1000_0000_0000_0101) == [1, 3, 16]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_range_errors(bad: float) -> None:
    with pytest.raises(FrameRangeError, match="finite"):
        lm.encode_input_registers(cell_voltages_v=[bad], temperatures_c=[])
    with pytest.raises(FrameRangeError, match="finite"):
        lm.encode_input_registers(cell_voltages_v=[], temperatures_c=[bad])
    with pytest.raises(FrameRangeError, match="finite"):
        lm.encode_input_registers(cell_voltages_v=[], temperatures_c=[], board_temperature_c=bad)
