"""Prometheus publisher: serves `ctx.registry` on `http://{metrics.host}:{metrics.port}/metrics`.

Battery and control gauges are not kept up to date by anyone: `StateCollector` renders them
from the state store at scrape time, from the table `STATE_METRICS` (one row per metric, see
docs/metrics.md); the pack gauges are the rows of the measurement table
(`gateway.publishers.measurements`; a `total` row is a counter). Unknown values (no reading
yet, offline board) are left out rather than exported as 0. The gateway's own counters live
in `gateway.core.health` and in the publishers that own them, all on the same registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from gateway.control.names import ERROR_NAMES
from gateway.core.context import GatewayContext
from gateway.core.state import GatewayState, StateStore
from gateway.publishers.measurements import MEASUREMENTS, Measurement

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0  # real time allowed for a client to send its request head
MAX_HEADER_LINES = 100
RETRY_BIND_S = 5.0

Sample = tuple[tuple[str, ...], float]


@dataclass(frozen=True, slots=True)
class StateMetric:
    """One gauge rendered from the state: name, help, label names and a sample function."""

    name: str
    help: str
    labels: tuple[str, ...]
    samples: Callable[[GatewayState], Iterable[Sample]]
    counter: bool = False  # a total that only grows (name ends in `_total`)

    def family(self) -> GaugeMetricFamily | CounterMetricFamily:
        """An empty metric family for this row."""
        if self.counter:
            return CounterMetricFamily(self.name, self.help, labels=self.labels)
        return GaugeMetricFamily(self.name, self.help, labels=self.labels)


def _one(value: float | None) -> Iterable[Sample]:
    return [] if value is None else [((), float(value))]


def _cells(s: GatewayState) -> Iterator[Sample]:
    for b in s.online_boards():
        for i, v in enumerate(b.cell_voltages_v, start=1):
            yield (str(b.board), str(i)), v


def _cell_temps(s: GatewayState) -> Iterator[Sample]:
    for b in s.online_boards():
        for i, t in enumerate(b.temperatures_c, start=1):
            if t is not None:
                yield (str(b.board), str(i)), t


def _board_temps(s: GatewayState) -> Iterator[Sample]:
    for b in s.online_boards():
        if b.board_temperature_c is not None:
            yield (str(b.board),), b.board_temperature_c


def _balancing(s: GatewayState) -> Iterator[Sample]:
    for b in s.online_boards():
        mask = b.balancing_mask
        for bit in range(mask.bit_length()):
            if mask >> bit & 1:
                yield (str(b.board), str(bit + 1)), 1.0


def _errors(s: GatewayState) -> Iterator[Sample]:
    active = set(s.control.errors_active)
    # Every known name always has a series (0 = not active); unknown active names too.
    for name in (*ERROR_NAMES, *sorted(active - set(ERROR_NAMES))):
        yield (name,), float(name in active)


def _measured(m: Measurement) -> Callable[[GatewayState], Iterable[Sample]]:
    """One gauge/counter from a table row, in base units (a `%` row: a 0..1 ratio)."""
    scale = 0.01 if m.unit == "%" else m.metric_scale

    def samples(s: GatewayState) -> Iterable[Sample]:
        value = m.value(s)
        return [] if value is None or not math.isfinite(value) else [((), value * scale)]

    return samples


def _points(s: GatewayState) -> Iterator[Sample]:
    for name, value in sorted(s.points.items()):
        if isinstance(value, bool | int | float) and math.isfinite(value):
            yield (name,), float(value)


STATE_METRICS: tuple[StateMetric, ...] = (
    StateMetric(
        "bms_cell_voltage_volts", "Cell voltage (online boards).", ("board", "cell"), _cells
    ),
    StateMetric(
        "bms_cell_temperature_celsius",
        "Cell temperature sensor reading (online boards, working sensors).",
        ("board", "sensor"),
        _cell_temps,
    ),
    StateMetric(
        "bms_board_temperature_celsius",
        "Temperature of the BMS Logic board itself.",
        ("board",),
        _board_temps,
    ),
    StateMetric(
        "bms_cell_balancing",
        "1 for each cell its Logic board reports as balancing (other cells have no series).",
        ("board", "cell"),
        _balancing,
    ),
    StateMetric(
        "bms_board_online",
        "1 while the Logic board answers its polls.",
        ("board",),
        lambda s: [((str(n),), float(b.online)) for n, b in sorted(s.boards.items())],
    ),
    StateMetric("bms_boards_online", "Logic boards online.", (), lambda s: _one(s.boards_online)),
    *(
        StateMetric(m.metric, m.help, (), _measured(m), counter=m.kind == "total")
        for m in MEASUREMENTS
        if "prometheus" in m.outputs
    ),
    StateMetric(
        "bms_input_closed",
        "1 while the dry-contact input is closed (after it was first read).",
        ("input",),
        lambda s: (
            []
            if s.inputs_updated_s is None
            else [((str(i),), float(c)) for i, c in enumerate(s.inputs, start=1)]
        ),
    ),
    StateMetric(
        "bms_control_running",
        "1 while the control engine runs.",
        (),
        lambda s: _one(float(s.control.running)),
    ),
    StateMetric(
        "bms_error_active",
        "1 while the protection error is active (one series per known error name).",
        ("error",),
        _errors,
    ),
    StateMetric(
        "bms_signal_active",
        "1 while the control signal is set.",
        ("signal",),
        lambda s: [((k,), float(v)) for k, v in sorted(s.control.signals.items())],
    ),
    StateMetric(
        "bms_relay_closed",
        "1 while the relay is commanded closed.",
        ("relay", "function"),
        lambda s: [
            ((str(n), sw.function), float(sw.on)) for n, sw in sorted(s.control.relays.items())
        ],
    ),
    StateMetric(
        "bms_output_on",
        "1 while the discrete output is on.",
        ("output", "function"),
        lambda s: [
            ((str(n), sw.function), float(sw.on)) for n, sw in sorted(s.control.outputs.items())
        ],
    ),
    StateMetric(
        "bms_indicator_on",
        "1 while the indicator LED is lit.",
        ("indicator",),
        lambda s: [((k,), float(v)) for k, v in sorted(s.control.indicators.items())],
    ),
    StateMetric(
        "bms_point_value",
        "Numeric or boolean point read from an external device (Modbus profile, CAN signal).",
        ("point",),
        _points,
    ),
)


class StateCollector:
    """Renders `STATE_METRICS` from the store's state at each scrape."""

    def __init__(self, store: StateStore) -> None:
        self._store = store

    def describe(self) -> list[Metric]:
        """Declare the metric names (for the registry's duplicate check)."""
        return [m.family() for m in STATE_METRICS]

    def collect(self) -> list[Metric]:
        """Build every gauge from the current state."""
        state = self._store.state
        families: list[Metric] = []
        for m in STATE_METRICS:
            family = m.family()
            for labels, value in m.samples(state):
                family.add_metric(list(labels), value)
            families.append(family)
        return families


