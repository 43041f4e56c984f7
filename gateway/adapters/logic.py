"""The RS-485 link to the BMS Logic cell boards (Modbus RTU master, pymodbus).

Every `logic.poll_interval_s` the adapter reads each configured board with ONE
read-input-registers request from address 0 (`logic_map.registers_to_read`), decodes the
block and publishes a `BoardScanned` stamped with the clock time its reply arrived. A board
that fails `logic.offline_after` polls in a row goes offline (`BoardWentOffline`, one
WARNING); its next good reply brings it back (`BoardCameOnline`, one INFO). Every failure is
counted in `bms_logic_poll_errors_total{board,kind}`:

- `timeout`: no byte came back;
- `crc`: a reply addressed to the board arrived with a wrong CRC;
- `malformed`: bytes came back but no valid reply (short frame, noise), or a valid frame
  whose registers do not decode (wrong device id, counts, lengths, values);
- `exception`: the board answered with a Modbus exception reply;
- `io`: the serial port is missing or failed (reopened with backoff).

A failed read (timeout, CRC, malformed, exception) is retried at once, up to
`logic.retries` times (default 2) within the same poll cycle, before the board counts a
failure, so line noise that spoils one frame in ten costs a retry, not stale data or a
`logic_offline`. Retries are counted in `bms_logic_retries_total{board,kind}`; a board
already offline is not retried (a dead board must not stretch the cycle).

pymodbus is a transport behind this module: both its raised exceptions and its `isError()`
responses become the error types below, and nothing of it leaks to the bus.

After reading a board that answered, the adapter writes `state.control.balancing[board]`
(default 0) to holding registers 0-1 when it differs from the mask last written there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from prometheus_client import Counter, Gauge
from pymodbus.client import AsyncModbusSerialClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from gateway.adapters.logic_health import (
    KIND_CRC,
    KIND_EXCEPTION,
    KIND_MALFORMED,
    KIND_TIMEOUT,
    BoardExceptionReplyError,
    BoardTimeoutError,
    BoardTracker,
    LinkDownError,
    classify_garbage,
    error_kind,
)
from gateway.core.context import GatewayContext
from gateway.core.devices import device_problem
from gateway.core.errors import (
    AdapterUnavailableError,
    FrameCrcError,
    FrameError,
    FrameRangeError,
    FrameTruncatedError,
)
from gateway.core.supervise import reraise_swallowed_cancel
from gateway.protocols import logic_map

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0


class _NoResponseFilter(logging.Filter):
    """Drop pymodbus' per-timeout ERROR lines: the adapter counts and logs those itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "No response received" not in record.getMessage()


_NO_RESPONSE_FILTER = _NoResponseFilter()


# --- the component ----------------------------------------------------------------------


class LogicClient(Protocol):
    """What the adapter needs of its Modbus RTU master (pymodbus' serial client by default;
    `gateway.sim.memory_link.MemoryLogicClient` in scenarios)."""

    @property
    def connected(self) -> bool:
        """True while the link is open."""
        ...

    def connect(self) -> Awaitable[bool]:
        """Open the link; False when it cannot be opened."""
        ...

    def close(self) -> None:
        """Close the link (idempotent)."""
        ...

    def read_input_registers(self, address: int, *, count: int, device_id: int) -> Awaitable[Any]:
        """Read input registers (a pymodbus-shaped response: `registers`, `isError()`)."""
        ...

    def write_registers(
        self, address: int, values: Sequence[int], *, device_id: int
    ) -> Awaitable[Any]:
        """Write holding registers (a pymodbus-shaped response: `isError()`)."""
        ...


