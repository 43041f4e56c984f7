"""The debouncer: verdicts over time -> active errors (set delay, clear delay, latch).

An error sets when its verdict stays `breach` for the set delay, and clears when it stays
`ok` (within the release threshold, "tolerant") for the clear delay. `band` (between trip
and release) and `unknown` (data missing whose root-cause diagnosis is on, see detect.py)
hold the present state and restart the pending timers: nothing sets, clears or latches on
missing data. A latched error stays active until `acknowledge`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.control.detect import State

Transition = Literal["raised", "cleared"]


@dataclass
class Debounced:
    """The debounce state of one error (or one debounced level)."""

    active: bool = False
    latched: bool = False
    since_s: float | None = None  # when it became active / inactive
    bad_since_s: float | None = None
    ok_since_s: float | None = None
    detail: str = ""

    def update(
        self,
        state: State | None,
        *,
        now_s: float,
        set_delay_s: float,
        clear_delay_s: float,
        latch: bool = False,
        detail: str = "",
        seen_s: float | None = None,
    ) -> Transition | None:
        """Feed one verdict (None = protection disabled); return a transition, if any.

        `seen_s`: clock time of the reading judged; a breach or release is timed from the
        reading that first showed it (never later than `now_s`), not from this decision.
        """
        at_s = now_s if seen_s is None else min(now_s, seen_s)
        if state is None:
            self.bad_since_s = self.ok_since_s = None
            if self.active:
                self.active, self.latched, self.since_s = False, False, now_s
                return "cleared"
            return None
        if state == "breach":
            self.ok_since_s = None
            if self.bad_since_s is None:
                self.bad_since_s = at_s
            if detail:
                self.detail = detail
        elif state == "ok":
            self.bad_since_s = None
            if self.ok_since_s is None:
                self.ok_since_s = at_s
        else:  # band or unknown: neither a breach nor a release
            self.bad_since_s = None
            self.ok_since_s = None
        if not self.active:
            if self.bad_since_s is not None and now_s - self.bad_since_s >= set_delay_s - 1e-9:
                self.active, self.latched, self.since_s = True, latch, now_s
                return "raised"
            return None
        if (
            not self.latched
            and self.ok_since_s is not None
            and now_s - self.ok_since_s >= clear_delay_s - 1e-9
        ):
            self.active, self.since_s = False, now_s
            return "cleared"
        return None

    def due_s(self, set_delay_s: float, clear_delay_s: float) -> float | None:
        """Clock time at which a pending set or clear falls due (None: nothing pending)."""
        if not self.active and self.bad_since_s is not None:
            return self.bad_since_s + set_delay_s
        if self.active and not self.latched and self.ok_since_s is not None:
            return self.ok_since_s + clear_delay_s
        return None

    def acknowledge(self, now_s: float) -> Transition | None:
        """Release a latch; the error then clears as an unlatched one does.

        That is once its value has stayed within the release threshold for the clear delay
        (checked by the next `update`), never at once: a value between trip and release, or
        a release younger than the clear delay, keeps the error active.
        """
        del now_s
        self.latched = False
        return None
