"""State of charge is % (0..100) wherever a user meets it; SOC inputs take 60, "60 %" or 0.6.

The audit table is in docs/configuration.md ("State of charge units"); each row names the
test that pins its place. The rows whose test lives here: config and environment input,
scenario input and output, the `simulate` option, the low_soc reason, the Grafana panels.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import build_parser
from gateway.commands.simulate import simulator_config
from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.scenario.runner import EXIT_FAIL, EXIT_INVALID, EXIT_PASS, report, run_file

ROOT = Path(__file__).parent.parent
FORMS = 'write it in percent (`60`, `"60 %"`) or as a fraction 0..1 (`0.6`)'


# --- config input ---------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["60", "60 %", "60%", "0.6"])
def test_environment_overrides_take_every_form(
    written: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BMSGW_SIMULATOR__SOC", written)
    monkeypatch.setenv("BMSGW_LIMITS__CHARGE_SOC_DERATE_START", written)
    cfg = load_config(None)
    assert cfg.simulator.soc == pytest.approx(0.6)
    assert cfg.limits.charge_soc_derate_start == pytest.approx(0.6)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"simulator": {"soc": 160}}, "simulator.soc"),
        ({"simulator": {"soc": "160 %"}}, "simulator.soc"),
        ({"simulator": {"soc": -5}}, "simulator.soc"),
        ({"limits": {"discharge_soc_derate_start": 250}}, "limits.discharge_soc_derate_start"),
        # an indication level that could never clear (150 % = 1.5) is refused too
        ({"signal_levels": {"low_soc": {"min": 150, "tolerant": 30}}}, "signal_levels.low_soc"),
    ],
)
def test_a_soc_outside_0_to_100_percent_names_the_key_and_the_forms(
    overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(overrides=overrides, env=False)
    message = str(exc.value)
    assert message.startswith(f"{key}: state of charge ") and FORMS in message, message
    assert "less than or equal to 1" not in message


def test_one_is_a_fraction_and_one_percent_is_written_with_the_sign() -> None:
    assert load_config(overrides={"simulator": {"soc": 1}}, env=False).simulator.soc == 1.0
    low = load_config(overrides={"simulator": {"soc": "1 %"}}, env=False).simulator.soc
    assert low == pytest.approx(0.01)


# --- the simulate command ---------------------------------------------------------------------


@pytest.mark.parametrize("written", ["90", "90%", "90 %", "0.9"])
def test_simulate_soc_option_takes_every_form(written: str) -> None:
    args = build_parser().parse_args(["simulate", "--pty", "--soc", written])
    assert simulator_config(args).simulator.soc == pytest.approx(0.9)


def test_simulate_default_soc_is_sixty_percent() -> None:
    args = build_parser().parse_args(["simulate", "--pty"])
    assert simulator_config(args).simulator.soc == pytest.approx(0.6)


# --- scenarios: input, expectations and the printed lines --------------------------------------


def _run(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    out = io.StringIO()
    return report([run_file(path)], out), out.getvalue()


@pytest.mark.parametrize(
    ("battery", "expect"),
    [
        ("40", "{value: 40, tolerance: 0.5}"),
        ('"40 %"', '{value: "40 %", tolerance: "0.5 %"}'),
        ("0.4", "{value: 0.4, tolerance: 0.005}"),
        ("40", "{value: 0.4}"),  # the default tolerance: 1 %
    ],
)
def test_scenario_soc_in_percent_or_as_a_fraction(
    tmp_path: Path, battery: str, expect: str
) -> None:
    code, out = _run(
        tmp_path,
        f"name: soc forms\nbattery: {{soc: {battery}, current: 0}}\n"
        f"steps:\n  - at: 1\n    expect: {{soc: {expect}}}\n",
    )
    assert code == EXIT_PASS, out
    assert "PASS t=1s soc: expected 40 % ± " in out and "saw 40.00 %" in out, out


def test_a_failed_soc_expectation_is_printed_in_percent(tmp_path: Path) -> None:
    code, out = _run(
        tmp_path,
        "name: wrong soc\nbattery: {soc: 55, current: 0}\n"
        "steps:\n  - at: 1\n    expect: {soc: {value: 50, tolerance: 2}}\n",
    )
    assert code == EXIT_FAIL
    assert "FAIL t=1s soc: expected 50 % ± 2 %, saw 55.00 %" in out, out


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ("battery: {soc: 160}\nsteps: []\n", "battery.soc"),
        ("battery: {soc: full}\nsteps: []\n", "battery.soc"),
        ("steps:\n  - at: 1\n    expect: {soc: {value: 250}}\n", "steps.0.expect.soc.value"),
        (
            "steps:\n  - at: 1\n    expect: {soc: {value: 50, tolerance: 200}}\n",
            "steps.0.expect.soc.tolerance",
        ),
        (
            "steps:\n  - at: 1\n    expect: {soc: {value: 50, tolerance: lots}}\n",
            "steps.0.expect.soc.tolerance",
        ),
    ],
)
def test_an_impossible_scenario_soc_is_invalid_with_its_path(
    tmp_path: Path, body: str, path: str
) -> None:
    code, out = _run(tmp_path, "name: bad soc\n" + body)
    assert code == EXIT_INVALID, out
    assert path in out, out


def test_the_low_soc_reason_is_in_percent(tmp_path: Path) -> None:
    """The signal's reason (state `reasons.low_soc`, events, logs) says `soc 15.0 %`."""
    code, out = _run(
        tmp_path,
        "name: low soc\nbattery: {soc: 15, current: 0}\n"
        "steps:\n  - at: 2\n"
        "    expect: {signals: {low_soc: true}, reasons: {low_soc: [soc 15.0 %]}}\n",
    )
    assert code == EXIT_PASS, out


