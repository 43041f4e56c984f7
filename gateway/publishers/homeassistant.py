"""Home Assistant MQTT discovery: one device per gateway, entities declared once as data.

An MQTT extension (see `gateway.publishers.mqtt.MqttExtension`): the MQTT publisher calls
`on_connected` after every (re)connect and hands over messages on `subscriptions()`.

- `DESCRIPTIONS` (in `gateway.publishers.homeassistant_entities`, re-exported here) is the
  one table of entities (style lesson 9); its numeric pack sensors are the rows of the
  measurement table (`gateway.publishers.measurements`). `entity_descriptions` keeps the rows
  whose `has_fn(config)` is true and adds the optional per-cell rows.
- `discovery_messages(config)` and `removal_message(topic)` are pure builders returning
  `(topic, payload bytes, retain)` (style lesson 10), pinned by golden files in tests.
- Topics come from `gateway.publishers.topics`, as the MQTT publisher's do.
- Every entity with a state reads the retained `<prefix>/<id>/state` JSON through a
  `value_template`; every entity is available while `<prefix>/<id>/availability` is `online`
  (the gateway's LWT). Controls (`switch`, `button`) publish to the MQTT command topics
  `<prefix>/<id>/command/<name>` of `gateway.publishers.commands`; their rows exist only
  when `commands` allows the command.
- Re-announces when Home Assistant publishes `online` on its status topic. Removes stale
  entities: it subscribes to its own config topics, so the broker hands back every retained
  config under this node on connect; any that the config no longer produces is cleared with
  an empty retained payload. No local bookkeeping is needed, and nothing waits on a timer.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any, NamedTuple

from gateway import __version__
from gateway.publishers.commands_section import HA_IDENTITY
from gateway.publishers.homeassistant_entities import (
    DESCRIPTIONS,
    INPUTS,
    OUTPUTS,
    RELAYS,
    EntityDescription,
    entity_descriptions,
)
from gateway.publishers.homeassistant_section import HomeAssistantSection
from gateway.publishers.topics import Topics

if TYPE_CHECKING:
    import aiomqtt

    from gateway.config import GatewayConfig
    from gateway.core.context import GatewayContext
    from gateway.core.health import Health

log = logging.getLogger(__name__)

MODEL = "BMS Main 2.1"
__all__ = [
    "DESCRIPTIONS",
    "INPUTS",
    "OUTPUTS",
    "RELAYS",
    "DiscoveryMessage",
    "EntityDescription",
    "HomeAssistantDiscovery",
    "HomeAssistantSection",
    "create",
    "discovery_messages",
    "entity_descriptions",
    "removal_message",
]


class DiscoveryMessage(NamedTuple):
    """One MQTT message to publish."""

    topic: str
    payload: bytes
    retain: bool


def node_id(config: GatewayConfig) -> str:
    """Return the discovery node id (default: the gateway id)."""
    return config.homeassistant.node_id or config.gateway.id


def state_topic(config: GatewayConfig) -> str:
    """Return the gateway's retained `state` topic (where the MQTT publisher sends it)."""
    return Topics.from_config(config).state


def availability_topic(config: GatewayConfig) -> str:
    """Return the gateway's retained availability (LWT) topic."""
    return Topics.from_config(config).availability


def command_topic(config: GatewayConfig, command: str) -> str:
    """Return HA's command topic `<prefix>/<id>/command/<command>/homeassistant` (commands.py).

    The identity level lets the broker ACL vouch for Home Assistant (docs/mqtt.md).
    """
    return Topics.from_config(config).sub("command", command, HA_IDENTITY)


def config_topic(config: GatewayConfig, desc: EntityDescription) -> str:
    """Return `<discovery_prefix>/<component>/<node_id>/<object_id>/config`."""
    ha = config.homeassistant
    return f"{ha.discovery_prefix}/{desc.component}/{node_id(config)}/{desc.key}/config"


def own_config_filter(config: GatewayConfig) -> str:
    """Return the subscription filter matching every config topic of this node."""
    return f"{config.homeassistant.discovery_prefix}/+/{node_id(config)}/+/config"


def device_block(config: GatewayConfig) -> dict[str, Any]:
    """Return the HA `device` object shared by every entity."""
    ha = config.homeassistant
    device: dict[str, Any] = {
        "identifiers": [f"bms_gateway_{node_id(config)}"],
        "name": ha.device_name or f"BMS {config.gateway.id}",
        "model": MODEL,
        "manufacturer": ha.manufacturer,
        "sw_version": __version__,
    }
    if ha.configuration_url:
        device["configuration_url"] = ha.configuration_url
    return device


