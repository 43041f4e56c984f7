"""Retained truth on the broker, with `bms-gateway run` as real processes and a real Mosquitto.

- A graceful stop leaves a retained `state` in which every relay is open (reason `shutdown`),
  published before the retained `offline`.
- A second gateway with the same id refuses to start (non-zero exit, a clear message) and
  publishes nothing; the running one keeps its retained `online` and `state`.
- After the first one stopped (retained `offline`), or was killed (retained `online`, no one
  answering), a gateway with that id starts normally.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from gateway.publishers.presence import shutdown_state
from tests.support.broker import Broker
from tests.support.waiting import until_sync

BASE = "bms/gw-one"
EXE = Path(sys.executable).parent / "bms-gateway"


class Recorder:
    """Every message under the gateway's base, in arrival order (topic, payload, retain)."""

    def __init__(self, broker: Broker) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(f"{BASE}/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        with self._lock:
            self.got.append((m.topic, m.payload, bool(m.retain)))

    def on(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.got if t == f"{BASE}/{suffix}"]

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _, _ in self.got]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def retained(broker: Broker, suffix: str) -> bytes | None:
    """The broker's retained copy (a fresh subscriber gets it with the retain flag)."""
    got: list[bytes] = []
    done = threading.Event()
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)

    def on_message(_c: paho.Client, _u: object, m: paho.MQTTMessage) -> None:
        if m.retain:
            got.append(m.payload)
        done.set()

    c.on_message = on_message
    c.connect(broker.host, broker.port)
    c.subscribe(f"{BASE}/{suffix}", qos=1)
    c.loop_start()
    done.wait(5)
    c.loop_stop()
    c.disconnect()
    return got[0] if got else None



def start(broker: Broker, tmp_path: Path, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BMSGW_GATEWAY__ID": "gw-one",
        "BMSGW_GATEWAY__STATE_DIR": str(tmp_path / name),
        "BMSGW_MQTT__HOST": broker.host,
        "BMSGW_MQTT__PORT": str(broker.port),
        "BMSGW_MQTT__PUBLISH_INTERVAL_S": "0.2",
        "BMSGW_METRICS__ENABLED": "false",
        "BMSGW_WEB__PORT": "0",
    }
    return subprocess.Popen(
        [str(EXE), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def closed_relays(payload: bytes) -> list[int]:
    return [r["relay"] for r in json.loads(payload)["relays"] if r["closed"]]


def test_shutdown_state_opens_every_relay_and_names_the_reason() -> None:
    msg = {
        "timestamp": "t0",
        "relays": [
            {"relay": 1, "function": "discharge_contactor", "closed": True, "since": "t0"},
            {"relay": 2, "function": "charge_contactor", "closed": False, "since": None},
        ],
        "reasons": {"discharge_contactor": ["mode_always"], "ccl": ["x"]},
    }
    final = shutdown_state(msg, "t1")
    assert [r["closed"] for r in final["relays"]] == [False, False]
    assert final["relays"][0]["since"] == "t1" and final["relays"][1]["since"] is None
    assert final["reasons"] == {
        "discharge_contactor": ["shutdown"],
        "charge_contactor": ["shutdown"],
        "ccl": ["x"],
    }
    assert msg["relays"][0]["closed"] is True  # the input is not changed


@pytest.mark.broker
def test_one_live_gateway_per_id_and_an_open_final_state(broker: Broker, tmp_path: Path) -> None:
    rec = Recorder(broker)
    first = start(broker, tmp_path, "a")
    procs = [first]
    try:
        until_sync(lambda: any(closed_relays(p) for p in rec.on("state")), "contactors closed")

        # A second gateway with the same id: refused, and it published nothing.
        before = len(rec.topics())
        second = start(broker, tmp_path, "b")
        procs.append(second)
        out, _ = second.communicate(timeout=30)
        text = out.decode(errors="replace")
        assert second.returncode != 0, text
        assert "another gateway with gateway.id 'gw-one' is running" in text, text
        assert "Traceback" not in text, text
        new = rec.topics()[before:]
        assert f"{BASE}/availability" not in new  # no online, no offline from the refused one
        # Only the running gateway's own traffic, the refused one's probe and the answer.
        allowed = {f"{BASE}/{t}" for t in ("state", "events", "probe", "probe/reply")}
        assert set(new) <= allowed, set(new) - allowed
        assert new.count(f"{BASE}/probe") == 1 and new.count(f"{BASE}/probe/reply") == 1
        assert retained(broker, "availability") == b"online"

        # A graceful stop: the last retained state has every relay open, then offline.
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=15)
        assert first.returncode == 0, out.decode(errors="replace")[-2000:]
        last_state = rec.on("state")[-1]
        assert closed_relays(last_state) == []
        reasons = json.loads(last_state)["reasons"]
        assert reasons["discharge_contactor"] == ["shutdown"]
        order = [t for t in rec.topics() if t in (f"{BASE}/state", f"{BASE}/availability")]
        assert order[-2:] == [f"{BASE}/state", f"{BASE}/availability"]
        assert retained(broker, "availability") == b"offline"
        final = retained(broker, "state")
        assert final is not None and closed_relays(final) == []

        # After a clean stop the id is free again. After a host vanished (its retained
        # `online` still there, the broker has not noticed yet, nobody to answer) too, once
        # the probe went unanswered.
        third = start(broker, tmp_path, "c")
        procs.append(third)
        until_sync(lambda: rec.on("availability")[-1:] == [b"online"], "third online")
        third.send_signal(signal.SIGKILL)
        third.wait(timeout=10)
        until_sync(lambda: retained(broker, "availability") == b"offline", "its last will")
        n_online = rec.on("availability").count(b"online") + 1
        rec.client.publish(f"{BASE}/availability", b"online", qos=1, retain=True).wait_for_publish()
        until_sync(lambda: rec.on("availability").count(b"online") == n_online, "the stale online")
        fourth = start(broker, tmp_path, "d")
        procs.append(fourth)
        until_sync(lambda: rec.on("availability").count(b"online") > n_online, "fourth online")
        assert fourth.poll() is None
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        rec.close()
