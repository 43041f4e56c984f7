"""Store-and-forward of MQTT `events`: the SQLite outbox, and the gateway as a process.

The end-to-end test runs the real publisher in subprocesses against a real Mosquitto: the
broker becomes unreachable (a forwarder in front of it is cut: connections reset, new ones
refused, as when the broker dies; the broker itself keeps what it already acknowledged), the
gateway is stopped with SIGTERM, restarted, killed with SIGKILL while it raises events,
restarted again, and only then does the broker come back. An independent subscriber (QoS 1,
connected to the broker directly) must see every stored event once by `seq` (QoS 1 repeats
allowed), in `seq` order, `seq` continuing across the restarts, each run with its own
`boot_id`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from prometheus_client import CollectorRegistry, Counter

from gateway.core.bus import EventBus
from gateway.core.clock import VirtualClock
from gateway.core.events import ErrorCleared
from gateway.publishers.event_feed import EventFeed
from gateway.publishers.outbox import OUTBOX_FILE, Dropped, Outbox
from tests.support.broker import MOSQUITTO, Broker
from tests.support.tcp_cut import TcpCut
from tests.support.waiting import until, until_sync


def _report(d: Dropped) -> dict[str, Any]:
    return {"type": "events_dropped", "count": d.count}


def _bodies(*tags: str) -> list[dict[str, Any]]:
    return [{"type": "t", "tag": t} for t in tags]


def _seqs(rows: list[tuple[int, bytes]]) -> list[int]:
    return [json.loads(p)["seq"] for _, p in rows]


# --- the outbox itself ----------------------------------------------------------------


def test_seq_continues_across_reopen_and_rows_survive(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    box = Outbox(path, 100)
    assert box.persistent
    box.append(_bodies("a", "b", "c"), _report)
    box.delete_through(2)
    box.close()
    again = Outbox(path, 100)
    rows = again.read(0, 10)
    assert [s for s, _ in rows] == [3] and _seqs(rows) == [3]
    assert json.loads(rows[0][1])["tag"] == "c"
    again.append(_bodies("d"), _report)
    assert [s for s, _ in again.read(0, 10)] == [3, 4]
    again.delete_through(4)
    again.close()
    # Empty now, but numbering still continues (kept in the meta table, not from the rows).
    third = Outbox(path, 100)
    assert third.count == 0 and third.last_seq == 4
    third.append(_bodies("e"), _report)
    assert _seqs(third.read(0, 10)) == [5]


def test_overflow_drops_the_oldest_and_reports_the_gap(tmp_path: Path) -> None:
    box = Outbox(tmp_path / OUTBOX_FILE, 5)
    assert box.append(_bodies("1", "2", "3", "4"), _report) is None
    dropped = box.append(_bodies("5", "6"), _report)
    assert dropped == Dropped(count=2, first_seq=1, last_seq=2)
    rows = box.read(0, 100)
    assert [s for s, _ in rows] == [3, 4, 5, 6, 7] and box.count == 5
    assert json.loads(rows[-1][1]) == {"type": "events_dropped", "count": 2, "seq": 7}
    # More new events than room: some of the new ones are dropped too, still oldest first.
    dropped = box.append(_bodies(*"abcdefgh"), _report)
    assert dropped is not None and dropped.first_seq == 3 and dropped.last_seq == 15 - 5 + 1
    rows = box.read(0, 100)
    assert [s for s, _ in rows] == list(range(dropped.last_seq + 1, 17)) and box.count == 5


def test_unusable_directory_falls_back_to_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    box = Outbox(blocker / OUTBOX_FILE, 10)
    assert not box.persistent and box.errors == 1
    box.append(_bodies("a", "b"), _report)
    assert _seqs(box.read(0, 10)) == [1, 2]


def test_a_failing_disk_moves_the_rows_to_memory(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    box = Outbox(path, 10)
    box.append(_bodies("a", "b"), _report)
    # Another connection holds the write lock: every write of ours now fails (as on a
    # full or broken disk); the outbox keeps what it had and carries on in memory.
    other = sqlite3.connect(path, timeout=0)
    other.execute("BEGIN EXCLUSIVE")
    try:
        box.append(_bodies("c"), _report)
    finally:
        other.rollback()
        other.close()
    assert not box.persistent and box.errors == 1
    assert _seqs(box.read(0, 10)) == [1, 2, 3]


def test_a_damaged_file_is_set_aside_and_a_fresh_outbox_started(tmp_path: Path) -> None:
    path = tmp_path / OUTBOX_FILE
    path.write_bytes(b"this is not an SQLite database" * 100)
    box = Outbox(path, 10)
    assert box.persistent and box.errors == 1 and box.last_seq == 0
    box.append(_bodies("a"), _report)
    assert _seqs(box.read(0, 10)) == [1]
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(f"{OUTBOX_FILE}.corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")


def test_undeliverable_bodies_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    box = Outbox(tmp_path / OUTBOX_FILE, 10)
    with pytest.raises(ValueError):
        box.append([{"type": "t", "v": float("nan")}], _report)
    assert box.count == 0 and box.last_seq == 0


# --- the gateway as a process, through outages and restarts ---------------------------

GATEWAY = """
import asyncio, signal, sys
from gateway.app import build_context
from gateway.config import load_config
from gateway.core.events import ErrorRaised
from gateway.publishers.mqtt import MqttPublisher

