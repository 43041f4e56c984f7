"""Engine state persisted across restarts: latched errors and go-safe requests.

`<state_dir>/latched_errors.json` maps each latched error to when it latched and why:
`{"latched": {"cell_overvoltage": {"since": "2026-01-01T00:00:11+00:00", "detail": "..."}}}`.
`<state_dir>/go_safe_requests.json` holds the go-safe requests of the persisted sources:
`{"requests": {"mqtt": {"since": "2026-01-01T00:00:11+00:00"}}}`.

The engine writes both through its `StateWriter` (durable, atomic, off the control path);
`bms-gateway ack ERROR` removes latches while the gateway is stopped.

A file that exists but cannot be read, is not JSON, or has the wrong shape (`null`,
`{"latched": []}`, an unknown error name, an entry that is not an object...) is **corrupt**,
never "nothing latched": loading it yields the latched error `state_persistence_fault`
naming the file and the problem, which keeps every relay open until acknowledged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gateway.control.names import ERROR_NAMES
from gateway.control.state_writer import PosixFileOps, encode

log = logging.getLogger(__name__)

LATCH_FILE = "latched_errors.json"
GO_SAFE_FILE = "go_safe_requests.json"
LEGACY_GO_SAFE_FILE = "command_go_safe.json"  # written by the MQTT front end before issue 9
PERSISTENCE_FAULT = "state_persistence_fault"


class CorruptStateError(ValueError):
    """A state file exists but its content cannot be trusted."""


def latch_path(state_dir: Path) -> Path:
    """The latch file of a state directory."""
    return state_dir / LATCH_FILE


MISSING: Any = object()  # `_read` of a file that does not exist (JSON `null` is None)


def _read(path: Path) -> Any:
    """The parsed JSON of `path`; `MISSING` when it does not exist.

    Raises:
        CorruptStateError: unreadable, not UTF-8 or not JSON.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return MISSING
    except OSError as err:
        raise CorruptStateError(f"cannot read it ({err.strerror or err})") from err
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CorruptStateError(f"not valid JSON ({type(err).__name__})") from err


def _entries(data: Any, key: str, path: Path) -> dict[str, dict[str, Any]]:
    if not isinstance(data, dict) or set(data) != {key}:
        raise CorruptStateError(f'expected {{"{key}": {{...}}}}, found {_shape(data)}')
    entries = data[key]
    if not isinstance(entries, dict):
        raise CorruptStateError(f'"{key}" should be an object, found {_shape(entries)}')
    for name, info in entries.items():
        if not isinstance(info, dict):
            raise CorruptStateError(f'"{key}.{name}" should be an object, found {_shape(info)}')
    del path
    return entries


def _known(latched: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    unknown = sorted(set(latched) - set(ERROR_NAMES))
    if unknown:
        raise CorruptStateError(f"unknown error name(s) {', '.join(unknown)}")
    return latched


def _shape(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("dict", "object")


def _corrupt(path: Path, err: CorruptStateError) -> dict[str, dict[str, Any]]:
    detail = f"state file {path} is corrupt: {err}; every relay stays open until acknowledged"
    log.error("%s (ack %s to clear)", detail, PERSISTENCE_FAULT)
    return {PERSISTENCE_FAULT: {"since": None, "detail": detail}}


def load_latched(state_dir: Path) -> dict[str, dict[str, Any]]:
    """Return error -> {since, detail} of the persisted latches.

    A missing file is "nothing latched"; a corrupt one is `state_persistence_fault`.
    """
    path = latch_path(state_dir)
    try:
        data = _read(path)
        if data is MISSING:
            return {}
        latched = _known(_entries(data, "latched", path))
    except CorruptStateError as err:
        return _corrupt(path, err)
    return {name: dict(info) for name, info in latched.items()}


def load_go_safe(state_dir: Path) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Return (source -> {since}, problem) of the persisted go-safe requests.

    A corrupt file restores a request for every persisted source (the safe reading) and
    returns the problem, which the engine latches as `state_persistence_fault`.
    """
    path = state_dir / GO_SAFE_FILE
    try:
        data = _read(path)
        if data is MISSING:
            return _legacy_go_safe(state_dir), None
        return {k: dict(v) for k, v in _entries(data, "requests", path).items()}, None
    except CorruptStateError as err:
        detail = f"state file {path} is corrupt: {err}; go-safe restored, ack to clear"
        log.error("%s", detail)
        return {"mqtt": {"since": None}}, detail


def _legacy_go_safe(state_dir: Path) -> dict[str, dict[str, Any]]:
    path = state_dir / LEGACY_GO_SAFE_FILE
    try:
        data = _read(path)
    except CorruptStateError:
        return {"mqtt": {"since": None}}
    if data is MISSING or (isinstance(data, dict) and data.get("active") is False):
        return {}
    since = data.get("since") if isinstance(data, dict) else None
    return {"mqtt": {"since": since}}


def save_latched(state_dir: Path, latched: dict[str, dict[str, Any]]) -> None:
    """Write the latch file durably (the `ack` command, with the gateway stopped).

    Raises:
        OSError: the file could not be written.
    """
    PosixFileOps().write_durably(latch_path(state_dir), encode({"latched": latched}))


def acknowledge(state_dir: Path, names: list[str]) -> list[str]:
    """Remove latches from the file; return the names that were latched.

    Raises:
        OSError: the file could not be written (nothing was acknowledged).
    """
    latched = load_latched(state_dir)
    removed = [n for n in names if n in latched]
    for n in removed:
        del latched[n]
    if removed:
        save_latched(state_dir, latched)
    return removed
