"""What the engine keeps on disk, and the rule that releases wait for it.

Latched errors and the go-safe requests of persisted sources (`commands.persist_go_safe`:
the MQTT source) survive a restart. Setting a latch or a go-safe request takes effect at
once (the file follows, written by the `StateWriter` off the control path); releasing one
(an acknowledgement, a go-safe release) takes effect only once the file without it is
durably on disk, so a crash or a full disk can never turn an acknowledged-but-unwritten
release into a contactor that re-closes after a restart on its own... nor a written-but-
unapplied one into a latch that comes back: the order is write, then release.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.control.latches import (
    GO_SAFE_FILE,
    LATCH_FILE,
    PERSISTENCE_FAULT,
    load_go_safe,
    load_latched,
)
from gateway.control.state_writer import FileOps, StateWriter

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

log = logging.getLogger(__name__)

Kind = Literal["latch", "go_safe"]


class PersistedState:
    """Latches and go-safe requests on disk; releases come out of `due()` once written."""

    def __init__(self, config: GatewayConfig, ops: FileOps | None = None) -> None:
        state_dir = Path(config.gateway.state_dir)
        self.writer = StateWriter(state_dir, ops)
        self.go_safe_sources = (
            frozenset({"mqtt"}) if config.commands.persist_go_safe else frozenset()
        )
        self.latched: dict[str, dict[str, Any]] = load_latched(state_dir)
        self.go_safe: dict[str, dict[str, Any]] = {}
        if self.go_safe_sources:
            restored, problem = load_go_safe(state_dir)
            self.go_safe = {s: v for s, v in restored.items() if s in self.go_safe_sources}
            if problem is not None:
                self.latched.setdefault(PERSISTENCE_FAULT, {"since": None, "detail": problem})
        self._releases: dict[tuple[Kind, str], tuple[str, int]] = {}

    @property
    def fault(self) -> str | None:
        """Why some state is not on disk (the writer's last failure), or None."""
        return self.writer.fault

    def save_latches(self) -> None:
        """The latch set changed: write it (never waits)."""
        self.writer.submit(LATCH_FILE, {"latched": self.latched})

    def release_latch(self, name: str) -> None:
        """Drop a latch from the file; `due()` returns it once that is on disk."""
        self.latched.pop(name, None)
        ticket = self.writer.submit(LATCH_FILE, {"latched": self.latched})
        self._releases[("latch", name)] = (LATCH_FILE, ticket)

    def go_safe_changed(self, source: str, active: bool, since: str | None) -> bool:
        """Record a go-safe request/release; return True when it takes effect now.

        A request always does; a release of a persisted source waits for the disk.
        """
        if source not in self.go_safe_sources:
            return True
        if active:
            self._releases.pop(("go_safe", source), None)
            if source not in self.go_safe:
                self.go_safe[source] = {"since": since}
                self.writer.submit(GO_SAFE_FILE, {"requests": self.go_safe})
            return True
        self.go_safe.pop(source, None)
        ticket = self.writer.submit(GO_SAFE_FILE, {"requests": self.go_safe})
        self._releases[("go_safe", source)] = (GO_SAFE_FILE, ticket)
        return self._take(("go_safe", source))

    def pending(self, kind: Kind, name: str) -> bool:
        """True while a release of `name` waits for the disk."""
        return (kind, name) in self._releases

    def _take(self, key: tuple[Kind, str]) -> bool:
        file, ticket = self._releases[key]
        if self.writer.durable(file, ticket):
            del self._releases[key]
            return True
        return False

    def needs_decision(self, reported_fault: str | None) -> bool:
        """True when a release is now on disk or the write fault differs from `reported_fault`."""
        if self.writer.fault != reported_fault:
            return True
        return any(self.writer.durable(f, t) for f, t in self._releases.values())

    def due(self) -> list[tuple[Kind, str]]:
        """Releases whose state is now on disk (retrying failed writes when inline)."""
        self.writer.poll()
        return [key for key in list(self._releases) if self._take(key)]