port, state_dir, tag, count = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])

async def pump(ctx):
    for i in range(count):
        ctx.bus.publish(ErrorRaised(at_s=ctx.clock.now(), error="cell_imbalance",
                                    severity="warning", detail=f"{tag}:{i}"))
        await asyncio.sleep(0.004)
    print("pumped", flush=True)

async def main():
    cfg = load_config(overrides={
        "gateway": {"id": "gw-outbox", "state_dir": state_dir},
        "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_min_s": 0.1,
                 "reconnect_max_s": 0.3},
    }, env=False)
    ctx = build_context(cfg)
    task = asyncio.current_task()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(MqttPublisher(ctx).run())
        tg.create_task(pump(ctx))

try:
    asyncio.run(main())
except (asyncio.CancelledError, KeyboardInterrupt):
    pass
"""


class Subscriber:
    """paho with a persistent session: what the broker queued for it survives its restart."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._topic = topic
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="outbox-watcher", clean_session=False
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe(self._topic, qos=1)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.events.append(json.loads(msg.payload))

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()



def _stored(db: Path) -> tuple[int, int]:
    """(last seq given, rows waiting) as the running gateway committed them."""
    if not db.exists():
        return 0, 0
    with sqlite3.connect(db, timeout=5) as con:
        row = con.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        waiting = con.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    return (int(row[0]) if row else 0), int(waiting)


