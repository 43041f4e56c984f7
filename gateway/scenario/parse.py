"""Parsing helpers shared by the scenario keys: each value checked, errors with the path."""

from __future__ import annotations

from typing import Any

from gateway.config import GatewayConfig
from gateway.control.names import ERROR_NAMES
from gateway.core.section import soc_fraction
from gateway.scenario.registry import ScenarioError


def number(value: Any, path: str) -> float:
    """A real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(path, f"expected a number, got {value!r}")
    return float(value)


def soc(value: Any, path: str) -> tuple[float, bool]:
    """A state of charge as written in a scenario: (fraction 0..1, True if written in percent).

    The config's forms: `60` or `"60 %"` is percent, `0.6` a fraction 0..1 (1 = 100 %).
    """
    try:
        fraction = soc_fraction(value)
    except ValueError as err:
        raise ScenarioError(path, str(err)) from None
    if isinstance(fraction, bool) or not isinstance(fraction, float):
        raise ScenarioError(path, f'expected a state of charge (60, "60 %" or 0.6), got {value!r}')
    written = str(value).strip()
    return fraction, written.endswith("%") or float(written) > 1.0


def integer(value: Any, path: str, lo: int, hi: int) -> int:
    """An integer within lo..hi."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ScenarioError(path, f"expected an integer {lo}..{hi}, got {value!r}")
    return value


def boolean(value: Any, path: str) -> bool:
    """A YAML boolean."""
    if not isinstance(value, bool):
        raise ScenarioError(path, f"expected true or false, got {value!r}")
    return value


def mapping(
    value: Any, path: str, required: set[str], optional: set[str] | None = None
) -> dict[str, Any]:
    """A mapping with exactly the allowed keys."""
    if not isinstance(value, dict):
        raise ScenarioError(path, f"expected a mapping, got {value!r}")
    for k in value:
        if k not in required | (optional or set()):
            raise ScenarioError(f"{path}.{k}", "unknown key")
    for k in sorted(required - set(value)):
        raise ScenarioError(f"{path}.{k}", "missing")
    return value


def board_number(value: Any, path: str, config: GatewayConfig) -> int:
    return integer(value, path, 1, len(config.logic.addresses))


def cell_number(value: Any, path: str, config: GatewayConfig) -> int:
    return integer(value, path, 1, config.logic.cells_per_board)


def error_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise ScenarioError(path, "expected a list of error names")
    for i, n in enumerate(value):
        if n not in ERROR_NAMES:
            raise ScenarioError(f"{path}.{i}", f"unknown error {n!r}")
    return list(value)


def value_range(value: Any, path: str) -> tuple[float, float]:
    """A number (exact, 1e-6) or {min, max} / {value, tolerance}."""
    if isinstance(value, dict):
        if "value" in value:
            m = mapping(value, path, {"value"}, {"tolerance"})
            v = number(m["value"], f"{path}.value")
            tol = number(m.get("tolerance", 0.0), f"{path}.tolerance")
            return v - tol, v + tol
        m = mapping(value, path, set(), {"min", "max"})
        lo = number(m["min"], f"{path}.min") if "min" in m else float("-inf")
        hi = number(m["max"], f"{path}.max") if "max" in m else float("inf")
        return lo, hi
    v = number(value, path)
    return v - 1e-6, v + 1e-6


def format_range(r: tuple[float, float]) -> str:
    lo, hi = r
    if abs(hi - lo) <= 2e-6:
        return f"{(lo + hi) / 2:g}"
    return f"{lo:g}..{hi:g}"
