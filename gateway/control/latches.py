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
    except (OSError, ValueError, RecursionError) as err:
        return _corrupt(path, str(err) or type(err).__name__)
    latched = data.get("latched", {}) if isinstance(data, dict) else None
    if not isinstance(latched, dict) or not all(isinstance(v, dict) for v in latched.values()):
        # A file of the wrong shape is corrupt, not empty (issue 9 item 8)
        return _corrupt(path, "not the latch file's shape")
    out = {}
    for name, info in latched.items():
        if name in ERROR_NAMES:
            out[name] = info
        else:
            log.warning("latch file names unknown error %r: ignored", name)
    return out


def _corrupt(path: Path, why: str) -> dict[str, dict[str, Any]]:
    # An unreadable latch file must not unlatch anything silently: keep it, say so.
    log.error("latch file %s is unreadable (%s): treating every error as latched", path, why)
    return {name: {"since": None, "detail": "unreadable latch file"} for name in ERROR_NAMES}


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
