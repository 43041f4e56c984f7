"""Reasons in words: every engine code the dashboard shows reads as words, never as a repr."""

from __future__ import annotations

from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.publishers.web.words import describe, explain, switch_state


def test_every_error_and_signal_reads_as_words() -> None:
    for code in (*ERROR_NAMES, *SIGNAL_NAMES):
        text = describe(code)
        assert text and "'" not in text and "None" not in text
    assert describe("cell_overvoltage") == "a cell is over its maximum voltage (cell_overvoltage)"


def test_generated_codes() -> None:
    assert describe("coldest_cell_below_5C") == "coldest cell below 5 °C"
    assert describe("stale_board_2") == "stale data from board 2"
    assert describe("no_data_board_1") == "no data yet from board 1"
    assert describe("ton 3.5s left") == "switch-on delay: 3.5s left"
    assert describe("mode_always").startswith("always allowed")
    assert describe("something_new") == "something new"
    assert explain([]) == "-"
    assert (
        explain(["go_safe", "mqtt"])
        == "go-safe requested: every relay held open; requested over MQTT"
    )
    assert switch_state("charge_contactor", False) == "charging blocked"
    assert switch_state("none", True) == "on"


def test_summary_names_soc_current_relays_and_the_first_blocking_reason() -> None:
    from gateway.app import summary_line
    from gateway.config import load_config
    from gateway.core.state import GatewayState, SwitchState

    config = load_config(env=False)
    s = GatewayState(current_a=-12.34)
    line = summary_line(config, s, 0)
    assert "current -12.3 A" in line and "blocking: none" in line
    s.control.soc = 0.612
    s.control.relays = {
        1: SwitchState("discharge_contactor", True, ("discharge_allowed",)),
        2: SwitchState("allow_charging", False, ("low_temperature_charge", "stale_current")),
        4: SwitchState("heater", False, ()),
    }
    line = summary_line(config, s, 7)
    assert "SOC 61 %" in line and "relays closed 1" in line
    assert "blocking: relay 2 (allow_charging) open: low_temperature_charge" in line
