"""`bms-gateway run` with no config file: the whole embedded default, as a user starts it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as paho

from tests.support.broker import Broker, free_port


def _collect(broker: Broker, topic: str) -> tuple[paho.Client, dict[str, list[bytes]]]:
    got: dict[str, list[bytes]] = {}
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        got.setdefault(msg.topic, []).append(msg.payload)

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    return client, got


def _wait(cond: object, what: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(cond) and cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_without_config_publishes_state_metrics_and_stops_cleanly(
    broker: Broker, tmp_path: Path
) -> None:
    metrics_port = free_port()
    env = {
        **os.environ,
        "BMSGW_MQTT__HOST": broker.host,
        "BMSGW_MQTT__PORT": str(broker.port),
        "BMSGW_METRICS__PORT": str(metrics_port),
        "BMSGW_WEB__PORT": "0",
        "BMSGW_GATEWAY__STATE_DIR": str(tmp_path / "state"),
    }
    exe = Path(sys.executable).parent / "bms-gateway"
    proc = subprocess.Popen(
        [str(exe), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    client, got = _collect(broker, "bms/bms-gateway/#")
    try:
        _wait(lambda: b"online" in got.get("bms/bms-gateway/availability", []), "online")

        def two_boards_with_cells() -> bool:
            for raw in got.get("bms/bms-gateway/state", []):
                state = json.loads(raw)
                if state["boards_online"] == 2 and all(
                    len(b["cell_voltages"]) == 16 and None not in b["cell_voltages"]
                    for b in state["boards"]
                ):
                    return True
            return False

        _wait(two_boards_with_cells, "a state with both boards' cells")
        state = json.loads(got["bms/bms-gateway/state"][-1])
        assert 2.5 < state["cell_voltage_min"] <= state["cell_voltage_max"] < 3.7
        assert abs(state["voltage"] - sum(sum(b["cell_voltages"]) for b in state["boards"])) < 0.05

        body = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read()
        text = body.decode()
        assert 'bms_cell_voltage_volts{board="2",cell="16"}' in text
        assert "bms_pack_voltage_volts" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        client.loop_stop()
        client.disconnect()
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert got["bms/bms-gateway/availability"][-1] == b"offline"
    assert b"Traceback" not in out, out.decode(errors="replace")[-3000:]
