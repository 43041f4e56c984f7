"""Start to first retained `state`: `bms-gateway run` vs a bare paho script.

A subscriber is on the broker before either process starts; the figure is the time from
spawning the process to the first `state` message it publishes (Python's start-up and
imports included on both sides). The gateway runs its default set-up: embedded simulator,
Home Assistant discovery, command topics, /metrics.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from bench.common import Bounds, Row, mosquitto, python_env, stop
from bench.procs import gateway_process

BARE = """
import json, paho.mqtt.client as m
c = m.Client(m.CallbackAPIVersion.VERSION2, client_id="bare-startup")
c.connect("127.0.0.1", {port})
c.loop_start()
c.publish("{topic}", json.dumps({{"boards": []}}), qos=1, retain=True).wait_for_publish()
c.loop_stop()
c.disconnect()
"""


class _First:
    """Waits for the first message on a topic."""

    def __init__(self, port: int, topic: str) -> None:
        self.event = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=uuid.uuid4().hex)
        self.client.on_message = lambda *_: self.event.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        time.sleep(0.2)  # the SUBACK

    def wait(self, timeout_s: float) -> bool:
        ok = self.event.wait(timeout_s)
        self.client.loop_stop()
        self.client.disconnect()
        return ok


def _gateway_once(port: int, tmp: Path, n: int) -> float:
    gid = f"bench-start-{n}"
    first = _First(port, f"bms/{gid}/state")
    work = tmp / f"gw{n}"
    work.mkdir()
    t0 = time.perf_counter()
    config = {"gateway": {"id": gid}, "mqtt": {"host": "127.0.0.1", "port": port}}
    with gateway_process(config, work):
        if not first.wait(60):
            raise RuntimeError("the gateway published no state within 60 s")
        return time.perf_counter() - t0


def _bare_once(port: int, n: int) -> float:
    topic = f"bare/start-{n}/state"
    first = _First(port, topic)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", BARE.format(port=port, topic=topic)], env=python_env()
    )
    try:
        if not first.wait(30):
            raise RuntimeError("the bare script published nothing within 30 s")
        return time.perf_counter() - t0
    finally:
        stop(proc)


def run(b: Bounds) -> dict[str, Any]:
    """Median of a few starts each."""
    repeats = b.count(3, 1)
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp, mosquitto() as (port, _):
        gw = [_gateway_once(port, Path(tmp), n) for n in range(repeats)]
        bare = [_bare_once(port, n) for n in range(repeats)]
    return {
        "rows": [
            Row(
                "startup",
                "start → first retained state",
                "s",
                statistics.median(gw),
                "bare paho script",
                statistics.median(bare),
                "≤ 0.5 s",
            ),
        ],
        "details": {"gateway_s": gw, "bare_s": bare},
    }
