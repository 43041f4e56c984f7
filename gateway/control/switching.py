"""Charge and discharge control: request, Ton/Toff and blocking (vendor "Charging control").

`ContactorControl` is one contactor's timing: it closes once its request has been present
(and nothing blocks it) for `ton_s`, opens `toff_s` after the request goes away, and opens
at once when something blocks it. `EndOfCharge` is the end-of-charge latch with its
recharge hysteresis: above `end_of_charge_voltage` only allow-charging drops.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ContactorControl:
    """Ton/Toff timing of one contactor."""

    ton_s: float
    toff_s: float
    closed: bool = False
    request_since_s: float | None = None
    gone_since_s: float | None = None

    def update(
        self, *, now_s: float, request: bool, blocked: bool, hold_open: bool = False
    ) -> bool:
        """Return whether the contactor is closed after this cycle.

        `hold_open`: a blocking protection sees a breach that is not debounced yet; an open
        contactor does not close into it (a closed one stays closed until the error sets).
        """
        if blocked:
            self.closed = False
            self.request_since_s = self.gone_since_s = None
            return False
        if request:
            self.gone_since_s = None
            if not self.closed:
                if self.request_since_s is None:
                    self.request_since_s = now_s
                if now_s - self.request_since_s >= self.ton_s - 1e-9 and not hold_open:
                    self.closed = True
        else:
            self.request_since_s = None
            if self.closed:
                if self.gone_since_s is None:
                    self.gone_since_s = now_s
                if now_s - self.gone_since_s >= self.toff_s - 1e-9:
                    self.closed = False
                    self.gone_since_s = None
        return self.closed

    def due_s(self) -> float | None:
        """Clock time at which a pending Ton or Toff falls due (None: nothing pending)."""
        if not self.closed and self.request_since_s is not None:
            return self.request_since_s + self.ton_s
        if self.closed and self.gone_since_s is not None:
            return self.gone_since_s + self.toff_s
        return None

    def waiting(self, now_s: float) -> str | None:
        """Describe a pending Ton/Toff, for reasons."""
        if not self.closed and self.request_since_s is not None:
            return f"ton {max(0.0, self.ton_s - (now_s - self.request_since_s)):.1f}s left"
        if self.closed and self.gone_since_s is not None:
            return f"toff {max(0.0, self.toff_s - (now_s - self.gone_since_s)):.1f}s left"
        return None


@dataclass
class EndOfCharge:
    """Set when a cell exceeds the end-of-charge voltage; reset when all are below recharge."""

    active: bool = False
    since_s: float | None = None

    def update(
        self,
        *,
        now_s: float,
        cell_max_v: float | None,
        end_of_charge_v: float,
        recharge_v: float,
    ) -> bool | None:
        """Return True on the rising edge, False on the falling edge, None otherwise."""
        if cell_max_v is None:
            return None
        if not self.active and cell_max_v > end_of_charge_v:
            self.active, self.since_s = True, now_s
            return True
        if self.active and cell_max_v < recharge_v:
            self.active, self.since_s = False, now_s
            return False
        return None
