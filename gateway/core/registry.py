"""Lazy, guarded plugin registry over entry-point groups (style lesson 2).

Groups: `bms_gateway.adapters`, `bms_gateway.publishers`, `bms_gateway.drivers` and
`bms_gateway.scenario` (scenario keys: `gateway.scenario.registry`). The bundled
components are registered through the same groups (see pyproject.toml). A plugin from another
distribution may not shadow a bundled name; entry points load only when first used.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from gateway.core.errors import PluginError

log = logging.getLogger(__name__)

GROUPS = (
    "bms_gateway.adapters",
    "bms_gateway.publishers",
    "bms_gateway.drivers",
    "bms_gateway.scenario",
)
OWN_DISTRIBUTION = "bms-gateway"


@dataclass(frozen=True)
class PluginEntry:
    """One registered name."""

    name: str
    group: str
    value: str
    distribution: str
    entry_point: EntryPoint

    @property
    def bundled(self) -> bool:
        """True when shipped inside bms-gateway itself."""
        return self.distribution == OWN_DISTRIBUTION

    def load(self) -> Any:
        """Import and return the registered object."""
        try:
            return self.entry_point.load()
        except (ImportError, AttributeError) as err:
            raise PluginError(
                f"{self.group}:{self.name} = {self.value} cannot be loaded: {err}"
            ) from err


def discover(group: str) -> dict[str, PluginEntry]:
    """Return the plugins of `group` by name, bundled ones first and never shadowed."""
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; groups are {', '.join(GROUPS)}")
    found: dict[str, PluginEntry] = {}
    eps = sorted(
        entry_points(group=group),
        key=lambda ep: (_dist_name(ep) != OWN_DISTRIBUTION, ep.name),
    )
    for ep in eps:
        entry = PluginEntry(ep.name, group, ep.value, _dist_name(ep), ep)
        if ep.name in found:
            if found[ep.name].distribution != entry.distribution:
                log.warning(
                    "plugin %s:%s from %s ignored: the name belongs to %s",
                    group,
                    ep.name,
                    entry.distribution,
                    found[ep.name].distribution,
                )
            continue
        found[ep.name] = entry
    return found


def load(group: str, name: str) -> Any:
    """Load one plugin by name.

    Raises:
        PluginError: the name is unknown (the message lists the valid names) or broken.
    """
    plugins = discover(group)
    if name not in plugins:
        valid = ", ".join(sorted(plugins)) or "(none)"
        raise PluginError(f"no {group} plugin named {name!r}; installed: {valid}")
    return plugins[name].load()


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return str(name) if name else "unknown"
