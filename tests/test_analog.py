"""The analog sensor arithmetic: Hall current sensor, plausibility, curves (pure)."""

from __future__ import annotations

import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.protocols import analog

finite = st.floats(allow_nan=False, allow_infinity=False)
volts = st.floats(min_value=0.0, max_value=5.0)
nominal = st.floats(min_value=1.0, max_value=2000.0)
sens = st.floats(min_value=0.1, max_value=2.0)
offsets = st.floats(min_value=-0.1, max_value=0.1)


def test_lem_hass_datasheet_points() -> None:
    # HASS 200-S: 2.5 V reference, +-0.625 V at +-200 A.
    kw = {"nominal_current_a": 200.0, "sensitivity_v": 0.625}
    assert analog.current_from_volts(3.125, 2.5, **kw) == pytest.approx(200.0)
    assert analog.current_from_volts(1.875, 2.5, **kw) == pytest.approx(-200.0)
    assert analog.current_from_volts(2.5, 2.5, **kw) == 0.0
    assert analog.current_from_volts(3.125, 2.5, invert=True, **kw) == pytest.approx(-200.0)
    # a 5 mV zero offset is removed
    assert analog.current_from_volts(2.505, 2.5, zero_offset_v=0.005, **kw) == pytest.approx(0.0)


@given(
    current=st.floats(min_value=-3000, max_value=3000),
    vref=st.floats(min_value=2.0, max_value=3.0),
    n=nominal,
    s=sens,
    z=offsets,
    invert=st.booleans(),
)
def test_current_round_trips_through_the_sensor_model(
    current: float, vref: float, n: float, s: float, z: float, invert: bool
) -> None:
    kw = {"nominal_current_a": n, "sensitivity_v": s, "zero_offset_v": z, "invert": invert}
    vcs = analog.volts_from_current(current, vref, **kw)
    back = analog.current_from_volts(vcs, vref, **kw)
    assert back == pytest.approx(current, abs=1e-6 * max(1.0, n / s))


@given(vcs=volts, vref=volts, n=nominal, s=sens, z=offsets)
def test_invert_negates_and_current_is_monotonic_in_vcs(
    vcs: float, vref: float, n: float, s: float, z: float
) -> None:
    kw = {"nominal_current_a": n, "sensitivity_v": s, "zero_offset_v": z}
    a = analog.current_from_volts(vcs, vref, **kw)
    assert analog.current_from_volts(vcs, vref, invert=True, **kw) == pytest.approx(-a)
    assert analog.current_from_volts(vcs + 0.01, vref, **kw) > a


@given(vcs=st.one_of(st.none(), finite), vref=st.one_of(st.none(), finite))
def test_plausibility_flags_every_reading_outside_the_windows(
    vcs: float | None, vref: float | None
) -> None:
    r = analog.evaluate_current(vcs, vref, nominal_current_a=100.0)
    ok = vcs is not None and vref is not None and 2.3 <= vref <= 2.7 and 0.2 <= vcs <= 4.8
    assert r.fault is (not ok)
    assert (r.current_a is None) is r.fault
    assert bool(r.reason) is r.fault


@pytest.mark.parametrize(
    ("vcs", "vref", "reason"),
    [
        (None, 2.5, "vcs_unreadable"),
        (2.5, None, "vref_unreadable"),
        (2.5, math.nan, "vref_unreadable"),
        (2.5, 0.0, "vref_out_of_window"),  # reference line broken
        (2.5, 5.0, "vref_out_of_window"),
        (0.05, 2.5, "vcs_at_rail"),  # signal shorted to ground
        (4.95, 2.5, "vcs_at_rail"),  # signal at the supply rail
    ],
)
def test_fault_reasons(vcs: float | None, vref: float | None, reason: str) -> None:
    r = analog.evaluate_current(vcs, vref, nominal_current_a=200.0)
    assert (r.fault, r.reason, r.current_a) == (True, reason, None)


@given(
    samples=st.lists(st.tuples(st.floats(2.0, 3.0), st.floats(2.0, 3.0)), min_size=1, max_size=50)
)
def test_zero_offset_is_the_mean_difference_and_cancels_it(
    samples: list[tuple[float, float]],
) -> None:
    z = analog.zero_offset(samples)
    assert min(a - b for a, b in samples) - 1e-12 <= z <= max(a - b for a, b in samples) + 1e-12
    mean_current = sum(
        analog.current_from_volts(a, b, nominal_current_a=100.0, zero_offset_v=z)
        for a, b in samples
    ) / len(samples)
    assert mean_current == pytest.approx(0.0, abs=1e-6)


