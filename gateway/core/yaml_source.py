"""Read a YAML file for a loader that must never throw: data, key lines, and clear errors.

Every failure is a `ConfigError` whose message names the file and, where known, the line;
messages never quote the file's text (a typo on a password line must not echo the password).
`key_lines` maps each dotted key path to its line, so validation errors can point there too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.core.errors import ConfigError

MAX_BYTES = 4 * 1024 * 1024  # a config or profile is a few kB; refuse to parse a huge file
MAX_DEPTH = 32  # nesting levels; real configs use 4-5
MAX_NODES = 200_000  # after alias expansion ("billion laughs" stays a clear error)


@dataclass
class YamlSource:
    """A parsed YAML mapping with the line (1-based) of every key path."""

    path: Path
    data: dict[str, Any]
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, loc: tuple[str | int, ...]) -> int | None:
        """Line of the deepest known prefix of `loc` (None when nothing matches)."""
        for n in range(len(loc), 0, -1):
            line = self.lines.get(tuple(loc[:n]))
            if line is not None:
                return line
        return None


def _where(path: Path, mark: Any) -> str:
    if mark is None:
        return str(path)
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def _shape_error(node: yaml.Node) -> str | None:
    """Say why a document is too deep or too big (aliases expanded), or None."""
    stack = [(node, 1)]
    seen = 0
    while stack:
        current, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if seen > MAX_NODES:
            return f"more than {MAX_NODES} values (with aliases expanded)"
        if isinstance(current, yaml.MappingNode):
            for k, v in current.value:
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend((v, depth + 1) for v in current.value)
    return None


def _collect_lines(
    node: yaml.Node, prefix: tuple[str | int, ...], out: dict[tuple[str | int, ...], int]
) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = (*prefix, str(key_node.value))
            out.setdefault(key, key_node.start_mark.line + 1)
            _collect_lines(value_node, key, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            key = (*prefix, i)
            out.setdefault(key, item.start_mark.line + 1)
            _collect_lines(item, key, out)


def read_yaml(path: Path, what: str = "file") -> YamlSource:
    """Read and parse a YAML mapping (an empty file is an empty mapping).

    Raises:
        ConfigError: unreadable, too large, not UTF-8, not YAML, too deep, or not a mapping.
    """
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror or err}") from err
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: {len(raw)} bytes; a {what} larger than 4 MiB is refused")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02X}); save the {what} "
            "as UTF-8"
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        problem = None if node is None else _shape_error(node)
        if problem is not None:
            raise ConfigError(f"{path}: {problem}")
        data = yaml.safe_load(text) if node is not None else None
    except yaml.MarkedYAMLError as err:
        # problem/context only: str(err) would quote the offending line (maybe a password)
        mark = err.problem_mark or err.context_mark
        what_ = err.problem or "invalid YAML"
        context = f" ({err.context})" if err.context else ""
        raise ConfigError(f"{_where(path, mark)}: invalid YAML: {what_}{context}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML ({type(err).__name__})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to read") from None
    if data is None:
        return YamlSource(path, {})
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: the top level must be a mapping of sections (`key: value` lines), "
            f"not a {type(data).__name__}"
        )
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return YamlSource(path, data, lines)
