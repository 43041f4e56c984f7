"""Config building blocks every layer may use: the `Section` base, YAML reading, merging.

A leaf module (it imports only pydantic, PyYAML and `core.errors`): section models live next
to the subsystem that owns them and subclass `Section` from here; `gateway.config` composes
them into the one `GatewayConfig` and runs the cross-field checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from gateway.core.errors import ConfigError


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (an empty file is an empty mapping).

    Raises:
        ConfigError: the file is unreadable, not YAML, or not a mapping at the top level.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `extra` merged in, recursively for nested mappings."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def format_validation_error(err: ValidationError) -> list[str]:
    """Render each error as `dotted.path: message`.

    A check across sections fails at the top level with a message that already starts with
    its dotted key (`charge_control.recharge_voltage: ...`); it is shown as it is.
    """
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if not path:
            lines.append(msg.removeprefix("Value error, "))
        else:
            lines.append(f"{path}: {msg}")
    return lines
