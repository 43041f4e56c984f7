"""Stale discrete inputs: an input-driven protection cannot tell, so it fails safe.

No diagnosis owns the discrete-input link, so an input the engine has not heard from
within `engine.inputs_timeout_s` is unknown and counts as active for the protection it
drives (`battery_cover` here: the cover might be open); every relay is open meanwhile
(`stale_input_battery_cover`). During the start-up grace inputs not read yet only wait.
"""

from __future__ import annotations

from pathlib import Path

from gateway.core.events import Event, InputsRead
from tests.support.world import SyncStepper, build_world


class Run(SyncStepper):
    """A pack whose discrete-input link can be silenced (`inputs_silent`)."""

    def __init__(self, tmp_path: Path, inputs_silent: bool, signal: str = "battery_cover") -> None:
        super().__init__(
            build_world(
                tmp_path,
                inputs={1: {"signal": signal}},
                engine={"startup_grace_s": 5.0, "inputs_timeout_s": 3.0},
                protections={"battery_cover": {"set_delay_ms": 500}},
            )
        )
        self.inputs_silent = inputs_silent
        bus = self.world.ctx.bus
        publish = bus.publish

        def filtered(event: Event) -> None:
            if not (self.inputs_silent and isinstance(event, InputsRead)):
                publish(event)

        bus.publish = filtered  # type: ignore[method-assign]


def test_inputs_not_read_yet_only_wait_during_the_grace(tmp_path: Path) -> None:
    run = Run(tmp_path, inputs_silent=True)
    run.until(4.5)  # inside the 5 s grace: waiting, no error, relays open
    assert run.control.errors_active == []
    assert "stale_input_battery_cover" in run.control.reasons["discharge_contactor"]
    assert not run.control.relays[1].on
    run.until(6.0)  # grace over, never heard: unknown counts as an open cover
    assert run.control.errors_active == ["battery_cover"]


def test_inputs_that_go_stale_raise_the_input_protection(tmp_path: Path) -> None:
    run = Run(tmp_path, inputs_silent=False)
    run.until(8.0)
    assert run.control.errors_active == [] and run.control.relays[1].on
    run.inputs_silent = True  # last inputs read at 8.0
    run.until(10.9)
    assert run.control.errors_active == []
    run.until(12.0)  # stale at 11.0, the set delay 0.5 s later
    assert run.control.errors_active == ["battery_cover"]
    assert not run.control.relays[1].on
    run.inputs_silent = False
    run.until(30.0)
    assert run.control.errors_active == [] and run.control.relays[1].on


def test_a_stale_contactor_feedback_input_fails_safe(tmp_path: Path) -> None:
    """The feedback cannot confirm the contactor: `contactor_feedback`, after the grace."""
    run = Run(tmp_path, inputs_silent=True, signal="discharge_contactor_feedback")
    run.until(4.5)
    assert run.control.errors_active == []
    run.until(8.0)
    assert run.control.errors_active == ["contactor_feedback"]


def test_a_lost_humidity_sensor_fails_safe(tmp_path: Path) -> None:
    """No diagnosis owns the humidity sensor: humidity stale past `engine.current_timeout_s`
    is unknown and counts as `high_humidity`; the last value (40 %) is not used."""
    run = Run(tmp_path, inputs_silent=False)
    run.world.pack.humidity_pct = 40.0
    run.until(8.0)
    assert run.control.errors_active == []
    run.world.pack.humidity_pct = None  # the sensor stops reporting at 8 s
    run.until(30.0)
    assert run.control.errors_active == ["high_humidity"]
