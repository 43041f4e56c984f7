"""Registries of scenario `set` actions, `expect` keys and extensions.

A subsystem adds its own keys without touching the runner: it registers a `SetAction`
(parse the YAML value at a dotted path, then apply it to the `World`), an `Expectation`
(parse, then check against the `World` and return `Outcome`s) and, when it needs running
components (e.g. a virtual CAN bus and the CAN publishers), an `Extension` whose async
`start(world)` may call `world.start_component(...)`.

Registration: call `register_set_action` / `register_expectation` / `register_extension`
from a function exposed in the entry-point group `bms_gateway.scenario` (each entry point
is a callable taking no argument); the runner loads that group before it parses a file.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.core import registry

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.scenario.world import World

log = logging.getLogger(__name__)

PLUGIN_GROUP = "bms_gateway.scenario"


class ScenarioError(Exception):
    """A scenario file is invalid; `path` is the dotted path of the bad key."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    """One checked expectation."""

    ok: bool
    what: str  # e.g. "relays.charge_contactor"
    expected: str
    seen: str


@dataclass(frozen=True)
class SetAction:
    """A `set` key: `parse(value, path, config)` then `apply(world, parsed)`.

    `apply` may return an awaitable (e.g. waiting for real I/O it started to land); the
    runner awaits it at the end of the tick, before the clock moves on.
    """

    name: str
    parse: Callable[[Any, str, GatewayConfig], Any]
    apply: Callable[[World, Any], Awaitable[None] | None]


@dataclass(frozen=True)
class Expectation:
    """An `expect` key: `parse(value, path, config)` then `check(world, parsed)`."""

    name: str
    parse: Callable[[Any, str, GatewayConfig], Any]
    check: Callable[[World, Any], list[Outcome]]


@dataclass(frozen=True)
class Extension:
    """Something a scenario needs running beside the engine (started once per file)."""

    name: str
    start: Callable[[World], Awaitable[None]]
    stop: Callable[[World], Awaitable[None]] | None = None


SET_ACTIONS: dict[str, SetAction] = {}
EXPECTATIONS: dict[str, Expectation] = {}
EXTENSIONS: dict[str, Extension] = {}
_plugins_loaded = False


def register_set_action(action: SetAction) -> None:
    """Add a `set` key (a built-in name may not be replaced)."""
    if action.name in SET_ACTIONS and SET_ACTIONS[action.name] is not action:
        raise ValueError(f"set action {action.name!r} is already registered")
    SET_ACTIONS[action.name] = action


def register_expectation(expectation: Expectation) -> None:
    """Add an `expect` key."""
    if expectation.name in EXPECTATIONS and EXPECTATIONS[expectation.name] is not expectation:
        raise ValueError(f"expectation {expectation.name!r} is already registered")
    EXPECTATIONS[expectation.name] = expectation


def register_extension(extension: Extension) -> None:
    """Add an extension started with every scenario."""
    EXTENSIONS[extension.name] = extension


def load_plugins() -> None:
    """Load the built-in keys and every `bms_gateway.scenario` entry point (once)."""
    global _plugins_loaded  # noqa: PLW0603
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import gateway.scenario.actions  # noqa: PLC0415
    import gateway.scenario.expectations  # noqa: F401, PLC0415

    for name, entry in sorted(registry.discover(PLUGIN_GROUP).items()):
        try:
            entry.load()()
        except Exception:
            log.exception("scenario plugin %s failed to load", name)
