"""Serve a `PackModel` as BMS Logic boards: Modbus RTU slaves 1..N on one serial line.

This is a small RTU slave written on asyncio rather than pymodbus' server because the
simulator needs things a conforming server does not do: input registers built from the
model at request time, boards that go silent (`pack.board(n).online == False`), optional
wire-time pacing of replies, and a hook that corrupts chosen replies for fault tests.

The framing helpers are pure functions: `request_length`, `split_request` here, and
`crc16`, `rtu_frame` from `gateway.protocols.modbus_rtu` (shared with the Logic adapter).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from gateway.core.errors import FrameError
from gateway.core.supervise import cancel_and_wait
from gateway.links.pty import open_pty_pair
from gateway.protocols import logic_map
from gateway.protocols.modbus_rtu import crc_ok, rtu_frame
from gateway.sim.pack import PackModel

log = logging.getLogger(__name__)

FC_READ_HOLDING = 0x03
FC_READ_INPUT = 0x04
FC_WRITE_SINGLE = 0x06
FC_WRITE_MULTIPLE = 0x10

EXC_ILLEGAL_FUNCTION = 0x01
EXC_ILLEGAL_ADDRESS = 0x02
EXC_ILLEGAL_VALUE = 0x03

MAX_FRAME = 256
MIN_GAP_S = 0.00175  # Modbus RTU: above 19200 baud the 3.5-character gap is fixed at 1.75 ms

# (board address, reply frame) -> the bytes to send instead, or None for no reply at all.
ReplyFilter = Callable[[int, bytes], bytes | None]


def request_length(buf: bytes) -> int | None:
    """Return the length of the request frame at the start of `buf`, or None if unknown yet."""
    if len(buf) < 2:
        return None
    fc = buf[1]
    if fc in (FC_READ_HOLDING, FC_READ_INPUT, FC_WRITE_SINGLE):
        return 8
    if fc == FC_WRITE_MULTIPLE:
        return None if len(buf) < 7 else 9 + buf[6]
    # An unsupported function: the first length whose CRC matches ends the frame.
    for n in range(4, min(len(buf), MAX_FRAME) + 1):
        if crc_ok(buf[:n]):
            return n
    return None


def split_request(buf: bytes) -> tuple[int, bytes | None]:
    """Find the next request frame in `buf`.

    Returns:
        (bytes consumed, frame or None). A bad CRC consumes one byte (hunting for the next
        frame start); an incomplete frame consumes nothing.
    """
    n = request_length(buf)
    if n is None or len(buf) < n:
        return 0, None
    frame = buf[:n]
    if not crc_ok(frame):
        return 1, None
    return n, frame


@dataclass
class ServerStats:
    """What the server saw (for tests and the bench)."""

    requests: int = 0
    replies: int = 0
    ignored: int = 0
    dropped_bytes: int = 0
    dropped_frames: int = 0  # garbage frames discarded at an inter-frame gap


class LogicRtuServer:
    """The BMS Logic boards of one `PackModel` on one serial line."""

    def __init__(
        self,
        pack: PackModel,
        *,
        baudrate: int = 115200,
        bits_per_char: int = 10,
        pace: bool = False,
        reply_filter: ReplyFilter | None = None,
    ) -> None:
        self.pack = pack
        self.baudrate = baudrate
        self.bits_per_char = bits_per_char
        self.pace = pace
        self.reply_filter = reply_filter
        self.stats = ServerStats()
        self.requests_by_board: collections.Counter[int] = collections.Counter()

    @property
    def inter_frame_gap_s(self) -> float:
        """The silence that ends a frame: 3.5 characters, at least 1.75 ms."""
        return max(MIN_GAP_S, 3.5 * self.bits_per_char / self.baudrate)

    def wire_time_s(self, n_bytes: int) -> float:
        """Time `n_bytes` take on the wire at this baud rate."""
        return n_bytes * self.bits_per_char / self.baudrate

    # --- request handling (pure with respect to I/O) ----------------------------------

    def handle(self, frame: bytes) -> tuple[int, bytes | None]:
        """Apply one valid request frame to the model; return (address, reply or None)."""
        address, fc, data = frame[0], frame[1], frame[2:-2]
        self.stats.requests += 1
        if address == 0:  # broadcast: writes apply to every online board, nobody answers
            for n in range(1, self.pack.board_count + 1):
                if self.pack.board(n).online:
                    self._apply(n, fc, data)
            return 0, None
        if not 1 <= address <= self.pack.board_count or not self.pack.board(address).online:
            self.stats.ignored += 1
            return address, None
        self.requests_by_board[address] += 1
        return address, rtu_frame(address, self._apply(address, fc, data))

    def _apply(self, board: int, fc: int, data: bytes) -> bytes:
        try:
            if fc == FC_READ_INPUT:
                start, count = struct.unpack(">HH", data[:4])
                regs = self.pack.input_registers(board)
                return self._read_reply(fc, regs, start, count)
            if fc == FC_READ_HOLDING:
                start, count = struct.unpack(">HH", data[:4])
                regs = logic_map.encode_balancing_mask(self.pack.board(board).balancing_mask)
                return self._read_reply(fc, regs, start, count)
            if fc == FC_WRITE_SINGLE:
                addr, value = struct.unpack(">HH", data[:4])
                self._write(board, addr, [value])
                return bytes([fc]) + data[:4]
            if fc == FC_WRITE_MULTIPLE:
                start, count, nbytes = struct.unpack(">HHB", data[:5])
                if nbytes != 2 * count or len(data) != 5 + nbytes:
                    return bytes([fc | 0x80, EXC_ILLEGAL_VALUE])
                values = list(struct.unpack(f">{count}H", data[5 : 5 + nbytes]))
                self._write(board, start, values)
                return bytes([fc]) + data[:4]
        except _ExceptionReply as err:
            return bytes([fc | 0x80, err.code])
        except (struct.error, FrameError):
            return bytes([fc | 0x80, EXC_ILLEGAL_VALUE])
        return bytes([fc | 0x80, EXC_ILLEGAL_FUNCTION])

    @staticmethod
    def _read_reply(fc: int, regs: list[int], start: int, count: int) -> bytes:
        if not 1 <= count <= 125:
            raise _ExceptionReply(EXC_ILLEGAL_VALUE)
        if start + count > len(regs):
            raise _ExceptionReply(EXC_ILLEGAL_ADDRESS)
        values = regs[start : start + count]
        return bytes([fc, 2 * count]) + struct.pack(f">{count}H", *values)

    def _write(self, board: int, start: int, values: list[int]) -> None:
        if start + len(values) > logic_map.HOLDING_REGISTER_COUNT:
            raise _ExceptionReply(EXC_ILLEGAL_ADDRESS)
        regs = logic_map.encode_balancing_mask(self.pack.board(board).balancing_mask)
        regs[start : start + len(values)] = values
        try:
            mask = logic_map.decode_balancing_mask(regs)
        except FrameError as err:
            raise _ExceptionReply(EXC_ILLEGAL_VALUE) from err
        self.pack.write_balancing(board, mask)

    # --- serial I/O -------------------------------------------------------------------

    async def serve_fd(self, fd: int) -> None:
        """Answer requests arriving on a non-blocking fd until cancelled."""
        loop = asyncio.get_running_loop()
        os.set_blocking(fd, False)
        buf = bytearray()
        arrived = asyncio.Event()

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except BlockingIOError:
                return
            except OSError as err:
                log.warning("simulator serial read failed: %s", err)
                loop.remove_reader(fd)
                return
            buf.extend(data)
            arrived.set()

        loop.add_reader(fd, readable)
        try:
            while True:
                if not buf:
                    arrived.clear()
                    await arrived.wait()
                # Fast path: the buffer is exactly one valid request (as a master sends it).
                consumed, frame = split_request(bytes(buf))
                if frame is not None and consumed == len(buf):
                    buf.clear()
                    await self._answer(fd, frame)
                    continue
                # Otherwise the frame ends at the next silence of 3.5 characters, as on a
                # real RTU line: wait for more bytes, or for that gap.
                arrived.clear()
                try:
                    async with asyncio.timeout(self.inter_frame_gap_s):  # not wait_for: it
                        await arrived.wait()  # can swallow a cancellation on Python 3.11
                    continue
                except TimeoutError:
                    pass
                # Silence: what arrived is one frame. A valid request is answered; anything
                # else (noise, a corrupted or truncated request) is dropped whole, and the
                # next request after the gap is read cleanly.
                consumed, frame = split_request(bytes(buf))
                if frame is not None and consumed:
                    del buf[:consumed]
                    await self._answer(fd, frame)
                if buf:
                    self.stats.dropped_bytes += len(buf)
                    self.stats.dropped_frames += 1
                    buf.clear()
        finally:
            loop.remove_reader(fd)

    async def _answer(self, fd: int, request: bytes) -> None:
        address, reply = self.handle(request)
        if reply is None:
            return
        if self.reply_filter is not None:
            reply = self.reply_filter(address, reply)
            if reply is None:
                return
        if self.pace:
            # The request and the reply both cross the wire, each after a 3.5-char silence.
            await asyncio.sleep(self.wire_time_s(len(request) + len(reply) + 7))
        try:
            os.write(fd, reply)
        except BlockingIOError:
            log.debug("simulator serial output full; reply to board %d dropped", address)
            return
        except OSError as err:
            log.warning("simulator serial write failed: %s", err)
            return
        self.stats.replies += 1


class _ExceptionReply(Exception):
    """A Modbus exception code to answer with (internal control flow)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@contextlib.asynccontextmanager
