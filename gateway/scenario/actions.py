"""Built-in scenario `set` actions (docs/scenarios.md lists them; the `expect` keys are in
`gateway.scenario.expectations`, the value checks both use in `gateway.scenario.parse`)."""

from __future__ import annotations

from typing import Any

from gateway.board import INPUT_COUNT
from gateway.config import GatewayConfig
from gateway.control.names import ERROR_NAMES
from gateway.scenario.parse import (
    board_number,
    boolean,
    cell_number,
    integer,
    mapping,
    number,
)
from gateway.scenario.registry import (
    ScenarioError,
    SetAction,
    register_set_action,
)
from gateway.scenario.world import World


def _parse_cell(value: Any, path: str, config: GatewayConfig) -> tuple[int, int, float]:
    m = mapping(value, path, {"board", "cell", "voltage"})
    return (
        board_number(m["board"], f"{path}.board", config),
        cell_number(m["cell"], f"{path}.cell", config),
        number(m["voltage"], f"{path}.voltage"),
    )


def _parse_cells(value: Any, path: str, config: GatewayConfig) -> tuple[int | None, float]:
    m = mapping(value, path, {"voltage"}, {"board"})
    board = board_number(m["board"], f"{path}.board", config) if "board" in m else None
    return board, number(m["voltage"], f"{path}.voltage")


def _parse_temperature(
    value: Any, path: str, config: GatewayConfig
) -> tuple[int | None, int | None, float | None]:
    m = mapping(value, path, {"value"}, {"board", "sensor"})
    board = board_number(m["board"], f"{path}.board", config) if "board" in m else None
    sensor = None
    if "sensor" in m:
        if board is None:
            raise ScenarioError(f"{path}.sensor", "needs `board`")
        sensor = integer(m["sensor"], f"{path}.sensor", 1, max(1, config.logic.sensors))
    v = m["value"]
    return board, sensor, None if v is None else number(v, f"{path}.value")


def _parse_board_temperature(value: Any, path: str, config: GatewayConfig) -> tuple[int, float]:
    m = mapping(value, path, {"board", "value"})
    return board_number(m["board"], f"{path}.board", config), number(m["value"], f"{path}.value")


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
            board_number,
            lambda w, v: w.pack.set_board_online(v, False),
        ),
        SetAction(
            "board_online",
            board_number,
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


_register_sets()
