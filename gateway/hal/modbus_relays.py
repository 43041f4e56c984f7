"""Relays 1-4 on a Modbus relay module: fail-safe on their own link.

What the driver adds to the shared coil loop (`gateway.hal.modbus_io`):
- **read-back**: every sync writes the changed coils, then reads the coils back; the
  relay state the gateway publishes is this read-back (`confirmed`), never only what was
  commanded. A coil that reads other than commanded is a fault and is written again.
- **fault**: a transport failure (reset, refused, silent link, exception reply) or a
  read-back disagreement sets `fault` (driver, module address and the OS/Modbus reason);
  the engine raises the critical error `relay_driver_fault` from it, which opens every
  relay it can. The link reconnects with backoff; the fault clears on the first good sync.
- **module watchdog** (`module_watchdog: {address, value}`): written when the link comes
  up and refreshed every poll while the engine renews the relay lease, so a module that
  offers a communication watchdog opens its relays by itself when the gateway freezes,
  is killed or loses the link. Without one the module keeps its coils as last written.
- **writes without the event loop**: a command recorded from another thread (the lease
  watchdog, when the loop is blocked) is written at once from that thread.
"""

from __future__ import annotations

import logging
import threading
import time

from gateway.hal.backend import DriverError, LeasedRelays
from gateway.hal.base import RELAY_COUNT
from gateway.hal.modbus_io import CoilDriven
from gateway.hal.modbus_link import ModbusLink
from gateway.hal.modbus_options import ModbusRelayOptions

log = logging.getLogger(__name__)

FAULT_HOLD_S = 1.0  # a fault repaired by the next sync is still reported this long


def _word(closed: bool) -> str:
    return "closed" if closed else "open"


class ModbusRelays(CoilDriven, LeasedRelays):
    """Relays 1-4 on a relay module's coils, read back after every write."""

    label = "modbus relay driver"

    def __init__(self, opts: ModbusRelayOptions, link: ModbusLink) -> None:
        LeasedRelays.__init__(self)
        self.relay_opts = opts
        self._bind(opts, link, dict(zip(range(1, RELAY_COUNT + 1), opts.coils, strict=True)))
        self._sync_lock = threading.Lock()  # the loop's worker thread vs the watchdog thread
        self._confirmed: dict[int, bool] = {}
        self._link_fault: str | None = None
        self._mismatch: str | None = None
        self._watchdog_armed = False
        self._watchdog_written_s: float | None = None
        self._held: tuple[str, float] | None = None
        self.readback_mismatches = 0
        self.watchdog_writes = 0
        self._start()

    # --- what the engine and the publishers see --------------------------------------

    @property
    def fault(self) -> str | None:
        """The link failure or read-back disagreement, naming the module (None: healthy).

        A fault is reported for at least `FAULT_HOLD_S` even when the next sync already
        repaired it (a coil written again, a reconnect), so the engine always sees it.
        """
        reason = self._link_fault or self._mismatch
        if reason is not None:
            self._held = (reason, time.monotonic() + FAULT_HOLD_S)
        elif self._held is not None and time.monotonic() < self._held[1]:
            reason = self._held[0]
        if reason is None:
            return None
        return f"{self.label} at {self.link.where}: {reason}"

    def _hold(self, reason: str) -> None:
        self._held = (reason, time.monotonic() + FAULT_HOLD_S)

    @property
    def errors_total(self) -> int:
        """Failed syncs (link errors, counted once per poll) plus read-back disagreements."""
        return self.write_errors + self.sync_errors + self.readback_mismatches

    def confirmed(self, relay: int) -> bool | None:
        """The last read-back of one relay's coil (None before the first one)."""
        self._check_number(relay)
        return self._confirmed.get(relay)

    def open_all(self) -> None:
        """Record every relay open, then write them in one sync (never raises).

        From the lease watchdog thread the write happens there, after the template's lock
        is released, so the event loop never waits on the network for it.
        """
        with self._batch():
            super().open_all()

    def check_lease(self, now_s: float) -> bool:
        """The template's lease check; the coils are written after its lock is released."""
        with self._batch():
            return super().check_lease(now_s)

    # --- the I/O, in a worker thread (or the watchdog thread) ------------------------

    def sync_once(self, urgent: bool = False) -> None:
        """Write changed coils, refresh the module watchdog, read every coil back."""
        with self._sync_lock:
            if self._closed_down:
                return
            try:
                self.writer.sync(urgent)
                self._refresh_module_watchdog(urgent)
                self._read_back(urgent)
            except DriverError as err:
                self._set_link_fault(str(err))
                raise
            self._set_link_fault(None)

    def _read_back(self, urgent: bool) -> None:
        coils = self.writer.coils
        first = min(coils.values())
        count = max(coils.values()) - first + 1
        reply = self.link.call(
            "read_coils", first, count=count, device_id=self.opts.device_id, urgent=urgent
        )
        bits = list(reply.bits)
        if len(bits) < count:
            raise DriverError(f"read_coils at {self.link.where}: {len(bits)} of {count} coils")
        self._confirmed = {n: bool(bits[a - first]) for n, a in coils.items()}
        desired, dirty = self.writer.desired, self.writer.dirty
        wrong = [n for n, c in self._confirmed.items() if n not in dirty and c != desired[n]]
        if not wrong:
            if self._mismatch is not None:
                log.info("%s at %s: coils read back as commanded", self.label, self.link.where)
            self._mismatch = None
            return
        self.readback_mismatches += 1
        n = wrong[0]
        mismatch = (
            f"relay {n} (coil {coils[n]}) reads {_word(self._confirmed[n])}, "
            f"commanded {_word(desired[n])}"
        )
        if mismatch != self._mismatch:
            log.error("%s at %s: %s", self.label, self.link.where, mismatch)
        self._mismatch = mismatch
        self._hold(mismatch)
        dirty.update(wrong)  # write them again next time

    def _refresh_module_watchdog(self, urgent: bool) -> None:
        wd = self.relay_opts.module_watchdog
        if wd is None:
            return
        if self._watchdog_armed and self._lease_until_s is None:
            return  # the engine stopped renewing the lease: let the module's watchdog trip
        now = time.monotonic()
        last = self._watchdog_written_s
        if last is not None and now - last < self.opts.poll_interval_s * 0.9:
            return
        self.link.call(
            "write_register", wd.address, wd.value, device_id=self.opts.device_id, urgent=urgent
        )
        self._watchdog_armed = True
        self._watchdog_written_s = now
        self.watchdog_writes += 1

    def _set_link_fault(self, reason: str | None) -> None:
        if reason == self._link_fault:
            return
        if reason is None:
            log.info("%s at %s: link recovered", self.label, self.link.where)
            self._watchdog_written_s = None  # re-arm at once: the module may have rebooted
        else:
            self._hold(reason)
            if self._link_fault is None:
                log.error("%s: %s", self.label, reason)
        self._link_fault = reason
