"""Child processes of the footprint benchmarks: the gateway itself and the bare script."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from bench.common import free_port, pid_cpu_s, pid_rss_mib, python_env, stop


@contextlib.contextmanager
def gateway_process(
    config: dict[str, Any], workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`bms-gateway run` with `config` (YAML); yields (process, metrics port)."""
    metrics_port = free_port()
    config = {**config, "metrics": {"enabled": True, "port": metrics_port}}
    config.setdefault("gateway", {}).setdefault("state_dir", str(workdir / "state"))
    path = workdir / "gateway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=python_env(),
    )
    try:
        yield proc, metrics_port
    finally:
        stop(proc)


@contextlib.contextmanager
def bare_process(
    serial: str, mqtt_port: int, boards: int, cells: int, interval_s: float
) -> Iterator[subprocess.Popen[str]]:
    """The bare script (`bench.bare_gateway`), started and ready."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.bare_gateway",
            "--serial",
            serial,
            "--mqtt-port",
            str(mqtt_port),
            "--boards",
            str(boards),
            "--cells",
            str(cells),
            "--interval",
            str(interval_s),
        ],
        stdout=subprocess.PIPE,
        env=python_env(),
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare script did not start")
        yield proc
    finally:
        stop(proc)


def metric(port: int, name: str, labels: str = "") -> float | None:
    """One sample from the gateway's /metrics (None when absent or unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    want = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(want + " "):
            return float(line.split()[-1])
    return None


def wait_metric(port: int, name: str, labels: str, at_least: float, timeout_s: float) -> None:
    """Wait until a counter reaches `at_least`."""
    deadline = time.monotonic() + timeout_s
    while (metric(port, name, labels) or 0) < at_least:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}{{{labels}}} did not reach {at_least}")
        time.sleep(0.1)


def sample(pid: int, seconds: float) -> dict[str, float]:
    """CPU share (of one core) over `seconds`, and RSS at the end."""
    c0, t0 = pid_cpu_s(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = pid_cpu_s(pid), time.monotonic()
    return {
        "cpu_pct": (c1 - c0) / (t1 - t0) * 100,
        "cpu_s": c1 - c0,
        "seconds": t1 - t0,
        "rss_mib": pid_rss_mib(pid),
    }
