"""Commissioning's click test of the relays: only after a confirmation per relay, never while
a check that protects the battery failed, and every relay opened again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.commands.commission_report import Check, Report
from gateway.config import GatewayConfig
from gateway.core.errors import GatewayError

# --- relays ---------------------------------------------------------------------------------


def check_relays(
    config: GatewayConfig,
    report: Report,
    safe: bool,
    confirmed: set[int],
    ask: Callable[[str], bool],
) -> None:
    if config.gateway.mode == "bridge":
        report.add("relays", "skip", "bridge mode: this gateway drives no relays")
        return
    if not safe:
        report.add(
            "relays",
            "skip",
            "not tested: a check above failed, so a protection would block the relays",
            "fix the failed checks first",
        )
        return
    from gateway.hal.drivers import build_drivers  # noqa: PLC0415

    try:
        drivers = build_drivers(config)
    except GatewayError as err:
        report.add("relays", "fail", str(err), "check drivers.relays")
        return
    assigned = config.inputs.assignments().items()
    feedback = {str(a.signal): n for n, a in assigned if a.signal.endswith("feedback")}
    try:
        for n, function in config.relays.functions().items():
            step = f"relay {n} ({function})"
            if function == "none":
                report.add(step, "skip", "not used")
                continue
            if n not in confirmed and not ask(f"Close relay {n} ({function}) for one second?"):
                report.add(step, "skip", "not confirmed")
                continue
            report.checks.append(_click(drivers, n, function, feedback, config))
    finally:
        drivers.close()


def _click(
    drivers: Any, n: int, function: str, feedback: dict[str, int], config: GatewayConfig
) -> Check:
    import time  # noqa: PLC0415

    step = f"relay {n} ({function})"
    fb_input = feedback.get(f"{function}_feedback")
    try:
        drivers.relays.renew_lease(time.monotonic() + 2.0)
        drivers.relays.set_relay(n, True)
        time.sleep(0.5)
        closed = drivers.relays.relay_closed(n)
        fb = None
        if fb_input is not None:
            states = drivers.inputs.read_inputs()
            fb = states[fb_input - 1] != config.inputs.assignments()[fb_input].invert
    except Exception as err:  # a driver failure: report it, the finally opens the relay
        return Check(step, "fail", f"driver error: {err}", "check drivers.relays")
    finally:
        drivers.relays.set_relay(n, False)
    if not closed:
        return Check(step, "fail", "the driver did not close it", "check drivers.relays")
    if fb_input is None:
        return Check(step, "pass", "clicked (no feedback input assigned: listen for it)")
    if fb:
        return Check(step, "pass", f"clicked; feedback input {fb_input} followed")
    return Check(
        step,
        "fail",
        f"feedback input {fb_input} did not follow",
        "check the auxiliary contact wiring and inputs.{fb_input}.invert",
    )
