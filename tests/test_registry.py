"""Plugin registry: bundled components register through entry points; errors name the choices."""

from __future__ import annotations

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
