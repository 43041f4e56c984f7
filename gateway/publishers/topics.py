"""The gateway's MQTT topics, derived in one place from `mqtt.topic_prefix` and `gateway.id`.

Every topic lives under `<prefix>/<gateway.id>/` (docs/mqtt.md); a prefix given with a
trailing slash (`bms/`) means the same as without. The publisher, the command handler and
the Home Assistant discovery all take their topics from here, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.config import GatewayConfig


@dataclass(frozen=True, slots=True)
class Topics:
    """The gateway's MQTT topics, all under `<mqtt.topic_prefix>/<gateway.id>/`."""

    base: str
    availability: str
    state: str
    events: str

    @classmethod
    def from_config(cls, config: GatewayConfig) -> Topics:
        """Build the topics for this config."""
        return cls.under(config.mqtt.topic_prefix, config.gateway.id)

    @classmethod
    def under(cls, prefix: str, gateway_id: str) -> Topics:
        """Build the topics for a prefix and a gateway id."""
        base = f"{prefix.rstrip('/')}/{gateway_id}"
        return cls(
            base=base,
            availability=f"{base}/availability",
            state=f"{base}/state",
            events=f"{base}/events",
        )

    def sub(self, *levels: str) -> str:
        """Return a topic below the base (e.g. `sub("command", "ack")`)."""
        return "/".join((self.base, *levels))

    def command(self, command: str) -> str:
        """Return the command topic `<base>/command/<command>`."""
        return self.sub("command", command)
