"""What a driver backend is, and the fail-open relay template every relay driver shares.

A backend (entry point in `bms_gateway.drivers`) is an object with a `name`, the
`concerns` it can drive, an `options_model(concern)` (a typed pydantic model of its config
keys) and `build(concern, options, env)`. Hardware drivers subclass `LeasedRelays` /
`SwitchBank`: the public methods own the invariants (range checks, lease, fail-open,
idempotent close) and a backend implements only `_write` and `_release` (style lesson 1).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from gateway.core.errors import ConfigError, GatewayError
from gateway.hal.base import RELAY_COUNT

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

GROUP = "bms_gateway.drivers"


class DriverError(GatewayError):
    """A driver could not talk to its hardware: count it, log it, retry later."""


class DriverUnavailableError(DriverError):
    """A backend's optional dependency is missing (`pip install bms-gateway[gpio]`)."""


@dataclass
class DriverEnv:
    """What a backend may use to build a driver besides its own options."""

    config: GatewayConfig | None = None
    pack: Any = None  # the simulator's PackModel, when there is one
    # Seam for tests: replaces `gpiod.request_lines` (there is no GPIO chip on CI machines).
    gpio_request_lines: Callable[..., Any] | None = None
    shared: dict[str, Any] | None = None  # per-build cache (e.g. one Modbus link per bus)

    def cache(self) -> dict[str, Any]:
        """Return the per-build shared cache."""
        if self.shared is None:
            self.shared = {}
        return self.shared


@runtime_checkable
class DriverBackend(Protocol):
    """An entry point of the `bms_gateway.drivers` group."""

    name: str
    concerns: frozenset[str]

    def options_model(self, concern: str) -> type[BaseModel]:
        """Return the typed model of this backend's options for `concern`."""
        ...

    def build(self, concern: str, options: BaseModel, env: DriverEnv) -> Any:
        """Build the driver for `concern` from validated options."""
        ...


def load_backend(name: str) -> DriverBackend:
    """Load a backend by name from the entry-point group.

    Raises:
        ConfigError: unknown name (the message lists the installed ones) or not a backend.
    """
    from gateway.core import registry  # noqa: PLC0415 (config imports this module lazily)
    from gateway.core.errors import PluginError  # noqa: PLC0415

    try:
        obj = registry.load(GROUP, name)
    except PluginError as err:
        raise ConfigError(str(err)) from err
    if not isinstance(obj, DriverBackend):
        raise ConfigError(f"{GROUP}:{name} is not a driver backend")
    return obj


def validate_choice(concern: str, backend_name: str, options: dict[str, Any]) -> BaseModel:
    """Validate one `drivers.<concern>` entry; return the backend's options model.

    Raises:
        ValueError: (pydantic turns it into a config error) unknown backend, a backend that
            cannot drive this concern, or invalid options.
    """
    try:
        backend = load_backend(backend_name)
    except ConfigError as err:
        raise ValueError(f"{concern}: {err}") from err
    if concern not in backend.concerns:
        raise ValueError(
            f"{concern}: backend {backend_name!r} drives only {', '.join(sorted(backend.concerns))}"
        )
    try:
        return backend.options_model(concern).model_validate(options)
    except ValidationError as err:
        # `<concern>.<key>: message` first, so the config error shows the full dotted path
        parts = [
            f"{'.'.join(str(p) for p in (concern, *e['loc']))}: {e['msg']}"
            for e in err.errors(include_input=False)
        ]
        raise ValueError(f"{'; '.join(parts)} (backend {backend_name})") from err


def check_names(kind: str, names: Iterable[str], known: Sequence[str]) -> None:
    """Reject option keys outside `known` (for the backends' option validators).

    Raises:
        ValueError: some of `names` are unknown (the message lists the valid ones).
    """
    unknown = set(names) - set(known)
    if unknown:
        raise ValueError(f"unknown {kind} {sorted(unknown)}; use {', '.join(known)}")


