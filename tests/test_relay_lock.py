"""The lease watchdog thread and the event loop never drive the relays at the same time."""

from __future__ import annotations

import threading

from gateway.hal.backend import LeasedRelays


class _Probe(LeasedRelays):
    """Counts callers inside `_write` at once; yields the GIL inside to invite a race."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.overlaps = 0
        self._start()

    def _write(self, relay: int, closed: bool) -> None:
        self.inside += 1
        if self.inside > 1:
            self.overlaps += 1
        for _ in range(200):  # pure-Python work: the interpreter switches threads here
            pass
        self.inside -= 1


def test_watchdog_thread_and_loop_do_not_interleave_relay_writes() -> None:
    relays = _Probe()
    stop = threading.Event()

    def watchdog() -> None:
        t = 0.0
        while not stop.is_set():
            t += 1.0
            relays.renew_lease(t - 0.5)  # always lapsed: every check opens everything
            relays.check_lease(t)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        for i in range(20000):
            relays.set_relay(1 + i % 4, i % 2 == 0)
    finally:
        stop.set()
        thread.join()
    assert relays.overlaps == 0
    relays.close()
    assert not any(relays.relay_closed(n) for n in range(1, 5))
