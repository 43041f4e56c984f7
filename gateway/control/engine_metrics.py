"""The engine component's Prometheus metrics (names documented in docs/protections.md).

Every known label value (each error, relay and driver) exists at 0 from the start, so
dashboards and `rate()` see a series before the first event.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.control.names import ERROR_NAMES

DRIVERS = ("relays", "outputs", "indicators")


class EngineMetrics:
    """Decision cycles, driver failures, raised errors, relay switches, lease lapses."""

    def __init__(self, registry: CollectorRegistry, relays: Iterable[int]) -> None:
        self.cycles = Counter(
            "bms_engine_cycles", "Control engine decision cycles.", registry=registry
        )
        self.driver_failures = Counter(
            "bms_engine_driver_failures",
            "Driver calls that raised (relays are opened on a relay failure).",
            ["driver"],
            registry=registry,
        )
        self.errors_raised = Counter(
            "bms_errors_raised", "Errors raised, by name.", ["error"], registry=registry
        )
        self.relay_switches = Counter(
            "bms_relay_switches", "Relay state changes.", ["relay"], registry=registry
        )
        self.lease_lapses = Counter(
            "bms_relay_lease_lapses",
            "Times the relay lease had lapsed when the engine came back.",
            registry=registry,
        )
        self.running = Gauge("bms_engine_running", "1 while the engine runs.", registry=registry)
        for error in ERROR_NAMES:
            self.errors_raised.labels(error=error)
        for relay in relays:
            self.relay_switches.labels(relay=str(relay))
        for driver in DRIVERS:
            self.driver_failures.labels(driver=driver)
