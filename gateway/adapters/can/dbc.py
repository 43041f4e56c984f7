"""The shipped DBC files, user DBC files, and sans-IO frame encode/decode helpers."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import cantools
from cantools.database.can import Database, Message

from gateway.core.errors import ConfigError, FrameError

SHIPPED = ("inverter", "charger_j1939", "bms_main_canopen")

# Frame ids of the fixed protocols (11-bit unless noted).
INVERTER_KEEPALIVE_ID = 0x305
CHARGER_COMMAND_ID = 0x1806E5F4  # 29-bit
CHARGER_STATUS_ID = 0x18FF50E5  # 29-bit
CANOPEN_SYNC_ID = 0x80
TPDO1_BASE = 0x180
TPDO2_BASE = 0x280
CANOPEN_DBC_NODE = 0x20  # the shipped DBC carries the default node's COB-IDs


@dataclass(frozen=True, slots=True)
class Frame:
    """One CAN frame, without any transport attached."""

    arbitration_id: int
    data: bytes
    is_extended_id: bool = False


class DbcSet:
    """A lookup over several DBC databases: first database that knows a frame id wins."""

    def __init__(self, databases: Iterable[Database]) -> None:
        self.databases = list(databases)
        self._by_id: dict[tuple[int, bool], Message] = {}
        self._by_name: dict[str, Message] = {}
        for db in self.databases:
            for m in db.messages:
                self._by_id.setdefault((m.frame_id, m.is_extended_frame), m)
                self._by_name.setdefault(m.name, m)

    def by_id(self, frame_id: int, extended: bool) -> Message | None:
        """Return the message definition for a frame id, or None."""
        return self._by_id.get((frame_id, extended))

    def message(self, name: str) -> Message | None:
        """Return the message definition by name, or None."""
        return self._by_name.get(name)


@functools.cache
def shipped(name: str) -> Database:
    """Load one of the DBC files shipped in the package (`inverter`, `charger_j1939`, ...)."""
    if name not in SHIPPED:
        raise KeyError(name)
    text = resources.files("gateway.adapters.can").joinpath("dbc_files", f"{name}.dbc").read_text()
    db = cantools.database.load_string(text, database_format="dbc")
    assert isinstance(db, Database)
    return db


class _Lookup:
    """Adapter giving `Database` the `.message(name)` shape used by config validation."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def message(self, name: str) -> Message | None:
        try:
            msg: Message = self.db.get_message_by_name(name)
        except KeyError:
            return None
        return msg


def user_database(path: Path) -> Database:
    """Load a user DBC file; any failure is a `ConfigError` naming the file."""
    try:
        db = cantools.database.load_file(str(path), database_format="dbc")
    except OSError as err:
        raise ConfigError(f"dbc_files: {path}: {err.strerror}") from err
    except Exception as err:  # cantools raises parser-specific errors
        raise ConfigError(f"dbc_files: {path}: not a valid DBC file: {err}") from err
    if not isinstance(db, Database):
        raise ConfigError(f"dbc_files: {path}: not a CAN database")
    return db


def load_databases(paths: Iterable[Path]) -> list[_Lookup]:
    """Return lookups over the shipped DBCs followed by the user's (config validation)."""
    return [_Lookup(shipped(n)) for n in SHIPPED] + [_Lookup(user_database(p)) for p in paths]


def dbc_set(paths: Iterable[Path] = ()) -> DbcSet:
    """Return a `DbcSet` of the shipped DBCs followed by the user's files."""
    return DbcSet([shipped(n) for n in SHIPPED] + [user_database(p) for p in paths])


def encode(db: Database, name: str, values: Mapping[str, Any]) -> Frame:
    """Encode message `name` of `db` from physical values (missing signals are 0)."""
    msg: Message = db.get_message_by_name(name)
    full = {s.name: values.get(s.name, 0) for s in msg.signals}
    data = msg.encode(full, scaling=True, padding=False, strict=True)
    return Frame(msg.frame_id, bytes(data), msg.is_extended_frame)


def decode(msg: Message, data: bytes) -> dict[str, Any]:
    """Decode a frame's payload to physical values.

    Raises:
        FrameError: the payload is shorter than the message or does not decode.
    """
    if len(data) < msg.length:
        raise FrameError(f"{msg.name}: {len(data)} bytes, needs {msg.length}")
    if msg.is_container:
        raise FrameError(f"{msg.name}: container messages are not supported")
    try:
        values: dict[str, Any] = msg.decode_simple(
            bytes(data[: msg.length]), decode_choices=False, scaling=True
        )
    except Exception as err:  # cantools raises its own DecodeError and struct errors
        raise FrameError(f"{msg.name}: {err}") from err
    return values


def text_raw(text: str) -> int:
    """Return the raw value of an 8-byte ASCII text signal (space padded)."""
    raw = text.encode("ascii", "replace")[:8].ljust(8, b" ")
    return int.from_bytes(raw, "little")


def raw_text(raw: int) -> str:
    """Return the text of an 8-byte ASCII signal (trailing spaces and NULs removed)."""
    return int(raw).to_bytes(8, "little").decode("ascii", "replace").rstrip(" \x00")