def describe_error(err: BaseException) -> str:
    """A user-facing reason for a driver failure: the OS/Modbus message, no repr."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror} ({type(err).__name__})"
    text = str(err).strip()
    return text or type(err).__name__


class LeasedRelays(ABC):
    """Relays 1-4 that fail open: at construction, when the lease lapses, and on close.

    Subclasses call `_start()` at the end of their constructor and implement `_write` (drive
    one relay; may raise) and `_release` (free the hardware).
    """

    count = RELAY_COUNT
    label = "relay driver"  # how `fault` names the driver (a backend says which, and where)

    def __init__(self) -> None:
        # The lease watchdog thread (hal/service.py) and the event loop both drive the
        # relays: one re-entrant lock around every change of the commanded state.
        self._lock = threading.RLock()
        self._commanded: dict[int, bool] = dict.fromkeys(range(1, self.count + 1), False)
        self._lease_until_s: float | None = None
        self._closed_down = False
        self._write_failures: dict[int, str] = {}  # relay -> reason of its last failed write
        self.lease_lapses = 0
        self.write_errors = 0

    @property
    def fault(self) -> str | None:
        """Why the driver cannot vouch for its relays now (None: it can).

        The engine raises the critical error `relay_driver_fault` with this text. The
        template reports relays whose last write failed; a backend with a link of its own
        (Modbus) adds its link and read-back state.
        """
        if not self._write_failures:
            return None
        n, reason = sorted(self._write_failures.items())[0]
        return f"{self.label}: relay {n}: {reason}"

    @property
    def errors_total(self) -> int:
        """Failures counted by this driver (failed writes; a backend may add its own)."""
        return self.write_errors

    def confirmed(self, relay: int) -> bool | None:
        """Return what the hardware last confirmed for one relay (None: not known).

        A driver whose writes are synchronous and checked (sim, GPIO) confirms what it wrote;
        a remote one (Modbus) returns its last read-back.
        """
        self._check_number(relay)
        if relay in self._write_failures:
            return None
        return self._commanded[relay]

    def _drive(self, relay: int, closed: bool) -> None:
        """`_write` one relay and record the outcome (raises what `_write` raised)."""
        try:
            self._write(relay, closed)
        except Exception as err:
            self.write_errors += 1
            self._write_failures[relay] = describe_error(err)
            raise
        self._write_failures.pop(relay, None)

    def _start(self) -> None:
        """Drive every relay open once the hardware is ready."""
        self.open_all()

    @abstractmethod
    def _write(self, relay: int, closed: bool) -> None:
        """Drive one relay on the hardware."""

    def _release(self) -> None:  # noqa: B027 (optional hook)
        """Free the hardware (after every relay was driven open)."""

    def _check_number(self, relay: int) -> None:
        if relay not in self._commanded:
            raise ValueError(f"relay {relay} out of 1..{self.count}")

    def set_relay(self, relay: int, closed: bool) -> None:
        """Command one relay (1-4).

        Raises:
            ValueError: the relay number is out of range.
            DriverError: the driver is closed (closing refused) or the hardware failed.
        """
        self._check_number(relay)
        with self._lock:
            if self._closed_down:
                if closed:
                    raise DriverError("relay driver is closed: refusing to close a relay")
                return
            self._commanded[relay] = closed
            try:
                self._drive(relay, closed)
            except Exception as err:
                raise DriverError(f"relay {relay}: {describe_error(err)}") from err

    def relay_closed(self, relay: int) -> bool:
        """Return the commanded state of one relay."""
        self._check_number(relay)
        return self._commanded[relay]

    def renew_lease(self, until_s: float) -> None:
        """Keep the relays as commanded until clock time `until_s`."""
        with self._lock:
            self._lease_until_s = until_s

    def check_lease(self, now_s: float) -> bool:
        """Open every relay if the lease has lapsed at `now_s`; return True when it had."""
        with self._lock:
            if self._lease_until_s is None or now_s <= self._lease_until_s:
                return False
            if any(self._commanded.values()):
                log.error("relay lease lapsed at %.3f s: opening every relay", now_s)
            self.lease_lapses += 1
            self._lease_until_s = None
            self.open_all()
            return True

    def open_all(self) -> None:
        """Drive every relay open (idempotent, never raises)."""
        with self._lock:
            for relay in self._commanded:
                self._commanded[relay] = False
                try:
                    self._drive(relay, False)
                except Exception as err:
                    log.error("could not drive relay %d open: %s", relay, describe_error(err))

    def close(self) -> None:
        """Open every relay and free the hardware (idempotent, never raises)."""
        with self._lock:
            if self._closed_down:
                return
            self.open_all()
            self._closed_down = True
        try:
            self._release()
        except Exception:
            log.exception("releasing the relay driver failed")


class SwitchBank(ABC):
    """Discrete outputs 1-N (or named indicators) that start off and switch off on close."""

    def __init__(self, names: list[Any]) -> None:
        self._on: dict[Any, bool] = dict.fromkeys(names, False)
        self._closed_down = False
        self.write_errors = 0

    def _start(self) -> None:
        """Switch everything off once the hardware is ready."""
        self.all_off()

    @abstractmethod
    def _write(self, name: Any, on: bool) -> None:
        """Drive one switch on the hardware."""

    def _release(self) -> None:  # noqa: B027 (optional hook)
        """Free the hardware."""

    def _switch(self, name: Any, on: bool) -> None:
        if name not in self._on:
            raise ValueError(f"{name!r} is not one of {', '.join(map(str, self._on))}")
        if self._closed_down:
            return
        self._on[name] = on
        try:
            self._write(name, on)
        except Exception as err:
            self.write_errors += 1
            raise DriverError(f"{name}: {err}") from err

    def all_off(self) -> None:
        """Switch everything off (never raises)."""
        for name in self._on:
            self._on[name] = False
            try:
                self._write(name, False)
            except Exception:
                self.write_errors += 1
                log.exception("could not switch %s off", name)

    def close(self) -> None:
        """Switch everything off and free the hardware (idempotent)."""
        if self._closed_down:
            return
        self.all_off()
        self._closed_down = True
        try:
            self._release()
        except Exception:
            log.exception("releasing a switch driver failed")


class Outputs(SwitchBank):
    """Base of discrete-output drivers (outputs 1-4)."""

    def set_output(self, output: int, on: bool) -> None:
        """Switch one output (1-4)."""
        self._switch(output, on)


class Indicators(SwitchBank):
    """Base of indicator drivers (DS2-DS8); unmapped indicators are kept in memory only."""

    def set_indicator(self, name: str, on: bool) -> None:
        """Switch one indicator."""
        self._switch(name, on)
