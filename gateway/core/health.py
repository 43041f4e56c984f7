"""The gateway's own health counters (Prometheus), shared by every component.

Measurement gauges (cells, pack) are rendered from the state at scrape time by the
Prometheus publisher; this module holds only counters that components increment.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds. A Logic board reply takes ~5-20 ms of wire time at 115,200 Bd, up to the timeout.
POLL_LATENCY_BUCKETS_S = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
# Seconds from the first sample beyond a limit to the relay command: the configured set
# delay (typically 0-10 s) plus the engine's own latency.
REACTION_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class Health:
    """Counters and gauges about the gateway itself."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.polls = Counter(
            "bms_logic_polls", "Logic board polls attempted.", ["board"], registry=registry
        )
        self.poll_errors = Counter(
            "bms_logic_poll_errors",
            "Logic board polls that failed, by kind (timeout, crc, malformed, exception, io).",
            ["board", "kind"],
            registry=registry,
        )
        self.component_restarts = Counter(
            "bms_component_restarts",
            "Adapter/publisher crashes, each followed by a restart with backoff.",
            ["component"],
            registry=registry,
        )
        self.bus_drops = Counter(
            "bms_bus_dropped_events",
            "Events dropped from a full subscriber queue.",
            ["subscriber"],
            registry=registry,
        )
        self.mqtt_publishes = Counter(
            "bms_mqtt_publishes", "MQTT messages published.", ["topic"], registry=registry
        )
        self.mqtt_reconnects = Counter(
            "bms_mqtt_reconnects",
            "MQTT (re)connection attempts that failed or dropped.",
            registry=registry,
        )
        self.mqtt_connected = Gauge(
            "bms_mqtt_connected", "1 while connected to the broker.", registry=registry
        )
        self.poll_latency = Histogram(
            "bms_logic_poll_latency_seconds",
            "Time from sending a Logic board request to its decoded reply (answered polls).",
            buckets=POLL_LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.protection_reaction = Histogram(
            "bms_protection_reaction_seconds",
            "Time from the first sample beyond a protection limit to the relay command it "
            "caused (includes the configured set delay), by error.",
            ["error"],
            buckets=REACTION_BUCKETS_S,
            registry=registry,
        )

    def known_subscriber(self, subscriber: str) -> None:
        """Create the subscriber's drop counter at 0 (so `rate()` sees its first drop)."""
        self.bus_drops.labels(subscriber=subscriber)

    def known_boards(self, boards: Iterable[int], error_kinds: Iterable[str]) -> None:
        """Create every board's poll and poll-error series at 0."""
        kinds = tuple(error_kinds)
        for board in boards:
            self.polls.labels(board=str(board))
            for kind in kinds:
                self.poll_errors.labels(board=str(board), kind=kind)

    def known_errors(self, errors: Iterable[str]) -> None:
        """Create the protection reaction histogram of every error name at 0."""
        for error in errors:
            self.protection_reaction.labels(error=error)

    def count_bus_drop(self, subscriber: str) -> None:
        """Count one dropped event."""
        self.bus_drops.labels(subscriber=subscriber).inc()
