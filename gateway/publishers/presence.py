"""Retained truth on the broker: one live gateway per id, and the last `state` says "open".

- Duplicate check: before a gateway publishes anything on its first connection, it asks
  whether another gateway with the same id is live. It subscribes to its own `availability`
  (the broker hands out the retained value at once), to `…/probe` and `…/probe/reply`, and
  publishes a probe carrying its boot id. When its own probe comes back, the retained
  availability has been delivered: if it is not `online`, no gateway with this id is
  connected (a live one keeps a retained `online`; a dead one's last will replaced it). If it
  is `online` (a live gateway, or one killed moments ago whose will has not fired yet), it
  waits up to `mqtt.duplicate_check_s` for an answer. Every running gateway answers each
  probe that is not its own on `…/probe/reply`. An answer means: refuse to start.
- Final state: on a graceful stop the publisher sends one last retained `state` in which
  every relay is open (`closed: false`, reason `shutdown`) before the retained `offline`.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from gateway.core.clock import Clock
from gateway.core.errors import FatalError
from gateway.core.supervise import reraise_swallowed_cancel
from gateway.publishers.payloads import AVAILABILITY_ONLINE, Topics, encode

PROBE = "probe"
REPLY = "reply"
SHUTDOWN_REASON = "shutdown"


class DuplicateGatewayError(FatalError):
    """Another live gateway publishes under the same `gateway.id` on this broker."""


def probe_topics(topics: Topics) -> tuple[str, str]:
    """Return (`…/probe`, `…/probe/reply`)."""
    return topics.sub(PROBE), topics.sub(PROBE, REPLY)


def who(boot_id: str) -> dict[str, Any]:
    """The body of a probe or an answer: which process this is."""
    return {"boot_id": boot_id, "host": socket.gethostname(), "pid": os.getpid()}


def _body(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, bytes | bytearray):
        return {}
    try:
        value = json.loads(bytes(payload))
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class _Seen:
    echoed: asyncio.Event = field(default_factory=asyncio.Event)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    retained_online: bool = False
    other: dict[str, Any] = field(default_factory=dict)


async def check_no_duplicate(
    client: aiomqtt.Client,
    topics: Topics,
    boot_id: str,
    clock: Clock,
    wait_s: float,
    io_timeout_s: float,
) -> None:
    """Raise `DuplicateGatewayError` when another live gateway answers (see the module doc).

    Must run before anything is published on a fresh connection, before the message loop.
    """
    if wait_s <= 0:
        return
    probe, reply = probe_topics(topics)
    for t in (topics.availability, probe, reply):
        await client.subscribe(t, qos=1)
        reraise_swallowed_cancel()
    seen = _Seen()
    reader = asyncio.create_task(_read(client, topics, boot_id, seen), name="mqtt:probe")
    try:
        await client.publish(probe, encode(who(boot_id)), qos=1)
        reraise_swallowed_cancel()
        async with asyncio.timeout(io_timeout_s):  # our own probe comes back
            await asyncio.wait(
                [asyncio.ensure_future(seen.echoed.wait()), reader],
                return_when=asyncio.FIRST_COMPLETED,
            )
        if reader.done():
            reader.result()  # the connection dropped: raise its MqttError
        if not seen.answered.is_set() and seen.retained_online:
            answered = asyncio.ensure_future(seen.answered.wait())
            timer = asyncio.ensure_future(clock.sleep(wait_s))
            try:
                await asyncio.wait([answered, timer, reader], return_when=asyncio.FIRST_COMPLETED)
            finally:
                answered.cancel()
                timer.cancel()
            if reader.done() and not seen.answered.is_set():
                reader.result()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    for t in (topics.availability, reply):
        await client.unsubscribe(t)
        reraise_swallowed_cancel()
    if seen.answered.is_set():
        o = seen.other
        raise DuplicateGatewayError(
            f"another gateway with gateway.id {topics.base.rsplit('/', 1)[-1]!r} is running "
            f"on this broker (host {o.get('host', '?')}, pid {o.get('pid', '?')}, boot "
            f"{str(o.get('boot_id', '?'))[:8]}); refusing to start so that its retained state "
            "is not overwritten. Stop the other one, or give this one its own gateway.id."
        )


async def _read(client: aiomqtt.Client, topics: Topics, boot_id: str, seen: _Seen) -> None:
    probe, reply = probe_topics(topics)
    async for m in client.messages:
        topic = m.topic.value
        body = _body(m.payload)
        if topic == topics.availability:
            seen.retained_online = m.payload == AVAILABILITY_ONLINE.encode()
        elif topic == probe and body.get("boot_id") == boot_id:
            seen.echoed.set()
        elif topic == reply and body.get("to") == boot_id and body.get("boot_id") != boot_id:
            seen.other = body
            seen.answered.set()
            seen.echoed.set()


def probe_answer(payload: Any, boot_id: str) -> tuple[bytes, dict[str, Any]] | None:
    """For a message on `…/probe`: the answer to publish, or None when it is our own."""
    body = _body(payload)
    other = body.get("boot_id")
    if not isinstance(other, str) or other == boot_id:
        return None
    return encode({**who(boot_id), "to": other}), body


def shutdown_state(message: dict[str, Any], now_iso: str) -> dict[str, Any]:
    """The final `state`: every relay open (`closed: false`) for reason `shutdown`."""
    final = dict(message)
    final["timestamp"] = now_iso
    reasons = dict(final.get("reasons") or {})
    relays = []
    for relay in final.get("relays") or []:
        r = dict(relay)
        if r.get("closed"):
            r["since"] = now_iso
        r["closed"] = False
        relays.append(r)
        reasons[str(r.get("function"))] = [SHUTDOWN_REASON]
    final["relays"] = relays
    final["reasons"] = reasons
    return final
