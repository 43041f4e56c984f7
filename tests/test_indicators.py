"""Indicators DS2-DS8: the patterns the engine decides and the blinking they produce.

The board's LEDs tell a person at the cabinet what runs: DS2 the engine's heartbeat, DS3 the
Logic link (2 Hz while being brought up, 25 Hz once established), DS4 a stale or silent
board, DS5-DS8 the relays 3, 4, 1 and 2. Patterns are published as the `DS<n>` reasons.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.control.indicators import blink, indicators
from tests.support.world import SyncStepper, build_world


@pytest.mark.parametrize(
    ("hz", "on_at", "off_at"),
    [
        (1.0, [0.0, 0.25, 0.49, 1.0, 7.3], [0.5, 0.75, 0.99, 7.6]),
        (4.0, [0.0, 0.1, 0.25], [0.125, 0.2]),
    ],
)
def test_a_blink_is_on_in_the_first_half_of_each_period(
    hz: float, on_at: list[float], off_at: list[float]
) -> None:
    assert all(blink(t, hz) for t in on_at)
    assert not any(blink(t, hz) for t in off_at)


def test_patterns_from_the_engine_state() -> None:
    states, patterns = indicators(
        0.0,
        running=True,
        logic_established=False,
        logic_errors=True,
        relays_closed={1: True, 2: False, 3: True},
    )
    assert patterns == {
        "DS2": "blink_1hz",
        "DS3": "blink_2hz",
        "DS4": "blink_4hz",
        "DS5": "on",
        "DS6": "off",
        "DS7": "on",
        "DS8": "off",
    }
    assert states == {
        "DS2": True,
        "DS3": True,
        "DS4": True,
        "DS5": True,
        "DS6": False,
        "DS7": True,
        "DS8": False,
    }
    _, stopped = indicators(
        0.0, running=False, logic_established=True, logic_errors=False, relays_closed={}
    )
    assert (stopped["DS2"], stopped["DS3"], stopped["DS4"]) == ("off", "blink_25hz", "off")


class Run(SyncStepper):
    def __init__(self, tmp_path: Path, mode: str = "controller") -> None:
        super().__init__(build_world(tmp_path, mode))

    def patterns(self) -> dict[str, str]:
        reasons = self.control.reasons
        return {f"DS{n}": reasons[f"DS{n}"][0] for n in range(2, 9)}


def test_the_engine_shows_the_logic_link_and_the_relays(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.poll = False
    run.until(0.5)  # no board read yet: being brought up, every board stale, relays open
    assert run.patterns() == {
        "DS2": "blink_1hz", "DS3": "blink_2hz", "DS4": "blink_4hz",
        "DS5": "off", "DS6": "off", "DS7": "off", "DS8": "off",
    }  # fmt: skip
    run.poll = True
    run.until(5.0)  # established; the default relays 1-3 closed, 4 (heater) open
    assert run.patterns() == {
        "DS2": "blink_1hz", "DS3": "blink_25hz", "DS4": "off",
        "DS5": "on", "DS6": "off", "DS7": "on", "DS8": "on",
    }  # fmt: skip
    control = run.world.ctx.store.state.control
    assert [control.relays[n].on for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert control.indicators["DS7"] and control.indicators["DS8"] and control.indicators["DS5"]
    assert not control.indicators["DS6"] and not control.indicators["DS4"]
    run.world.pack.set_board_online(2, False)
    run.until(8.0)  # a board stale: DS4 blinks, DS3 back to the slow blink, relays open
    assert run.patterns() == {
        "DS2": "blink_1hz", "DS3": "blink_2hz", "DS4": "blink_4hz",
        "DS5": "off", "DS6": "off", "DS7": "off", "DS8": "off",
    }  # fmt: skip
    run.until(15.0)
    assert "logic_offline" in control.errors_active
    run.world.pack.set_board_online(2, True)
    run.until(15.5)  # answering again, but logic_offline waits for its clear delay
    assert "logic_offline" in control.errors_active
    assert (run.patterns()["DS3"], run.patterns()["DS4"]) == ("blink_2hz", "blink_4hz")
    run.until(30.0)
    assert control.errors_active == []
    assert (run.patterns()["DS3"], run.patterns()["DS4"]) == ("blink_25hz", "off")


def test_the_heartbeat_blinks_between_decisions(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.until(5.0)
    engine = run.world.engine.engine
    on, off = engine.indicator_states(10.0), engine.indicator_states(10.5)
    assert on["DS2"] and not off["DS2"]  # 1 Hz
    assert engine.indicator_states(10.01)["DS3"] and not engine.indicator_states(10.03)["DS3"]
    assert on["DS7"] and off["DS7"]  # steady: the relay's state, not a blink


def test_bridge_mode_shows_no_relay(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="bridge")
    run.until(5.0)
    patterns = run.patterns()
    assert [patterns[f"DS{n}"] for n in (5, 6, 7, 8)] == ["off"] * 4