class PrometheusPublisher:
    """Owns the HTTP server; `port` holds the bound port once `ready` is set."""

    name = "prometheus"

    def __init__(self, ctx: GatewayContext) -> None:
        self._ctx = ctx
        self._host = ctx.config.metrics.host
        self._requested_port = ctx.config.metrics.port
        self.port: int | None = None
        self.ready = asyncio.Event()
        self.collector = StateCollector(ctx.store)
        ctx.registry.register(self.collector)

    @property
    def url(self) -> str:
        """The metrics URL (after `ready`)."""
        return f"http://{self._host}:{self.port}/metrics"

    async def run(self) -> None:
        """Serve until cancelled; a port that cannot be bound is retried, never fatal."""
        complained = False
        while True:
            try:
                server = await asyncio.start_server(self._handle, self._host, self._requested_port)
            except OSError as err:
                if not complained:
                    log.error(
                        "metrics: cannot listen on %s:%d: %s; retrying every %.0f s",
                        self._host,
                        self._requested_port,
                        err,
                        RETRY_BIND_S,
                    )
                    complained = True
                await self._ctx.clock.sleep(RETRY_BIND_S)
                continue
            break
        async with server:
            self.port = int(server.sockets[0].getsockname()[1])
            log.info("metrics on %s", self.url)
            self.ready.set()
            await server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                request = (await reader.readline()).decode("latin-1").split()
                headers: dict[str, str] = {}
                for _ in range(MAX_HEADER_LINES if len(request) >= 2 else 0):
                    line = (await reader.readline()).decode("latin-1")
                    if line in ("\r\n", "\n", ""):
                        break
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
            status, ctype, body = self._respond(request, headers)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1"))
            if not request or request[0] != "HEAD":
                writer.write(body)
            await writer.drain()
        except (OSError, TimeoutError, UnicodeError) as err:
            log.debug("metrics: request failed: %s", err)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    def _respond(self, request: list[str], headers: dict[str, str]) -> tuple[str, str, bytes]:
        text = "text/plain; charset=utf-8"
        if len(request) < 2:
            return "400 Bad Request", text, b"bad request\n"
        method, path = request[0], request[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", text, b"method not allowed\n"
        if path == "/metrics":
            encoder, ctype = choose_encoder(headers.get("accept", ""))
            return "200 OK", ctype, encoder(self._ctx.registry)
        if path == "/":
            return "200 OK", "text/html; charset=utf-8", b'<a href="/metrics">metrics</a>\n'
        return "404 Not Found", text, b"not found\n"


def create(ctx: GatewayContext) -> PrometheusPublisher | None:
    """Entry point (`bms_gateway.publishers`: prometheus); None when `metrics.enabled` is false."""
    if not ctx.config.metrics.enabled:
        return None
    return PrometheusPublisher(ctx)
