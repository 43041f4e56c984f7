"""The CAN scenario keys (`set: can`, `expect: can_tx`) through the scenario runner."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.scenario.runner import run_file

ROOT = Path(__file__).resolve().parent.parent / "scenarios"


@pytest.mark.parametrize(
    "name",
    ["can_inverter_follows_a_protection_trip.yaml", "can_charger_connects_and_goes_silent.yaml"],
)
def test_can_scenarios_pass(name: str) -> None:
    result = run_file(ROOT / name)
    assert result.invalid is None
    failed = [o for _, o in result.outcomes if not o.ok]
    assert not failed
    assert any(o.what.startswith("can_tx.") for _, o in result.outcomes)


def test_can_tx_that_does_not_hold_fails(tmp_path: Path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(
        "name: wrong expectation\n"
        "config: {can: {enabled: true, inverter: {enabled: true}}}\n"
        "steps:\n"
        "  - at: 3\n"
        "    expect: {can_tx: {id: 0x351, signals: {ChargeCurrentLimit: {max: -5}}}}\n"
        "  - at: 4\n"
        "    expect: {can_tx: {id: 0x370, signals: {Text: 0}}}\n"  # victron only: never sent
    )
    result = run_file(f)
    assert result.invalid is None
    assert [o.ok for _, o in result.outcomes] == [False, False]
    assert result.outcomes[1][1].seen == "none sent"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("config: {can: {enabled: true}}\nsteps: [{at: 1, set: {can: {id: -1}}}]", "id"),
        ("config: {can: {enabled: true}}\nsteps: [{at: 1, set: {can: {id: 5, data: zz}}}]", "data"),
        ("steps: [{at: 1, set: {can: {id: 5, data: '00'}}}]", "can"),
        (
            "config: {can: {enabled: true}}\n"
            "steps: [{at: 1, expect: {can_tx: {id: 0x351, signals: {Nope: 1}}}}]",
            "Nope",
        ),
        ("config: {can: {enabled: true}}\nsteps: [{at: 1, expect: {can_tx: {id: 0x123}}}]", "id"),
    ],
)
def test_invalid_can_keys_name_the_bad_path(tmp_path: Path, body: str, path: str) -> None:
    f = tmp_path / "s.yaml"
    f.write_text("name: bad\n" + body + "\n")
    result = run_file(f)
    assert result.invalid is not None and path in result.invalid