# --- the history store and `bms-gateway history export` keep the state's % -------------------


def test_the_history_pack_series_soc_is_the_state_message_percent() -> None:
    from gateway.core.clock import VirtualClock
    from gateway.core.state import GatewayState
    from gateway.publishers.history.writer import pack_values
    from gateway.publishers.payloads import state_message

    state = GatewayState()
    state.control.soc = 0.61234
    message = state_message(state, VirtualClock(), load_config(env=False))
    assert message["soc"] == 61.2
    assert pack_values(message)["soc"] == 61.2  # stored, served by /api/history, exported


# --- Prometheus keeps the ratio; the shipped Grafana dashboard shows it in percent -------------


def _panels() -> list[dict[str, Any]]:
    dashboard = json.loads(
        (ROOT / "deploy/grafana/dashboards/bms-gateway.json").read_text(encoding="utf-8")
    )
    found: list[dict[str, Any]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            found.append(p)
            walk(p.get("panels", []))

    walk(dashboard["panels"])
    return found


def test_every_grafana_soc_series_is_shown_as_percent() -> None:
    shown = 0
    for p in _panels():
        for t in p.get("targets", []):
            if "bms_state_of_charge_ratio" not in t["expr"]:
                continue
            field = p["fieldConfig"]
            unit = field["defaults"].get("unit")
            for o in field.get("overrides", []):
                if o["matcher"] == {"id": "byName", "options": t.get("legendFormat")}:
                    unit = next((x["value"] for x in o["properties"] if x["id"] == "unit"), unit)
            assert unit == "percentunit", (p["title"], unit)
            if "max" in field["defaults"] and len(p["targets"]) == 1:
                assert field["defaults"]["max"] == 1, p["title"]  # a ratio: 1 = 100 %
            shown += 1
    assert shown >= 2


# --- the audit table stays true ----------------------------------------------------------------


def test_the_soc_units_table_names_tests_that_exist_and_keys_that_take_both_forms() -> None:
    doc = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    section = doc.split("## State of charge units", 1)[1].split("| key | type |", 1)[0]
    named = set(re.findall(r"`((?:tests|scenarios)/[\w/.]+)`", section))
    assert len(named) >= 10
    assert [p for p in sorted(named) if not (ROOT / p).exists()] == []
    for key in ("simulator.soc", "limits.charge_soc_derate_start",
                "limits.discharge_soc_derate_start"):  # fmt: skip
        assert f"`{key}`" in section
        section_name, field = key.split(".")
        for written in (42, "42 %", 0.42):
            cfg = load_config(overrides={section_name: {field: written}}, env=False)
            assert getattr(getattr(cfg, section_name), field) == pytest.approx(0.42)
    for written in (42, "42 %", 0.42):
        levels = {"min": written, "tolerant": written, "max": written}
        low = load_config(overrides={"signal_levels": {"low_soc": levels}}, env=False)
        got = low.signal_levels.low_soc
        assert (got.min, got.tolerant, got.max) == pytest.approx((0.42, 0.42, 0.42))
