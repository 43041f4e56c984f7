"""The `modbus` backend: Modbus I/O modules over TCP or RTU (pymodbus).

Relay boards and digital-output modules through coils, digital-input modules through
discrete inputs, analog-input modules through input (or holding) registers with a scale.

The Protocol methods never touch the network: commands are recorded and a background loop
(`run`, owned by the driver service) writes changed coils and reads inputs and registers in a
worker thread every `poll_interval_s`, or at once after a command. Reads return the latest
successful poll (inputs raise `DriverError`, the ADC returns None, when that poll failed).
`close()` writes every coil off synchronously (one short blocking attempt) so the relays
open on shutdown. Drivers on one bus (same host:port or serial port) share one client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from gateway.hal.backend import DriverEnv, DriverError, Indicators, Outputs
from gateway.hal.base import ADC_CHANNELS, INDICATORS, INPUT_COUNT, OUTPUT_COUNT
from gateway.hal.modbus_link import ModbusLink, shared_link
from gateway.hal.modbus_options import (
    ModbusAdcChannel,
    ModbusAdcOptions,
    ModbusCoilOptions,
    ModbusIndicatorOptions,
    ModbusInputOptions,
    ModbusLinkOptions,
    ModbusRelayOptions,
    ModuleWatchdog,
)

if TYPE_CHECKING:
    from gateway.core.clock import Clock

__all__ = [  # the options live in modbus_options, the link in modbus_link; re-exported
    "ModbusAdcChannel",
    "ModbusAdcOptions",
    "ModbusCoilOptions",
    "ModbusIndicatorOptions",
    "ModbusInputOptions",
    "ModbusLink",
    "ModbusLinkOptions",
    "ModbusRelayOptions",
    "ModuleWatchdog",
]

log = logging.getLogger(__name__)

# --- the loop every Modbus driver shares ---------------------------------------------


class Polled:
    """Mixin: `sync_once` runs in a worker thread from `run` (and `refresh` in tests)."""

    link: ModbusLink
    opts: ModbusLinkOptions
    _wake: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _failing = False
    sync_errors = 0

    @abstractmethod
    def sync_once(self, urgent: bool = False) -> None:
        """Do this driver's I/O once (blocking; raises DriverError)."""

    async def refresh(self) -> None:
        """Do the I/O now, in a worker thread."""
        await asyncio.to_thread(self.sync_once)

    def _poke(self) -> None:
        """A command was recorded: have it written now.

        On the event loop's thread this wakes `run`. From any other thread (the relay lease
        watchdog, which runs precisely when the loop may be blocked) the write is done right
        here, synchronously, on the shared link: opening the relays never needs the loop.
        """
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
            return
        try:
            self.sync_once(urgent=True)
        except Exception as err:
            log.error("%s: writing from the watchdog thread failed: %s", type(self).__name__, err)
        if not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    async def run(self, clock: Clock) -> None:
        """Sync every `poll_interval_s` or at once when poked; errors are logged and counted."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except Exception as err:  # DriverError, or a bug: never ends the loop
                self.sync_errors += 1
                if not self._failing:
                    self._failing = True
                    log.warning("%s: %s", type(self).__name__, err)
            else:
                if self._failing:
                    self._failing = False
                    log.info("%s recovered", type(self).__name__)
            sleeper = asyncio.ensure_future(clock.sleep(self.opts.poll_interval_s))
            poked = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, poked}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in (sleeper, poked):
                    t.cancel()
                await asyncio.gather(sleeper, poked, return_exceptions=True)


class CoilWriter:
    """Desired coil states; writes the ones that changed (all of them after an error)."""

    def __init__(self, link: ModbusLink, device_id: int, coils: dict[Any, int]) -> None:
        self.link = link
        self.device_id = device_id
        self.coils = coils
        self.desired: dict[Any, bool] = dict.fromkeys(coils, False)
        self.dirty: set[Any] = set(coils)

    def want(self, name: Any, on: bool) -> bool:
        """Record a desired state; return True when it changed (a write is due)."""
        if name not in self.coils or (self.desired[name] == on and name not in self.dirty):
            return False
        self.desired[name] = on
        self.dirty.add(name)
        return True

    def sync(self, urgent: bool = False) -> None:
        """Write the changed coils (the ones to switch off first)."""
        for name in sorted(self.dirty, key=lambda n: (self.desired[n], str(n))):
            value = self.desired[name]
            try:
                self.link.call(
                    "write_coil", self.coils[name], value, device_id=self.device_id, urgent=urgent
                )
            except DriverError:
                self.dirty = set(self.coils)
                raise
            if self.desired[name] == value:
                self.dirty.discard(name)

    def all_off_now(self) -> None:
        """Write every coil off (blocking; never raises)."""
        for name in self.coils:
            self.desired[name] = False
        self.dirty = set(self.coils)
        try:
            self.sync(urgent=True)
        except DriverError as err:
            log.error("could not switch Modbus coils off: %s", err)


class CoilDriven(Polled):
    """Mixin: a switch driver whose `_write` records a coil state for the next sync."""

    writer: CoilWriter
    _closed_down: bool

    def _bind(self, opts: ModbusLinkOptions, link: ModbusLink, coils: dict[Any, int]) -> None:
        """Attach the module and the coil address of each name (before `_start()`)."""
        self.opts = opts
        self.link = link
        self.writer = CoilWriter(link, opts.device_id, coils)

    def _write(self, name: Any, on: bool, /) -> None:
        if self.writer.want(name, on):
            batch = self._batch_state()
            if batch.depth:
                batch.changed = True
            else:
                self._poke()

    def _batch_state(self) -> Any:
        """This thread's batch (the loop and the lease watchdog thread batch independently)."""
        local = self.__dict__.get("_batches")
        if local is None:
            local = self.__dict__.setdefault("_batches", threading.local())
        if not hasattr(local, "depth"):
            local.depth, local.changed = 0, False
        return local

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Record commands without writing; write them all once the outermost batch ends."""
        batch = self._batch_state()
        batch.depth += 1
        try:
            yield
        finally:
            batch.depth -= 1
        if not batch.depth and batch.changed:
            batch.changed = False
            self._poke()

    def sync_once(self, urgent: bool = False) -> None:
        """Write changed coils."""
        if not self._closed_down:
            self.writer.sync(urgent)

    def _release(self) -> None:
        self.writer.all_off_now()
        self.link.release()


class ModbusOutputs(CoilDriven, Outputs):
    """Discrete outputs 1-4 on coils."""

    def __init__(self, opts: ModbusCoilOptions, link: ModbusLink) -> None:
        Outputs.__init__(self, list(range(1, OUTPUT_COUNT + 1)))
        self._bind(opts, link, dict(zip(range(1, OUTPUT_COUNT + 1), opts.coils, strict=True)))
        self._start()


class ModbusIndicators(CoilDriven, Indicators):
    """Indicators on coils (unmapped ones stay in memory)."""

    def __init__(self, opts: ModbusIndicatorOptions, link: ModbusLink) -> None:
        Indicators.__init__(self, list(INDICATORS))
        self._bind(opts, link, dict(opts.coils))
        self._start()


class ModbusInputs(Polled):
    """Dry-contact inputs 1-4 on a digital-input module."""

    def __init__(self, opts: ModbusInputOptions, link: ModbusLink) -> None:
        self.opts = opts
        self.link = link
        self._values: tuple[bool, ...] | None = None
        self._closed_down = False

    def sync_once(self, urgent: bool = False) -> None:
        """Read the discrete inputs."""
        opts = self.opts
        assert isinstance(opts, ModbusInputOptions)
        first = min(opts.discrete_inputs)
        count = max(opts.discrete_inputs) - first + 1
        try:
            reply = self.link.call(
                "read_discrete_inputs", first, count=count, device_id=opts.device_id
            )
        except DriverError:
            self._values = None
            raise
        bits = list(reply.bits)
        self._values = tuple(bool(bits[a - first]) != opts.invert for a in opts.discrete_inputs)

    def read_inputs(self) -> tuple[bool, ...]:
        """Return the latest successful read.

        Raises:
            DriverError: the last poll failed or none succeeded yet.
        """
        if self._values is None:
            raise DriverError("no fresh discrete-input reading from the Modbus module")
        assert len(self._values) == INPUT_COUNT
        return self._values

    def close(self) -> None:
        """Release the link (idempotent)."""
        if not self._closed_down:
            self._closed_down = True
            self.link.release()


class ModbusAdc(Polled):
    """ADC channels on an analog-input module's registers."""

    def __init__(self, opts: ModbusAdcOptions, link: ModbusLink) -> None:
        self.opts = opts
        self.link = link
        self._volts: dict[str, float] = {}
        self._closed_down = False

    def sync_once(self, urgent: bool = False) -> None:
        """Read the registers of every mapped channel in one request."""
        opts = self.opts
        assert isinstance(opts, ModbusAdcOptions)
        if not opts.channels:
            return
        regs = [c.address for c in opts.channels.values()]
        first, count = min(regs), max(regs) - min(regs) + 1
        method = (
            "read_input_registers" if opts.register_type == "input" else "read_holding_registers"
        )
        try:
            reply = self.link.call(method, first, count=count, device_id=opts.device_id)
        except DriverError:
            self._volts = {}
            raise
        values = list(reply.registers)
        volts = {}
        for name, ch in opts.channels.items():
            raw = values[ch.address - first]
            if ch.signed and raw >= 0x8000:
                raw -= 0x10000
            volts[name] = raw * ch.scale + ch.offset
        self._volts = volts

    def read_volts(self, channel: str) -> float | None:
        """Return the latest successful reading, or None."""
        if channel not in ADC_CHANNELS:
            raise ValueError(
                f"unknown ADC channel {channel!r}; channels: {', '.join(ADC_CHANNELS)}"
            )
        return self._volts.get(channel)

    def close(self) -> None:
        """Release the link (idempotent)."""
        if not self._closed_down:
            self._closed_down = True
            self.link.release()


