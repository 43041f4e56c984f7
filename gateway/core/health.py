"""The gateway's own health counters (Prometheus), shared by every component.

Measurement gauges (cells, pack) are rendered from the state at scrape time by the
Prometheus publisher; this module holds only counters that components increment.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


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

    def count_bus_drop(self, subscriber: str) -> None:
        """Count one dropped event."""
        self.bus_drops.labels(subscriber=subscriber).inc()
