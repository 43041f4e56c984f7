"""Every error name has scenarios: one that sees it active, one that latches and acknowledges it.

tests/test_scenarios.py runs the files; this test only reads them, so a protection added to
`ERROR_NAMES` without scenarios fails here with the name of what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.control.names import ERROR_NAMES

SCENARIO_DIR = Path(__file__).parent.parent / "scenarios"


@dataclass(frozen=True)
class Story:
    """What one scenario file says about errors (read from its YAML, not run)."""

    path: Path
    latched: frozenset[str]  # config.protections.<name>.latch is true
    active_at: dict[str, list[float]]  # error -> step times expecting it active
    inactive_at: dict[str, list[float]]  # error -> step times expecting it not active
    acked_at: dict[str, list[float]]  # error -> step times of `set: {ack: error}`


def _steps(doc: Mapping[str, Any]) -> Iterator[tuple[float, Mapping[str, Any], Mapping[str, Any]]]:
    for step in doc.get("steps") or []:
        yield float(step["at"]), step.get("set") or {}, step.get("expect") or {}


def read_story(path: Path, doc: Mapping[str, Any]) -> Story:
    """Summarise a parsed scenario document."""
    protections = ((doc.get("config") or {}).get("protections")) or {}
    latched = frozenset(
        name
        for name, row in protections.items()
        if isinstance(row, Mapping) and row.get("latch") is True
    )
    active: dict[str, list[float]] = {}
    inactive: dict[str, list[float]] = {}
    acked: dict[str, list[float]] = {}
    for at, set_, expect in _steps(doc):
        if "ack" in set_:
            acked.setdefault(str(set_["ack"]), []).append(at)
        exact = expect.get("errors")
        for name in ERROR_NAMES:
            if name in (exact or []) or name in (expect.get("errors_include") or []):
                active.setdefault(name, []).append(at)
            elif (exact is not None and name not in exact) or name in (
                expect.get("errors_exclude") or []
            ):
                inactive.setdefault(name, []).append(at)
    return Story(path, latched, active, inactive, acked)


def proves_latch(story: Story, name: str) -> bool:
    """Latched, seen active, acknowledged after that, and seen inactive after the ack."""
    if name not in story.latched:
        return False
    for ack in story.acked_at.get(name, []):
        before = any(t <= ack for t in story.active_at.get(name, []))
        after = any(t > ack for t in story.inactive_at.get(name, []))
        if before and after:
            return True
    return False


def missing_coverage(stories: list[Story], names: tuple[str, ...]) -> list[str]:
    """Human-readable gaps: names never expected active, or without a latch scenario."""
    gaps = []
    for name in names:
        if not any(name in s.active_at for s in stories):
            gaps.append(f"{name}: no scenario expects it active")
        if not any(proves_latch(s, name) for s in stories):
            gaps.append(
                f"{name}: no scenario sets config.protections.{name}.latch: true, expects it "
                f"active, acks it and then expects it cleared"
            )
    return gaps


def _load_all() -> list[Story]:
    return [
        read_story(p, yaml.safe_load(p.read_text(encoding="utf-8")))
        for p in sorted(SCENARIO_DIR.glob("*.yaml"))
    ]


STORIES = _load_all()


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_error_is_expected_active_somewhere(name: str) -> None:
    files = [s.path.name for s in STORIES if name in s.active_at]
    assert files, f"no scenario in scenarios/ expects {name} in errors/errors_include"


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_error_has_a_latch_scenario(name: str) -> None:
    files = [s.path.name for s in STORIES if proves_latch(s, name)]
    assert files, missing_coverage(STORIES, (name,))


def test_the_coverage_check_notices_gaps() -> None:
    """The checks above can fail: a latch without an ack, or an ack never seen clearing."""
    doc = yaml.safe_load(
        """
        config: {protections: {cell_overvoltage: {latch: true}, high_humidity: {latch: true}}}
        steps:
          - {at: 1, expect: {errors: [cell_overvoltage, high_humidity]}}
          - {at: 2, set: {ack: high_humidity}}
          - {at: 3, expect: {errors_include: [high_humidity]}}
          - {at: 4, set: {ack: cell_undervoltage}}
          - {at: 5, expect: {errors_include: [cell_overvoltage]}}
        """
    )
    story = read_story(Path("synthetic.yaml"), doc)
    assert not proves_latch(story, "cell_overvoltage")  # never acknowledged
    assert not proves_latch(story, "high_humidity")  # still active after the ack
    assert not proves_latch(story, "cell_undervoltage")  # acked, but not latched
    gaps = missing_coverage([story], ("cell_overvoltage", "battery_cover"))
    assert gaps == [
        "cell_overvoltage: no scenario sets config.protections.cell_overvoltage.latch: true, "
        "expects it active, acks it and then expects it cleared",
        "battery_cover: no scenario expects it active",
        "battery_cover: no scenario sets config.protections.battery_cover.latch: true, "
        "expects it active, acks it and then expects it cleared",
    ]
    # and the positive case: latched, active, acked, then cleared
    doc["steps"].append({"at": 6, "set": {"ack": "cell_overvoltage"}})
    doc["steps"].append({"at": 7, "expect": {"errors": []}})
    assert proves_latch(read_story(Path("synthetic.yaml"), doc), "cell_overvoltage")
