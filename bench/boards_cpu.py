"""CPU per poll cycle against the number of boards: the gateway vs the bare script.

Each run reads N boards × 18 cells over an unpaced link (its own process) four times a
second; the figure is the process' CPU time divided by the cycles it completed.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Bounds, Row, mosquitto, pid_cpu_s
from bench.paced_link import spawn
from bench.procs import bare_process, gateway_process, metric, wait_metric

CELLS = 18
INTERVAL_S = 0.25


def _gateway(n: int, mqtt_port: int, tmp: Path, warmup_s: float, measure_s: float) -> float:
    with spawn(n, CELLS, pace=False) as (path, _):
        config = {
            "gateway": {"id": f"bench-cpu-{n}"},
            "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
            "logic": {
                "port": path,
                "boards": n,
                "cells_per_board": CELLS,
                "poll_interval_s": INTERVAL_S,
            },
        }
        with gateway_process(config, tmp) as (proc, mport):
            wait_metric(mport, "bms_logic_polls_total", 'board="1"', 2, 60)
            time.sleep(warmup_s)
            p0, c0 = metric(mport, "bms_logic_polls_total", f'board="{n}"'), pid_cpu_s(proc.pid)
            time.sleep(measure_s)
            p1, c1 = metric(mport, "bms_logic_polls_total", f'board="{n}"'), pid_cpu_s(proc.pid)
    cycles = (p1 or 0) - (p0 or 0)
    return (c1 - c0) / max(cycles, 1) * 1e3


def _bare(n: int, mqtt_port: int, warmup_s: float, measure_s: float) -> float:
    with (
        spawn(n, CELLS, pace=False) as (path, _),
        bare_process(path, mqtt_port, n, CELLS, INTERVAL_S) as proc,
    ):
        time.sleep(warmup_s)
        c0, t0 = pid_cpu_s(proc.pid), time.monotonic()
        time.sleep(measure_s)
        c1, t1 = pid_cpu_s(proc.pid), time.monotonic()
    return (c1 - c0) / ((t1 - t0) / INTERVAL_S) * 1e3


def run(b: Bounds) -> dict[str, Any]:
    """One gateway run and one bare run per board count."""
    counts = (2,) if b.smoke else (1, 8, 23)
    warmup_s, measure_s = b.seconds(1.5, 0.2), b.seconds(4.0, 0.5)
    rows, details = [], {}
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp, mosquitto() as (port, _):
        for n in counts:
            gw = _gateway(n, port, Path(tmp), warmup_s, measure_s)
            bare = _bare(n, port, warmup_s, measure_s)
            details[n] = {"gateway_ms": gw, "bare_ms": bare}
            rows.append(
                Row(
                    "boards_cpu",
                    f"CPU per cycle, {n} board(s)",
                    "ms",
                    gw,
                    "bare pyserial+paho script",
                    bare,
                    "",
                )
            )
    return {"rows": rows, "details": details}
