"""Prometheus metrics of the CAN adapter (on the gateway's own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class CanMetrics:
    """Counters and gauges of one CAN port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.up = Gauge("bms_can_up", "1 while the CAN bus is open.", registry=registry)
        self.rx_frames = Counter("bms_can_rx_frames", "Frames received.", registry=registry)
        self.tx_frames = Counter("bms_can_tx_frames", "Frames sent.", registry=registry)
        self.tx_errors = Counter(
            "bms_can_tx_errors", "Frames that could not be sent.", registry=registry
        )
        self.rx_unknown = Counter(
            "bms_can_rx_unknown",
            "Frames with an id no shipped or configured DBC mapping handles.",
            registry=registry,
        )
        self.decode_errors = Counter(
            "bms_can_decode_errors",
            "Known frames that did not decode (wrong length, bad payload).",
            registry=registry,
        )
        self.rx_dropped = Counter(
            "bms_can_rx_dropped",
            "Frames dropped because the receive buffer was full.",
            registry=registry,
        )
        self.error_frames = Counter(
            "bms_can_error_frames", "CAN error frames received.", registry=registry
        )
        self.bus_errors = Counter(
            "bms_can_bus_errors",
            "Bus failures (open, receive or send errors) that closed the bus.",
            registry=registry,
        )
        self.bus_off = Counter("bms_can_bus_off", "Bus-off conditions seen.", registry=registry)
        self.reopens = Counter(
            "bms_can_reopens", "Attempts to reopen the bus after a failure.", registry=registry
        )
        self.peer_connected = Gauge(
            "bms_can_peer_connected",
            "1 while a CAN peer is heard within its timeout.",
            ["peer"],
            registry=registry,
        )
