"""What every component is built from: config, clock, bus, state and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry

from gateway.core.bus import EventBus
from gateway.core.clock import Clock
from gateway.core.health import Health
from gateway.core.state import StateStore

if TYPE_CHECKING:  # the ground floor names the higher layers' types only; app.py builds them
    from gateway.config import GatewayConfig
    from gateway.hal.drivers import Drivers
    from gateway.sim.pack import PackModel


@dataclass
class GatewayContext:
    """Shared objects of one running gateway (tests may build several in one process)."""

    config: GatewayConfig
    clock: Clock
    bus: EventBus
    store: StateStore
    drivers: Drivers  # built by gateway.app.build_context from `drivers.*`
    simulator: PackModel | None = None  # the embedded/scenario pack model, when there is one
    # Objects the MQTT publisher calls on every (re)connect and for messages on their
    # subscriptions (Home Assistant discovery, command topics): see gateway/publishers/mqtt.py.
    mqtt_extensions: list[Any] = field(default_factory=list)
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    health: Health = field(init=False)

    def __post_init__(self) -> None:
        self.health = Health(self.registry)
        self.bus.add_drop_listener(self.health.count_bus_drop)
        self.bus.add_subscribe_listener(self.health.known_subscriber)


@runtime_checkable
class Component(Protocol):
    """A long-running adapter or publisher; `run` is owned by the gateway's TaskGroup."""

    name: str

    async def run(self) -> None:
        """Run until cancelled; recoverable failures are handled inside."""
        ...


class ComponentFactory(Protocol):
    """What an entry point in `bms_gateway.adapters`/`publishers` must be."""

    def __call__(self, ctx: GatewayContext) -> Component | None:
        """Build the component, or return None when the config disables it."""
        ...
