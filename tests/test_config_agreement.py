"""`check-config` and `run` accept exactly the same files: every cross-section check runs
in the config model, so a file that validates is a file the engine can be built from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli import main
from gateway.config import load_config
from gateway.control.settings import resolve
from gateway.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(
    [*ROOT.glob("deploy/**/config.yaml"), *ROOT.glob("docs/examples/*.yaml")],
)

# Each documented invalid combination, with the dotted key its message must start with.
INVALID: list[tuple[dict[str, Any], str]] = [
    (
        {"charge_control": {"recharge_voltage": 3.50, "end_of_charge_voltage": 3.40}},
        "charge_control.recharge_voltage: must be below end_of_charge_voltage",
    ),
    ({"balancing": {"start_voltage": 3.3, "stop_voltage": 3.4}}, "balancing.stop_voltage:"),
    (
        {"limits": {"charge_derate_start_v": 3.5, "charge_derate_end_v": 3.4}},
        "limits.charge_derate_end_v:",
    ),
    (
        {"limits": {"discharge_derate_start_v": 3.0, "discharge_derate_end_v": 3.1}},
        "limits.discharge_derate_end_v:",
    ),
    (
        {"protections": {"cell_overvoltage": {"max": 3.6, "tolerant": 3.7}}},
        "protections.cell_overvoltage.tolerant:",
    ),
    (
        {"protections": {"cell_undervoltage": {"min": 2.8, "tolerant": 2.7}}},
        "protections.cell_undervoltage.tolerant:",
    ),
    (
        {"pack": {"chemistry": "nmc"}, "charge_control": {"recharge_voltage": 4.3}},
        "charge_control.recharge_voltage:",
    ),
]


def test_there_are_shipped_configs() -> None:
    assert SHIPPED, "no shipped config found"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_is_accepted_by_both(path: Path) -> None:
    config = load_config(path, env=False)
    resolve(config)  # what the engine runs when `run` builds it


@pytest.mark.parametrize(("overrides", "message"), INVALID, ids=[m for _, m in INVALID])
def test_invalid_combination_is_refused_by_both(
    overrides: dict[str, Any],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(overrides), encoding="utf-8")
    assert main(["check-config", str(f)]) == 1
    err = capsys.readouterr().err
    assert any(f"{f}:" in line and f": {message}" in line for line in err.splitlines()), err
    assert "Value error" not in err
    with pytest.raises(ConfigError, match=message.split(":", maxsplit=1)[0]):
        load_config(f, env=False)