async def _serving(server: LogicRtuServer, fd: int) -> AsyncIterator[None]:
    """Own the serving task: cancel and await it when the block ends, however it ends."""
    task = asyncio.create_task(server.serve_fd(fd), name="logic-sim")
    try:
        yield
    finally:
        await cancel_and_wait(task)


@contextlib.asynccontextmanager
async def serve_on_pty(server: LogicRtuServer) -> AsyncIterator[str]:
    """Serve on a fresh pty pair; yield the device path a client opens."""
    with open_pty_pair() as pair:
        async with _serving(server, pair.controller_fd):
            yield pair.device_path


@contextlib.asynccontextmanager
async def serve_on_port(
    server: LogicRtuServer,
    port: str,
    *,
    parity: str = "N",
    stopbits: int = 1,
    bytesize: int = 8,
) -> AsyncIterator[str]:
    """Serve on a real serial device (a USB RS-485 adapter, for bench-testing hardware)."""
    import serial  # noqa: PLC0415 - pyserial is only needed for a real port

    ser = serial.Serial(
        port,
        baudrate=server.baudrate,
        parity=parity,
        stopbits=stopbits,
        bytesize=bytesize,
        timeout=0,
        write_timeout=0,
    )
    try:
        async with _serving(server, ser.fileno()):
            yield port
    finally:
        ser.close()
