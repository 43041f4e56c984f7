"""Footprint at 414 cells, 1 Hz: the gateway process vs the bare script doing the same job.

Both read 23 boards × 18 cells over their own paced 115200 Bd link (each link a separate
process, not counted) once a second and publish the retained `state`; the gateway also runs
its engine, Home Assistant discovery, command topics and /metrics. Measured after a warm-up:
resident memory and CPU share of one core.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.common import Bounds, Row, mosquitto
from bench.paced_link import spawn
from bench.procs import bare_process, gateway_process, sample, wait_metric

BOARDS, CELLS = 23, 18


def run(b: Bounds) -> dict[str, Any]:
    """Sample both processes after the warm-up."""
    warmup_s = b.seconds(4.0, 0.2)
    measure_s = b.seconds(10.0, 0.5)
    with tempfile.TemporaryDirectory(prefix="bench-fp-") as tmp, mosquitto() as (mqtt_port, _):
        with spawn(BOARDS, CELLS) as (path, _pid):
            config = {
                "gateway": {"id": "bench-footprint"},
                "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
                "logic": {
                    "port": path,
                    "boards": BOARDS,
                    "cells_per_board": CELLS,
                    "poll_interval_s": 1.0,
                },
            }
            with gateway_process(config, Path(tmp)) as (proc, metrics_port):
                wait_metric(metrics_port, "bms_logic_polls_total", 'board="1"', 2, 60)
                sample(proc.pid, warmup_s)
                gw = sample(proc.pid, measure_s)
        with (
            spawn(BOARDS, CELLS) as (path, _pid),
            bare_process(path, mqtt_port, BOARDS, CELLS, 1.0) as bare_proc,
        ):
            sample(bare_proc.pid, warmup_s)
            bare = sample(bare_proc.pid, measure_s)
    return {
        "rows": [
            Row(
                "footprint",
                "RSS, 414 cells at 1 Hz",
                "MiB",
                gw["rss_mib"],
                "bare pyserial+paho script",
                bare["rss_mib"],
                "≤ 40 MiB",
            ),
            Row(
                "footprint",
                "CPU share, 414 cells at 1 Hz",
                "% core",
                gw["cpu_pct"],
                "bare pyserial+paho script",
                bare["cpu_pct"],
                "≤ 1.5 %",
            ),
        ],
        "details": {"gateway": gw, "bare": bare, "warmup_s": warmup_s},
    }
