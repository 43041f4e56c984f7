"""The BMS Main 2.x holding registers shared by its simulator and the gateway's own server.

The input-signal overrides: holding register 0x5100 + bit mirrors bit `bit` of input
register 0x2000, 0x5110 + bit mirrors IR 0x20F4; writing 0 forces the signal off, 1 forces
it on, 2 (or more) follows the physical input. 0x4000 selects the Logic board the board's
per-Logic registers show. (The input registers are described by the `bms-main-2x` profile.)
"""

from __future__ import annotations

UNIT_ID = 32
HR_LOGIC_SELECT = 0x4000
HR_OVERRIDE_1 = 0x5100  # + bit of IR 0x2000
HR_OVERRIDE_2 = 0x5110  # + bit of IR 0x20F4
OVERRIDE_FOLLOW = 2

INPUT_BITS_1 = {
    0: "battery_cover",
    1: "charger_connected",
    2: "power_down_request",
    3: "inhibit_charging",
    4: "inhibit_discharging",
    5: "charge_contactor_feedback",
    6: "discharge_contactor_feedback",
    7: "insulation_status",
    8: "charge_request",
    12: "charge_discharge_contactor_feedback",
}
INPUT_BITS_2 = {
    0: "fuse_2",
    1: "fuse_3",
    2: "circuit_breaker",
    3: "balancing_request",
    4: "close_main_contactor",
    5: "close_external_1",
}


def override_registers() -> dict[int, str]:
    """Holding register -> input signal name, for the documented override rule."""
    regs = {HR_OVERRIDE_1 + b: n for b, n in INPUT_BITS_1.items()}
    regs.update({HR_OVERRIDE_2 + b: n for b, n in INPUT_BITS_2.items()})
    return regs
