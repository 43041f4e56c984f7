"""One Modbus I/O module link (pymodbus sync client), shared by every driver on that bus.

Used from worker threads under a lock: the lease watchdog thread must be able to write coils
while the event loop is blocked, which an asyncio client cannot. Every transport failure
becomes a `DriverError` naming the module and the OS/Modbus reason, with a reconnect backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from gateway.hal.backend import DriverEnv, DriverError, describe_error
from gateway.hal.modbus_options import ModbusLinkOptions

log = logging.getLogger("gateway.hal.modbus_io")  # the name the Modbus drivers log under

RECONNECT_MIN_S = 0.2  # first reconnect delay after a failed attempt; doubles up to:
RECONNECT_MAX_S = 5.0

# --- transport ----------------------------------------------------------------------


class ModbusLink:
    """One pymodbus sync client, used from worker threads under a lock."""

    def __init__(self, opts: ModbusLinkOptions) -> None:
        from pymodbus.client import ModbusSerialClient, ModbusTcpClient  # noqa: PLC0415

        if opts.transport == "tcp":
            self.client: Any = ModbusTcpClient(
                opts.host, port=opts.port, timeout=opts.timeout_s, retries=0
            )
            self.where = f"{opts.host}:{opts.port}"
        else:
            if not opts.serial_port:
                raise DriverError("modbus rtu needs `serial_port`")
            self.client = ModbusSerialClient(
                opts.serial_port,
                baudrate=opts.baudrate,
                parity=opts.parity,
                stopbits=opts.stopbits,
                timeout=opts.timeout_s,
                retries=0,
            )
            self.where = opts.serial_port
        self.lock = threading.Lock()
        self.users = 0
        self.failures = 0  # failed requests and connection attempts
        self.connects = 0
        self.last_reason = ""
        self._backoff_s = 0.0
        self._retry_at = 0.0

    def call(self, method: str, *args: Any, urgent: bool = False, **kwargs: Any) -> Any:
        """Run one request; raise `DriverError` on any transport error or an exception reply.

        Every failure of the link (connection reset or refused, timeout, a garbled reply, an
        OS error) is caught here and becomes a `DriverError` naming the module and the
        OS/Modbus reason: nothing escapes to the caller's task. After a failure the client is
        closed and reconnects on a later call, no sooner than the backoff allows
        (`urgent`: try at once, e.g. to open the relays).
        """
        with self.lock:
            self._connect(urgent)
            try:
                reply = getattr(self.client, method)(*args, **kwargs)
            except Exception as err:  # the transport's failure, whatever its class
                self.client.close()
                self.failures += 1
                self.last_reason = describe_error(err)
                raise DriverError(f"{method} at {self.where}: {self.last_reason}") from err
        if reply is None or reply.isError():
            self.failures += 1
            code = getattr(reply, "exception_code", None)
            self.last_reason = f"the module answered with Modbus exception code {code}"
            raise DriverError(f"{method} at {self.where}: {self.last_reason}")
        return reply

    def _connect(self, urgent: bool) -> None:
        if self.client.connected:
            return
        now = time.monotonic()
        if not urgent and now < self._retry_at:
            raise DriverError(
                f"Modbus module at {self.where} unreachable ({self.last_reason}); "
                f"next attempt in {self._retry_at - now:.1f} s"
            )
        try:
            ok = bool(self.client.connect())
            reason = "connection refused or timed out"
        except Exception as err:  # e.g. a serial port that vanished
            ok, reason = False, describe_error(err)
        if not ok:
            self.failures += 1
            self._backoff_s = min(RECONNECT_MAX_S, max(RECONNECT_MIN_S, 2 * self._backoff_s))
            self._retry_at = now + self._backoff_s
            self.last_reason = reason
            raise DriverError(f"cannot connect to Modbus module at {self.where}: {reason}")
        if self._backoff_s:
            log.info("Modbus module at %s reconnected", self.where)
        self.connects += 1
        self._backoff_s = 0.0

    def release(self) -> None:
        """Drop one user; close the client after the last."""
        self.users -= 1
        if self.users <= 0:
            with self.lock:
                self.client.close()


def shared_link(env: DriverEnv, opts: ModbusLinkOptions) -> ModbusLink:
    cache = env.cache()
    key = "modbus:" + ":".join(opts.link_key())
    link = cache.get(key)
    if link is None:
        link = ModbusLink(opts)
        cache[key] = link
    assert isinstance(link, ModbusLink)
    link.users += 1
    return link
