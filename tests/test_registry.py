"""Plugin registry: bundled components register through entry points; errors name the choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core import registry
from gateway.core.errors import PluginError


def test_bundled_components_register_through_entry_points() -> None:
    adapters = registry.discover("bms_gateway.adapters")
    publishers = registry.discover("bms_gateway.publishers")
    assert "logic" in adapters and adapters["logic"].bundled
    assert {"mqtt", "prometheus"} <= set(publishers)


def test_separate_distribution_plugin_is_found() -> None:
    publishers = registry.discover("bms_gateway.publishers")
    assert "jsonl" in publishers
    assert not publishers["jsonl"].bundled
    assert callable(publishers["jsonl"].load())


def test_unknown_name_lists_installed() -> None:
    with pytest.raises(PluginError, match=r"installed: .*logic"):
        registry.load("bms_gateway.adapters", "nope")
    with pytest.raises(PluginError, match="unknown plugin group"):
        registry.discover("bms_gateway.nothing")


async def test_jsonl_plugin_appends_every_notice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio
    import json

    from gateway.app import build_context
    from gateway.config import load_config
    from gateway.core.clock import VirtualClock
    from gateway.core.events import BoardCameOnline, ErrorRaised
    from tests.support.tasks import cancel_for_sure
    from tests.support.waiting import until

    out = tmp_path / "notices.jsonl"
    create = registry.load("bms_gateway.publishers", "jsonl")
    ctx = build_context(load_config(None, env=False), VirtualClock())
    assert create(ctx) is None  # off without BMSGW_JSONL_PATH
    monkeypatch.setenv("BMSGW_JSONL_PATH", str(out))
    pub = create(ctx)
    task = asyncio.create_task(pub.run())
    ctx.bus.publish(BoardCameOnline(at_s=1.0, board=2))
    ctx.bus.publish(ErrorRaised(at_s=2.0, error="cell_imbalance", severity="warn"))

    def lines() -> list[dict[str, object]]:
        if not out.exists():
            return []
        return [json.loads(x) for x in out.read_text().splitlines()]

    await until(lambda: len(lines()) == 2, "two notices in the file")
    await cancel_for_sure(task)
    got = lines()
    assert got[0]["type"] == "board_online" and got[0]["board"] == 2
    assert got[1]["error"] == "cell_imbalance"
    assert str(got[1]["timestamp"]).startswith("2026-01-01T00:00:02")
