"""The two contactors step by step: Ton/Toff, end of charge, requests and blocks.

`ContactorStage` keeps the state that lives between steps (each contactor's
`ContactorControl` timing, the `EndOfCharge` latch) and runs the pure deciders of
`contactors` in order: what blocks each direction, what each mode requests
(`charge_control.mode`, `discharge_control.mode`), then both contactors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.control import contactors as ctr
from gateway.control.debounce import Debounced
from gateway.control.readings import InputSignals
from gateway.control.switching import ContactorControl, EndOfCharge

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.control.settings import ControlSettings


@dataclass(frozen=True)
class ContactorStep:
    """One step's contactor decision, what blocks each direction and the EOC edge."""

    c: ctr.Contactors
    b: ctr.Blocks
    eoc_edge: bool | None  # True: end of charge was reached this step


class ContactorStage:
    """The charge and discharge contactors and the end-of-charge latch."""

    def __init__(self, config: GatewayConfig, settings: ControlSettings) -> None:
        cc, dc = config.charge_control, config.discharge_control
        self.charge_mode, self.discharge_mode = cc.mode, dc.mode
        self.settings = settings
        self.charge = ContactorControl(cc.ton_s, cc.toff_s)
        self.discharge = ContactorControl(dc.ton_s, dc.toff_s)
        self.eoc = EndOfCharge()

    def step(
        self,
        now_s: float,
        *,
        ins: InputSignals,
        first_valid_scan: bool,
        controller: bool,
        stale: list[str],
        go_safe: bool,
        active: list[str],
        errors: dict[str, Debounced],
        cell_max_v: float | None,
    ) -> ContactorStep:
        """Decide both contactors at `now_s` (`cell_max_v`: None unless a complete scan)."""
        b = ctr.blocks(
            first_valid_scan=first_valid_scan,
            controller=controller,
            stale=stale,
            go_safe=go_safe,
            active=active,
            inhibit_charging=ins.inhibit_charging,
            inhibit_discharging=ins.inhibit_discharging,
            errors=errors,
        )
        creq = ctr.charge_request(
            self.charge_mode,
            charger_connected=ins.charger_connected,
            request_input=ins.charge_request,
            power_down=ins.power_down,
        )
        dreq = ctr.discharge_request(
            self.discharge_mode,
            charger_connected=ins.charger_connected,
            request_input=ins.discharge_request,
        )
        eoc_edge = self.eoc.update(
            now_s=now_s,
            cell_max_v=cell_max_v,
            end_of_charge_v=self.settings.end_of_charge_voltage,
            recharge_v=self.settings.recharge_voltage,
        )
        c = ctr.decide_contactors(
            now_s, b, creq, dreq, self.charge, self.discharge, end_of_charge=self.eoc.active
        )
        return ContactorStep(c, b, eoc_edge)
