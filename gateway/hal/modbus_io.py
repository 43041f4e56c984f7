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
import logging
import threading
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateway.core.section import Section
from gateway.hal.backend import (
    DriverEnv,
    DriverError,
    Indicators,
    LeasedRelays,
    Outputs,
    check_names,
)
from gateway.hal.base import ADC_CHANNELS, INDICATORS, INPUT_COUNT, OUTPUT_COUNT, RELAY_COUNT

if TYPE_CHECKING:
    from gateway.core.clock import Clock

log = logging.getLogger(__name__)


# --- options ------------------------------------------------------------------------


class ModbusLinkOptions(Section):
    """Where the module is."""

    transport: Literal["tcp", "rtu"] = Field("tcp", description="tcp or rtu (RS-485).")
    host: str = Field("127.0.0.1", description="tcp: module address.")
    port: int = Field(502, ge=1, lt=65536, description="tcp: port.")
    serial_port: str | None = Field(None, description="rtu: serial device, e.g. /dev/ttyUSB0.")
    baudrate: int = Field(9600, gt=0, description="rtu: baud rate.")
    parity: Literal["N", "E", "O"] = Field("N", description="rtu: parity.")
    stopbits: Literal[1, 2] = Field(1, description="rtu: stop bits.")
    device_id: int = Field(1, ge=0, le=247, description="Modbus device (slave) id.")
    timeout_s: float = Field(0.5, gt=0, le=10, description="Per-request timeout.")
    poll_interval_s: float = Field(0.2, gt=0, le=60, description="Write/read period.")

    def link_key(self) -> tuple[str, ...]:
        """Identify the bus so drivers on it share one client."""
        if self.transport == "tcp":
            return ("tcp", self.host, str(self.port))
        return ("rtu", str(self.serial_port))


class ModbusCoilOptions(ModbusLinkOptions):
    """`relays` / `outputs`: coil addresses of numbers 1-4."""

    coils: list[int] = Field(default_factory=lambda: [0, 1, 2, 3], description="Coils 1-4.")

    @field_validator("coils")
    @classmethod
    def _four(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or len(set(v)) != 4 or any(not 0 <= a <= 0xFFFF for a in v):
            raise ValueError("coils: four distinct addresses 0-65535 (numbers 1-4)")
        return v


class ModbusIndicatorOptions(ModbusLinkOptions):
    """`indicators`: coil per indicator."""

    coils: dict[str, int] = Field(default_factory=dict, description="DS2-DS8 -> coil.")

    @field_validator("coils")
    @classmethod
    def _names(cls, v: dict[str, int]) -> dict[str, int]:
        check_names("indicators", v, INDICATORS)
        return v


class ModbusInputOptions(ModbusLinkOptions):
    """`inputs`: discrete-input addresses of inputs 1-4."""

    discrete_inputs: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3], description="Discrete inputs 1-4."
    )
    invert: bool = Field(False, description="A set bit means the contact is open.")

    @field_validator("discrete_inputs")
    @classmethod
    def _four(cls, v: list[int]) -> list[int]:
        if len(v) != 4 or any(not 0 <= a <= 0xFFFF for a in v):
            raise ValueError("discrete_inputs: four addresses 0-65535 (inputs 1-4)")
        return v


class ModbusAdcChannel(Section):
    """One analog input: volts = (signed?) register value * scale + offset."""

    address: int = Field(ge=0, le=0xFFFF, description="Register address.")
    scale: float = Field(0.001, description="Volts per count (0.001 for a module in mV).")
    offset: float = Field(0.0, description="Volts added after scaling.")
    signed: bool = Field(False, description="Register holds a signed 16-bit value.")


