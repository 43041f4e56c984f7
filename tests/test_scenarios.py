"""Every scenario in scenarios/ passes; the runner reports failures and invalid files."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.scenario.registry import (
    EXPECTATIONS,
    SET_ACTIONS,
    Expectation,
    Outcome,
    SetAction,
)
from gateway.scenario.runner import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, report, run_file
from gateway.scenario.world import World

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.yaml"))


def test_there_are_enough_scenarios() -> None:
    assert len(SCENARIOS) >= 25


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_scenario_passes(path: Path) -> None:
    result = run_file(path)
    out = io.StringIO()
    code = report([result], out)
    assert code == EXIT_PASS, out.getvalue()
    assert result.outcomes, "a scenario without expectations proves nothing"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text, encoding="utf-8")
    return p


def test_a_wrong_expectation_fails_with_exit_1(tmp_path: Path) -> None:
    p = _write(
        tmp_path,
        "name: wrong\nsteps:\n  - at: 1\n    expect: {relays: {charge_contactor: open}}\n",
    )
    out = io.StringIO()
    assert report([run_file(p)], out) == EXIT_FAIL
    assert "FAIL t=1s relays.charge_contactor: expected open, saw closed" in out.getvalue()


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (
            "steps:\n  - at: 1\n    expect: {relays: {nonsense: open}}\n",
            "steps.0.expect.relays.nonsense",
        ),
        ("steps:\n  - at: 1\n    set: {frobnicate: 1}\n", "steps.0.set.frobnicate"),
        (
            "config:\n  protections:\n    cell_overvoltage: {min: 3}\nsteps:\n  - at: 1\n",
            "config.protections.cell_overvoltage.min",
        ),
        ("battery: {boards: two}\nsteps:\n  - at: 1\n", "battery.boards"),
        ("steps:\n  - at: 5\n  - at: 1\n", "steps.1.at"),
        (
            "steps:\n  - at: 1\n    set: {cell: {board: 9, cell: 1, voltage: 3}}\n",
            "steps.0.set.cell.board",
        ),
        ("steps:\n  - at: 1\n    expect: {errors: [no_such_error]}\n", "steps.0.expect.errors.0"),
        ("config:\n  relays: {1: toaster}\nsteps:\n  - at: 1\n", "config.relays.1"),
    ],
)
def test_invalid_files_exit_2_with_the_dotted_path(tmp_path: Path, body: str, path: str) -> None:
    p = _write(tmp_path, body)
    result = run_file(p)
    assert result.invalid is not None and result.invalid.startswith(path + ":"), result.invalid
    out = io.StringIO()
    assert report([result], out) == EXIT_INVALID


def test_cli_runs_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = SCENARIOS[0]
    assert main(["scenario", str(good)]) == 0
    bad = _write(tmp_path, "steps: []\n")
    assert main(["scenario", str(good), str(bad)]) == 2
    assert "INVALID" in capsys.readouterr().out


def test_a_set_action_may_return_an_awaitable_the_runner_awaits_before_time_moves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, float]] = []

    async def landed(world: World) -> None:
        await asyncio.sleep(0)  # a real suspension: other tasks may run meanwhile
        seen.append(("awaited", world.clock.now()))

    def apply(world: World, _: Any) -> Awaitable[None]:
        seen.append(("applied", world.clock.now()))
        return landed(world)

    def check(world: World, _: Any) -> list[Outcome]:
        seen.append(("checked", world.clock.now()))
        return [Outcome(True, "probe", "-", "-")]

    monkeypatch.setitem(SET_ACTIONS, "probe", SetAction("probe", lambda v, p, c: v, apply))
    monkeypatch.setitem(EXPECTATIONS, "probe", Expectation("probe", lambda v, p, c: v, check))
    p = _write(tmp_path, "steps:\n  - at: 1\n    set: {probe: 1}\n    expect: {probe: 1}\n")
    out = io.StringIO()
    assert report([run_file(p)], out) == EXIT_PASS, out.getvalue()
    assert seen == [("applied", 1.0), ("checked", 1.0), ("awaited", 1.0)]