@pytest.mark.broker
def test_no_event_lost_or_reordered_across_outage_sigterm_and_sigkill(tmp_path: Path) -> None:
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    broker = Broker(tmp_path)
    broker.start()
    path = TcpCut((broker.host, broker.port))
    script = tmp_path / "gw.py"
    script.write_text(GATEWAY, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    state = tmp_path / "state"
    db = state / OUTBOX_FILE

    def gateway(tag: str, count: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(script), str(path.port), str(state), tag, str(count)],
            env=env,
            stdout=subprocess.PIPE,
        )

    sub = Subscriber(broker, "bms/gw-outbox/events")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # Run 1: connected, then the broker goes away while it raises events; SIGTERM.
        g1 = gateway("g1", 150)
        procs.append(g1)
        until_sync(lambda: len(sub.snapshot()) >= 30, "the first events delivered live")
        path.cut()
        assert g1.stdout is not None
        assert g1.stdout.readline().strip() == b"pumped"
        g1.send_signal(signal.SIGTERM)
        assert g1.wait(timeout=10) == 0
        after_g1, _ = _stored(db)
        assert after_g1 == 150  # everything raised was stored before the process ended

        # Run 2, broker still away: SIGKILL while it is raising events.
        g2 = gateway("g2", 400)
        procs.append(g2)
        until_sync(lambda: _stored(db)[0] >= after_g1 + 60, "run 2 storing events")
        g2.send_signal(signal.SIGKILL)
        g2.wait(timeout=10)
        after_g2, waiting = _stored(db)
        assert after_g2 >= after_g1 + 60 and waiting > 0

        # Run 3 starts while the broker is away; then the broker comes back.
        g3 = gateway("g3", 50)
        procs.append(g3)
        assert g3.stdout is not None
        assert g3.stdout.readline().strip() == b"pumped"
        path.restore()
        last = after_g2 + 50
        until_sync(lambda: _stored(db) == (last, 0), "every stored event acknowledged")
        until_sync(lambda: any(e["seq"] == last for e in sub.snapshot()), "the last event received")
        g3.send_signal(signal.SIGTERM)
        assert g3.wait(timeout=10) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sub.close()
        path.cut()
        broker.stop()

    got = sub.snapshot()
    first: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for e in got:
        if e["seq"] not in first:  # a repeat is a QoS 1 redelivery
            first[e["seq"]] = e
            order.append(e["seq"])
    assert order == sorted(order), "events out of seq order"
    assert order == list(range(1, last + 1)), "a seq is missing"
    for e in got:  # a repeat is the same event, not another one under a reused seq
        assert e == first[e["seq"]]
    details = [first[s]["detail"] for s in order]
    tags = [d.split(":")[0] for d in details]
    # Run 1 (SIGTERM): all 150; run 2 (SIGKILL): everything it stored, a gap-free prefix of
    # what it raised; run 3: all 50. One boot id per run, in order.
    assert details[:150] == [f"g1:{i}" for i in range(150)]
    n2 = after_g2 - after_g1
    assert details[150 : 150 + n2] == [f"g2:{i}" for i in range(n2)]
    assert details[150 + n2 :] == [f"g3:{i}" for i in range(50)]
    boots = [first[s]["boot_id"] for s in order]
    assert len(set(boots)) == 3
    assert [boots[0], boots[150], boots[-1]] == list(dict.fromkeys(boots))
    assert tags.count("g1") == 150 and tags.count("g3") == 50
    print(f"run 2 stored {n2} events before SIGKILL; {len(got) - len(order)} QoS 1 repeats")


# --- shutdown: the store task may end before the sender ----------------------------------


async def test_an_acknowledgement_after_the_store_task_ended_does_not_fail_the_sender(
    tmp_path: Path,
) -> None:
    """On shutdown the store task (`EventFeed.run`) and the sender (`send`) are cancelled in
    any order. When the store ended first it used to close the outbox, so an acknowledgement
    arriving next failed the sender with "cannot schedule new futures after shutdown", which
    the connection loop took for a lost broker and reconnected during shutdown. The owner now
    closes the outbox after both have ended, and a call after that is dropped, not raised."""
    bus, registry = EventBus(), CollectorRegistry()
    failures = Counter("t_failures", "test", ["topic"], registry=registry)
    feed = EventFeed(
        bus,
        VirtualClock(),
        registry,
        path=tmp_path / OUTBOX_FILE,
        max_events=100,
        boot_id="boot",
        failures=failures,
    )
    store = asyncio.create_task(feed.run())
    bus.publish(ErrorCleared(at_s=0.0, error="cell_overvoltage"))
    await until(lambda: feed.backlog == 1, "the event stored")

    in_flight: list[bytes] = []
    acknowledged = asyncio.Event()

    async def publish(payload: bytes) -> None:
        in_flight.append(payload)
        await acknowledged.wait()

    sender = asyncio.create_task(feed.send(publish))
    await until(lambda: bool(in_flight), "the event in flight")
    store.cancel()  # shutdown reaches the store task first
    await asyncio.gather(store, return_exceptions=True)
    acknowledged.set()  # then the broker's acknowledgement arrives
    await until(lambda: feed.backlog == 0, "the acknowledged event forgotten")
    assert not sender.done(), sender.exception() if sender.done() else None
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    feed.close()
    feed.close()  # idempotent
    assert Outbox(tmp_path / OUTBOX_FILE, 100).read(0, 10) == []
