"""Notices of the CAN adapter (published on MQTT `events`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.events import Notice


@dataclass(frozen=True, slots=True, kw_only=True)
class CanPeerLost(Notice):
    """A CAN peer (inverter, charger, BMS Main, mapped message) went silent past its timeout."""

    peer: str
    silent_s: float | None  # None = never heard since start

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "can_peer_lost",
            "peer": self.peer,
            "silent_s": None if self.silent_s is None else round(self.silent_s, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CanPeerFound(Notice):
    """A CAN peer was heard (first time, or after being lost)."""

    peer: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "can_peer_found", "peer": self.peer}


@dataclass(frozen=True, slots=True, kw_only=True)
class CanBusWentDown(Notice):
    """The CAN bus could not be opened, failed or went bus-off; the gateway retries."""

    interface: str
    channel: str
    reason: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "can_bus_down",
            "interface": self.interface,
            "channel": self.channel,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CanBusCameUp(Notice):
    """The CAN bus is open (again)."""

    interface: str
    channel: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "can_bus_up", "interface": self.interface, "channel": self.channel}