class LogicAdapter:
    """Poll the Logic boards and keep their balancing masks written."""

    name = "logic"

    def __init__(self, ctx: GatewayContext, client: LogicClient | None = None) -> None:
        self.ctx = ctx
        cfg = ctx.config.logic
        if cfg.port is None and client is None:
            raise ValueError("logic.port is not set")
        self.port = cfg.port or "(in-memory)"
        self.addresses = cfg.addresses
        self.cells = cfg.cells_per_board
        self.sensors = cfg.sensors
        self.count = logic_map.registers_to_read(self.cells, self.sensors)
        self.boards = BoardTracker(ctx, self.addresses)
        self.health = self.boards.health
        self.written_masks: dict[int, int] = {}  # what each board last accepted
        self._rejected_masks: dict[int, int] = {}
        self._rx = b""
        self._client: LogicClient = client or AsyncModbusSerialClient(
            self.port,
            baudrate=cfg.baudrate,
            parity=cfg.parity,
            stopbits=cfg.stopbits,
            bytesize=cfg.bytesize,
            timeout=cfg.timeout_s,
            retries=0,  # retries are ours (`_read_with_retries`), counted per kind
            reconnect_delay=0,  # reconnection is ours, with backoff on the gateway clock
            name="logic",
            trace_packet=self._trace_packet,
        )
        self._link_up: bool | None = None
        self._reconnect_delay_s = RECONNECT_MIN_S
        self._next_connect_s = ctx.clock.now()
        self.balancing_writes = Counter(
            "bms_logic_balancing_writes",
            "Balancing masks written to Logic boards, by result (ok, failed).",
            ["board", "result"],
            registry=ctx.registry,
        )
        for board in self.addresses:
            for result in ("ok", "failed"):
                self.balancing_writes.labels(board=str(board), result=result)
        self.retries = cfg.retries
        self.retried = Counter(
            "bms_logic_retries",
            "Failed Logic reads retried within the poll cycle, by board and kind.",
            ["board", "kind"],
            registry=ctx.registry,
        )
        for board in self.addresses:
            for kind in (KIND_TIMEOUT, KIND_CRC, KIND_MALFORMED, KIND_EXCEPTION):
                self.retried.labels(board=str(board), kind=kind)
        self.cycle_seconds = Gauge(
            "bms_logic_cycle_seconds",
            "Duration of the last full Logic poll cycle (all boards).",
            registry=ctx.registry,
        )
        pymodbus_log = logging.getLogger("pymodbus.logging")
        if _NO_RESPONSE_FILTER not in pymodbus_log.filters:
            pymodbus_log.addFilter(_NO_RESPONSE_FILTER)

    # --- loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll every `logic.poll_interval_s` until cancelled."""
        clock, interval = self.ctx.clock, self.ctx.config.logic.poll_interval_s
        next_s = clock.now()
        try:
            while True:
                await self.poll_cycle()
                next_s += interval
                now = clock.now()
                if next_s < now:  # the cycle overran: start the next one now, skip the backlog
                    log.debug("Logic poll cycle overran by %.3f s", now - next_s)
                    next_s = now
                await clock.sleep_until(next_s)
        finally:
            self.close()

    @property
    def connected(self) -> bool:
        """True while the serial port is open."""
        return bool(self._client.connected)

    def close(self) -> None:
        """Close the serial port (idempotent)."""
        self._client.close()

    async def poll_cycle(self) -> None:
        """Poll every board once (and write changed balancing masks)."""
        clock = self.ctx.clock
        started = clock.now()
        link = await self._ensure_link()
        for board in self.addresses:
            self.ctx.health.polls.labels(board=str(board)).inc()
            if not link:
                down = LinkDownError(f"serial port {self.port} is down")
                self.boards.failed(board, down, clock.now())
                continue
            sent_s = clock.now()
            try:
                reading = await self._read_with_retries(board)
            except (FrameError, AdapterUnavailableError) as err:
                self.boards.failed(board, err, clock.now())
                if isinstance(err, LinkDownError):
                    link = False
                continue
            self.ctx.health.poll_latency.observe(clock.now() - sent_s)
            self.boards.succeeded(board, reading, clock.now())
            await self._write_balancing(board)
        self.cycle_seconds.set(clock.now() - started)

    async def write_balancing(self) -> None:
        """Write each online board's balancing mask now when it changed (the poll cycle does
        this after every good read; a harness stepping the engine may call it in between)."""
        for board in self.addresses:
            if self.health[board].online:
                await self._write_balancing(board)

    # --- link ---------------------------------------------------------------------------

    async def _ensure_link(self) -> bool:
        if self._client.connected:
            return True
        if self._link_up:
            log.warning("serial port %s lost; reopening with backoff", self.port)
            self._link_up = False
            self._next_connect_s = self.ctx.clock.now()
        if self.ctx.clock.now() < self._next_connect_s:
            return False
        if await self._client.connect():
            log.info("serial port %s open", self.port)
            self._link_up = True
            self._reconnect_delay_s = RECONNECT_MIN_S
            return True
        if self._link_up is None:
            why = device_problem(self.port) or "it does not answer as a serial port"
            log.warning("serial port cannot be opened: %s; retrying with backoff", why)
            self._link_up = False
        self._next_connect_s = self.ctx.clock.now() + self._reconnect_delay_s
        self._reconnect_delay_s = min(2 * self._reconnect_delay_s, RECONNECT_MAX_S)
        return False

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        # pymodbus hands us its receive buffer (leftover + new bytes) each time data arrive.
        if sending:
            self._rx = b""
        else:
            self._rx = self._rx + data if not data.startswith(self._rx) else data
        return data

    # --- one board ----------------------------------------------------------------------

    async def _read_with_retries(self, board: int) -> logic_map.LogicBoardReading:
        """Read one board, retrying a failed read up to `logic.retries` times at once."""
        attempts = 1 + (self.retries if self.health[board].online is not False else 0)
        for attempt in range(attempts):
            try:
                return await self._read_board(board)
            except LinkDownError:
                raise
            except (FrameError, AdapterUnavailableError) as err:
                if attempt + 1 >= attempts:
                    raise
                self.retried.labels(board=str(board), kind=error_kind(err)).inc()
                log.debug("Logic board %d read failed (%s); retrying", board, err)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read_board(self, board: int) -> logic_map.LogicBoardReading:
        """Read and decode one board; every failure becomes one of our error types."""
        try:
            rr = await self._client.read_input_registers(0, count=self.count, device_id=board)
            reraise_swallowed_cancel()
        except ConnectionException as err:
            raise LinkDownError(f"serial port {self.port}: {err}") from err
        except ModbusIOException as err:
            if "No response" not in str(err):
                raise FrameRangeError(f"board {board}: {err}") from err
            kind = classify_garbage(self._rx, board)
            if kind == KIND_CRC:
                raise FrameCrcError(f"board {board}: reply failed its CRC") from err
            if kind == KIND_MALFORMED:
                raise FrameTruncatedError(
                    f"board {board}: {len(self._rx)} bytes, no valid reply"
                ) from err
            raise BoardTimeoutError(f"board {board}: no reply") from err
        except ModbusException as err:
            raise FrameRangeError(f"board {board}: {err}") from err
        except OSError as err:
            raise LinkDownError(f"serial port {self.port}: {err}") from err
        if rr.isError():
            raise BoardExceptionReplyError(board, int(getattr(rr, "exception_code", 0)))
        return logic_map.decode_input_registers(list(rr.registers), self.cells, self.sensors)

    async def _write_balancing(self, board: int) -> None:
        want = self.ctx.store.state.control.balancing.get(board, 0)
        if self.written_masks.get(board) == want:
            return
        try:
            values = logic_map.encode_balancing_mask(want)
            if want >> self.cells:
                raise FrameRangeError(f"mask 0x{want:X} has bits above cell {self.cells}")
        except FrameError as err:
            if self._rejected_masks.get(board) != want:
                log.error("balancing mask for board %d not written: %s", board, err)
                self._rejected_masks[board] = want
            return
        try:
            rr = await self._client.write_registers(
                logic_map.HOLD_BALANCING_REQUEST, values, device_id=board
            )
            reraise_swallowed_cancel()
            ok = not rr.isError()
        except (ModbusException, OSError) as err:
            log.debug("balancing write to board %d failed: %s", board, err)
            ok = False
        self.balancing_writes.labels(board=str(board), result="ok" if ok else "failed").inc()
        if ok:
            self.written_masks[board] = want
            self._rejected_masks.pop(board, None)


def create(ctx: GatewayContext) -> LogicAdapter | None:
    """Entry point `bms_gateway.adapters: logic` (disabled in bridge mode or without a port)."""
    if ctx.config.gateway.mode == "bridge":
        log.info("bridge mode: the BMS Main owns the Logic bus; Logic adapter disabled")
        return None
    if ctx.config.logic.port is None:
        log.warning("logic.port is not set and no embedded simulator runs: Logic adapter off")
        return None
    return LogicAdapter(ctx)
