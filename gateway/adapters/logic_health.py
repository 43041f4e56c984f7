"""Board health on the Logic link: what each failed poll was, and each board's online verdict.

Sans-IO apart from publishing: `error_kind` maps an error to its `kind` label of
`bms_logic_poll_errors_total`, `classify_garbage` says what unanswered bytes were,
`BoardHealth` keeps one board's online/offline bookkeeping and `BoardTracker` publishes
every board's `BoardScanned` / `BoardCameOnline` / `BoardWentOffline` and counts failures.
The Logic adapter and the scenario runner's in-memory loopback both report through it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from gateway.core.context import GatewayContext
from gateway.core.errors import AdapterUnavailableError, FrameCrcError, FrameError
from gateway.core.events import BoardCameOnline, BoardScanned, BoardWentOffline
from gateway.protocols import logic_map
from gateway.protocols.modbus_rtu import crc_ok

log = logging.getLogger("gateway.adapters.logic")  # one logger name for the whole Logic link

FC_READ_INPUT = 0x04

KIND_TIMEOUT = "timeout"
KIND_CRC = "crc"
KIND_MALFORMED = "malformed"
KIND_EXCEPTION = "exception"
KIND_IO = "io"
ERROR_KINDS = (KIND_TIMEOUT, KIND_CRC, KIND_MALFORMED, KIND_EXCEPTION, KIND_IO)


# --- error types (what the poll loop does with each) ----------------------------------


class BoardTimeoutError(AdapterUnavailableError, TimeoutError):
    """The board sent nothing back within `logic.timeout_s`: count it, try next cycle."""


class BoardExceptionReplyError(FrameError):
    """The board answered with a Modbus exception reply: count it, try next cycle."""

    def __init__(self, board: int, code: int) -> None:
        super().__init__(f"board {board} answered with Modbus exception {code}")
        self.code = code


class LinkDownError(AdapterUnavailableError):
    """The serial port is missing or failed: reopen it with backoff."""


def error_kind(err: Exception) -> str:
    """Map an error to its `kind` label."""
    match err:
        case BoardTimeoutError():
            return KIND_TIMEOUT
        case FrameCrcError():
            return KIND_CRC
        case BoardExceptionReplyError():
            return KIND_EXCEPTION
        case LinkDownError():
            return KIND_IO
        case _:
            return KIND_MALFORMED


# --- sans-IO pieces ---------------------------------------------------------------------


def classify_garbage(rx: bytes, board: int, function_code: int = FC_READ_INPUT) -> str | None:
    """Say what the bytes received for an unanswered request were.

    Returns:
        None when nothing arrived, `crc` when a complete frame addressed to the board with
        the right function (or its exception form) fails its CRC, else `malformed`.
    """
    if not rx:
        return None
    for start in range(len(rx)):
        frame = rx[start:]
        if len(frame) < 5 or frame[0] != board:
            continue
        if frame[1] == function_code:
            size = 5 + frame[2]
        elif frame[1] == function_code | 0x80:
            size = 5
        else:
            continue
        if len(frame) >= size and not crc_ok(frame[:size]):
            return KIND_CRC
    return KIND_MALFORMED


@dataclass
class BoardHealth:
    """Online/offline bookkeeping of one board (no I/O: the caller publishes and logs)."""

    board: int
    offline_after: int
    online: bool | None = None  # None until the first answer or the first offline verdict
    consecutive_failures: int = 0
    last_kind: str = ""

    def succeeded(self) -> bool:
        """Record a good poll; return True when this brings the board (back) online."""
        self.consecutive_failures = 0
        came_online = self.online is not True
        self.online = True
        return came_online

    def failed(self, kind: str) -> bool:
        """Record a failed poll; return True when this takes the board offline."""
        self.consecutive_failures += 1
        self.last_kind = kind
        if self.online is not False and self.consecutive_failures >= self.offline_after:
            self.online = False
            return True
        return False


class BoardTracker:
    """Every board's online/offline verdicts, published as events, counted and logged once.

    The Logic adapter and the scenario runner's in-memory loopback both report each poll
    result here, so both publish the same `BoardScanned`/`BoardCameOnline`/`BoardWentOffline`
    sequence and count the same `poll_errors`.
    """

    def __init__(self, ctx: GatewayContext, addresses: list[int]) -> None:
        self.ctx = ctx
        self.health = {b: BoardHealth(b, ctx.config.logic.offline_after) for b in addresses}
        ctx.health.known_boards(addresses, ERROR_KINDS)

    def succeeded(self, board: int, reading: logic_map.LogicBoardReading, now_s: float) -> None:
        """Publish a good reading (and `BoardCameOnline` when it brings the board online)."""
        h = self.health[board]
        failures = h.consecutive_failures
        if h.succeeded():
            if failures or h.last_kind:
                log.info("Logic board %d back online", board)
            else:
                log.info("Logic board %d online (firmware %s)", board, reading.firmware)
            self.ctx.bus.publish(BoardCameOnline(at_s=now_s, board=board))
        self.ctx.bus.publish(
            BoardScanned(
                at_s=now_s,
                board=board,
                cell_voltages_v=reading.cell_voltages_v,
                temperatures_c=reading.temperatures_c,
                board_temperature_c=reading.board_temperature_c,
                status_bits=reading.status_bits,
                balancing_mask=reading.balancing_mask,
                firmware=reading.firmware,
            )
        )

    def failed(self, board: int, err: Exception, now_s: float) -> None:
        """Count a failed poll (and publish `BoardWentOffline` when it takes the board offline)."""
        kind = error_kind(err)
        self.ctx.health.poll_errors.labels(board=str(board), kind=kind).inc()
        h = self.health[board]
        first = h.consecutive_failures == 0
        if h.failed(kind):
            log.warning(
                "Logic board %d offline after %d failed polls (last: %s: %s)",
                board,
                h.consecutive_failures,
                kind,
                err,
            )
            self.ctx.bus.publish(
                BoardWentOffline(
                    at_s=now_s,
                    board=board,
                    reason=kind,
                    consecutive_failures=h.consecutive_failures,
                )
            )
        elif first and h.online:
            log.info("Logic board %d poll failed (%s): %s", board, kind, err)
        else:
            log.debug("Logic board %d poll failed (%s): %s", board, kind, err)
