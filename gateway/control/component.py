"""The engine as a gateway component: an event-driven loop around `Engine.step`.

A decision (`cycle`: drain the state store, step the engine, drive the relays, outputs and
indicators, renew the relay lease, publish the notices) runs when an input the engine
depends on arrives (a board scan or silence, a current/ADC reading, the discrete inputs, a
relevant CAN/Modbus point, an operator command) and at the exact instant a pending set or
clear delay, Ton/Toff, staleness timeout or limit ramp step falls due
(`Engine.next_decision_s`: one timer on the gateway clock, re-armed to the earliest
deadline). A slow heartbeat every `engine.cycle_s` only renews the lease, blinks the
indicators and looks at the drivers' fault reports. Whatever ends the loop (cancel,
shutdown, an exception), every relay is driven open on the way out. Which inputs wake a
decision: `wake`; the component's metrics: `engine_metrics`.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.control.commands import CommandRequested, apply_command
from gateway.control.engine import Engine, StepResult
from gateway.control.engine_metrics import EngineMetrics
from gateway.control.latches import PERSISTENCE_FAULT
from gateway.control.names import ERROR_NAMES
from gateway.control.soc import SOC_FILE, load_soc
from gateway.control.wake import WakeFilter
from gateway.core.bus import Overflow
from gateway.core.context import GatewayContext
from gateway.core.events import (
    BoardCameOnline,
    BoardScanned,
    BoardWentOffline,
    ErrorRaised,
    Event,
    InputsRead,
    Notice,
    PackMeasured,
    PointsRead,
    RelaySwitched,
)
from gateway.core.supervise import cancel_and_wait

log = logging.getLogger(__name__)

RELAY_DRIVER_FAULT = "relay_driver_fault"


class EngineComponent:
    """Runs the control engine on the gateway's clock."""

    name = "engine"

    def __init__(self, ctx: GatewayContext, *, initial_soc: float | None = None) -> None:
        self.ctx = ctx
        cfg = ctx.config
        state_dir = cfg.gateway.state_dir
        self.engine = Engine(
            cfg,
            ctx.store.state,
            started_s=ctx.clock.now(),
            wall=ctx.clock.wall,
            initial_soc=initial_soc if initial_soc is not None else load_soc(state_dir),
        )
        self.cycle_s = cfg.engine.cycle_s
        self.lease_s = cfg.engine.relay_lease_s
        self._analog = ctx.bus.subscribe(
            "engine-analog", PackMeasured, overflow=Overflow.KEEP_LATEST, maxsize=4
        )
        # Operator commands (MQTT command topics): applied at the start of the next cycle.
        self._commands = ctx.bus.subscribe(
            "engine-commands", CommandRequested, overflow=Overflow.NEVER_DROP, maxsize=64
        )
        # Inputs that wake a decision (the state store applies them; this only says "now").
        self._wake = ctx.bus.subscribe(
            "engine-wake",
            BoardScanned,
            BoardWentOffline,
            BoardCameOnline,
            PackMeasured,
            InputsRead,
            PointsRead,
            CommandRequested,
            overflow=Overflow.KEEP_LATEST,
            maxsize=1024,
        )
        e = cfg.engine
        self._wake_filter = WakeFilter(
            min(e.cell_timeout_s, e.current_timeout_s, e.inputs_timeout_s)
        )
        self._last_decision_s: float | None = None
        self._faults_decided: dict[str, str] = {}
        self._soc_saved_s: float | None = None
        self.metrics = EngineMetrics(ctx.registry, cfg.relays.functions())
        ctx.health.known_errors(ERROR_NAMES)

    def cycle(self, now_s: float) -> StepResult:
        """One decision: drain, step, drive, publish."""
        ctx = self.ctx
        ctx.store.drain()
        while (ev := self._analog.get_nowait()) is not None:
            if "vref_v" in ev.extra:
                self.engine.vref_v = ev.extra["vref_v"]
        controller = self.engine.controller
        if controller:
            try:
                if ctx.drivers.relays.check_lease(now_s):
                    self.metrics.lease_lapses.inc()
                    log.error("relay lease had lapsed at %.3f s: relays were opened", now_s)
                # The driver may have opened relays on its own (lease watchdog, fault):
                # the engine's idea of them follows the driver, so a reclose is a new event.
                for n, closed in list(self.engine.relay_commands.items()):
                    if closed and not ctx.drivers.relays.relay_closed(n):
                        self.engine.relay_opened_by_driver(n, now_s)
            except Exception:
                self.metrics.driver_failures.labels(driver="relays").inc()
                log.exception("relay driver check_lease failed")
            self._report_driver_fault()
        applied = self._apply_commands(now_s)
        self._last_decision_s = now_s
        self._faults_decided = dict(self.engine.faults)
        result = self.engine.step(now_s)
        self._drive(result, now_s)
        if controller:
            self._publish_confirmed()
        for error, seconds in result.reactions:
            ctx.health.protection_reaction.labels(error=error).observe(seconds)
        for notice in result.notices:
            if isinstance(notice, ErrorRaised):
                self.metrics.errors_raised.labels(error=notice.error).inc()
            elif isinstance(notice, RelaySwitched):
                self.metrics.relay_switches.labels(relay=str(notice.relay)).inc()
            ctx.bus.publish(notice)
        for notice in applied:
            ctx.bus.publish(notice)
        self.metrics.cycles.inc()
        self.metrics.running.set(1)
        self._persist_soc(now_s)
        return result

    def _report_driver_fault(self) -> None:
        """Hand the relay driver's own fault (link, read-back) to the engine's protection."""
        try:
            reason = getattr(self.ctx.drivers.relays, "fault", None)
        except Exception as err:  # a driver bug is a driver fault too
            reason = f"relay driver: {err}"
        if reason:
            self.engine.faults[RELAY_DRIVER_FAULT] = str(reason)
        else:
            self.engine.faults.pop(RELAY_DRIVER_FAULT, None)

    def _publish_confirmed(self) -> None:
        """The published relay state is what the hardware last confirmed (read-back)."""
        confirmed = getattr(self.ctx.drivers.relays, "confirmed", None)
        if confirmed is None:
            return
        for n, sw in self.ctx.store.state.control.relays.items():
            try:
                c = confirmed(n)
            except Exception:
                continue
            if c is not None:
                sw.on = bool(c)

    def _apply_commands(self, now_s: float) -> list[Notice]:
        """Apply the commands received since the last cycle (before this cycle's step)."""
        applied: list[Notice] = []
        while (cmd := self._commands.get_nowait()) is not None:
            try:
                outcome = apply_command(self.engine, cmd, now_s)
            except Exception:
                log.exception("command %s from %s failed", cmd.command, cmd.source)
                continue
            log.warning(
                "command %s from %s (request %d): %s",
                cmd.command,
                cmd.source,
                cmd.request,
                outcome.detail,
            )
            applied.append(outcome)
        return applied

    def _drive(self, result: StepResult, now_s: float) -> None:
        d = self.ctx.drivers
        if result.relays is not None:
            try:
                for n, closed in result.relays.items():
                    d.relays.set_relay(n, closed)
                d.relays.renew_lease(now_s + self.lease_s)
            except Exception:
                self.metrics.driver_failures.labels(driver="relays").inc()
                log.exception("relay driver failed: opening every relay")
                self._open_all()
        try:
            for n, on in result.outputs.items():
                d.outputs.set_output(n, on)
        except Exception:
            self.metrics.driver_failures.labels(driver="outputs").inc()
            log.exception("output driver failed")
        try:
            for name, on in result.indicators.items():
                d.indicators.set_indicator(name, on)
        except Exception:
            self.metrics.driver_failures.labels(driver="indicators").inc()
            log.exception("indicator driver failed")

    def _persist_soc(self, now_s: float, force: bool = False) -> None:
        soc = self.engine.soc.soc
        if soc is None:
            return
        interval = self.ctx.config.soc.persist_interval_s
        if force or self._soc_saved_s is None or now_s - self._soc_saved_s >= interval:
            self._soc_saved_s = now_s
            self.engine.persisted.writer.submit(
                SOC_FILE,
                {"soc": round(soc, 6), "saved": self.ctx.clock.wall(now_s).isoformat()},
                critical=False,
            )

    def _open_all(self) -> None:
        try:
            self.ctx.drivers.relays.open_all()
        except Exception:
            log.exception("relay driver open_all failed")

    def shutdown(self) -> None:
        """Open every relay and record that the engine stopped (idempotent)."""
        if self.engine.controller:
            self._open_all()
            self.engine.relay_commands = dict.fromkeys(self.engine.relay_commands, False)
            for sw in self.ctx.store.state.control.relays.values():
                sw.on, sw.reasons = False, ("engine_stopped",)
        ctl = self.ctx.store.state.control
        ctl.running = False
        self.metrics.running.set(0)
        try:
            self._persist_soc(self.ctx.clock.now(), force=True)
        except Exception:
            log.exception("saving the SOC failed")

    async def run(self) -> None:
        """Decide on inputs and deadlines until cancelled; relays open on the way out."""
        clock = self.ctx.clock
        log.info("control engine running (%s mode)", self.ctx.config.gateway.mode)
        try:
            async with asyncio.TaskGroup() as tg:
                # State files are written off the control path (control/state_writer.py).
                tg.create_task(self.engine.persisted.writer.run(clock), name="state-writer")
                tg.create_task(self._decide(), name="engine-cycle")
        except ExceptionGroup as group:  # the engine's own exception, not a group of one
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            self.shutdown()
            log.info("control engine stopped: every relay opened")

    # --- event-driven decisions -----------------------------------------------------

    def next_decision_s(self) -> float:
        """Clock time of the next decision due on its own (`math.inf`: none pending)."""
        if self._last_decision_s is None:
            return self.ctx.clock.now()
        return self.engine.next_decision_s(self._last_decision_s)

    def _relevant(self, event: Event) -> bool:
        """True when `event` changes something the engine decides on (`wake.WakeFilter`)."""
        return self._wake_filter.relevant(event, self._last_decision_s)

    def input_pending(self) -> bool:
        """Drain the wake queue; True when an input the engine depends on arrived."""
        woke = False
        while (event := self._wake.get_nowait()) is not None:
            woke = self._relevant(event) or woke
        return woke

    def heartbeat(self, now_s: float) -> bool:
        """The periodic part, no decision: renew the lease, blink the indicators, publish the
        relay state the hardware confirmed and collect the drivers' fault reports.

        Returns True when a decision is needed now: the lease had lapsed, or a driver or
        state-writer fault report changed since the last decision.
        """
        d = self.ctx.drivers
        need = False
        if self.engine.controller:
            try:
                need = d.relays.check_lease(now_s)
                d.relays.renew_lease(now_s + self.lease_s)
            except Exception:
                self.metrics.driver_failures.labels(driver="relays").inc()
                log.exception("relay driver lease renewal failed")
                need = True
            self._report_driver_fault()
            self._publish_confirmed()
        try:
            for name, on in self.engine.indicator_states(now_s).items():
                d.indicators.set_indicator(name, on)
        except Exception:
            self.metrics.driver_failures.labels(driver="indicators").inc()
            log.exception("indicator driver failed")
        # a latch/go-safe write failed or recovered, or a release is now on disk
        written = self.engine.persisted.needs_decision(self.engine.faults.get(PERSISTENCE_FAULT))
        return need or written or self.engine.faults != self._faults_decided

    async def _wait_input(self, due_s: float) -> bool:
        """Wait until an input arrives (True) or the clock reaches `due_s` (False)."""
        if self.input_pending():
            return True
        clock = self.ctx.clock
        while clock.now() < due_s:
            getter = asyncio.ensure_future(self._wake.get())
            sleeper = asyncio.ensure_future(clock.sleep_until(due_s))
            try:
                await asyncio.wait({getter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (getter, sleeper):
                    if not task.done():
                        await cancel_and_wait(task)
            got = getter.done() and not getter.cancelled() and getter.exception() is None
            if got and (self._relevant(getter.result()) | self.input_pending()):
                return True
        return self.input_pending()

    async def _decide(self) -> None:
        clock = self.ctx.clock
        self.cycle(clock.now())
        beat_s = clock.now() + self.cycle_s
        while True:
            woke = await self._wait_input(min(self.next_decision_s(), beat_s))
            now = clock.now()
            need = woke or now >= self.next_decision_s()
            if now >= beat_s:
                beat_s = max(beat_s + self.cycle_s, now)
                need = self.heartbeat(now) or need
            if need:
                self.cycle(now)
