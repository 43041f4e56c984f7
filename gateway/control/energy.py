"""Energy and charge totals and equivalent full cycles, persisted across restarts.

`EnergyCounter` integrates the pack power and current over time (trapezoid rule on the
measurement timestamps): charging (current > 0) adds to `energy_in_kwh`/`charge_in_ah`,
discharging to `energy_out_kwh`/`charge_out_ah`. `cycles` is the discharged charge divided
by `pack.capacity_ah` (equivalent full cycles). A gap longer than `MAX_GAP_S` between two
readings is not integrated (stale data is not energy). The totals only ever grow.

`EnergyComponent` feeds the counter from `PackMeasured` events (the pack voltage comes from
the state), writes the totals into `state.energy` for every publisher, and saves them to
`<gateway.state_dir>/energy.json` every `SAVE_INTERVAL_S` and on shutdown (in a thread: the
control path never waits on the disk). An unreadable file starts from zero, with an error log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.bus import Overflow
from gateway.core.events import PackMeasured
from gateway.core.state import EnergyTotals

if TYPE_CHECKING:
    from gateway.core.context import GatewayContext

log = logging.getLogger(__name__)

ENERGY_FILE = "energy.json"
MAX_GAP_S = 60.0  # readings further apart than this are not integrated
SAVE_INTERVAL_S = 60.0
SECONDS_PER_HOUR = 3600.0


@dataclass
class _Sample:
    at_s: float
    voltage_v: float
    current_a: float


class EnergyCounter:
    """Integrates power and current into monotonic totals (pure: no clock, no I/O)."""

    def __init__(self, capacity_ah: float, totals: EnergyTotals | None = None) -> None:
        self.capacity_ah = capacity_ah
        self.totals = totals or EnergyTotals()
        self._last: _Sample | None = None

    def add(self, at_s: float, voltage_v: float | None, current_a: float | None) -> None:
        """Integrate from the previous reading to this one (None or non-finite: a gap)."""
        if (
            voltage_v is None
            or current_a is None
            or not math.isfinite(voltage_v)
            or not math.isfinite(current_a)
        ):
            self._last = None
            return
        now = _Sample(at_s, voltage_v, current_a)
        last, self._last = self._last, now
        if last is None:
            return
        dt_s = at_s - last.at_s
        if dt_s <= 0 or dt_s > MAX_GAP_S:
            return
        self._integrate(last, now, dt_s)

    def _integrate(self, a: _Sample, b: _Sample, dt_s: float) -> None:
        t = self.totals
        # Split the interval where the current crosses zero, so in and out stay apart.
        if (a.current_a > 0) != (b.current_a > 0) and a.current_a != b.current_a:
            frac = a.current_a / (a.current_a - b.current_a)
            if 0.0 < frac < 1.0:
                mid = _Sample(
                    a.at_s + frac * dt_s, a.voltage_v + frac * (b.voltage_v - a.voltage_v), 0.0
                )
                self._integrate(a, mid, frac * dt_s)
                self._integrate(mid, b, (1.0 - frac) * dt_s)
                return
        ah = (a.current_a + b.current_a) / 2.0 * dt_s / SECONDS_PER_HOUR
        wh = (a.voltage_v * a.current_a + b.voltage_v * b.current_a) / 2.0 * dt_s / SECONDS_PER_HOUR
        if ah >= 0:
            t.charge_in_ah += ah
            t.energy_in_kwh += max(0.0, wh) / 1000.0
        else:
            t.charge_out_ah += -ah
            t.energy_out_kwh += max(0.0, -wh) / 1000.0
        t.cycles = t.charge_out_ah / self.capacity_ah if self.capacity_ah > 0 else 0.0


def energy_path(state_dir: Path) -> Path:
    """The energy totals file of a state directory."""
    return state_dir / ENERGY_FILE


def load_totals(state_dir: Path) -> EnergyTotals:
    """Read the persisted totals; a missing file is zero, a broken one is zero with an error."""
    path = energy_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return EnergyTotals()
    except (OSError, ValueError) as err:
        log.error("energy counter file %s is unreadable (%s): counting from zero", path, err)
        return EnergyTotals()
    values: dict[str, float] = {}
    if isinstance(data, dict):
        for key in asdict(EnergyTotals()):
            v = data.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                values[key] = max(0.0, float(v))
    return EnergyTotals(**values)


def save_totals(state_dir: Path, totals: EnergyTotals) -> bool:
    """Write the totals atomically; return False (and log) when the disk refuses."""
    path = energy_path(state_dir)
    tmp = path.with_suffix(".json.tmp")
    body: dict[str, Any] = asdict(totals)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(body), encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        log.error("cannot save the energy counters to %s: %s", path, err)
        return False
    return True


class TotalsFile:
    """The totals file, saved one write at a time and never an older snapshot over a newer.

    The periodic save runs on a worker thread; a shutdown cancels its await but not the
    thread, and the final save then ran beside it on the same temporary file: one rename
    failed and the older totals could land last (energy counted before the stop was lost).
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = threading.Lock()
        self._taken = 0  # snapshots handed out (on the event loop)
        self._written = 0  # the newest snapshot on disk

    def snapshot(self, totals: EnergyTotals) -> tuple[int, EnergyTotals]:
        """A numbered copy of `totals` to save (call on the event loop)."""
        self._taken += 1
        return self._taken, EnergyTotals(**asdict(totals))

    def save(self, number: int, totals: EnergyTotals) -> bool:
        """Write snapshot `number` unless a newer one is on disk already (any thread)."""
        with self._lock:
            if number <= self._written:
                return True
            ok = save_totals(self.state_dir, totals)
            if ok:
                self._written = number
            return ok


class EnergyComponent:
    """Keeps `state.energy` current and persisted."""

    name = "energy"

    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._state_dir = ctx.config.gateway.state_dir
        self._file = TotalsFile(self._state_dir)
        self.counter = EnergyCounter(ctx.config.pack.capacity_ah, load_totals(self._state_dir))
        ctx.store.state.energy = self.counter.totals
        # Keep-latest is fine: the integration uses the readings' own timestamps.
        self._sub = ctx.bus.subscribe("energy", PackMeasured, overflow=Overflow.KEEP_LATEST)

    async def run(self) -> None:
        """Integrate every current reading; save periodically and once more when cancelled."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._integrate(), name="energy:integrate")
                tg.create_task(self._save_loop(), name="energy:save")
        finally:
            self._file.save(*self._file.snapshot(self.counter.totals))

    async def _integrate(self) -> None:
        async for event in self._sub:
            if event.current_a is None:
                continue
            self.counter.add(event.at_s, self._ctx.store.state.pack_voltage_v, event.current_a)

    async def _save_loop(self) -> None:
        while True:
            await self._ctx.clock.sleep(SAVE_INTERVAL_S)
            await asyncio.to_thread(self._file.save, *self._file.snapshot(self.counter.totals))


def create(ctx: GatewayContext) -> EnergyComponent:
    """Build the energy counter component (always on: it costs one subscription)."""
    return EnergyComponent(ctx)
