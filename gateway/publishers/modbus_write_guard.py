"""Which Modbus writes can make the battery less safe (pure; used by the Modbus server).

Modbus carries no identity and no secret, so the gateway cannot authorise a write: a write
that may let a relay close again is refused unless `modbus_server.allow_less_safe_writes`
says that whoever can reach the server may do so. Safer writes (forcing a safety input to
its alarm state, forcing a request off) are accepted whenever writes are enabled.

- Forcing a signal to its safe value: safer.
- Forcing it to the other value, or forcing a signal that has no safe direction (contactor
  feedback, fuses, insulation): less safe (it can hide a fault).
- Releasing an override (back to the physical input): less safe only when the override held
  the safe value.
- The error reset (HR 0x3000, an acknowledgement of latches): less safe.
"""

from __future__ import annotations

from gateway.protocols.main2x import OVERRIDE_FOLLOW

# signal -> the forced value (1 = on/active, 0 = off) that can only make the battery safer
SAFE_FORCE: dict[str, int] = {
    "battery_cover": 1,  # active = cover open: critical error, relays open
    "power_down_request": 1,
    "inhibit_charging": 1,
    "inhibit_discharging": 1,
    "go_safe": 1,
    "charger_connected": 0,
    "charge_request": 0,
    "discharge_request": 0,
    "balancing_request": 0,
    "close_main_contactor": 0,
    "close_external_1": 0,
}


def override_is_less_safe(signal: str, current_mode: int, new_mode: int) -> bool:
    """True when setting the override of `signal` from `current_mode` to `new_mode`
    (0 off, 1 on, 2 follow the input) may make the battery less safe."""
    safe = SAFE_FORCE.get(signal)
    if new_mode >= OVERRIDE_FOLLOW:
        return safe is not None and current_mode == safe
    if safe is None:
        return True
    return new_mode != safe
