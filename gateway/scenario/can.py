"""Scenario keys for CAN (entry point `can` in `bms_gateway.scenario`).

- `set: {can: {id, data, extended?}}` injects a frame from a peer on a virtual CAN bus;
  the gateway decodes it at the next tick.
- `expect: {can_tx: {id, signals: {name: value | {min, max}}}}` (or a list of those) checks
  the last frame the gateway sent with that id, decoded by the shipped DBCs.

The runner's `can` extension starts the real `CanAdapter` on a private python-can `virtual`
channel when the scenario's config has `can.enabled: true` (never real hardware).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

import can
from cantools.database.can import Message

from gateway.adapters.can.adapter import CanAdapter
from gateway.adapters.can.dbc import dbc_set, decode
from gateway.adapters.can.link import CanLink
from gateway.config import GatewayConfig
from gateway.scenario.registry import (
    Expectation,
    Extension,
    Outcome,
    ScenarioError,
    SetAction,
    register_expectation,
    register_extension,
    register_set_action,
)
from gateway.scenario.world import World

KEY = "can"
MAX_ID = 0x1FFFFFFF
RECEIVE_TIMEOUT_S = 5.0  # real time for the virtual bus thread to deliver an injected frame


@dataclass
class ScenarioCan:
    """The adapter under test and the peer bus that plays the inverter/charger/board."""

    adapter: CanAdapter
    peer: can.BusABC

    def drain_peer(self) -> None:
        """Discard what the gateway sent to the peer (keeps the virtual queue small)."""
        while self.peer.recv(timeout=0) is not None:
            pass


def _needs_can(config: GatewayConfig, path: str) -> None:
    if not config.can.enabled:
        raise ScenarioError(path, "needs `can: {enabled: true}` under config")


def _frame_id(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise ScenarioError(path, f"expected a CAN id 0..0x1FFFFFFF, got {value!r}")
    return value


def _parse_inject(value: Any, path: str, config: GatewayConfig) -> can.Message:
    _needs_can(config, path)
    if not isinstance(value, dict):
        raise ScenarioError(path, "expected {id, data}")
    for k in value:
        if k not in {"id", "data", "extended"}:
            raise ScenarioError(f"{path}.{k}", "unknown key")
    arb = _frame_id(value.get("id"), f"{path}.id")
    raw = value.get("data", "")
    if isinstance(raw, str):
        try:
            data = bytes.fromhex(raw.replace(" ", ""))
        except ValueError as err:
            raise ScenarioError(f"{path}.data", f"not hex: {err}") from err
    elif isinstance(raw, list) and all(isinstance(b, int) and 0 <= b <= 255 for b in raw):
        data = bytes(raw)
    else:
        raise ScenarioError(f"{path}.data", "expected a hex string or a list of bytes")
    if len(data) > 8:
        raise ScenarioError(f"{path}.data", "at most 8 bytes")
    extended = value.get("extended", arb > 0x7FF)
    if not isinstance(extended, bool) or (arb > 0x7FF and not extended):
        raise ScenarioError(f"{path}.extended", "expected a bool (true for ids > 0x7FF)")
    return can.Message(arbitration_id=arb, is_extended_id=extended, data=data)


def _inject(world: World, msg: can.Message) -> Awaitable[None]:
    sc: ScenarioCan = world.extras[KEY]
    link = sc.adapter.link
    before = link.rx_seen
    sc.peer.send(msg)
    return _received(link, before)


async def _received(link: CanLink, before: int) -> None:
    # The frame must be decoded before the runner advances the clock, so it is decoded at
    # the set time and seen from the next tick, deterministically.
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            await link.handled_beyond(before)
    except TimeoutError:
        raise RuntimeError("the CAN adapter did not receive the injected frame") from None


@dataclass(frozen=True)
class _TxCheck:
    frame_id: int
    message: Message
    signals: dict[str, tuple[float, float, str]]


def _parse_one_tx(value: Any, path: str, config: GatewayConfig) -> _TxCheck:
    if not isinstance(value, dict) or set(value) - {"id", "signals"} or "id" not in value:
        raise ScenarioError(path, "expected {id, signals}")
    arb = _frame_id(value["id"], f"{path}.id")
    dbcs = dbc_set(config.can.dbc_files)
    msg = dbcs.by_id(arb, arb > 0x7FF)
    if msg is None:
        raise ScenarioError(f"{path}.id", f"0x{arb:X} is not in the shipped DBCs")
    signals = value.get("signals", {})
    if not isinstance(signals, dict):
        raise ScenarioError(f"{path}.signals", "expected a mapping of signal -> value")
    names = {s.name for s in msg.signals}
    out: dict[str, tuple[float, float, str]] = {}
    for name, want in signals.items():
        p = f"{path}.signals.{name}"
        if name not in names:
            raise ScenarioError(p, f"{msg.name} has no signal {name!r}")
        scale = float(msg.get_signal_by_name(name).scale)
        if isinstance(want, dict):
            if set(want) - {"min", "max"} or not want:
                raise ScenarioError(p, "expected {min, max}")
            lo, hi = want.get("min", float("-inf")), want.get("max", float("inf"))
            for bound in (lo, hi):
                if isinstance(bound, bool) or not isinstance(bound, int | float):
                    raise ScenarioError(p, "min/max must be numbers")
            out[name] = (float(lo), float(hi), _fmt(float(lo), float(hi)))
        elif isinstance(want, int | float) and not isinstance(want, bool):
            out[name] = (float(want) - scale / 2, float(want) + scale / 2, f"{want:g}")
        elif isinstance(want, bool):
            out[name] = (float(want), float(want), str(want).lower())
        else:
            raise ScenarioError(p, "expected a number or {min, max}")
    return _TxCheck(arb, msg, out)


def _parse_tx(value: Any, path: str, config: GatewayConfig) -> list[_TxCheck]:
    _needs_can(config, path)
    if isinstance(value, list):
        return [_parse_one_tx(v, f"{path}.{i}", config) for i, v in enumerate(value)]
    return [_parse_one_tx(value, path, config)]


def _fmt(lo: float, hi: float) -> str:
    if lo == float("-inf"):
        return f"<= {hi:g}"
    if hi == float("inf"):
        return f">= {lo:g}"
    return f"{lo:g}..{hi:g}"


def _check_tx(world: World, checks: list[_TxCheck]) -> list[Outcome]:
    sc: ScenarioCan = world.extras[KEY]
    sc.drain_peer()
    out: list[Outcome] = []
    for c in checks:
        what = f"can_tx.0x{c.frame_id:X}"
        frame = sc.adapter.last_tx.get(c.frame_id)
        if frame is None:
            out.append(Outcome(False, what, "a frame", "none sent"))
            continue
        values = decode(c.message, frame.data)
        for name, (lo, hi, text) in c.signals.items():
            seen = float(values[name])
            out.append(Outcome(lo <= seen <= hi, f"{what}.{name}", text, f"{seen:g}"))
    return out


async def _start(world: World) -> None:
    if not world.config.can.enabled:
        return
    channel = f"scenario-{uuid.uuid4().hex}"
    adapter = CanAdapter(
        world.ctx, bus_factory=lambda: can.Bus(interface="virtual", channel=channel)
    )
    peer = can.Bus(interface="virtual", channel=channel)
    world.extras[KEY] = ScenarioCan(adapter, peer)
    world.start_component(adapter)
    for _ in range(100):
        if adapter.link.up:
            break
        await asyncio.sleep(0)


async def _stop(world: World) -> None:
    sc: ScenarioCan | None = world.extras.pop(KEY, None)
    if sc is not None:
        sc.peer.shutdown()


def register() -> None:
    """Register the `can` set action, the `can_tx` expectation and the virtual bus."""
    register_set_action(SetAction("can", _parse_inject, _inject))
    register_expectation(Expectation("can_tx", _parse_tx, _check_tx))
    register_extension(Extension("can", _start, _stop))
