"""Built-in scenario `expect` keys: what a scenario can check at a step (docs/scenarios.md)."""

from __future__ import annotations

from typing import Any

from gateway.board import OUTPUT_COUNT
from gateway.config import GatewayConfig
from gateway.control.names import SIGNAL_NAMES
from gateway.control.settings import EXTRA_SIGNALS
from gateway.protocols import logic_map
from gateway.scenario.parse import (
    board_number,
    boolean,
    cell_number,
    error_list,
    format_range,
    integer,
    mapping,
    number,
    soc,
    value_range,
)
from gateway.scenario.registry import Expectation, Outcome, ScenarioError, register_expectation
from gateway.scenario.world import World


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
    """`{value, tolerance}`: value 60, "60 %" or 0.6; tolerance in the value's unit (1 %)."""
    del config
    m = mapping(value, path, {"value"}, {"tolerance"})
    v, in_percent = soc(m["value"], f"{path}.value")
    raw = m.get("tolerance", "1 %")
    if isinstance(raw, str):
        if not raw.strip().endswith("%"):
            raise ScenarioError(f"{path}.tolerance", f'expected a number or "N %", got {raw!r}')
        tol, _ = soc(raw, f"{path}.tolerance")
    else:
        tol = number(raw, f"{path}.tolerance") / (100.0 if in_percent else 1.0)
        if not 0.0 <= tol <= 1.0:
            raise ScenarioError(f"{path}.tolerance", f"{raw} is out of range 0..100 %")
    return v, tol


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100.0, 6):g} %"


def _check_soc(w: World, v: tuple[float, float]) -> list[Outcome]:
    soc_now = w.ctx.store.state.control.soc
    ok = soc_now is not None and abs(soc_now - v[0]) <= v[1] + 1e-9
    seen = "unknown" if soc_now is None else f"{soc_now * 100.0:.2f} %"
    return [Outcome(ok, "soc", f"{_pct(v[0])} ± {_pct(v[1])}", seen)]


def _parse_balancing(value: Any, path: str, config: GatewayConfig) -> tuple[int, list[int]]:
    m = mapping(value, path, {"board", "cells"})
    if not isinstance(m["cells"], list):
        raise ScenarioError(f"{path}.cells", "expected a list of cell numbers")
    cells = [cell_number(c, f"{path}.cells.{i}", config) for i, c in enumerate(m["cells"])]
    return board_number(m["board"], f"{path}.board", config), sorted(cells)


def _check_balancing(w: World, v: tuple[int, list[int]]) -> list[Outcome]:
    board, cells = v
    seen = logic_map.cells_of_mask(w.pack.board(board).balancing_mask)
    return [Outcome(seen == cells, f"balancing.board{board}", str(cells), str(seen))]


LIMIT_KEYS = ("cvl_v", "ccl_a", "dcl_a")


def _parse_limits(value: Any, path: str, config: GatewayConfig) -> dict[str, tuple[float, float]]:
    del config
    m = mapping(value, path, set(), set(LIMIT_KEYS))
    return {k: value_range(v, f"{path}.{k}") for k, v in m.items()}


def _check_limits(w: World, v: dict[str, tuple[float, float]]) -> list[Outcome]:
    lim = w.ctx.store.state.control.limits
    res = []
    for k, (lo, hi) in v.items():
        seen = lim.get(k)
        ok = seen is not None and lo - 1e-9 <= seen <= hi + 1e-9
        res.append(Outcome(ok, f"limits.{k}", format_range((lo, hi)), str(seen)))
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
        Expectation("errors", lambda v, p, c: error_list(v, p), _check_errors),
        Expectation("errors_include", lambda v, p, c: error_list(v, p), _check_include),
        Expectation("errors_exclude", lambda v, p, c: error_list(v, p), _check_exclude),
        Expectation("signals", _parse_signals, _check_signals),
        Expectation("soc", _parse_soc, _check_soc),
        Expectation("balancing", _parse_balancing, _check_balancing),
        Expectation("limits", _parse_limits, _check_limits),
        Expectation("reasons", _parse_reasons, _check_reasons),
    ):
        register_expectation(e)


_register_expectations()
