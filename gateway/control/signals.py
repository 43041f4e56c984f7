"""The engine's signals and the on/off state of every relay/output function. Pure.

Signals (`SIGNAL_NAMES` + `EXTRA_SIGNALS`, docs/protections.md) are what the gateway
reports; functions are what a relay or an output can be assigned to (`relays.<n>.function`,
`outputs.<n>.function`): the signals plus the contactors, the heater, the cooler and `none`.
"""

from __future__ import annotations

from gateway.control.contactors import Contactors
from gateway.control.thermal import Thermal


def signal_states(
    c: Contactors,
    th: Thermal,
    *,
    charger_connected: bool,
    balancing: bool,
    low_soc: bool,
    high_charging_current: bool,
    critical: bool,
    end_of_charge: bool,
    go_safe: bool,
    any_error: bool,
) -> tuple[dict[str, bool], dict[str, bool]]:
    """Return (signals, functions) of one step."""
    signals: dict[str, bool] = {
        "charge_allowed": c.allow,
        "discharge_allowed": c.discharge_closed,
        "charger_connected": charger_connected,
        "heater": th.heater_on,
        "balancing": balancing,
        "low_soc": low_soc,
        "high_charging_current": high_charging_current,
        "critical_error": critical,
        "cooler": th.cooler_on,
        "end_of_charge": end_of_charge,
        "go_safe": go_safe,
        "any_error": any_error,
    }
    functions: dict[str, bool] = {
        **signals,
        "discharge_contactor": c.discharge_closed,
        "allow_charging": c.allow,
        "charge_contactor": c.charge_closed,
        "heater": th.heater_on,
        "cooler": th.cooler_on,
        "none": False,
    }
    return signals, functions
