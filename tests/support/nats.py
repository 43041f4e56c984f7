"""A NATS cluster (three nodes, JetStream, MQTT listener) on loopback, for fleet tests.

Debian's `nats-server` (2.9) speaks MQTT 3.1.1 on each node; a retained message or a QoS 1
message published on one node reaches subscribers on the others. `node_down(k)` kills one
node (SIGKILL, as a crash); the others keep the cluster and its JetStream quorum (2 of 3).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class NatsNode:
    """One node: its ports and process."""

    name: str
    client_port: int
    route_port: int
    http_port: int
    mqtt_port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The node's MQTT listener as "host:port" (an `mqtt.brokers` entry)."""
        return f"127.0.0.1:{self.mqtt_port}"

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self.proc is not None and self.proc.poll() is None

    def _get(self, path: str) -> dict[str, object]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=1) as r:
            data: dict[str, object] = json.loads(r.read())
            return data

    def ready(self, routes: int) -> bool:
        """JetStream is up (healthz ok) and this node has `routes` routes to the others."""
        try:
            routez = self._get("/routez")
            health = self._get("/healthz?js-enabled-only=true")
        except (OSError, ValueError):
            return False
        return health.get("status") == "ok" and int(str(routez.get("num_routes", 0))) >= routes


class NatsCluster:
    """Three (or `size`) nodes; `start()` returns once every node is clustered and ready."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        if NATS_SERVER is None:
            raise RuntimeError("nats-server is not installed (apt-get install nats-server)")
        ports = _free_ports(4 * size)
        self.nodes = [
            NatsNode(f"n{k + 1}", *ports[4 * k : 4 * k + 4], conf=workdir / f"n{k + 1}.conf")
            for k in range(size)
        ]
        routes = ", ".join(f"nats-route://127.0.0.1:{n.route_port}" for n in self.nodes)
        for node in self.nodes:
            store = workdir / f"js-{node.name}"
            store.mkdir(parents=True, exist_ok=True)
            node.conf.write_text(
                f"server_name: {node.name}\n"
                f"listen: 127.0.0.1:{node.client_port}\n"
                f"http: 127.0.0.1:{node.http_port}\n"
                f'jetstream {{ store_dir: "{store}" }}\n'
                f"cluster {{ name: c1, listen: 127.0.0.1:{node.route_port}, routes: [{routes}] }}\n"
                f"mqtt {{ listen: 127.0.0.1:{node.mqtt_port}, stream_replicas: {size} }}\n",
                encoding="utf-8",
            )

    @property
    def endpoints(self) -> list[str]:
        """Every node's MQTT endpoint, in node order."""
        return [n.endpoint for n in self.nodes]

    def start(self, timeout_s: float = 60.0) -> None:
        """Start every node; wait until each is clustered with the others and JetStream is up."""
        assert NATS_SERVER is not None
        for node in self.nodes:
            node.proc = subprocess.Popen(
                [NATS_SERVER, "-c", str(node.conf)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        self.wait_ready(timeout_s)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until every running node sees the other running nodes and JetStream is up."""
        deadline = time.monotonic() + timeout_s
        while True:
            alive = [n for n in self.nodes if n.running]
            if all(n.ready(len(alive) - 1) for n in alive) and self._mqtt_answers(alive):
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the NATS cluster did not form in time")
            time.sleep(0.2)

    @staticmethod
    def _mqtt_answers(nodes: list[NatsNode]) -> bool:
        """An MQTT CONNECT is accepted (CONNACK 0) on every node: its MQTT streams exist."""
        connect = bytes.fromhex("101000044d5154540402000a0004") + b"prob"
        for node in nodes:
            try:
                with socket.create_connection(("127.0.0.1", node.mqtt_port), timeout=2) as s:
                    s.sendall(connect)
                    if s.recv(4) != b"\x20\x02\x00\x00":
                        return False
            except OSError:
                return False
        return True

    def node_down(self, index: int) -> NatsNode:
        """Kill one node (SIGKILL)."""
        node = self.nodes[index]
        if node.proc is not None:
            node.proc.kill()
            node.proc.wait(timeout=10)
        return node

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait(timeout=10)
