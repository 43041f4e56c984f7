"""Shared pieces of the benchmarks: bounds, CPU/RSS probes, subprocesses, result rows."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TICKS_S = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Bounds:
    """How long each benchmark may run: `scale` multiplies every duration and count."""

    smoke: bool = False
    scale: float = 1.0

    def seconds(self, full_s: float, smoke_s: float) -> float:
        """A duration: `full_s` × scale, or `smoke_s` in a smoke run."""
        return smoke_s if self.smoke else full_s * self.scale

    def count(self, full: int, smoke: int) -> int:
        """A count: `full` × scale (at least 1), or `smoke` in a smoke run."""
        return smoke if self.smoke else max(1, round(full * self.scale))


@dataclass
class Row:
    """One line of the results table: a figure and its anchor from the same run."""

    benchmark: str
    metric: str
    unit: str
    gateway: float | None
    anchor_name: str
    anchor: float | None
    goal: str = ""
    higher_is_better: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """gateway / anchor (None when either is missing or the anchor is zero)."""
        if self.gateway is None or not self.anchor:
            return None
        return self.gateway / self.anchor

    def as_dict(self) -> dict[str, Any]:
        """JSON form (with the ratio)."""
        d = asdict(self)
        d["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return d


def process_cpu_s() -> float:
    """CPU seconds (user + system) of this process, all threads."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def pid_cpu_s(pid: int) -> float:
    """CPU seconds of another process (its live threads), in ns resolution from schedstat.

    /proc/PID/stat counts in clock ticks (10 ms), too coarse for a broker serving a few
    messages a second; falls back to it where schedstat is missing.
    """
    try:
        return (
            sum(
                int((task / "schedstat").read_text().split()[0])
                for task in Path(f"/proc/{pid}/task").iterdir()
            )
            / 1e9
        )
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS_S


def pid_rss_mib(pid: int) -> float:
    """Resident set size of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s} s")


MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


@contextlib.contextmanager
def mosquitto() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """A private Mosquitto on a free loopback port: yields (port, process)."""
    if MOSQUITTO is None:
        raise RuntimeError("mosquitto is not installed (scripts/ensure-test-tools installs it)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "set_tcp_nodelay true\nmax_queued_messages 100000\n",
            encoding="utf-8",
        )
        proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port)
            yield port, proc
        finally:
            proc.kill()
            proc.wait(timeout=5)


def python_env() -> dict[str, str]:
    """Environment for child Python processes: the repository on the path, no BMSGW_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BMSGW_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def stop(proc: subprocess.Popen[Any], timeout_s: float = 5.0) -> None:
    """Terminate a child (SIGTERM, then SIGKILL) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
