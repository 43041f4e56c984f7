"""Decider: what blocks each direction, what each mode requests, and the contactors. Pure.

The only state is passed in: each `ContactorControl` (Ton/Toff timing) and the debounce
state of every error (a breach that is not debounced yet holds an open contactor open).
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.control.debounce import Debounced
from gateway.control.switching import ContactorControl
from gateway.control.table import BY_NAME

# Protections whose breach follows from switching itself: they never hold a contactor open
# before they are debounced (a feedback lags its command by design).
SWITCHING_CONSEQUENCES = frozenset({"contactor_feedback"})


@dataclass(frozen=True)
class Blocks:
    """Why each direction may not close (empty: nothing blocks it)."""

    common: list[str]  # waiting for the first scan, stale data, go-safe: every relay
    charge: list[str]
    discharge: list[str]
    pending_charge: list[str]  # `pending_<error>`: an open charge side stays open
    pending_discharge: list[str]


def blocks(
    *,
    first_valid_scan: bool,
    controller: bool,
    stale: list[str],
    go_safe: bool,
    active: list[str],
    inhibit_charging: bool,
    inhibit_discharging: bool,
    errors: dict[str, Debounced],
) -> Blocks:
    """Collect what blocks each direction, in reason order."""
    common: list[str] = []
    if not first_valid_scan:
        # bridge mode: the bridged BMS Main decides, this gateway never scans the cells
        common.append("waiting_first_scan" if controller else "bridge_mode")
    common += stale
    if go_safe:
        common.append("go_safe")
    charge = common + [n for n in active if BY_NAME[n].blocks_charge]
    discharge = common + [n for n in active if BY_NAME[n].blocks_discharge]
    if inhibit_charging:
        charge.append("inhibit_charging")
    if inhibit_discharging:
        discharge.append("inhibit_discharging")
    pending = [
        n
        for n, e in errors.items()
        if not e.active and e.bad_since_s is not None and n not in SWITCHING_CONSEQUENCES
    ]
    return Blocks(
        common,
        charge,
        discharge,
        [f"pending_{n}" for n in pending if BY_NAME[n].blocks_charge],
        [f"pending_{n}" for n in pending if BY_NAME[n].blocks_discharge],
    )


@dataclass(frozen=True)
class Request:
    """A direction's request under its mode, and the mode's reason word."""

    on: bool
    why: str


def charge_request(
    mode: str, *, charger_connected: bool, request_input: bool, power_down: bool
) -> Request:
    """`charge_control.mode`: always, charger_connected or the charge_request input."""
    if mode == "always":
        r = Request(True, "mode_always")
    elif mode == "charger_connected":
        r = Request(charger_connected, "charger_connected")
    else:
        r = Request(request_input, "charge_request")
    return Request(False, r.why) if power_down else r


def discharge_request(mode: str, *, charger_connected: bool, request_input: bool) -> Request:
    """`discharge_control.mode`: always, charger_disconnected or the discharge_request input."""
    if mode == "always":
        return Request(True, "mode_always")
    if mode == "charger_disconnected":
        return Request(not charger_connected, "charger_disconnected")
    return Request(request_input, "discharge_request")


@dataclass(frozen=True)
class Contactors:
    """The contactor decisions of one step."""

    charge_closed: bool
    allow: bool  # allow-charging: charge contactor closed, request present, no end of charge
    discharge_closed: bool
    charge: Request
    discharge: Request


def decide_contactors(
    now_s: float,
    b: Blocks,
    charge: Request,
    discharge: Request,
    charge_ctl: ContactorControl,
    discharge_ctl: ContactorControl,
    *,
    end_of_charge: bool,
) -> Contactors:
    """Step both contactors' Ton/Toff timing under what blocks them."""
    charge_closed = charge_ctl.update(
        now_s=now_s, request=charge.on, blocked=bool(b.charge), hold_open=bool(b.pending_charge)
    )
    discharge_closed = discharge_ctl.update(
        now_s=now_s,
        request=discharge.on,
        blocked=bool(b.discharge),
        hold_open=bool(b.pending_discharge),
    )
    allow = charge_closed and charge.on and not end_of_charge
    return Contactors(charge_closed, allow, discharge_closed, charge, discharge)
