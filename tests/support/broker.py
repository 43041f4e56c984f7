"""A real Mosquitto on a free loopback port, which a test may stop and restart."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
)


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """One Mosquitto process; `start`/`stop` may be called repeatedly (same port)."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        """`extra_conf`: more mosquitto.conf lines (they follow the listener line)."""
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        self.port = port or free_port()
        self.workdir = workdir  # a test's own directory (e.g. for a gateway's state_dir)
        self.host = "127.0.0.1"
        self._conf = workdir / f"mosquitto-{self.port}.conf"
        self._conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            + ("" if "persistence " in extra_conf else "persistence false\n")
            + "set_tcp_nodelay true\n"
            + extra_conf,
            encoding="utf-8",
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        assert MOSQUITTO is not None
        self._proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self._conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the broker (as a crash would)."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=5)
            self._proc = None

    @property
    def running(self) -> bool:
        """True while the process lives."""
        return self._proc is not None and self._proc.poll() is None