def config_payload(config: GatewayConfig, desc: EntityDescription) -> dict[str, Any]:
    """Return the discovery config object of one entity."""
    node = node_id(config)
    payload: dict[str, Any] = {
        "name": desc.name_fn(config) if desc.name_fn else desc.name,
        "unique_id": f"{node}_{desc.key}",
        "availability_topic": availability_topic(config),
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device_block(config),
    }
    if desc.value_template is not None:
        payload["state_topic"] = state_topic(config)
        payload["value_template"] = desc.value_template
    if desc.command is not None:
        payload["command_topic"] = command_topic(config, desc.command)
    optional = {
        "payload_on": desc.payload_on,
        "payload_off": desc.payload_off,
        "state_on": desc.state_on,
        "state_off": desc.state_off,
        "payload_press": desc.payload_press,
        "device_class": desc.device_class,
        "state_class": desc.state_class,
        "unit_of_measurement": desc.unit,
        "entity_category": desc.entity_category,
        "icon": desc.icon,
        "suggested_display_precision": desc.precision,
    }
    payload.update({k: v for k, v in optional.items() if v is not None})
    return payload


def encode(payload: dict[str, Any]) -> bytes:
    """Serialise a payload deterministically (sorted keys, UTF-8)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def discovery_messages(config: GatewayConfig) -> list[DiscoveryMessage]:
    """Return one retained config message per entity the config produces."""
    return [
        DiscoveryMessage(config_topic(config, d), encode(config_payload(config, d)), True)
        for d in entity_descriptions(config)
    ]


def removal_message(topic: str) -> DiscoveryMessage:
    """Return the message that deletes an entity (empty retained config)."""
    return DiscoveryMessage(topic, b"", True)


def _matches(topic: str, pattern: str) -> bool:
    """MQTT filter match for `+` levels (enough for our own filters)."""
    t, p = topic.split("/"), pattern.split("/")
    return len(t) == len(p) and all(b in (a, "+") for a, b in zip(t, p, strict=True))


def _payload_bytes(payload: Any) -> bytes:
    if payload is None:
        return b""
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    return str(payload).encode()


_ONLINE = re.compile(rb"^\s*online\s*$")


class HomeAssistantDiscovery:
    """MQTT extension announcing, re-announcing and pruning the discovery configs."""

    name = "homeassistant"

    def __init__(self, config: GatewayConfig, health: Health | None = None) -> None:
        self._config = config
        self._health = health
        self.messages = discovery_messages(config)
        self._topics = frozenset(m.topic for m in self.messages)
        self._filter = own_config_filter(config)
        self.announcements = 0  # complete announce rounds
        self.removed: list[str] = []  # config topics cleared because no longer produced

    def subscriptions(self) -> list[str]:
        """Return HA's status topic and the filter over this node's config topics."""
        return [self._config.homeassistant.status_topic, self._filter]

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Announce every entity after a (re)connect."""
        await self.announce(client)

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Re-announce on HA's `online`; clear retained configs this config no longer makes."""
        topic = message.topic.value
        payload = _payload_bytes(message.payload)
        if topic == self._config.homeassistant.status_topic:
            if _ONLINE.match(payload):
                log.info("Home Assistant came online: re-announcing %d entities", len(self._topics))
                await self.announce(client)
            return
        if _matches(topic, self._filter) and payload and topic not in self._topics:
            log.info("removing stale Home Assistant entity %s", topic)
            await self._publish(client, removal_message(topic))
            self.removed.append(topic)

    async def announce(self, client: aiomqtt.Client) -> None:
        """Publish every config (QoS 1, retained)."""
        for m in self.messages:
            await self._publish(client, m)
        self.announcements += 1

    async def _publish(self, client: aiomqtt.Client, m: DiscoveryMessage) -> None:
        await client.publish(m.topic, m.payload, qos=1, retain=m.retain)
        if self._health is not None:
            self._health.mqtt_publishes.labels(topic="homeassistant_discovery").inc()


def create(ctx: GatewayContext) -> None:
    """Register the discovery extension with the MQTT publisher; never a component itself."""
    if ctx.config.homeassistant.enabled and ctx.config.mqtt.enabled:
        ctx.mqtt_extensions.append(HomeAssistantDiscovery(ctx.config, ctx.health))
