"""Docs stay true: what the code produces is documented, and what the docs name exists.

Covers the public names a user meets: metrics, error and signal names, the MQTT `state`
fields, entry-point groups, the scenario count the README states, and documents that link
outside the repository. (Config keys: tests/test_config_docs.py.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from gateway.app import build_components, build_context
from gateway.config import load_config
from gateway.control.names import ERROR_NAMES, SIGNAL_NAMES
from gateway.core.clock import VirtualClock
from gateway.publishers.payloads import state_message
from gateway.publishers.prometheus import STATE_METRICS
from tests.test_payloads import fixed_state

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum")
NOT_METRICS = {"bms_main"}  # the CAN peer name of a bridged BMS Main (docs/can.md)


def _docs_text() -> str:
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))


async def _all_metric_names(tmp_path: Path) -> set[str]:
    cfg = load_config(
        overrides={
            "gateway": {"state_dir": str(tmp_path)},
            "logic": {"port": "/dev/null-not-opened", "boards": 2, "cells_per_board": 4},
            "mqtt": {"enabled": True},
            "modbus_server": {"enabled": True},
            "modbus": {"devices": [{"name": "meter", "profile": "eastron-sdm", "port": 1502}]},
            "can": {
                "enabled": True,
                "interface": "virtual",
                "channel": "docs-truth",
                "inverter": {"enabled": True},
                "charger": {"enabled": True},
            },
        },
        env=False,
    )
    ctx = build_context(cfg, VirtualClock())
    build_components(ctx)
    names = {family.name for family in ctx.registry.collect()}
    names |= {m.name for m in STATE_METRICS}
    return {n.removesuffix("_total") for n in names}


async def test_every_metric_is_documented_and_every_documented_metric_exists(
    tmp_path: Path,
) -> None:
    produced = await _all_metric_names(tmp_path)
    text = _docs_text()
    missing = sorted(n for n in produced if not re.search(rf"\b{n}(_total)?\b", text))
    assert not missing, f"metrics without documentation: {missing}"
    documented = set()
    # metric names in backticks; `bms_modbus_*` is a family; `bms_main.x` a point, not a metric
    for name in re.findall(r"`(bms_[a-z0-9_]+)(?:\{[^}`]*\})?`", text):
        base = name
        for suffix in SUFFIXES:
            base = base.removesuffix(suffix)
        if base not in NOT_METRICS:
            documented.add(base)
    produced_bases = {n.removesuffix("_seconds") for n in produced} | produced
    unknown = sorted(
        n
        for n in documented
        if n not in produced
        and n not in produced_bases
        and not any(p.startswith(n + "_") or n.startswith(p) for p in produced)
    )
    assert not unknown, f"documented metrics the gateway does not produce: {unknown}"


def test_every_error_and_signal_name_is_documented() -> None:
    protections = (DOCS / "protections.md").read_text(encoding="utf-8")
    missing = [n for n in (*ERROR_NAMES, *SIGNAL_NAMES) if f"`{n}`" not in protections]
    assert not missing, f"not in docs/protections.md: {missing}"


def _keys(value: Any, prefix: str = "") -> set[str]:
    out: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            out.add(k)
            out |= _keys(v, k)
    elif isinstance(value, list):
        for item in value:
            out |= _keys(item, prefix)
    return out


def test_every_state_field_is_documented() -> None:
    cfg = load_config(overrides={"logic": {"boards": 3, "cells_per_board": 3}}, env=False)
    message = state_message(fixed_state(), VirtualClock(), cfg)
    mqtt_doc = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    # keys named after errors, signals, relay functions, points: documented as families
    dynamic = set(ERROR_NAMES) | set(SIGNAL_NAMES) | set(message.get("reasons", {}))
    dynamic |= set(message.get("points", {}))
    missing = sorted(
        k
        for k in _keys(message)
        if f"`{k}`" not in mqtt_doc and f'"{k}"' not in mqtt_doc
        and k not in dynamic and not k.isdigit()
    )  # fmt: skip
    assert not missing, f"state fields not in docs/mqtt.md: {missing}"


def test_every_entry_point_group_is_documented() -> None:
    groups = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    plugins_doc = (ROOT / "plugins" / "README.md").read_text(encoding="utf-8")
    missing = [g for g in groups if f"`{g}`" not in plugins_doc]
    assert not missing, f"entry-point groups not in plugins/README.md: {missing}"


def test_stated_scenario_counts_are_true() -> None:
    count = len(list((ROOT / "scenarios").glob("*.yaml")))
    for doc in (ROOT / "README.md", DOCS / "scenarios.md"):
        for stated in re.findall(r"\b(\d+)\+? scenarios\b", doc.read_text(encoding="utf-8")):
            assert int(stated) <= count, f"{doc.name} says {stated} scenarios, there are {count}"


def test_no_document_links_outside_the_repository() -> None:
    docs = [ROOT / "README.md", *sorted(DOCS.rglob("*.md")), ROOT / "plugins" / "README.md"]
    for doc in docs:
        text = doc.read_text(encoding="utf-8")
        assert "../shared" not in text and "shared/spec" not in text, doc
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            assert (doc.parent / target).resolve().is_relative_to(ROOT), (doc, target)
            assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_every_mqtt_topic_is_documented() -> None:
    from gateway.control.commands import ACK, GO_SAFE
    from gateway.publishers.commands import RESULT
    from gateway.publishers.presence import PROBE, REPLY
    from gateway.publishers.topics import Topics

    topics = Topics.under("bms", "gw")
    produced = [
        topics.availability,
        topics.state,
        topics.events,
        topics.command(GO_SAFE),
        topics.command(ACK),
        topics.sub("command", RESULT),
        topics.sub(PROBE),
        topics.sub(PROBE, REPLY),
    ]
    mqtt_doc = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    missing = [t for t in produced if f"`…/{t.removeprefix('bms/gw/')}`" not in mqtt_doc]
    assert not missing, f"topics not in docs/mqtt.md: {missing}"
