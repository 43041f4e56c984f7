"""The hook by which other components ride on the gateway's MQTT connection."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import aiomqtt


@runtime_checkable
class MqttExtension(Protocol):
    """Something that rides on the gateway's MQTT connection (put it in `ctx.mqtt_extensions`).

    After every (re)connect the publisher subscribes to `subscriptions()` (QoS 1) and then
    awaits `on_connected`; each message matching one of the filters is passed to
    `on_message`. Both run on the publisher's task: keep them short. An `aiomqtt.MqttError`
    they raise is treated as a lost connection; any other exception is logged and counted
    and the connection carries on.
    """

    def subscriptions(self) -> list[str]:
        """Return the topic filters to subscribe to (may be empty)."""
        ...

    async def on_connected(self, client: aiomqtt.Client) -> None:
        """Publish what must be (re)announced on every connection (e.g. discovery)."""
        ...

    async def on_message(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        """Handle one message on a subscribed topic."""
        ...
