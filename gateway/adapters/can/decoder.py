"""Inbound frames -> gateway points, driven by the DBC files and the config (sans-IO)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cantools.database.can import Message

from gateway.adapters.can import canopen, charger
from gateway.adapters.can.config import CanSection
from gateway.adapters.can.dbc import (
    CANOPEN_SYNC_ID,
    CHARGER_STATUS_ID,
    INVERTER_KEEPALIVE_ID,
    TPDO1_BASE,
    TPDO2_BASE,
    DbcSet,
    dbc_set,
    decode,
    raw_text,
    shipped,
)

Points = dict[str, float | int | bool | str]


@dataclass
class Decoded:
    """What one frame meant."""

    points: Points = field(default_factory=dict)
    peer: str | None = None  # the peer this frame proves alive
    sync: bool = False  # a CANopen SYNC the gateway must answer


@dataclass
class _Route:
    message: Message | None  # None = payload ignored
    handle: Callable[[dict[str, Any]], Decoded]


def _point_value(value: Any) -> float | int | bool | str:
    if isinstance(value, bool | int | str):
        return value
    return float(value)


class FrameDecoder:
    """Routes frames by id to the built-in protocols and the configured DBC mappings.

    `decode` returns a `Decoded`, or None for an id nothing handles (count it as unknown),
    and raises `FrameError` for a known id whose payload does not decode.
    """

    def __init__(
        self,
        cfg: CanSection,
        mode: str = "controller",
        dbcs: DbcSet | None = None,
        battery_frames: bool = False,
    ):
        """`battery_frames`: also decode the battery frames the gateway sends to an inverter
        (0x351-0x377) into points `inverter.<message>.<signal>` (`can replay` of a capture)."""
        self.dbcs = dbcs if dbcs is not None else dbc_set(cfg.dbc_files)
        self.routes: dict[tuple[int, bool], _Route] = {}
        self.timeouts: dict[str, tuple[float, float]] = {}  # peer -> (timeout_s, grace_s)
        if cfg.charger.enabled:
            msg = shipped("charger_j1939").get_message_by_frame_id(CHARGER_STATUS_ID | 1 << 31)
            self.routes[CHARGER_STATUS_ID, True] = _Route(
                msg, lambda v: Decoded(charger.status_points(v), peer="charger")
            )
            self.timeouts["charger"] = (cfg.charger.timeout_s, 0.0)
        if cfg.inverter.enabled:
            self.routes[INVERTER_KEEPALIVE_ID, False] = _Route(
                None, lambda v: Decoded(peer="inverter")
            )
            self.timeouts["inverter"] = (
                cfg.inverter.keepalive_timeout_s,
                cfg.inverter.startup_grace_s,
            )
        if cfg.canopen.enabled:
            db = shipped("bms_main_canopen")
            node = cfg.canopen.node_id
            if mode == "bridge":
                self.routes[TPDO1_BASE + node, False] = _Route(
                    db.get_message_by_name("TPDO1"),
                    lambda v: Decoded(canopen.tpdo1_points(v), peer="bms_main"),
                )
                self.routes[TPDO2_BASE + node, False] = _Route(
                    db.get_message_by_name("TPDO2"),
                    lambda v: Decoded(canopen.tpdo2_points(v), peer="bms_main"),
                )
                self.timeouts["bms_main"] = (cfg.canopen.timeout_s, 0.0)
            else:
                self.routes[CANOPEN_SYNC_ID, False] = _Route(None, lambda v: Decoded(sync=True))
        if battery_frames:
            for msg in shipped("inverter").messages:
                if msg.senders == ["BMS"]:
                    self.routes[msg.frame_id, False] = _Route(msg, self._battery_mapper(msg))
        for m in cfg.messages:
            user_msg = self.dbcs.message(m.message)
            if user_msg is None:  # validated by the config model; a DBC changed under us
                continue
            peer = m.peer_name if m.timeout_s is not None else None
            if m.timeout_s is not None:
                self.timeouts[m.peer_name] = (m.timeout_s, 0.0)
            self.routes[user_msg.frame_id, user_msg.is_extended_frame] = _Route(
                user_msg, self._mapper(dict(m.signals), peer)
            )

    @staticmethod
    def _battery_mapper(msg: Message) -> Callable[[dict[str, Any]], Decoded]:
        texts = {s.name for s in msg.signals if s.length == 64}

        def handle(values: dict[str, Any]) -> Decoded:
            return Decoded(
                {
                    f"inverter.{msg.name}.{sig}": raw_text(v) if sig in texts else _point_value(v)
                    for sig, v in values.items()
                }
            )

        return handle

    @staticmethod
    def _mapper(signals: dict[str, str], peer: str | None) -> Callable[[dict[str, Any]], Decoded]:
        def handle(values: dict[str, Any]) -> Decoded:
            return Decoded(
                {point: _point_value(values[sig]) for sig, point in signals.items()}, peer=peer
            )

        return handle

    def decode(self, arbitration_id: int, data: bytes, is_extended_id: bool) -> Decoded | None:
        """Decode one frame (see the class docstring for the outcomes)."""
        route = self.routes.get((arbitration_id, is_extended_id))
        if route is None:
            return None
        if route.message is None:
            return route.handle({})
        return route.handle(decode(route.message, data))
