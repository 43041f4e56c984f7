"""Notices of the Modbus adapter and server (MQTT `events`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.core.events import Notice


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceWentOffline(Notice):
    """A Modbus device failed `offline_after` poll cycles in a row."""

    device: str
    reason: str
    consecutive_failures: int

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "modbus_device_offline",
            "device": self.device,
            "reason": self.reason,
            "consecutive_failures": self.consecutive_failures,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceCameOnline(Notice):
    """A Modbus device answered a full poll cycle (first time, or after being offline)."""

    device: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "modbus_device_online", "device": self.device}


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorResetRequested(Notice):
    """A Modbus client wrote the error-reset register of the gateway's Modbus server."""

    source: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {"type": "error_reset_requested", "source": self.source}


@dataclass(frozen=True, slots=True, kw_only=True)
class SignalOverridden(Notice):
    """A Modbus client forced an input signal on/off, or released it (0x5100+bit rule)."""

    signal: str
    mode: str  # "off", "on", "physical"
    source: str

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "signal_overridden",
            "signal": self.signal,
            "mode": self.mode,
            "source": self.source,
        }
