"""The protection table is complete, documented and safe (style lesson 12)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from gateway.config import load_config
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.control.settings import EXTRA_SIGNALS, OUTPUT_FUNCTIONS, RelayFunction, resolve
from gateway.control.table import ACTIONS, BY_NAME, PROTECTIONS, SEVERITIES

DOC = Path(__file__).parent.parent / "docs" / "protections.md"


def test_relay_function_type_lists_every_output_function() -> None:
    # RelayFunction must be spelled out for the type checker; this keeps it in step.
    assert get_args(RelayFunction) == OUTPUT_FUNCTIONS


def test_one_row_per_error_name() -> None:
    assert [r.name for r in PROTECTIONS] == list(ERROR_NAMES)
    assert set(BY_NAME) == set(ERROR_NAMES)


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_every_row_has_a_safe_action(name: str) -> None:
    row = BY_NAME[name]
    assert row.severity in SEVERITIES and row.action in ACTIONS
    if row.severity == "critical":
        assert row.action == "all" and row.blocks_charge and row.blocks_discharge
    if row.severity == "warn":
        assert row.action == "none"
    if row.severity == "normal":
        assert row.action != "none", "a normal error must do something"
    for chem in ("lfp", "nmc"):
        d = row.defaults(chem)
        assert d.set_delay_ms >= 0 and d.clear_delay_s >= 0
        if row.limit == "max":
            assert d.threshold is not None and d.tolerant is not None
            assert d.tolerant <= d.threshold
        if row.limit == "min":
            assert d.threshold is not None and d.tolerant is not None
            assert d.tolerant >= d.threshold


@pytest.mark.parametrize("name", [*ERROR_NAMES, *SIGNAL_NAMES, *EXTRA_SIGNALS])
def test_every_name_is_documented(name: str) -> None:
    text = DOC.read_text(encoding="utf-8")
    assert re.search(rf"^#+ `{name}`", text, re.MULTILINE), f"{name} has no section in {DOC}"


@pytest.mark.parametrize("chemistry", ["lfp", "nmc"])
def test_defaults_resolve_for_each_chemistry(chemistry: str) -> None:
    s = resolve(load_config(None, {"pack": {"chemistry": chemistry}}, env=False))
    assert set(s.protections) == set(ERROR_NAMES)
    assert s.recharge_voltage < s.end_of_charge_voltage
    ov = s.protections["cell_overvoltage"].threshold
    assert ov is not None and s.end_of_charge_voltage < ov


def test_a_row_left_unset_takes_the_chemistry_default() -> None:
    s = resolve(
        load_config(
            None,
            {"pack": {"chemistry": "nmc"}, "protections": {"cell_overvoltage": {"max": 4.3}}},
            env=False,
        )
    )
    ov = s.protections["cell_overvoltage"]
    assert ov.threshold == 4.3
    assert ov.tolerant == BY_NAME["cell_overvoltage"].nmc.tolerant
    assert s.protections["cell_undervoltage"] == BY_NAME["cell_undervoltage"].nmc
