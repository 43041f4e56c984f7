"""Latched errors persisted across restarts (`<state_dir>/latched_errors.json`).

The file maps each latched error to when it latched and why:
`{"latched": {"cell_overvoltage": {"since": "2026-01-01T00:00:11+00:00", "detail": "..."}}}`.
The engine writes it on every change; `bms-gateway ack ERROR` removes entries while the
gateway is stopped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway.control.names import ERROR_NAMES
from gateway.control.soc import write_json_atomic

log = logging.getLogger(__name__)

LATCH_FILE = "latched_errors.json"


def latch_path(state_dir: Path) -> Path:
    """The latch file of a state directory."""
    return state_dir / LATCH_FILE


def load_latched(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Return error -> {since, detail} of the persisted latches (unknown names dropped)."""
    path = latch_path(state_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        # An unreadable latch file must not unlatch anything silently: keep it, say so.
        log.error("latch file %s is unreadable (%s): treating every error as latched", path, err)
        return {name: {"since": None, "detail": "unreadable latch file"} for name in ERROR_NAMES}
    latched = data.get("latched", {}) if isinstance(data, dict) else {}
    if not isinstance(latched, dict):
        return {}
    out = {}
    for name, info in latched.items():
        if name in ERROR_NAMES:
            out[name] = info if isinstance(info, dict) else {"since": None, "detail": ""}
        else:
            log.warning("latch file names unknown error %r: ignored", name)
    return out


def save_latched(state_dir: Path, latched: dict[str, dict[str, Any]]) -> None:
    """Write the latch file (creating the state directory)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.error("cannot create %s: %s", state_dir, err)
        return
    write_json_atomic(latch_path(state_dir), {"latched": latched})


def acknowledge(state_dir: Path, names: list[str]) -> list[str]:
    """Remove latches from the file; return the names that were latched."""
    latched = load_latched(state_dir)
    removed = [n for n in names if n in latched]
    for n in removed:
        del latched[n]
    if removed:
        save_latched(state_dir, latched)
    return removed
