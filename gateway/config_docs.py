"""Render the configuration reference (docs/configuration.md) from the pydantic models."""

from __future__ import annotations

import json
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from gateway.config import GatewayConfig

HEADER = """# Configuration reference

Generated from the pydantic models by `bms-gateway config-docs` (do not edit by hand; a test
checks that this file matches the code).

The gateway reads one YAML file (`bms-gateway run FILE`, `bms-gateway check-config FILE`).
Every key has a default that runs: with no file at all the gateway starts its embedded
simulator. Environment variables override file keys: prefix `BMSGW_`, `__` between levels,
e.g. `BMSGW_MQTT__PORT=1884`, `BMSGW_MQTT__PASSWORD=...`. Unknown keys are errors.
Entries written `a.<name>` are maps whose keys you choose (e.g. `protections.<error>`).
State of charge is in % wherever the gateway shows it; SOC keys accept both forms (see
"State of charge units" below). Errors name the file, the line and the dotted key
(`cfg.yaml:12: mqtt.hots: unknown key (did you mean 'host'?)`) and never repeat a secret.

## State of charge units

Every SOC the gateway shows is in % (0..100). Every SOC it reads from you (config keys,
environment overrides, scenario files, `simulate --soc`) may be written in percent, `60` or
`"60 %"`, or as a fraction, `0.6`: a number above 1 is percent, a number 0..1 a fraction (so
`1` is 100 %; write one percent as `"1 %"`). A value outside 0..100 % is refused with the
key and these forms. The SOC keys: `simulator.soc`, `limits.charge_soc_derate_start`,
`limits.discharge_soc_derate_start`, `signal_levels.low_soc.min`/`.max`/`.tolerant`; in
scenarios `battery.soc` and `expect.soc` (docs/scenarios.md). `limits.charge_soc_min_fraction`
is a fraction of the CCL, not a SOC.

"""


SOC_UNITS: tuple[tuple[str, str, str], ...] = (
    # (place, unit, test): the audit of every place a user meets the state of charge
    (
        "config keys above, `BMSGW_` overrides",
        "input: % or 0..1",
        "`tests/test_soc_percent.py`, `tests/test_first_hour.py`",
    ),
    (
        "scenario `battery.soc`, `expect.soc` and the printed lines",
        "input: % or 0..1; printed %",
        "`tests/test_soc_percent.py`, `scenarios/soc_counting.yaml`",
    ),
    (
        "`bms-gateway simulate --soc`",
        "input: % or 0..1 (default 60)",
        "`tests/test_soc_percent.py`",
    ),
    (
        "MQTT `state` field `soc`; history series `soc` (`/api/history`, `history export`)",
        "% 0..100, 0.1",
        "`tests/test_payloads.py`, `tests/test_soc_percent.py`, `tests/test_web_api.py`",
    ),
    (
        "bridged points `main2x.soc_pct`, `bms_main.soc_pct` (MQTT `points`)",
        "%",
        "`tests/test_modbus_bridge.py`, `tests/test_bridge_soc.py`",
    ),
    (
        "Home Assistant sensor `soc`",
        "%, `device_class: battery`",
        "`tests/test_homeassistant.py`",
    ),
    (
        "dashboard: `/api/state`, `/api/history`, the page",
        "%",
        "`tests/test_web_api.py`, `tests/test_web_browser.py`",
    ),
    (
        "summary log line (`SOC 61 %`)",
        "%",
        "`tests/test_web_words.py`",
    ),
    (
        "`low_soc` reason (state `reasons`, logs: `soc 15.0 %`)",
        "%",
        "`tests/test_soc_percent.py`",
    ),
    (
        "Modbus server IR 0x3014 and `main2x.soc_pct` IR 0x2100 (REAL32)",
        "% 0..100, no scale",
        "`tests/test_modbus_bridge.py`",
    ),
    (
        "CAN inverter 0x355 `Soc` (1 %), `SocHighRes` (0.01 %)",
        "% (protocol)",
        "`tests/test_can_protocols.py`, `tests/test_can_dbc.py`",
    ),
    (
        "CAN CANopen TPDO1 `Soc`",
        "% (protocol)",
        "`tests/test_can_dbc.py`",
    ),
    (
        "Prometheus `bms_state_of_charge_ratio`",
        "ratio 0..1 (Prometheus naming); Grafana shows it as % (`percentunit`)",
        "`tests/test_prometheus.py`, `tests/test_soc_percent.py`",
    ),
    (
        "`<gateway.state_dir>/soc.json`",
        "fraction 0..1 (internal file, not an interface)",
        "`tests/test_engine_component.py`",
    ),
)


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin in (list, tuple, set):
        args = typing.get_args(annotation)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        args = typing.get_args(annotation)
        return f"map of {_type_name(args[1])}" if len(args) == 2 else "map"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "section"
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("default_doc"), str):
        return str(extra["default_doc"])  # a default that depends on the machine
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section)"
        return f"`{json.dumps(value, default=str)}`"
    if field.default is PydanticUndefined:
        return "(required)"
    if hasattr(field.default, "get_secret_value"):
        return "(secret)"
    return f"`{json.dumps(field.default, default=str)}`"


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """Return (suffix, model) for models nested in an annotation (direct, list, or map)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is dict and len(args) == 2:
        return [(".<name>", m) for _, m in _models_in(args[1])]
    if origin in (list, tuple):
        return [("[]", m) for a in args for _, m in _models_in(a)]
    if origin in (typing.Union, types.UnionType):
        return [x for a in args for x in _models_in(a)]
    return []


def _rows(model: type[BaseModel], prefix: str, seen: set[str]) -> list[str]:
    rows: list[str] = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        nested = _models_in(field.annotation)
        desc = (field.description or "").replace("\n", " ").replace("|", "\\|")
        if nested and all(s == "" for s, _ in nested) and len(nested) == 1:
            doc = (
                (nested[0][1].__doc__ or "").strip().splitlines()[0] if nested[0][1].__doc__ else ""
            )
            rows.append(f"| **`{key}`** | section | | {desc or doc} |")
        else:
            rows.append(
                f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |"
            )
        for suffix, sub in nested:
            sub_key = f"{key}{suffix}"
            if sub_key in seen:
                continue
            seen.add(sub_key)
            rows.extend(_rows(sub, f"{sub_key}.", seen))
    return rows


def render() -> str:
    """Return the whole reference as Markdown."""
    lines = [HEADER, "| place | unit | test |", "| --- | --- | --- |"]
    lines += [f"| {place} | {unit} | {test} |" for place, unit, test in SOC_UNITS]
    lines += ["", "## Keys", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    lines.extend(_rows(GatewayConfig, "", set()))
    return "\n".join(lines) + "\n"
