"""A tiny Modbus TCP proxy that breaks replies on demand (for adapter fault tests).

Modes: `pass` (forward), `drop` (swallow replies: the client times out), `exception`
(answer every request with exception code 4, SERVER DEVICE FAILURE), `truncate` (forward
the reply minus its last register, with byte count and MBAP length made consistent: a
well-framed reply with the wrong number of registers), `silent` (swallow requests: the
module never sees them and nothing comes back) and `reset` (answer any request, and any
new connection, with a TCP reset).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), as a module that reboots or drops us does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forward 127.0.0.1:<port> to an upstream Modbus TCP server, applying `mode`."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def _pipe_requests(
        self, reader: asyncio.StreamReader, up: asyncio.StreamWriter, down: asyncio.StreamWriter
    ) -> None:
        while True:
            header = await reader.readexactly(7)
            tid, _pid, length, unit = struct.unpack(">HHHB", header)
            pdu = await reader.readexactly(length - 1)
            if self.mode == "reset":
                _reset(down)
                return
            if self.mode == "silent":
                continue
            if self.mode == "exception":
                reply = bytes([pdu[0] | 0x80, 4])
                down.write(struct.pack(">HHHB", tid, 0, len(reply) + 1, unit) + reply)
                await down.drain()
                continue
            up.write(header + pdu)
            await up.drain()

    async def _pipe_replies(self, up: asyncio.StreamReader, down: asyncio.StreamWriter) -> None:
        while True:
            header = await up.readexactly(7)
            tid, pid, length, unit = struct.unpack(">HHHB", header)
            pdu = await up.readexactly(length - 1)
            if self.mode == "drop":
                continue
            if self.mode == "truncate" and pdu[0] in (3, 4) and pdu[1] >= 2:
                pdu = bytes([pdu[0], pdu[1] - 2]) + pdu[2:-2]
            down.write(struct.pack(">HHHB", tid, pid, len(pdu) + 1, unit) + pdu)
            await down.drain()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "reset":
            _reset(writer)
            return
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        tasks = [
            asyncio.create_task(self._pipe_requests(reader, up_w, writer)),
            asyncio.create_task(self._pipe_replies(up_r, writer)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            up_w.close()
            writer.close()

    def _track(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FaultProxy]:
        """Listen on a free loopback port while the block runs."""
        self._server = await asyncio.start_server(self._track, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for t in list(self._tasks):
                t.cancel()
            for t in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await self._server.wait_closed()
