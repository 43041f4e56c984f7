"""Operator commands reach the engine through the bus, without a broker.

A front end (MQTT, Home Assistant) publishes `CommandRequested`; the engine component
applies it before its next decision and answers with `CommandApplied` (ok, detail, which
latches were cleared or kept). Virtual time, the real engine and Logic adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.control.commands import CommandApplied, CommandRequested
from tests.support.world import SyncStepper, build_world


class Run(SyncStepper):
    def __init__(self, tmp_path: Path, mode: str = "controller", **extra: Any) -> None:
        super().__init__(build_world(tmp_path, mode, **extra))
        self.answers = self.world.ctx.bus.subscribe("test", CommandApplied)
        self.request = 0

    def command(self, command: str, **kw: Any) -> CommandApplied:
        self.request += 1
        self.world.ctx.bus.publish(
            CommandRequested(
                at_s=self.t, command=command, source="mqtt", request=self.request, **kw
            )
        )
        at_s = self.t
        self.until(at_s)  # the next decision applies it
        answer = self.answers.get_nowait()
        assert answer is not None and answer.request == self.request
        assert (answer.command, answer.source, answer.at_s) == (command, "mqtt", at_s)
        return answer

    def closed(self, relay: int) -> bool:
        return self.world.ctx.drivers.relays.relay_closed(relay)

    @property
    def errors(self) -> list[str]:
        errors: list[str] = self.world.ctx.store.state.control.errors_active
        return errors


def test_go_safe_opens_every_relay_until_released(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.until(3.0)
    assert run.closed(1)
    a = run.command("go_safe", active=True)
    assert a.ok and a.detail == "go-safe requested: every relay opens"
    assert run.world.engine.engine.go_safe_requests == {"mqtt"}  # kept per source
    assert not any(run.closed(n) for n in range(1, 5))
    run.world.engine.engine.request_go_safe("modbus", True)  # a second source
    a = run.command("go_safe", active=False)
    assert a.ok and a.detail == "go-safe released for mqtt; still requested by modbus"
    run.until(run.t + 1.0)
    assert not run.closed(1)
    run.world.engine.engine.request_go_safe("modbus", False)
    run.until(run.t + 1.0)
    assert run.closed(1)
    a = run.command("go_safe", active=False)
    assert a.ok and a.detail == "go-safe released for mqtt"


def test_go_safe_in_bridge_mode_says_no_relay_is_driven(tmp_path: Path) -> None:
    run = Run(tmp_path, mode="bridge")
    run.until(2.0)
    a = run.command("go_safe", active=True)
    assert a.ok
    assert (
        a.detail
        == "go-safe requested: every relay opens (bridge mode: this gateway drives no relays)"
    )


def test_ack_clears_latches_whose_condition_cleared_and_keeps_the_others(tmp_path: Path) -> None:
    latch = {"latch": True}
    run = Run(tmp_path, protections={"cell_overvoltage": latch, "cell_undervoltage": latch})
    run.until(2.0)
    a = run.command("ack", errors=("cell_overvoltage",))
    assert (a.ok, a.detail, a.cleared, a.kept) == (False, "not latched: cell_overvoltage", (), ())
    run.world.pack.force_cell_voltage(1, 1, 3.80)
    run.world.pack.force_cell_voltage(2, 1, 2.40)
    run.until(5.0)
    assert run.errors == ["cell_overvoltage", "cell_undervoltage"]
    run.world.pack.force_cell_voltage(1, 1, 3.30)  # over-voltage gone, under-voltage stays
    run.until(20.0)
    a = run.command("ack", errors=("cell_overvoltage", "cell_undervoltage"))
    assert a.cleared == ("cell_overvoltage",) and a.kept == ("cell_undervoltage",)
    assert not a.ok
    assert a.detail == "cleared cell_overvoltage; kept cell_undervoltage (condition still present)"
    assert a.payload()["cleared"] == ["cell_overvoltage"]
    assert a.payload()["kept"] == ["cell_undervoltage"]
    run.world.pack.force_cell_voltage(2, 1, 3.30)
    run.until(40.0)
    a = run.command("ack", errors=("cell_undervoltage",))
    assert (a.ok, a.cleared, a.kept) == (True, ("cell_undervoltage",), ())
    assert a.detail == "cleared cell_undervoltage"
    run.until(run.t + 2.0)
    assert run.errors == [] and run.closed(1)
    a = run.command("ack")  # every latch: there is none left, which is fine
    assert (a.ok, a.cleared, a.kept, a.detail) == (True, (), (), "cleared none")


def test_an_unknown_command_is_refused(tmp_path: Path) -> None:
    run = Run(tmp_path)
    run.until(1.0)
    a = run.command("reboot")
    assert not a.ok and a.detail == "unknown command 'reboot'"
    assert a.payload() == {
        "type": "command_applied",
        "command": "reboot",
        "source": "mqtt",
        "request": 1,
        "ok": False,
        "detail": "unknown command 'reboot'",
    }


def test_ack_of_every_latch_and_of_one_name(tmp_path: Path) -> None:
    latch = {"latch": True}
    run = Run(tmp_path, protections={"cell_overvoltage": latch, "cell_undervoltage": latch})
    run.until(2.0)
    run.world.pack.force_cell_voltage(2, 1, 2.40)  # only the under-voltage latches
    run.until(5.0)
    run.world.pack.force_cell_voltage(2, 1, 3.30)
    run.until(20.0)
    a = run.command("ack", errors=("cell_overvoltage",))  # not the latched one: kept
    assert not a.ok and run.errors == ["cell_undervoltage"]
    a = run.command("ack")  # every latch, whatever comes first in the table
    assert (a.ok, a.cleared) == (True, ("cell_undervoltage",))
    run.until(run.t + 2.0)
    assert run.errors == []
