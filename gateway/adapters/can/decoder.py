"""Inbound frames -> gateway points, driven by the DBC files and the config (sans-IO)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from cantools.database.can import Message
from cantools.database.utils import start_bit

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

PointValue = float | int | bool | str
Points = dict[str, PointValue]
# Fills the batch's points from one frame's decoded signal values.
Fill = Callable[[dict[str, Any], Points], None]
# Says which frames of one id carry the same signals (the multiplexer value, ...).
Variant = Callable[[bytes | bytearray], object]


@dataclass
class Decoded:
    """What one frame meant."""

    points: Points = field(default_factory=dict)
    peer: str | None = None  # the peer this frame proves alive
    sync: bool = False  # a CANopen SYNC the gateway must answer


@dataclass(slots=True)
class Route:
    """How frames of one id are handled; peer and sync do not depend on the payload."""

    message: Message | None  # None = payload ignored
    fill: Fill | None = None
    peer: str | None = None
    sync: bool = False
    length: int = 0  # a shorter payload is a decode error
    # Frames of one id with equal variants carry the same signals (the newest says it all);
    # None: every frame of the id does.
    variant: Variant | None = None

    def decode_into(self, data: bytes | bytearray, points: Points) -> None:
        """Decode one frame's payload into `points` (raises `FrameError`)."""
        if self.message is not None and self.fill is not None:
            self.fill(decode(self.message, bytes(data)), points)


_PLAIN = frozenset((bool, int, str, float))


def _point_value(value: Any) -> PointValue:
    if isinstance(value, bool | int | str):
        return value
    return float(value)


def _filler(make: Callable[[dict[str, Any]], Points]) -> Fill:
    def fill(values: dict[str, Any], points: Points) -> None:
        points.update(make(values))

    return fill


def _mapper(signals: dict[str, str]) -> Fill:
    pairs = tuple(signals.items())

    def fill(values: dict[str, Any], points: Points) -> None:
        for sig, point in pairs:
            if sig in values:  # a multiplexed frame carries only its own signals
                value = values[sig]
                plain = value.__class__ in _PLAIN  # skips the call in the common case
                points[point] = cast(PointValue, value) if plain else _point_value(value)

    return fill


def _battery_filler(msg: Message) -> Fill:
    texts = {s.name for s in msg.signals if s.length == 64}  # 8-byte ASCII signals

    def fill(values: dict[str, Any], points: Points) -> None:
        for sig, v in values.items():
            points[f"inverter.{msg.name}.{sig}"] = (
                raw_text(v) if sig in texts else _point_value(v)
            )

    return fill


def multiplexer_variant(message: Message) -> Variant | None:
    """Return a cheap `payload -> multiplexer value` for `message`, None if not multiplexed.

    One top-level multiplexer is read straight from the payload bits; anything more
    intricate (nested multiplexers) falls back to the whole payload, so only identical
    frames are taken as one.
    """
    muxes = [s for s in message.signals if s.is_multiplexer]
    if not muxes:
        return None
    if len(muxes) > 1:
        return bytes
    sig = muxes[0]
    mask = (1 << sig.length) - 1
    size = message.length
    if sig.byte_order == "little_endian":
        shift = sig.start

        def little(data: bytes | bytearray) -> int:
            return int.from_bytes(data[:size], "little") >> shift & mask

        return little
    shift = 8 * size - start_bit(sig) - sig.length

    def big(data: bytes | bytearray) -> int:
        return int.from_bytes(data[:size], "big") >> shift & mask

    return big


class FrameDecoder:
    """Routes frames by id to the built-in protocols and the configured DBC mappings.

    `decode` returns a `Decoded`, or None for an id nothing handles (count it as unknown),
    and raises `FrameError` for a known id whose payload does not decode. The CAN adapter
    uses `routes` directly to decode only the newest frame of each kind in a batch.
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
        self.routes: dict[tuple[int, bool], Route] = {}
        self.timeouts: dict[str, tuple[float, float]] = {}  # peer -> (timeout_s, grace_s)
        if cfg.charger.enabled:
            msg = shipped("charger_j1939").get_message_by_frame_id(CHARGER_STATUS_ID | 1 << 31)
            self._add(CHARGER_STATUS_ID, True, msg, _filler(charger.status_points), "charger")
            self.timeouts["charger"] = (cfg.charger.timeout_s, 0.0)
        if cfg.inverter.enabled:
            self.routes[INVERTER_KEEPALIVE_ID, False] = Route(None, peer="inverter")
            self.timeouts["inverter"] = (
                cfg.inverter.keepalive_timeout_s,
                cfg.inverter.startup_grace_s,
            )
        if cfg.canopen.enabled:
            db = shipped("bms_main_canopen")
            node = cfg.canopen.node_id
            if mode == "bridge":
                for base, name, make in (
                    (TPDO1_BASE, "TPDO1", canopen.tpdo1_points),
                    (TPDO2_BASE, "TPDO2", canopen.tpdo2_points),
                ):
                    msg = db.get_message_by_name(name)
                    self._add(base + node, False, msg, _filler(make), "bms_main")
                self.timeouts["bms_main"] = (cfg.canopen.timeout_s, 0.0)
            else:
                self.routes[CANOPEN_SYNC_ID, False] = Route(None, sync=True)
        if battery_frames:
            for msg in shipped("inverter").messages:
                if msg.senders == ["BMS"]:
                    self._add(msg.frame_id, False, msg, _battery_filler(msg), None)
        for m in cfg.messages:
            user_msg = self.dbcs.message(m.message)
            if user_msg is None:  # validated by the config model; a DBC changed under us
                continue
            peer = m.peer_name if m.timeout_s is not None else None
            if m.timeout_s is not None:
                self.timeouts[m.peer_name] = (m.timeout_s, 0.0)
            self._add(
                user_msg.frame_id,
                user_msg.is_extended_frame,
                user_msg,
                _mapper(dict(m.signals)),
                peer,
            )

    def _add(
        self, frame_id: int, extended: bool, msg: Message, fill: Fill, peer: str | None
    ) -> None:
        self.routes[frame_id, extended] = Route(
            msg, fill, peer, length=msg.length, variant=multiplexer_variant(msg)
        )

    def decode(self, arbitration_id: int, data: bytes, is_extended_id: bool) -> Decoded | None:
        """Decode one frame (see the class docstring for the outcomes)."""
        route = self.routes.get((arbitration_id, is_extended_id))
        if route is None:
            return None
        out = Decoded(peer=route.peer, sync=route.sync)
        route.decode_into(data, out.points)
        return out
