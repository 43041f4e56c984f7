"""The derating ramp and the temperature factor of the current limits (pure functions)."""

from __future__ import annotations

import pytest

from gateway.control.limits import _temp_factor as temp_factor
from gateway.control.limits import ramp_down


@pytest.mark.parametrize(
    ("x", "full_at", "zero_at", "factor"),
    [
        (3.30, 3.40, 3.60, 1.0),  # before the window: clamped to 1
        (3.50, 3.40, 3.60, 0.5),
        (3.70, 3.40, 3.60, 0.0),  # past it: clamped to 0
        (-0.05, -0.10, 0.0, 0.5),  # the other direction (DCL over low SOC)
        (3.39, 3.40, 3.40, 1.0),  # a window of zero width is a step
        (3.40, 3.40, 3.40, 0.0),
        (3.41, 3.40, 3.40, 0.0),
    ],
)
def test_ramp_down(x: float, full_at: float, zero_at: float, factor: float) -> None:
    assert ramp_down(x, full_at, zero_at) == pytest.approx(factor)


def test_temp_factor() -> None:
    assert temp_factor(20.0, 25.0, None, None, 5.0) == 1.0  # no limit configured
    assert temp_factor(20.0, 25.0, 0.0, 45.0, 5.0) == 1.0
    assert temp_factor(2.5, 25.0, 0.0, 45.0, 5.0) == pytest.approx(0.5)  # near the low limit
    assert temp_factor(20.0, 42.5, 0.0, 45.0, 5.0) == pytest.approx(0.5)  # near the high limit
    assert temp_factor(None, 25.0, 0.0, 45.0, 5.0) is None  # unknown