class ModbusBackend:
    """Entry point `modbus` of `bms_gateway.drivers`."""

    name = "modbus"
    concerns = frozenset({"relays", "outputs", "inputs", "adc", "indicators"})

    def options_model(self, concern: str) -> type[BaseModel]:
        """Options for `concern`."""
        models: dict[str, type[BaseModel]] = {
            "relays": ModbusRelayOptions,
            "outputs": ModbusCoilOptions,
            "inputs": ModbusInputOptions,
            "adc": ModbusAdcOptions,
            "indicators": ModbusIndicatorOptions,
        }
        return models[concern]

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Build the driver on the (shared) link; no I/O until the first sync."""
        assert isinstance(options, ModbusLinkOptions)
        link = shared_link(env, options)
        if concern == "relays":
            from gateway.hal.modbus_relays import ModbusRelays  # noqa: PLC0415 (builds on this)

            assert isinstance(options, ModbusRelayOptions)
            return ModbusRelays(options, link)
        if concern == "outputs":
            assert isinstance(options, ModbusCoilOptions)
            return ModbusOutputs(options, link)
        if concern == "inputs":
            assert isinstance(options, ModbusInputOptions)
            return ModbusInputs(options, link)
        if concern == "adc":
            assert isinstance(options, ModbusAdcOptions)
            return ModbusAdc(options, link)
        assert isinstance(options, ModbusIndicatorOptions)
        return ModbusIndicators(options, link)


BACKEND = ModbusBackend()
