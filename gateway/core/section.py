"""Config building blocks every layer may use: the `Section` base, YAML reading, merging.

A leaf module (it imports only pydantic, PyYAML and `core.errors`): section models live next
to the subsystem that owns them and subclass `Section` from here; `gateway.config` composes
them into the one `GatewayConfig` and runs the cross-field checks.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from gateway.core.yaml_source import YamlSource, read_yaml


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


SOC_FORMS = 'write it in percent (`60`, `"60 %"`) or as a fraction 0..1 (`0.6`)'


def soc_fraction(value: Any) -> Any:
    """A state of charge as a fraction 0..1, from the forms a user may write.

    `"60 %"`/`"60%"` is percent; a number (or a numeric string, as environment overrides
    give) above 1 is percent (60 = 60 %); a number 0..1 is a fraction (1 = 100 %; write
    `"1 %"` for one percent). A number outside 0..100 % raises ValueError naming the forms;
    anything else (a bool, a word) is returned unchanged for the field's own validator.
    """
    if isinstance(value, bool):
        return value
    percent = False
    number: float
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            return value
    elif isinstance(value, int | float):
        number = float(value)
    else:
        return value
    if percent or number > 1.0:
        number /= 100.0
    if not 0.0 <= number <= 1.0:  # also NaN
        raise ValueError(f"state of charge {value!r} is outside 0..100 %: {SOC_FORMS}")
    return number


# A SOC config value: write 0.6, 60 or "60 %" (user-facing SOC is in % everywhere).
SocFraction = Annotated[float, BeforeValidator(soc_fraction)]


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (an empty file is an empty mapping).

    Raises:
        ConfigError: the file is unreadable, not YAML, or not a mapping at the top level.
    """
    return read_yaml(path).data


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Return `base` with `extra` merged in, recursively for nested mappings."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


_SUBKEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.*)$", re.DOTALL)


def _model_args(annotation: Any) -> list[Any]:
    """The types inside an annotation (Optional, list, dict values, unions)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation]
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if origin in (typing.Union, types.UnionType, list, tuple, set):
        return [x for a in args for x in _model_args(a)]
    if origin is dict and len(args) == 2:
        return _model_args(args[1])
    if origin is typing.Annotated:
        return _model_args(args[0])
    return [annotation]


def _keys_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys a model accepts at `loc` (names and aliases), or [] when unknown."""
    current: list[Any] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[Any] = []
        for m in current:
            if isinstance(m, type) and issubclass(m, BaseModel):
                for name, f in m.model_fields.items():
                    if part in (name, f.alias):
                        nxt.extend(_model_args(f.annotation))
        current = nxt
    keys: list[str] = []
    for m in current:
        if isinstance(m, type) and issubclass(m, BaseModel):
            keys.extend(f.alias or name for name, f in m.model_fields.items())
    return keys


def format_validation_error(
    err: ValidationError,
    model: type[BaseModel] | None = None,
    source: YamlSource | None = None,
) -> list[str]:
    """Render each error as `[file:line: ]dotted.path: message[ (did you mean ...?)]`.

    A check across sections fails at the top level with a message that already starts with
    its dotted key (`charge_control.recharge_voltage: ...`); it is shown as it is. A section
    check whose message starts with a sub-key (`password_file: ...`) gets the full path.
    Messages never contain the rejected input (it may be a secret).
    """
    lines = []
    for e in err.errors(include_input=False, include_url=False):
        loc = tuple(e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if (m := _SUBKEY.match(msg)) is not None:
            loc = (*loc, *m.group(1).split("."))
            msg = m.group(2)
        if e["type"] == "extra_forbidden" and model is not None and loc:
            key = str(loc[-1])
            near = difflib.get_close_matches(key, _keys_at(model, loc[:-1]), n=1, cutoff=0.6)
            msg = f"unknown key{f' (did you mean {near[0]!r}?)' if near else ''}"
        path = ".".join(str(p) for p in loc)
        where = ""
        if source is not None:
            line = source.line_of(tuple(str(p) if isinstance(p, str) else p for p in loc))
            where = f"{source.path}:{line}: " if line is not None else f"{source.path}: "
        lines.append(f"{where}{path}: {msg}" if path else f"{where}{msg}")
    return lines
