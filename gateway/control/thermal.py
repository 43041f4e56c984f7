"""Decider: heater and cooler from the coldest/hottest trusted cell temperature. Pure.

A temperature that is unknown (a stale board, a missing, shorted or implausible sensor)
makes the level unknown: the heater never heats on a reading it does not trust.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.control.debounce import Debounced
from gateway.control.detect import State
from gateway.control.measure import Measurements


def level(value: float | None, *, above: float | None, below: float | None, tol: float) -> Any:
    """Verdict state of an indication level (`above` = trip above, `below` = trip below)."""
    if value is None:
        return None
    if above is not None:
        return "breach" if value > above else "ok" if value <= tol else "band"
    if below is not None:
        return "breach" if value < below else "ok" if value >= tol else "band"
    return None


@dataclass(frozen=True)
class Thermal:
    """Heater and cooler decisions, with what keeps each off."""

    tmin: float | None  # coldest cell, None unless every sensor of every board is trusted
    tmax: float | None
    heater_on: bool
    cooler_on: bool
    heater_off: list[str]
    cooler_off: list[str]


def decide_thermal(
    now_s: float,
    m: Measurements,
    heater_cfg: Any,
    cooler_cfg: Any,
    heater: Debounced,
    cooler: Debounced,
    *,
    stopping: list[str],
    active: list[str],
) -> Thermal:
    """Debounce both levels; `stopping` (stale data, go-safe, critical errors) keeps both off."""
    temps = m.temperatures() if m.cells_complete else []
    known = [t for t in temps if t is not None]
    trusted = bool(known) and len(known) == len(temps)
    tmin = min(known) if trusted else None
    tmax = max(known) if trusted else None
    h, c = heater_cfg, cooler_cfg
    h_state: State | None = (
        level(tmin, above=None, below=h.min, tol=h.tolerant) if h.enable else None
    )
    heater.update(
        h_state,
        now_s=now_s,
        set_delay_s=h.set_delay_ms / 1000,
        clear_delay_s=h.clear_delay_s,
        seen_s=m.cells_at_s,
    )
    cooler.update(
        level(tmax, above=c.max, below=None, tol=c.tolerant) if c.enable else None,
        now_s=now_s,
        set_delay_s=c.set_delay_ms / 1000,
        clear_delay_s=c.clear_delay_s,
        seen_s=m.cells_at_s,
    )
    heater_off = stopping + [n for n in h.off_on_errors if n in active]
    cooler_off = stopping + [n for n in c.off_on_errors if n in active]
    return Thermal(
        tmin,
        tmax,
        heater.active and not heater_off,
        cooler.active and not cooler_off,
        heater_off,
        cooler_off,
    )
