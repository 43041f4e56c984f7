"""Commands can never make the battery less safe without the gateway's own authorisation.

Pure checks of `authorise`, then end to end on a real Mosquitto with the gateway speaking
MQTT 5: refused less-safe commands (with the reason, on the requester's response topic with
its correlation data), the token as a payload field and as a v5 user property, identity
topics, the Zigbee2MQTT-style `transaction`, and the token never appearing in a log line,
a reply or an event.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.publishers.command_parse import Rejected, authorise, parse_command
from gateway.publishers.commands_section import CommandsSection
from tests.support.broker import Broker
from tests.support.mqtt import watching
from tests.test_commands import EVENTS, RESULT, World, make_world, rig, until, wait_for

TOKEN = "s3cret-token-xyz"
GW_BASE = RESULT.rsplit("/command/", 1)[0]


def cfg(**kw: Any) -> CommandsSection:
    return CommandsSection(**kw)


def reason(cmd: str, payload: bytes, section: CommandsSection, **kw: Any) -> str:
    try:
        return authorise(
            parse_command(cmd, payload),
            section,
            identity=kw.get("identity"),
            property_token=kw.get("prop"),
        )
    except Rejected as err:
        assert TOKEN not in err.detail
        return err.reason


def test_safer_commands_need_nothing_and_less_safe_ones_need_authority() -> None:
    off = cfg()  # defaults: release and ack disabled
    assert reason("go_safe", b"on", off) == "not_needed"
    assert reason("go_safe", b"off", off) == "not_allowed"
    assert reason("ack", b"all", off) == "not_allowed"
    on = cfg(allow_go_safe_release=True, allow_ack=True, token=TOKEN, trusted_identities=["op"])
    assert reason("go_safe", b"on", on) == "not_needed"
    assert reason("go_safe", b"off", on) == "unauthorised"
    assert reason("ack", b"all", on) == "unauthorised"
    bad = json.dumps({"active": False, "token": TOKEN + "x"}).encode()
    assert reason("go_safe", bad, on) == "unauthorised"
    good = json.dumps({"active": False, "token": TOKEN}).encode()
    assert reason("go_safe", good, on) == "token"
    assert reason("ack", b"all", on, prop=TOKEN) == "token"
    assert reason("ack", b"all", on, prop="nope-nope") == "unauthorised"
    assert reason("ack", b"all", on, identity="op") == "identity"
    assert reason("ack", b"all", on, identity="mallory") == "unauthorised"
    assert TOKEN not in repr(parse_command("go_safe", good))


def test_enabling_a_less_safe_command_without_authority_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"commands\.allow_ack.*commands\.token"):
        load_config(None, {"commands": {"allow_ack": True}}, env=False)
    with pytest.raises(ConfigError, match=r"commands\.token.*8 characters"):
        load_config(None, {"commands": {"token": "short"}}, env=False)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n", encoding="utf-8")
    loaded = load_config(
        None, {"commands": {"allow_ack": True, "token_file": str(secret)}}, env=False
    )
    assert loaded.commands.secret() == TOKEN and TOKEN not in repr(loaded.commands)


def v5_world(tmp_path: Path, broker: Broker) -> World:
    world = make_world(
        tmp_path,
        broker,
        commands={
            "allow_go_safe_release": True,
            "allow_ack": True,
            "token": TOKEN,
            "trusted_identities": ["operator"],
        },
    )
    world.ctx.config.mqtt.protocol = "5"
    return world


def request_props(response_topic: str, correlation: bytes, token: str | None) -> Properties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = response_topic
    props.CorrelationData = correlation
    if token is not None:
        props.UserProperty = [("token", token)]
    return props


@pytest.mark.broker
async def test_unauthorised_less_safe_commands_are_refused_with_a_reason(
    tmp_path: Path, broker: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world = v5_world(tmp_path, broker)
    replies: list[tuple[dict[str, Any], bytes | None]] = []
    async with (
        watching(broker, RESULT) as results,
        watching(broker, EVENTS) as events,
        rig(world, broker) as r,
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as me,
    ):
        await me.subscribe("client/replies", qos=1)

        async def replies_in() -> None:
            async for m in me.messages:
                assert isinstance(m.payload, bytes)
                corr = getattr(m.properties, "CorrelationData", None)
                replies.append((json.loads(m.payload), corr))

        rx = asyncio.create_task(replies_in())
        try:
            await r.run_until(3.0)
            assert 1 in r.closed()
            await r.command("go_safe", "on")
            await r.run_until(r.t)
            assert r.closed() == []

            async def ask(topic: str, payload: str, corr: bytes, token: str | None) -> None:
                props = request_props("client/replies", corr, token)
                await me.publish(f"{GW_BASE}/command/{topic}", payload, qos=1, properties=props)
                # An accepted command is answered after the engine's next cycle: keep cycling.
                for _ in range(500):
                    if any(c == corr for _, c in replies):
                        break
                    await r.run_until(r.t + 0.1)
                    await asyncio.sleep(0.01)
                else:
                    pytest.fail(f"no reply {corr!r}")
                await r.run_until(r.t + 1.0)

            def reply(corr: bytes) -> dict[str, Any]:
                return next(body for body, c in replies if c == corr)

            # No token, a wrong token, an untrusted identity: refused, relays stay open.
            await ask("go_safe", "off", b"c1", None)
            await ask("go_safe", "off", b"c2", "wrong-token!")
            await ask("go_safe/mallory", "off", b"c3", None)
            await ask("ack", json.dumps({"error": "all", "token": "nope-nope"}), b"c4", None)
            for corr in (b"c1", b"c2", b"c3", b"c4"):
                body = reply(corr)
                assert body["ok"] is False and "authorisation" in body["detail"], body
                assert body["request"] is None
            assert r.rejected("unauthorised") == 4
            assert r.closed() == [] and r.control.reasons["go_safe"] == ["mqtt"]

            # The token as a v5 user property: released; the reply after the engine applied it.
            await ask("go_safe", "off", b"c5", TOKEN)
            assert reply(b"c5")["ok"] is True and isinstance(reply(b"c5")["request"], int)
            await r.run_until(r.t + 3.0)
            assert 1 in r.closed()

            # A trusted identity topic; a v3-style payload token with a transaction.
            await ask("go_safe", "on", b"c6", None)
            assert r.closed() == []
            await ask("go_safe/operator", "off", b"c7", None)
            assert reply(b"c7")["ok"] is True
            await r.command("go_safe", "on")
            await r.run_until(r.t)
            body = json.dumps({"active": False, "token": TOKEN, "transaction": "tx-42"})
            await r.send("go_safe", body)
            await until(lambda: r.received("go_safe") >= 5, "released by payload token")
            await r.run_until(r.t + 0.1)
            tx = await wait_for(results, "transaction reply", transaction="tx-42")
            assert tx["ok"] is True and tx["command"] == "go_safe"
            refused = json.dumps({"active": False, "transaction": 7})
            await r.send("go_safe", refused)
            tx7 = await wait_for(results, "refusal with transaction", transaction=7)
            assert tx7["ok"] is False
        finally:
            rx.cancel()
    seen = json.dumps([[b for b, _ in replies], results, events]) + caplog.text
    assert TOKEN not in seen  # never logged, echoed or published


@pytest.mark.broker
async def test_a_response_topic_inside_the_gateways_own_tree_is_not_used(
    tmp_path: Path, broker: Broker
) -> None:
    world = v5_world(tmp_path, broker)
    async with (
        watching(broker, RESULT) as results,
        watching(broker, f"{GW_BASE}/state") as states,
        rig(world, broker),
        aiomqtt.Client(broker.host, broker.port, protocol=aiomqtt.ProtocolVersion.V5) as me,
    ):
        props = request_props(f"{GW_BASE}/state", b"x", None)
        await me.publish(f"{GW_BASE}/command/go_safe", "off", qos=1, properties=props)
        body = await wait_for(results, "reply on command/result", command="go_safe")
        assert body["ok"] is False
        assert not any("command" in s for s in states)
