"""Built-in scenario `set` actions and `expect` keys (docs/scenarios.md lists them)."""

from __future__ import annotations

from typing import Any

from gateway.board import INPUT_COUNT, OUTPUT_COUNT
from gateway.config import GatewayConfig
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.control.settings import EXTRA_SIGNALS
from gateway.protocols import logic_map
from gateway.scenario.registry import (
    Expectation,
    Outcome,
    ScenarioError,
    SetAction,
    register_expectation,
    register_set_action,
)
from gateway.scenario.world import World

# --- parsing helpers ------------------------------------------------------------------


def number(value: Any, path: str) -> float:
    """A real number (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(path, f"expected a number, got {value!r}")
    return float(value)


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


def _board(value: Any, path: str, config: GatewayConfig) -> int:
    return integer(value, path, 1, len(config.logic.addresses))


def _cell(value: Any, path: str, config: GatewayConfig) -> int:
    return integer(value, path, 1, config.logic.cells_per_board)


def _error_list(value: Any, path: str) -> list[str]:
    if not isinstance(value, list):
        raise ScenarioError(path, "expected a list of error names")
    for i, n in enumerate(value):
        if n not in ERROR_NAMES:
            raise ScenarioError(f"{path}.{i}", f"unknown error {n!r}")
    return list(value)


def _range(value: Any, path: str) -> tuple[float, float]:
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


def _fmt_range(r: tuple[float, float]) -> str:
    lo, hi = r
    if abs(hi - lo) <= 2e-6:
        return f"{(lo + hi) / 2:g}"
    return f"{lo:g}..{hi:g}"


# --- set actions ------------------------------------------------------------------------


def _parse_cell(value: Any, path: str, config: GatewayConfig) -> tuple[int, int, float]:
    m = mapping(value, path, {"board", "cell", "voltage"})
    return (
        _board(m["board"], f"{path}.board", config),
        _cell(m["cell"], f"{path}.cell", config),
        number(m["voltage"], f"{path}.voltage"),
    )


def _parse_cells(value: Any, path: str, config: GatewayConfig) -> tuple[int | None, float]:
    m = mapping(value, path, {"voltage"}, {"board"})
    board = _board(m["board"], f"{path}.board", config) if "board" in m else None
    return board, number(m["voltage"], f"{path}.voltage")


def _parse_temperature(
    value: Any, path: str, config: GatewayConfig
) -> tuple[int | None, int | None, float | None]:
    m = mapping(value, path, {"value"}, {"board", "sensor"})
    board = _board(m["board"], f"{path}.board", config) if "board" in m else None
    sensor = None
    if "sensor" in m:
        if board is None:
            raise ScenarioError(f"{path}.sensor", "needs `board`")
        sensor = integer(m["sensor"], f"{path}.sensor", 1, max(1, config.logic.sensors))
    v = m["value"]
    return board, sensor, None if v is None else number(v, f"{path}.value")


def _parse_board_temperature(value: Any, path: str, config: GatewayConfig) -> tuple[int, float]:
    m = mapping(value, path, {"board", "value"})
    return _board(m["board"], f"{path}.board", config), number(m["value"], f"{path}.value")


def _parse_input(value: Any, path: str, config: GatewayConfig) -> tuple[int, bool]:
    del config
    m = mapping(value, path, {"n", "closed"})
    return integer(m["n"], f"{path}.n", 1, INPUT_COUNT), boolean(m["closed"], f"{path}.closed")


def _parse_release(value: Any, path: str, config: GatewayConfig) -> str:
    del config
    if value not in ("cell", "cells", "temperature", "all"):
        raise ScenarioError(path, "expected cell, cells, temperature or all")
    return str(value)


def _set_input(w: World, v: tuple[int, bool]) -> None:
    w.pack.inputs_closed[v[0] - 1] = v[1]


def _set_board_temperature(w: World, v: tuple[int, float]) -> None:
    w.pack.board(v[0]).board_temperature_c = v[1]


def _ack(w: World, name: str) -> None:
    w.engine.engine.acknowledge(name, w.clock.now())


def _parse_error(value: Any, path: str, config: GatewayConfig) -> str:
    del config
    if value not in ERROR_NAMES:
        raise ScenarioError(path, f"unknown error {value!r}")
    return str(value)


def _parse_current_sensor(value: Any, path: str, config: GatewayConfig) -> bool:
    del config
    if value not in ("ok", "missing"):
        raise ScenarioError(path, "expected ok or missing")
    return bool(value == "missing")


def _set_current_sensor(w: World, missing: bool) -> None:
    w.logic.current_missing = missing


def _set_vref(w: World, v: float) -> None:
    w.logic.vref_v = v


def _register_sets() -> None:
    for action in (
        SetAction("cell", _parse_cell, lambda w, v: w.pack.force_cell_voltage(v[0], v[1], v[2])),
        SetAction("cells", _parse_cells, lambda w, v: w.pack.force_cells(v[1], v[0])),
        SetAction(
            "temperature",
            _parse_temperature,
            lambda w, v: w.pack.force_temperature(v[2], v[0], v[1]),
        ),
        SetAction("board_temperature", _parse_board_temperature, _set_board_temperature),
        SetAction("current", lambda v, p, c: number(v, p), lambda w, v: w.pack.set_current(v)),
        SetAction(
            "board_offline",
            _board,
            lambda w, v: w.pack.set_board_online(v, False),
        ),
        SetAction(
            "board_online",
            _board,
            lambda w, v: w.pack.set_board_online(v, True),
        ),
        SetAction("input", _parse_input, _set_input),
        SetAction(
            "humidity",
            lambda v, p, c: number(v, p),
            lambda w, v: setattr(w.pack, "humidity_pct", v),
        ),
        SetAction("release", _parse_release, lambda w, v: w.pack.release(v)),
        SetAction(
            "go_safe",
            lambda v, p, c: boolean(v, p),
            lambda w, v: w.engine.engine.request_go_safe("scenario", v),
        ),
        SetAction("ack", _parse_error, _ack),
        SetAction("current_sensor", _parse_current_sensor, _set_current_sensor),
        SetAction("vref", lambda v, p, c: number(v, p), _set_vref),
    ):
        register_set_action(action)


# --- expectations ------------------------------------------------------------------


def _parse_relays(value: Any, path: str, config: GatewayConfig) -> dict[int, tuple[str, bool]]:
    if not isinstance(value, dict):
        raise ScenarioError(path, "expected a map of relay function -> open/closed")
    by_fn = {fn: n for n, fn in config.relays.functions().items()}
    out = {}
    for fn, state in value.items():
        if fn not in by_fn:
            raise ScenarioError(f"{path}.{fn}", "no relay has this function in the config")
        if state not in ("open", "closed"):
            raise ScenarioError(f"{path}.{fn}", "expected open or closed")
        out[by_fn[fn]] = (str(fn), state == "closed")
    return out


def _check_relays(w: World, v: dict[int, tuple[str, bool]]) -> list[Outcome]:
    out = []
    for n, (fn, closed) in v.items():
        seen = w.ctx.drivers.relays.relay_closed(n)
        word = {True: "closed", False: "open"}
        why = w.ctx.store.state.control.reasons.get(fn, [])
        out.append(
            Outcome(
                seen == closed,
                f"relays.{fn}",
                word[closed],
                word[seen] + (f" ({', '.join(why)})" if seen != closed and why else ""),
            )
        )
    return out


def _parse_outputs(value: Any, path: str, config: GatewayConfig) -> dict[int, bool]:
    del config
    if not isinstance(value, dict):
        raise ScenarioError(path, "expected a map of output number -> on/off")
    out = {}
    for n, state in value.items():
        k = integer(n, f"{path}.{n}", 1, OUTPUT_COUNT)
        if state not in ("on", "off", True, False):
            raise ScenarioError(f"{path}.{n}", "expected on or off")
        out[k] = state in ("on", True)
    return out


def _check_outputs(w: World, v: dict[int, bool]) -> list[Outcome]:
    outs = w.ctx.store.state.control.outputs
    res = []
    for n, on in v.items():
        seen = n in outs and outs[n].on
        word = {True: "on", False: "off"}
        res.append(Outcome(seen == on, f"outputs.{n}", word[on], word[seen]))
    return res


def _errors_now(w: World) -> list[str]:
    return list(w.ctx.store.state.control.errors_active)


def _check_errors(w: World, v: list[str]) -> list[Outcome]:
    seen = _errors_now(w)
    return [Outcome(sorted(seen) == sorted(v), "errors", str(sorted(v)), str(sorted(seen)))]


def _check_include(w: World, v: list[str]) -> list[Outcome]:
    seen = _errors_now(w)
    return [Outcome(all(e in seen for e in v), "errors_include", str(v), str(seen))]


def _check_exclude(w: World, v: list[str]) -> list[Outcome]:
    seen = _errors_now(w)
    return [Outcome(not any(e in seen for e in v), "errors_exclude", str(v), str(seen))]


def _parse_signals(value: Any, path: str, config: GatewayConfig) -> dict[str, bool]:
    del config
    if not isinstance(value, dict):
        raise ScenarioError(path, "expected a map of signal -> true/false")
    known = (*SIGNAL_NAMES, *EXTRA_SIGNALS)
    for k, b in value.items():
        if k not in known:
            raise ScenarioError(f"{path}.{k}", "unknown signal")
        boolean(b, f"{path}.{k}")
    return dict(value)


def _check_signals(w: World, v: dict[str, bool]) -> list[Outcome]:
    sig = w.ctx.store.state.control.signals
    reasons = w.ctx.store.state.control.reasons
    res = []
    for k, want in v.items():
        seen = sig.get(k, False)
        why = reasons.get(k, [])
        res.append(
            Outcome(
                seen == want,
                f"signals.{k}",
                str(want).lower(),
                str(seen).lower() + (f" ({', '.join(why)})" if seen != want and why else ""),
            )
        )
    return res


def _parse_soc(value: Any, path: str, config: GatewayConfig) -> tuple[float, float]:
    del config
    m = mapping(value, path, {"value"}, {"tolerance"})
    v = number(m["value"], f"{path}.value")
    return v, number(m.get("tolerance", 0.01), f"{path}.tolerance")


def _check_soc(w: World, v: tuple[float, float]) -> list[Outcome]:
    soc = w.ctx.store.state.control.soc
    ok = soc is not None and abs(soc - v[0]) <= v[1] + 1e-9
    return [Outcome(ok, "soc", f"{v[0]:.3f}±{v[1]:g}", "unknown" if soc is None else f"{soc:.4f}")]


def _parse_balancing(value: Any, path: str, config: GatewayConfig) -> tuple[int, list[int]]:
    m = mapping(value, path, {"board", "cells"})
    if not isinstance(m["cells"], list):
        raise ScenarioError(f"{path}.cells", "expected a list of cell numbers")
    cells = [_cell(c, f"{path}.cells.{i}", config) for i, c in enumerate(m["cells"])]
    return _board(m["board"], f"{path}.board", config), sorted(cells)


def _check_balancing(w: World, v: tuple[int, list[int]]) -> list[Outcome]:
    board, cells = v
    seen = logic_map.cells_of_mask(w.pack.board(board).balancing_mask)
    return [Outcome(seen == cells, f"balancing.board{board}", str(cells), str(seen))]


LIMIT_KEYS = ("cvl_v", "ccl_a", "dcl_a")


def _parse_limits(value: Any, path: str, config: GatewayConfig) -> dict[str, tuple[float, float]]:
    del config
    m = mapping(value, path, set(), set(LIMIT_KEYS))
    return {k: _range(v, f"{path}.{k}") for k, v in m.items()}


def _check_limits(w: World, v: dict[str, tuple[float, float]]) -> list[Outcome]:
    lim = w.ctx.store.state.control.limits
    res = []
    for k, (lo, hi) in v.items():
        seen = lim.get(k)
        ok = seen is not None and lo - 1e-9 <= seen <= hi + 1e-9
        res.append(Outcome(ok, f"limits.{k}", _fmt_range((lo, hi)), str(seen)))
    return res


def _parse_reasons(value: Any, path: str, config: GatewayConfig) -> dict[str, list[str]]:
    del config
    if not isinstance(value, dict):
        raise ScenarioError(path, "expected a map of thing -> reasons that must be present")
    for k, v in value.items():
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ScenarioError(f"{path}.{k}", "expected a list of reasons")
    return dict(value)


def _check_reasons(w: World, v: dict[str, list[str]]) -> list[Outcome]:
    reasons = w.ctx.store.state.control.reasons
    res = []
    for k, want in v.items():
        seen = reasons.get(k, [])
        res.append(Outcome(all(x in seen for x in want), f"reasons.{k}", str(want), str(seen)))
    return res


def _register_expectations() -> None:
    for e in (
        Expectation("relays", _parse_relays, _check_relays),
        Expectation("outputs", _parse_outputs, _check_outputs),
        Expectation("errors", lambda v, p, c: _error_list(v, p), _check_errors),
        Expectation("errors_include", lambda v, p, c: _error_list(v, p), _check_include),
        Expectation("errors_exclude", lambda v, p, c: _error_list(v, p), _check_exclude),
        Expectation("signals", _parse_signals, _check_signals),
        Expectation("soc", _parse_soc, _check_soc),
        Expectation("balancing", _parse_balancing, _check_balancing),
        Expectation("limits", _parse_limits, _check_limits),
        Expectation("reasons", _parse_reasons, _check_reasons),
    ):
        register_expectation(e)


_register_sets()
_register_expectations()
