"""The `can` component: one owner task for the bus, the decoders and the periodic senders."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import can

from gateway.adapters.can.canopen import tpdo_frames
from gateway.adapters.can.charger import ChargerCommand, charger_command
from gateway.adapters.can.config import CanSection
from gateway.adapters.can.dbc import Frame
from gateway.adapters.can.decoder import FrameDecoder, Points, Route
from gateway.adapters.can.events import CanBusCameUp, CanBusWentDown
from gateway.adapters.can.inverter import InverterPublisher
from gateway.adapters.can.link import SOCKETCAN_ERR_BUSOFF, BusFactory, CanLink
from gateway.adapters.can.metrics import CanMetrics
from gateway.adapters.can.peers import PeerTracker
from gateway.core.context import GatewayContext
from gateway.core.errors import FrameError
from gateway.core.events import Notice, PointsRead

log = logging.getLogger(__name__)

PEER_CHECK_S = 0.25


class CanAdapter:
    """Receives and decodes frames into points; sends inverter, charger and CANopen frames."""

    name = "can"

    def __init__(self, ctx: GatewayContext, bus_factory: BusFactory | None = None) -> None:
        cfg: CanSection = ctx.config.can
        self.ctx = ctx
        self.cfg = cfg
        self.mode = ctx.config.gateway.mode
        self.metrics = CanMetrics(ctx.registry)
        self.decoder = FrameDecoder(cfg, self.mode)
        self.link = CanLink(cfg, ctx.clock, self.metrics, bus_factory, self._link_state)
        self.peers = PeerTracker(ctx.clock.now())
        for peer, (timeout_s, grace_s) in self.decoder.timeouts.items():
            self.peers.add(peer, timeout_s, grace_s)
            self.metrics.peer_connected.labels(peer=peer).set(0)  # not heard yet
        self.inverter = InverterPublisher(cfg.inverter) if cfg.inverter.enabled else None
        self.last_tx: dict[int, Frame] = {}
        self._last_command: ChargerCommand | None = None

    async def run(self) -> None:
        """Run the bus and every enabled sender until cancelled."""
        self.peers.started_s = self.ctx.clock.now()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.link.run(self.on_frames), name="can:link")
            if self.peers.peers:
                tg.create_task(self._every(PEER_CHECK_S, self.check_peers), name="can:peers")
            if self.inverter is not None:
                tg.create_task(
                    self._every(self.cfg.inverter.period_s, self.send_inverter), name="can:inv"
                )
            if self.cfg.charger.enabled:
                tg.create_task(
                    self._every(self.cfg.charger.period_s, self.send_charger), name="can:chg"
                )
            if (
                self.cfg.canopen.enabled
                and self.mode == "controller"
                and self.cfg.canopen.mode == "period"
            ):
                tg.create_task(
                    self._every(self.cfg.canopen.period_s, self.send_tpdos), name="can:tpdo"
                )

    async def _every(self, period_s: float, action: Callable[[], None]) -> None:
        clock = self.ctx.clock
        deadline = clock.now()
        while True:
            action()
            deadline += period_s
            if deadline < clock.now():  # fell behind (suspended host): do not burst
                deadline = clock.now() + period_s
            await clock.sleep_until(deadline)

    # --- receive ---------------------------------------------------------------------

    def on_frames(self, batch: list[can.Message]) -> None:
        """Decode a batch of received frames; publish the points they carry (latest wins).

        Only the newest frame of each kind (id, and multiplexer value for a multiplexed
        message) is decoded: an older one's values would be overwritten in the same
        `PointsRead` anyway. Unknown ids and short payloads are counted frame by frame.
        """
        now = self.ctx.clock.now()
        metrics = self.metrics
        routes = self.decoder.routes
        newest: dict[object, tuple[Route, bytes | bytearray]] = {}
        metrics.rx_frames.inc(len(batch))
        unknown = short = 0
        for msg in batch:
            if msg.is_error_frame:
                metrics.error_frames.inc()
                if msg.arbitration_id & SOCKETCAN_ERR_BUSOFF:
                    metrics.bus_off.inc()
                    self.link.fail("bus-off")
                continue
            if msg.is_remote_frame:
                continue
            ident = (msg.arbitration_id, msg.is_extended_id)
            route = routes.get(ident)
            if route is None:
                unknown += 1
                continue
            data = msg.data
            if len(data) < route.length:
                short += 1
                continue
            key: object = ident if route.variant is None else (ident, route.variant(data))
            newest.pop(key, None)  # re-inserted: the order stays that of the newest frames
            newest[key] = (route, data)
        if unknown:
            metrics.rx_unknown.inc(unknown)
        if short:
            metrics.decode_errors.inc(short)
        points: Points = {}
        notices: list[Notice] = []
        sync = False
        for route, payload in newest.values():
            try:
                route.decode_into(payload, points)
            except FrameError:
                metrics.decode_errors.inc()
                continue
            sync = sync or route.sync
            if route.peer is not None:
                p, n = self.peers.seen(route.peer, now)
                points.update(p)
                notices.extend(n)
        self._emit(now, points, notices)
        if sync:
            self.send_tpdos()

    def check_peers(self) -> None:
        """Declare silent peers lost."""
        now = self.ctx.clock.now()
        points, notices = self.peers.check(now)
        self._emit(now, points, notices)

    def _emit(self, now: float, points: Points, notices: list[Notice]) -> None:
        if points:
            self.ctx.bus.publish(PointsRead(at_s=now, source="can", values=points))
        for notice in notices:
            peer = getattr(notice, "peer", "")
            connected = points.get(f"{peer}.connected")
            if isinstance(connected, bool):
                self.metrics.peer_connected.labels(peer=peer).set(int(connected))
                log.log(
                    logging.INFO if connected else logging.WARNING,
                    "CAN peer %s %s",
                    peer,
                    "heard" if connected else "lost (silent past its timeout)",
                )
            self.ctx.bus.publish(notice)

    def _link_state(self, up: bool, reason: str) -> None:
        now = self.ctx.clock.now()
        if up:
            self.ctx.bus.publish(
                CanBusCameUp(at_s=now, interface=self.cfg.interface, channel=self.cfg.channel)
            )
        else:
            self.ctx.bus.publish(
                CanBusWentDown(
                    at_s=now, interface=self.cfg.interface, channel=self.cfg.channel, reason=reason
                )
            )

    # --- send ------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        if self.link.send(frame):
            self.last_tx[frame.arbitration_id] = frame

    def send_inverter(self) -> None:
        """Send the inverter frame set once."""
        if self.inverter is None or not self.link.up:
            return
        for frame in self.inverter.frames(self.ctx.store.state):
            self._send(frame)

    def send_charger(self) -> None:
        """Send the charger command once; publish it as points when it changes."""
        command = charger_command(self.ctx.store.state, self.cfg.charger)
        if command != self._last_command:
            self._last_command = command
            self.ctx.bus.publish(
                PointsRead(at_s=self.ctx.clock.now(), source="can", values=command.points())
            )
        if self.link.up:
            self._send(command.frame())

    def send_tpdos(self) -> None:
        """Send TPDO1 and TPDO2 (controller mode)."""
        if not self.link.up or self.mode != "controller":
            return
        for frame in tpdo_frames(self.ctx.store.state, self.cfg.canopen.node_id):
            self._send(frame)


def create(ctx: GatewayContext) -> CanAdapter | None:
    """Entry point `can` (group `bms_gateway.adapters`): None unless `can.enabled`."""
    cfg: CanSection | None = getattr(ctx.config, "can", None)
    if cfg is None or not cfg.enabled:
        return None
    return CanAdapter(ctx)
