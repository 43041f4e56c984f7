"""Scenario `set` actions for faults reported from outside the engine (issue 9).

- `relay_driver_fault: "reason"` makes the simulated relay driver report that it lost its
  link (the reason); `null` (or "") brings it back. The engine raises the critical error
  `relay_driver_fault` with the driver's text.
- `state_dir: full | read_only | ok`: every write of the engine's state files fails with
  ENOSPC / EROFS (injected at the state writer's OS-call seam), or works again.

Registered through the `bms_gateway.scenario` entry point `faults`.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig
from gateway.control.state_writer import PosixFileOps
from gateway.scenario.registry import ScenarioError, SetAction, register_set_action
from gateway.scenario.world import World


def _parse_reason(value: Any, path: str, config: GatewayConfig) -> str | None:
    del config
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ScenarioError(path, "expected the fault's reason (text), or null when healthy")
    return value


def _set_relay_driver_fault(w: World, reason: str | None) -> None:
    relays = w.ctx.drivers.relays
    if not hasattr(relays, "injected_fault"):
        raise RuntimeError("the scenario's relay driver cannot simulate a fault")
    relays.injected_fault = reason


class BrokenDisk:
    """A state directory whose writes fail with one errno."""

    def __init__(self, code: int) -> None:
        self.code = code

    def write_durably(self, path: Path, data: bytes) -> None:
        """Fail as the OS would."""
        del data
        raise OSError(self.code, os.strerror(self.code), str(path))


DISKS = {"full": errno.ENOSPC, "read_only": errno.EROFS, "ok": None}


def _parse_disk(value: Any, path: str, config: GatewayConfig) -> int | None:
    del config
    if value not in DISKS:
        raise ScenarioError(path, "expected full, read_only or ok")
    return DISKS[value]


def _set_disk(w: World, code: int | None) -> None:
    writer = w.engine.engine.persisted.writer
    writer.ops = PosixFileOps() if code is None else BrokenDisk(code)


def register() -> None:
    """Register the fault set actions."""
    register_set_action(SetAction("relay_driver_fault", _parse_reason, _set_relay_driver_fault))
    register_set_action(SetAction("state_dir", _parse_disk, _set_disk))
