"""systemd notifications (`Type=notify`, `WatchdogSec=`) in pure Python, no extra daemon.

`supervise(ctx)` runs as one task of the gateway's TaskGroup: it sends `READY=1` once every
component has started, `WATCHDOG=1` every half watchdog period while the control engine keeps
cycling (the `bms_engine_cycles_total` counter grows; without an engine, while the event loop
runs), and `STOPPING=1` when cancelled. Without `NOTIFY_SOCKET` in the environment it returns
at once: nothing is sent and nothing fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry

from gateway.core.clock import Clock

log = logging.getLogger(__name__)

ENGINE_CYCLES = "bms_engine_cycles_total"


class Notifier:
    """Sends state lines to the service manager's datagram socket (a no-op without one)."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._failed = False

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        """Build from `NOTIFY_SOCKET` (path, or `@name` for the abstract namespace)."""
        return cls((os.environ if env is None else env).get("NOTIFY_SOCKET") or None)

    @property
    def enabled(self) -> bool:
        """True when a service manager listens."""
        return self.address is not None

    def notify(self, *states: str) -> bool:
        """Send `KEY=value` lines in one datagram; return False if it could not be sent."""
        if self.address is None:
            return False
        addr = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto("\n".join(states).encode(), addr)
        except OSError as err:
            if not self._failed:  # log the transition only
                log.warning("sd_notify to %s failed: %s", self.address, err)
            self._failed = True
            return False
        if self._failed:
            log.info("sd_notify to %s works again", self.address)
        self._failed = False
        return True

    def close(self) -> None:
        """Close the socket (idempotent)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Return half the watchdog period systemd asks for, or None when no watchdog is set."""
    env = os.environ if env is None else env
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid is not None and pid != str(os.getpid())):
        return None
    return usec / 2_000_000


def engine_progress(registry: CollectorRegistry) -> Callable[[], float | None]:
    """Return a probe of the engine's cycle counter (None when there is no engine)."""
    return lambda: registry.get_sample_value(ENGINE_CYCLES)


async def run_notifier(
    notifier: Notifier,
    clock: Clock,
    interval_s: float | None,
    progress: Callable[[], float | None],
) -> None:
    """READY=1 now, WATCHDOG=1 every `interval_s` while `progress()` grows, STOPPING=1 on exit."""
    if not notifier.enabled:
        return
    notifier.notify("READY=1", "STATUS=running")
    try:
        if interval_s is None:
            await asyncio.Event().wait()  # nothing to feed; wait for cancellation
            return
        last = progress()
        while True:
            await clock.sleep(interval_s)
            now = progress()
            if now is None or last is None or now > last:
                notifier.notify("WATCHDOG=1")
            else:
                # A stalled engine must not be vouched for: systemd will restart us.
                log.error("control engine made no progress in %.1f s: watchdog not fed", interval_s)
            last = now
    finally:
        notifier.notify("STOPPING=1")
        notifier.close()


async def supervise(registry: CollectorRegistry, clock: Clock) -> None:
    """Notify systemd for this process (no-op unless started by systemd with Type=notify)."""
    await run_notifier(Notifier.from_env(), clock, watchdog_interval_s(), engine_progress(registry))
