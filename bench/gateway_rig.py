"""In-process gateways for the benchmarks: a context filled with a pack's readings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.app import build_context
from gateway.config import GatewayConfig, load_config
from gateway.core.clock import RealClock
from gateway.core.context import GatewayContext
from gateway.core.events import BoardScanned
from gateway.protocols import logic_map
from gateway.sim.pack import PackModel


def bench_config(
    state_dir: Path, *, port: int = 1883, gateway_id: str = "bench", **sections: Any
) -> GatewayConfig:
    """A controller config: 23 boards × 18 cells, MQTT to 127.0.0.1:`port`, no HA/metrics."""
    overrides: dict[str, Any] = {
        "gateway": {"id": gateway_id, "state_dir": str(state_dir)},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "logic": {"boards": logic_map.MAX_BOARDS, "cells_per_board": logic_map.MAX_CELLS},
        "homeassistant": {"enabled": False},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    return load_config(overrides=overrides, env=False)


def fill(ctx: GatewayContext, pack: PackModel | None = None) -> None:
    """Apply one scan of every configured board (readings from a simulated pack)."""
    logic = ctx.config.logic
    pack = pack or PackModel(boards=max(logic.addresses), cells_per_board=logic.cells_per_board)
    now = ctx.clock.now()
    for board in logic.addresses:
        regs = pack.input_registers(board)
        r = logic_map.decode_input_registers(regs, logic.cells_per_board, logic.sensors)
        ctx.store.apply(
            BoardScanned(
                at_s=now,
                board=board,
                cell_voltages_v=r.cell_voltages_v,
                temperatures_c=r.temperatures_c,
                board_temperature_c=r.board_temperature_c,
                status_bits=r.status_bits,
                balancing_mask=r.balancing_mask,
                firmware=r.firmware,
            )
        )


def context(config: GatewayConfig) -> GatewayContext:
    """A gateway context on the real clock, with every board scanned once."""
    ctx = build_context(config, RealClock())
    fill(ctx)
    return ctx


def published(ctx: GatewayContext, topic: str) -> int:
    """Messages the gateway has published on `topic` (state, events, availability)."""
    return int(ctx.registry.get_sample_value("bms_mqtt_publishes_total", {"topic": topic}) or 0)