class ModbusAdcOptions(ModbusLinkOptions):
    """`adc`: analog-input module registers."""

    register_type: Literal["input", "holding"] = Field("input", description="Register table.")
    channels: dict[str, ModbusAdcChannel] = Field(
        default_factory=lambda: {
            c: ModbusAdcChannel(address=i) for i, c in enumerate(ADC_CHANNELS)
        },
        description="vcs, vref, vhs, vts -> {address, scale, offset, signed}.",
    )

    @field_validator("channels")
    @classmethod
    def _names(cls, v: dict[str, ModbusAdcChannel]) -> dict[str, ModbusAdcChannel]:
        check_names("channels", v, ADC_CHANNELS)
        return v


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

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Run one request; raise `DriverError` on a transport error or an exception reply."""
        from pymodbus.exceptions import ModbusException  # noqa: PLC0415

        with self.lock:
            try:
                if not self.client.connected and not self.client.connect():
                    raise DriverError(f"cannot connect to Modbus module at {self.where}")
                reply = getattr(self.client, method)(*args, **kwargs)
            except ModbusException as err:
                self.client.close()
                raise DriverError(f"{method} at {self.where}: {err}") from err
        if reply is None or reply.isError():
            raise DriverError(f"{method} at {self.where}: exception reply {reply}")
        return reply

    def release(self) -> None:
        """Drop one user; close the client after the last."""
        self.users -= 1
        if self.users <= 0:
            with self.lock:
                self.client.close()


def _link(env: DriverEnv, opts: ModbusLinkOptions) -> ModbusLink:
    cache = env.cache()
    key = "modbus:" + ":".join(opts.link_key())
    link = cache.get(key)
    if link is None:
        link = ModbusLink(opts)
        cache[key] = link
    assert isinstance(link, ModbusLink)
    link.users += 1
    return link


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
    def sync_once(self) -> None:
        """Do this driver's I/O once (blocking; raises DriverError)."""

    async def refresh(self) -> None:
        """Do the I/O now, in a worker thread."""
        await asyncio.to_thread(self.sync_once)

    def _poke(self) -> None:
        wake, loop = self._wake, self._loop
        if wake is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wake.set()
        elif not loop.is_closed():  # the lease watchdog thread opens relays
            loop.call_soon_threadsafe(wake.set)

    async def run(self, clock: Clock) -> None:
        """Sync every `poll_interval_s` or at once when poked; errors are logged and counted."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            self._wake.clear()
            try:
                await self.refresh()
            except DriverError as err:
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

    def want(self, name: Any, on: bool) -> None:
        """Record a desired state."""
        if name in self.coils:
            self.desired[name] = on
            self.dirty.add(name)

    def sync(self) -> None:
        """Write the changed coils."""
        for name in list(self.dirty):
            value = self.desired[name]
            try:
                self.link.call("write_coil", self.coils[name], value, device_id=self.device_id)
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
            self.sync()
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
        self.writer.want(name, on)
        self._poke()

    def sync_once(self) -> None:
        """Write changed coils."""
        if not self._closed_down:
            self.writer.sync()

    def _release(self) -> None:
        self.writer.all_off_now()
        self.link.release()


class ModbusRelays(CoilDriven, LeasedRelays):
    """Relays 1-4 on a relay module's coils."""

    def __init__(self, opts: ModbusCoilOptions, link: ModbusLink) -> None:
        LeasedRelays.__init__(self)
        self._bind(opts, link, dict(zip(range(1, RELAY_COUNT + 1), opts.coils, strict=True)))
        self._start()


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

    def sync_once(self) -> None:
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

    def sync_once(self) -> None:
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
            "relays": ModbusCoilOptions,
            "outputs": ModbusCoilOptions,
            "inputs": ModbusInputOptions,
            "adc": ModbusAdcOptions,
            "indicators": ModbusIndicatorOptions,
        }
        return models[concern]

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Build the driver on the (shared) link; no I/O until the first sync."""
        assert isinstance(options, ModbusLinkOptions)
        link = _link(env, options)
        if concern == "relays":
            assert isinstance(options, ModbusCoilOptions)
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
