"""Run scenario files (docs/scenarios.md) on virtual time and report PASS/FAIL lines.

Each file gets its own world: the real config loader (`config:` merged over what
`battery:` implies), a `PackModel`, the real engine component and the Logic register codec
over an in-memory transport. Time advances in ticks: every Logic poll, every step time,
the engine heartbeat (`engine.cycle_s`) and every instant the engine asks to decide on its
own (`EngineComponent.next_decision_s`: a set/clear delay, Ton/Toff or timeout falling
due). At one tick the order is: integrate the pack model, apply the step's `set` actions,
poll the boards (on the poll grid), decide when an input arrived or an action was applied
(else only the heartbeat: lease, blinking) and write balancing masks, then check the
step's `expect` keys.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO, TypeVar

import yaml

from gateway.config import GatewayConfig, load_config
from gateway.control.settings import resolve
from gateway.core.errors import ConfigError
from gateway.core.section import deep_merge
from gateway.scenario.parse import soc
from gateway.scenario.registry import (
    EXPECTATIONS,
    EXTENSIONS,
    SET_ACTIONS,
    Expectation,
    Outcome,
    ScenarioError,
    SetAction,
    load_plugins,
)
from gateway.scenario.world import World
from gateway.sim.pack import PackModel

TOP_KEYS = {"name", "description", "battery", "config", "steps"}
BATTERY_KEYS = {
    "boards",
    "cells_per_board",
    "sensors_per_board",
    "chemistry",
    "soc",
    "temperature",
    "current",
    "humidity",
}
STEP_KEYS = {"at", "set", "expect", "note"}

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


@dataclass
class Step:
    """One parsed step."""

    index: int
    at_ms: int
    sets: list[tuple[SetAction, Any]] = field(default_factory=list)
    expects: list[tuple[Expectation, Any]] = field(default_factory=list)


@dataclass
class Scenario:
    """A parsed, validated scenario file."""

    path: Path
    name: str
    config: GatewayConfig
    battery: dict[str, Any]
    steps: list[Step]


@dataclass
class FileResult:
    """What running one file gave."""

    path: Path
    name: str
    outcomes: list[tuple[float, Outcome]] = field(default_factory=list)
    invalid: str | None = None

    @property
    def passed(self) -> bool:
        """True when the file was valid and every expectation held."""
        return self.invalid is None and all(o.ok for _, o in self.outcomes)


def _num(value: Any, path: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(path, f"expected a number, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ScenarioError(path, f"{value} is out of range {lo}..{hi}")
    return float(value)


def _battery(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ScenarioError("battery", "expected a mapping")
    for k in raw:
        if k not in BATTERY_KEYS:
            raise ScenarioError(f"battery.{k}", "unknown key")
    b = dict(raw)
    for k in ("boards", "cells_per_board", "sensors_per_board"):
        if k in b and (isinstance(b[k], bool) or not isinstance(b[k], int)):
            raise ScenarioError(f"battery.{k}", "expected an integer")
    if "chemistry" in b and b["chemistry"] not in ("lfp", "nmc"):
        raise ScenarioError("battery.chemistry", "expected lfp or nmc")
    if "soc" in b:  # 60, "60 %" or 0.6
        b["soc"], _ = soc(b["soc"], "battery.soc")
    for k in ("temperature", "current"):
        if k in b:
            _num(b[k], f"battery.{k}")
    if "humidity" in b:
        _num(b["humidity"], "battery.humidity", 0.0, 100.0)
    return b


def _config(battery: dict[str, Any], raw: Any, state_dir: Path) -> GatewayConfig:
    if raw is not None and not isinstance(raw, dict):
        raise ScenarioError("config", "expected a mapping")
    base: dict[str, Any] = {
        "gateway": {"state_dir": str(state_dir)},
        "logic": {
            "boards": battery.get("boards", 2),
            "cells_per_board": battery.get("cells_per_board", 16),
        },
        "pack": {"chemistry": battery.get("chemistry", "lfp")},
        "mqtt": {"enabled": False},
        "metrics": {"enabled": False},
    }
    if "sensors_per_board" in battery:
        base["logic"]["sensors_per_board"] = battery["sensors_per_board"]
    try:
        config = load_config(None, deep_merge(base, raw or {}), env=False)
        resolve(config)
    except ConfigError as err:
        first = str(err).splitlines()[0]
        key, _, msg = first.partition(": ")
        raise ScenarioError(f"config.{key}", msg or first) from err
    return config


H = TypeVar("H", SetAction, Expectation)


def _entries(
    raw: dict[str, Any], section: str, table: dict[str, H], p: str, config: GatewayConfig
) -> list[tuple[H, Any]]:
    body = raw.get(section)
    if body is None:
        return []
    if not isinstance(body, dict):
        raise ScenarioError(f"{p}.{section}", "expected a mapping")
    out: list[tuple[H, Any]] = []
    for key, value in body.items():
        handler = table.get(key)
        if handler is None:
            known = ", ".join(sorted(table))
            raise ScenarioError(f"{p}.{section}.{key}", f"unknown key; known: {known}")
        out.append((handler, handler.parse(value, f"{p}.{section}.{key}", config)))
    return out


def parse(path: Path, state_dir: Path) -> Scenario:
    """Read and validate a scenario file.

    Raises:
        ScenarioError: the file is unreadable or a key is invalid (dotted path included).
    """
    load_plugins()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ScenarioError("(file)", err.strerror or str(err)) from err
    except yaml.YAMLError as err:
        raise ScenarioError("(file)", f"invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ScenarioError("(file)", "the top level must be a mapping")
    for k in data:
        if k not in TOP_KEYS:
            raise ScenarioError(str(k), "unknown key")
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise ScenarioError("name", "expected a string")
    battery = _battery(data.get("battery"))
    config = _config(battery, data.get("config"), state_dir)
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ScenarioError("steps", "expected a non-empty list")
    steps: list[Step] = []
    last = 0
    for i, raw in enumerate(raw_steps):
        p = f"steps.{i}"
        if not isinstance(raw, dict):
            raise ScenarioError(p, "expected a mapping")
        for k in raw:
            if k not in STEP_KEYS:
                raise ScenarioError(f"{p}.{k}", "unknown key")
        if "at" not in raw:
            raise ScenarioError(f"{p}.at", "missing")
        at_ms = round(_num(raw["at"], f"{p}.at", 0.0) * 1000)
        if at_ms < last:
            raise ScenarioError(f"{p}.at", "steps must be in time order")
        last = at_ms
        step = Step(i, at_ms)
        step.sets = _entries(raw, "set", SET_ACTIONS, p, config)
        step.expects = _entries(raw, "expect", EXPECTATIONS, p, config)
        steps.append(step)
    return Scenario(path, name, config, battery, steps)


def _pack(s: Scenario) -> PackModel:
    b, cfg = s.battery, s.config
    return PackModel(
        boards=len(cfg.logic.addresses),
        # `battery:` describes the pack; a `config:` that differs is a misconfigured gateway
        cells_per_board=b.get("cells_per_board", cfg.logic.cells_per_board),
        sensors_per_board=b.get("sensors_per_board", cfg.logic.sensors),
        chemistry=cfg.pack.chemistry,
        capacity_ah=cfg.pack.capacity_ah,
        soc=b.get("soc", 0.6),
        temperature_c=b.get("temperature", 25.0),
        current_a=b.get("current", 0.0),
        humidity_pct=b.get("humidity", 40.0),
    )


# Virtual-time instants closer than this are the same instant (float sums of delays).
TIE_S = 1e-6


def _ticks(end_ms: int, cycle_ms: int, poll_ms: int, steps: list[Step]) -> list[int]:
    ticks = set(range(0, end_ms + 1, cycle_ms))
    ticks.update(range(0, end_ms + 1, poll_ms))
    ticks.update(s.at_ms for s in steps)
    return sorted(ticks)


async def run_scenario(s: Scenario) -> list[tuple[float, Outcome]]:
    """Run a parsed scenario; return every outcome with its virtual time."""
    cfg = s.config
    world = World.build(cfg, _pack(s), s.battery.get("soc", 0.6))
    cycle_ms = max(1, round(cfg.engine.cycle_s * 1000))
    poll_ms = max(1, round(cfg.logic.poll_interval_s * 1000))
    by_time: dict[int, list[Step]] = {}
    for step in s.steps:
        by_time.setdefault(step.at_ms, []).append(step)
    outcomes: list[tuple[float, Outcome]] = []
    for ext in EXTENSIONS.values():
        await ext.start(world)
    last_s = 0.0
    ticks = _ticks(s.steps[-1].at_ms, cycle_ms, poll_ms, s.steps)
    i = 0
    try:
        while i < len(ticks):
            t_ms = ticks[i]
            # the engine decides on its own at the exact instant a deadline falls due
            due_s = world.engine.next_decision_s()
            if due_s < t_ms / 1000.0 - TIE_S:  # a tie goes to the tick (its poll comes first)
                await world.clock.advance_to(due_s)
                world.pack.step(due_s - last_s)
                last_s = due_s
                world.engine.cycle(due_s)
                world.logic.write_balancing()
                continue
            i += 1
            t = t_ms / 1000.0
            await world.clock.advance_to(t)
            world.pack.step(t - last_s)
            last_s = t
            todays = by_time.get(t_ms, [])
            settling: list[Awaitable[None]] = []
            acted = False
            for step in todays:
                for action, value in step.sets:
                    acted = True
                    if (pending := action.apply(world, value)) is not None:
                        settling.append(pending)
            if t_ms % poll_ms == 0:
                world.logic.poll(t)
            # a decision when an input arrived (or an action acted on the engine itself),
            # else only the heartbeat (lease, blinking) on its grid
            woke = world.engine.input_pending()
            beat = t_ms % cycle_ms == 0 and world.engine.heartbeat(t)
            if acted or woke or beat or t >= world.engine.next_decision_s():
                world.engine.cycle(t)
                world.logic.write_balancing()
            for step in todays:
                for expectation, value in step.expects:
                    outcomes.extend((t, o) for o in expectation.check(world, value))
            for landing in settling:  # effects land before the clock moves: seen next tick
                await landing
    finally:
        world.engine.shutdown()
        await world.stop_components()
        for ext in EXTENSIONS.values():
            if ext.stop is not None:
                await ext.stop(world)
    return outcomes


def run_file(path: Path) -> FileResult:
    """Parse and run one file in a fresh temporary state directory."""
    with tempfile.TemporaryDirectory(prefix="bmsgw-scenario-") as tmp:
        try:
            scenario = parse(path, Path(tmp))
        except ScenarioError as err:
            return FileResult(path, path.stem, invalid=str(err))
        outcomes = asyncio.run(run_scenario(scenario))
        return FileResult(path, scenario.name, outcomes)


def report(results: list[FileResult], out: TextIO) -> int:
    """Print PASS/FAIL lines; return the exit code (0 pass, 1 fail, 2 invalid)."""
    failed = invalid = passed = 0
    for r in results:
        if r.invalid is not None:
            invalid += 1
            print(f"INVALID {r.path}: {r.invalid}", file=out)
            continue
        print(f"== {r.path}: {r.name}", file=out)
        for t, o in r.outcomes:
            word = "PASS" if o.ok else "FAIL"
            print(f"{word} t={t:g}s {o.what}: expected {o.expected}, saw {o.seen}", file=out)
        if r.passed:
            passed += 1
        else:
            failed += 1
    print(f"{passed} passed, {failed} failed, {invalid} invalid", file=out)
    if invalid:
        return EXIT_INVALID
    return EXIT_FAIL if failed else EXIT_PASS