def test_zero_offset_rejects_no_or_bad_samples() -> None:
    with pytest.raises(ValueError, match="no samples"):
        analog.zero_offset([])
    with pytest.raises(ValueError, match="finite"):
        analog.zero_offset([(math.inf, 2.5)])


# --- curves -------------------------------------------------------------------------


GAINS = st.one_of(st.floats(0.011, 999.0), st.floats(-999.0, -0.011))


@given(v=volts, gain=GAINS, offset=st.floats(-500, 500))
def test_linear_curve_round_trips(v: float, gain: float, offset: float) -> None:
    value = analog.value_from_volts(v, gain=gain, offset=offset)
    assert value == pytest.approx(v * gain + offset)
    assert value is not None
    back = analog.volts_from_value(value, gain=gain, offset=offset)
    assert back == pytest.approx(v, abs=1e-9 * max(1.0, abs(offset) / abs(gain)))


@st.composite
def tables(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Strictly increasing volts with strictly monotonic values."""
    n = draw(st.integers(2, 10))
    xs = sorted(draw(st.sets(st.integers(0, 5000), min_size=n, max_size=n)))
    ys = sorted(draw(st.sets(st.integers(-400, 1500), min_size=n, max_size=n)))
    if draw(st.booleans()):
        ys.reverse()
    return [(x / 1000, float(y)) for x, y in zip(xs, ys, strict=True)]


@given(table=tables(), frac=st.floats(0, 1))
def test_table_curve_interpolates_inside_and_inverts(
    table: list[tuple[float, float]], frac: float
) -> None:
    analog.check_table(table)
    v = table[0][0] + frac * (table[-1][0] - table[0][0])
    value = analog.value_from_volts(v, curve="table", table=table)
    assert value is not None
    ys = [y for _, y in table]
    assert min(ys) - 1e-9 <= value <= max(ys) + 1e-9
    back = analog.volts_from_value(value, curve="table", table=table)
    assert back == pytest.approx(v, abs=1e-9)
    for x, y in table:  # the table's own points are exact
        assert analog.value_from_volts(x, curve="table", table=table) == pytest.approx(y)


@given(table=tables(), outside=st.floats(0.001, 10))
def test_table_curve_outside_the_table_is_a_fault(
    table: list[tuple[float, float]], outside: float
) -> None:
    assert analog.value_from_volts(table[0][0] - outside, curve="table", table=table) is None
    assert analog.value_from_volts(table[-1][0] + outside, curve="table", table=table) is None


@given(v=st.one_of(st.none(), st.just(math.nan), finite))
def test_valid_range_and_missing_volts_read_none(v: float | None) -> None:
    got = analog.value_from_volts(v, gain=100.0, offset=-50.0, valid_min=-55.0, valid_max=150.0)
    if v is None or not math.isfinite(v):
        assert got is None
        return
    expected = v * 100.0 - 50.0
    assume(math.isfinite(expected))
    assert (got is None) == (not -55.0 <= expected <= 150.0)


@pytest.mark.parametrize(
    "table",
    [[(0.5, 10.0)], [(1.0, 1.0), (1.0, 2.0)], [(0.0, 1.0), (1.0, 2.0), (2.0, 1.5)]],
)
def test_bad_tables_are_rejected(table: list[tuple[float, float]]) -> None:
    with pytest.raises(ValueError, match="table"):
        analog.check_table(table)


def test_sensor_sections_validate() -> None:
    cfg = load_config(env=False)
    assert cfg.current_sensor.sensitivity_v == 0.625
    # HIH-4000 default: 0.8 V = 0 %RH, 3.9 V = 100 %RH; TMP36 default: 0.75 V = 25 °C
    h = cfg.humidity_sensor
    assert analog.value_from_volts(3.9, gain=h.gain, offset=h.offset) == pytest.approx(
        100, abs=0.05
    )
    t = cfg.temperature_sensor
    assert analog.value_from_volts(0.75, gain=t.gain, offset=t.offset) == pytest.approx(25.0)
    with pytest.raises(ConfigError, match="table"):
        load_config(overrides={"temperature_sensor": {"curve": "table"}}, env=False)
    with pytest.raises(ConfigError, match="strictly increasing"):
        load_config(
            overrides={"humidity_sensor": {"curve": "table", "table": [[1, 0], [0.5, 100]]}},
            env=False,
        )
    with pytest.raises(ConfigError, match="vref_min_v"):
        load_config(overrides={"current_sensor": {"vref_min_v": 3, "vref_max_v": 2}}, env=False)
