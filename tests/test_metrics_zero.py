"""Labelled series exist at 0 for every known label value before their first event.

Otherwise a Grafana panel stays empty and `rate()` misses the first event (issue 12).
"""

from __future__ import annotations

from pathlib import Path

from gateway.adapters.logic_health import ERROR_KINDS
from gateway.app import build_components, build_context
from gateway.config import load_config
from gateway.control.names import ERROR_NAMES
from gateway.core.clock import VirtualClock


def _samples(registry: object, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in registry.collect():  # type: ignore[attr-defined]
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


async def test_labelled_series_start_at_zero(tmp_path: Path) -> None:
    cfg = load_config(
        overrides={
            "gateway": {"state_dir": str(tmp_path)},
            "logic": {"port": "/dev/null-not-opened", "boards": [1, 3], "cells_per_board": 4},
            "mqtt": {"enabled": False},
            "metrics": {"enabled": False},
            "modbus_server": {"enabled": True},
            "can": {
                "enabled": True,
                "interface": "virtual",
                "channel": "zero-series",
                "inverter": {"enabled": True},
                "charger": {"enabled": True},
            },
        },
        env=False,
    )
    ctx = build_context(cfg, VirtualClock())
    build_components(ctx)
    reg = ctx.registry

    errors = _samples(reg, "bms_logic_poll_errors_total")
    assert errors == {(("board", str(b)), ("kind", k)): 0.0 for b in (1, 3) for k in ERROR_KINDS}
    assert _samples(reg, "bms_logic_polls_total") == {
        (("board", "1"),): 0.0,
        (("board", "3"),): 0.0,
    }

    drops = _samples(reg, "bms_bus_dropped_events_total")
    assert drops and set(drops.values()) == {0.0}
    assert {labels[0][1] for labels in drops} >= {"state", "engine-analog", "engine-commands"}

    reaction = _samples(reg, "bms_protection_reaction_seconds_count")
    assert {labels[0][1] for labels in reaction} == set(ERROR_NAMES)
    assert set(reaction.values()) == {0.0}
    raised = _samples(reg, "bms_errors_raised_total")
    assert {labels[0][1] for labels in raised} == set(ERROR_NAMES)

    assert set(_samples(reg, "bms_relay_switches_total")) == {
        (("relay", str(n)),) for n in (1, 2, 3, 4)
    }
    assert len(_samples(reg, "bms_engine_driver_failures_total")) == 3
    assert len(_samples(reg, "bms_logic_balancing_writes_total")) == 4
    assert _samples(reg, "bms_can_peer_connected") == {
        (("peer", "charger"),): 0.0,
        (("peer", "inverter"),): 0.0,
    }
    modbus = _samples(reg, "bms_modbus_server_requests_total")
    assert (("kind", "read"), ("result", "ok")) in modbus and len(modbus) == 10
