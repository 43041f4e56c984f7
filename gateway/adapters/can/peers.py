"""Receive timeouts of CAN peers: who is connected, who went silent (sans-IO, clock times)."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.adapters.can.events import CanPeerFound, CanPeerLost
from gateway.core.events import Notice


@dataclass
class Peer:
    """One peer: silent longer than `timeout_s` = lost; never lost before `grace_s`."""

    name: str
    timeout_s: float
    grace_s: float = 0.0
    last_s: float | None = None
    connected: bool | None = None  # None = not decided yet (start-up)

    @property
    def point(self) -> str:
        """The point carrying this peer's presence."""
        return f"{self.name}.connected"


class PeerTracker:
    """Tracks every peer's last frame; returns point changes and notices on transitions."""

    def __init__(self, started_s: float) -> None:
        self.started_s = started_s
        self.peers: dict[str, Peer] = {}

    def add(self, name: str, timeout_s: float, grace_s: float = 0.0) -> None:
        """Track a peer."""
        self.peers[name] = Peer(name, timeout_s, grace_s)

    def seen(
        self, name: str, now_s: float
    ) -> tuple[dict[str, float | int | bool | str], list[Notice]]:
        """Record a frame from `name`; report the transition to connected."""
        peer = self.peers.get(name)
        if peer is None:
            return {}, []
        peer.last_s = now_s
        if peer.connected:
            return {}, []
        peer.connected = True
        return {peer.point: True}, [CanPeerFound(at_s=now_s, peer=name)]

    def check(self, now_s: float) -> tuple[dict[str, float | int | bool | str], list[Notice]]:
        """Declare peers silent past their timeout (after the start-up grace) lost."""
        points: dict[str, float | int | bool | str] = {}
        notices: list[Notice] = []
        for peer in self.peers.values():
            if peer.connected is False:
                continue
            if peer.last_s is None:
                if now_s - self.started_s < max(peer.grace_s, peer.timeout_s):
                    continue
                silent: float | None = None
            else:
                silent = now_s - peer.last_s
                if silent <= peer.timeout_s or now_s - self.started_s < peer.grace_s:
                    continue
            peer.connected = False
            points[peer.point] = False
            notices.append(CanPeerLost(at_s=now_s, peer=peer.name, silent_s=silent))
        return points, notices
