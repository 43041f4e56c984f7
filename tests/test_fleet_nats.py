"""A fleet on a clustered broker: 20+ gateways on a three-node NATS cluster, one node killed.

Each gateway is an in-process instance of the real `MqttPublisher` with its own context,
outbox and `mqtt.brokers` list (the three nodes, rotated so each node serves a third of the
fleet). With the fleet connected, one node is killed (SIGKILL). Then:

- every gateway that was on it reconnects to another node (the nodes' own connection lists,
  `/connz`, show where each client id is), within its backoff;
- no retained state is lost: a new subscriber gets every gateway's `state` and `availability`;
- every event is delivered: notices raised before, during and after the outage reach a
  subscriber on a surviving node (each `seq` of each gateway at least once).

CI runs 20 gateways; `BMSGW_SLOW=1` runs 60.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.app import build_context
from gateway.config import load_config
from gateway.core.clock import RealClock
from gateway.core.context import GatewayContext
from gateway.core.events import BoardScanned, BoardWentOffline
from gateway.publishers.mqtt import MqttPublisher
from tests.support.nats import NATS_SERVER, NatsCluster, NatsNode
from tests.support.waiting import until

pytestmark = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed")

GATEWAYS = 60 if os.environ.get("BMSGW_SLOW") else 20
EVENTS_PER_PHASE = 3
PREFIX = "fleet"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path / "nats")
    try:
        c.start()
        yield c
    finally:
        c.stop()


class Gateway:
    """One in-process gateway: a context with two scanned boards and its MQTT publisher."""

    def __init__(self, n: int, brokers: list[str], state_dir: Path) -> None:
        self.id = f"gw{n:03d}"
        self.client_id = f"fleet-{self.id}"
        config = load_config(
            overrides={
                "gateway": {"id": self.id, "state_dir": str(state_dir)},
                "mqtt": {
                    "brokers": brokers,
                    "client_id": self.client_id,
                    "topic_prefix": PREFIX,
                    "publish_interval_s": 0.5,
                    "reconnect_min_s": 0.2,
                    "reconnect_max_s": 1.0,
                    "duplicate_check_s": 0,
                },
                "logic": {"boards": 2, "cells_per_board": 4},
                "homeassistant": {"enabled": False},
                "metrics": {"enabled": False},
            },
            env=False,
        )
        self.ctx: GatewayContext = build_context(config, RealClock())
        for board in (1, 2):
            self.ctx.store.apply(
                BoardScanned(
                    at_s=0.0,
                    board=board,
                    cell_voltages_v=(3.301, 3.302, 3.303, 3.304),
                    temperatures_c=(25.0, 25.5, 26.0, 26.5),
                    board_temperature_c=30.0,
                )
            )
        self.publisher = MqttPublisher(self.ctx)
        self.raised = 0

    def raise_events(self, count: int) -> None:
        for _ in range(count):
            self.raised += 1
            self.ctx.bus.publish(
                BoardWentOffline(
                    at_s=self.ctx.clock.now(), board=1, reason="timeout", consecutive_failures=3
                )
            )


def _clients_on(node: NatsNode) -> set[str]:
    """MQTT client ids connected to a node, from its monitoring endpoint."""
    url = f"http://127.0.0.1:{node.http_port}/connz?limit=10000"
    with urllib.request.urlopen(url, timeout=2) as r:
        conns = json.loads(r.read()).get("connections") or []
    return {c["mqtt_client"] for c in conns if c.get("mqtt_client")}


def _where(cluster: NatsCluster, fleet: list[Gateway]) -> dict[str, str]:
    """client id -> node name, for the running nodes."""
    out: dict[str, str] = {}
    for node in cluster.nodes:
        if node.running:
            with contextlib.suppress(OSError, ValueError):
                for cid in _clients_on(node):
                    out[cid] = node.name
    return {g.client_id: out[g.client_id] for g in fleet if g.client_id in out}


class Watcher:
    """A subscriber on one node that records every state, availability and event seen."""

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.availability: dict[str, str] = {}
        self.seqs: dict[str, set[int]] = {}

    def take(self, message: aiomqtt.Message) -> None:
        _, gateway_id, kind = str(message.topic).split("/", 2)
        assert isinstance(message.payload, bytes)
        if kind == "state":
            self.states[gateway_id] = json.loads(message.payload)
        elif kind == "availability":
            self.availability[gateway_id] = message.payload.decode()
        elif kind == "events":
            self.seqs.setdefault(gateway_id, set()).add(json.loads(message.payload)["seq"])


@contextlib.asynccontextmanager
async def watching(node: NatsNode, client_id: str) -> AsyncIterator[Watcher]:
    watcher = Watcher()
    async with aiomqtt.Client("127.0.0.1", node.mqtt_port, identifier=client_id) as client:
        for kind in ("state", "availability", "events"):
            await client.subscribe(f"{PREFIX}/+/{kind}", qos=1)

        async def pump() -> None:
            async for message in client.messages:
                watcher.take(message)

        task = asyncio.create_task(pump())
        try:
            yield watcher
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


async def test_a_fleet_survives_losing_one_cluster_node(
    cluster: NatsCluster, tmp_path: Path
) -> None:
    endpoints = cluster.endpoints
    fleet = [
        Gateway(n, endpoints[n % 3 :] + endpoints[: n % 3], tmp_path / f"gw{n}")
        for n in range(GATEWAYS)
    ]
    killed = cluster.nodes[0]
    async with watching(cluster.nodes[1], "fleet-watcher") as watcher, asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(g.publisher.run()) for g in fleet]
        await until(lambda: all(g.publisher.connected for g in fleet), "the fleet connected", 60)
        await until(lambda: len(watcher.states) == GATEWAYS, "a state from every gateway", 60)
        where = _where(cluster, fleet)
        on_killed = {cid for cid, node in where.items() if node == killed.name}
        assert len(where) == GATEWAYS
        assert on_killed  # the rotation put a share of the fleet on the node to be killed

        for g in fleet:
            g.raise_events(EVENTS_PER_PHASE)
        cluster.node_down(0)
        for g in fleet:  # raised while a third of the fleet has lost its broker
            g.raise_events(EVENTS_PER_PHASE)

        def moved() -> bool:
            now = _where(cluster, fleet)
            return len(now) == GATEWAYS and all(g.publisher.connected for g in fleet)

        await until(moved, "every gateway connected to a surviving node", 90, poll_s=0.25)
        after = _where(cluster, fleet)
        assert killed.name not in after.values()
        for g in fleet:
            g.raise_events(EVENTS_PER_PHASE)

        def delivered() -> bool:
            return all(watcher.seqs.get(g.id, set()) >= set(range(1, g.raised + 1)) for g in fleet)

        await until(delivered, "every event of every gateway", 90, poll_s=0.25)
        for task in tasks:
            task.cancel()

    # Newcomers on the other surviving node get every gateway's retained messages (a node
    # that just lost a peer may take a few seconds to serve new sessions: try again).
    ids = {g.id for g in fleet}
    for attempt in range(20):
        async with watching(cluster.nodes[2], f"fleet-late-{attempt}") as late:
            for _ in range(20):
                if set(late.states) == ids and set(late.availability) == ids:
                    break
                await asyncio.sleep(0.25)
        if set(late.states) == ids and set(late.availability) == ids:
            break
    assert set(late.states) == ids
    assert set(late.availability) == ids
    for gateway_id, state in late.states.items():
        assert state["mode"] == "controller", gateway_id
        assert [b["board"] for b in state["boards"]] == [1, 2], gateway_id
        assert state["boards"][0]["cell_voltages"] == [3.301, 3.302, 3.303, 3.304], gateway_id
