"""The engine's errors: debounced verdicts, latches, acknowledgement and go-safe requests.

`ErrorBook` keeps one `Debounced` per error name, the errors a bridged BMS reports as
points `error.<name>`, the latches and persisted go-safe requests (`PersistedState`: a
release takes effect only once written), the faults other layers report, and when each
raised error's breach began (for the reaction-time histogram). The engine calls it between
and at the start of its steps; it never decides a relay itself.

The one acknowledgement rule (the MQTT `ack` command, the Modbus error reset, the point
`request.error_reset`): a latch is released only when its condition has cleared (the
verdict is back within the release threshold, data fresh); one still in breach, unknown or
between trip and release stays latched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from gateway.control.debounce import Debounced
from gateway.control.detect import SELF_TIMED, Verdict
from gateway.control.latches import PERSISTENCE_FAULT
from gateway.control.measure import ERROR_POINT_PREFIX, ERROR_RESET_POINT
from gateway.control.names import ERROR_NAMES
from gateway.control.persisted import PersistedState
from gateway.control.table import BY_NAME, Params
from gateway.core.events import ErrorCleared, ErrorRaised, Notice

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger("gateway.control.engine")


def reset_counter(points: Mapping[str, object]) -> float | None:
    """The value of the error-reset counter point `request.error_reset` (None: absent)."""
    value = points.get(ERROR_RESET_POINT)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class ErrorBook:
    """Debounced errors, bridged-BMS errors, latches, faults and go-safe requests."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        started_s: float,
        wall_iso: Callable[[float], str | None],
        points: Mapping[str, object],
    ) -> None:
        self._wall_iso = wall_iso
        self.errors: dict[str, Debounced] = {n: Debounced() for n in ERROR_NAMES}
        self.point_errors: set[str] = set()
        self.go_safe_requests: set[str] = set()
        # Faults reported by other layers (relay driver, state writer): error -> reason.
        self.faults: dict[str, str] = {}
        self.breach_since_s: dict[str, float] = {}  # raised errors awaiting a relay command
        self.pending: list[Notice] = []  # notices from between steps, for the next step
        # `request.error_reset` is a counter: the value at start is the baseline.
        self._reset_seen = reset_counter(points) or 0.0
        # Latches and persisted go-safe requests; releases wait until written (persisted.py).
        self.persisted = PersistedState(config)
        self.latched = self.persisted.latched
        self.go_safe_requests.update(self.persisted.go_safe)
        for name, info in self.latched.items():
            e = self.errors[name]
            e.active, e.latched, e.since_s = True, True, started_s
            e.detail = f"latched before restart: {info.get('detail', '')}".strip()
            log.warning("error %s is latched from before the restart (ack to clear)", name)

    def active(self) -> list[str]:
        """The active errors (debounced here or reported by a bridged BMS), in table order."""
        return [n for n in ERROR_NAMES if self.errors[n].active or n in self.point_errors]

    def step(
        self,
        now_s: float,
        verdicts: dict[str, Verdict],
        protections: Mapping[str, Params],
        points: Mapping[str, object],
    ) -> list[Notice]:
        """Debounce this step's verdicts, then apply an error reset by the counter point.

        Returns the notices of this step, after those gathered since the last one.
        """
        notices = self.take_pending()
        notices += self.debounce(now_s, verdicts, protections, points)
        self.reset_by_counter(now_s, points)
        return notices + self.take_pending()

    def take_pending(self) -> list[Notice]:
        """The notices gathered since the last step (and forget them)."""
        notices, self.pending = self.pending, []
        return notices

    # --- operator commands ----------------------------------------------------------

    def request_go_safe(self, source: str, active: bool, since: str | None) -> None:
        """Record a go-safe request or release; a release waits until written."""
        if active:
            self.go_safe_requests.add(source)
            self.persisted.go_safe_changed(source, True, since)
        elif self.persisted.go_safe_changed(source, False, since):
            self.go_safe_requests.discard(source)
        # else: released once the go-safe file without it is on disk (next steps)

    def reset(
        self, now_s: float, names: Iterable[str] | None = None
    ) -> tuple[list[str], list[str]]:
        """Acknowledge every latched error (of `names`; None: all) whose condition cleared.

        Returns the names cleared and the names kept.
        """
        cleared: list[str] = []
        kept: list[str] = []
        wanted = None if names is None else set(names)
        for name in ERROR_NAMES:
            if wanted is not None and name not in wanted:
                continue
            e = self.errors[name]
            if not (e.active and e.latched):
                continue
            if e.bad_since_s is None and e.ok_since_s is not None:
                self._release_latch(name, now_s)
                cleared.append(name)
            else:
                kept.append(name)
        log.warning(
            "error reset requested: cleared %s; still present %s",
            ", ".join(cleared) or "none",
            ", ".join(kept) or "none",
        )
        return cleared, kept

    def reset_by_counter(self, now_s: float, points: Mapping[str, object]) -> None:
        """Reset errors when the counter point `request.error_reset` went up."""
        reset = reset_counter(points)
        if reset is not None and reset != self._reset_seen:
            if reset > self._reset_seen:  # a decrease (a restarted source) only rebases
                self.reset(now_s)
            self._reset_seen = reset

    # --- latches --------------------------------------------------------------------

    def _release_latch(self, name: str, now_s: float) -> None:
        """Release once the latch file without it is on disk (at once when written inline)."""
        self.persisted.release_latch(name)
        self.apply_releases(now_s)

    def apply_releases(self, now_s: float) -> None:
        """Apply the releases now durably written; report a state that cannot be written."""
        for kind, name in self.persisted.due():
            if kind == "go_safe":
                self.go_safe_requests.discard(name)
            elif self.errors[name].acknowledge(now_s) == "cleared":
                self.pending.append(ErrorCleared(at_s=now_s, error=name))
        fault = self.persisted.fault
        if fault:
            self.faults[PERSISTENCE_FAULT] = fault
        else:
            self.faults.pop(PERSISTENCE_FAULT, None)

    # --- debouncing -----------------------------------------------------------------

    def debounce(
        self,
        now_s: float,
        verdicts: dict[str, Verdict],
        protections: Mapping[str, Params],
        points: Mapping[str, object],
    ) -> list[Notice]:
        """Debounce this step's verdicts and the bridged BMS's errors; return the notices."""
        notices: list[Notice] = []
        latch_changed = False
        for name in ERROR_NAMES:
            p = protections[name]
            v = verdicts.get(name)
            e = self.errors[name]
            t = e.update(
                None if v is None else v.state,
                now_s=now_s,
                set_delay_s=0.0 if name in SELF_TIMED else p.set_delay_s,
                clear_delay_s=p.clear_delay_s,
                latch=p.latch,
                detail="" if v is None else v.detail,
                seen_s=None if v is None else v.at_s,
            )
            if t == "raised":
                row = BY_NAME[name]
                # self-timed rows apply the set delay in the detector: the breach began then
                first = now_s - p.set_delay_s if name in SELF_TIMED else e.bad_since_s
                if first is not None:
                    self.breach_since_s[name] = first
                detail = e.detail
                notices.append(
                    ErrorRaised(at_s=now_s, error=name, severity=row.severity, detail=detail)
                )
                log.warning("error raised: %s (%s) %s", name, row.severity, detail)
                if e.latched:
                    self.latched[name] = {"since": self._wall_iso(now_s), "detail": detail}
                    latch_changed = True
            elif t == "cleared":
                self.breach_since_s.pop(name, None)
                notices.append(ErrorCleared(at_s=now_s, error=name))
                log.info("error cleared: %s", name)
                if self.latched.pop(name, None) is not None:
                    latch_changed = True
        notices += self._bridged(now_s, points)
        if latch_changed:
            self.persisted.save_latches()
        return notices

    def _bridged(self, now_s: float, points: Mapping[str, object]) -> list[Notice]:
        """Errors reported by a bridged BMS (points `error.<name>`), already debounced there."""
        notices: list[Notice] = []
        reported = {
            key[len(ERROR_POINT_PREFIX) :]
            for key, value in points.items()
            if key.startswith(ERROR_POINT_PREFIX) and value is True
        } & set(ERROR_NAMES)
        for name in sorted(reported - self.point_errors):
            if not self.errors[name].active:
                notices.append(
                    ErrorRaised(
                        at_s=now_s,
                        error=name,
                        severity=BY_NAME[name].severity,
                        detail="reported by the bridged BMS",
                    )
                )
        for name in sorted(self.point_errors - reported):
            if not self.errors[name].active:
                notices.append(ErrorCleared(at_s=now_s, error=name))
        self.point_errors = reported
        return notices
