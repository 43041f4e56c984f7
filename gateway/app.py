"""Wire one gateway together and run it: every task owned by one TaskGroup."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from gateway.config import GatewayConfig
from gateway.control import build_engine, energy
from gateway.core import registry, runlock, sdnotify
from gateway.core.bus import EventBus
from gateway.core.clock import Clock, RealClock
from gateway.core.context import Component, ComponentFactory, GatewayContext
from gateway.core.errors import FatalError
from gateway.core.state import GatewayState, StateStore
from gateway.core.supervise import ComponentRestarted, restarting, run_tasks
from gateway.hal.drivers import build_drivers
from gateway.publishers.web.summary import blocking_reason
from gateway.sim.pack import PackModel

log = logging.getLogger("gateway")


def build_context(
    config: GatewayConfig, clock: Clock | None = None, simulator: PackModel | None = None
) -> GatewayContext:
    """Create the shared objects of one gateway."""
    clock = clock or RealClock()
    bus = EventBus()
    store = StateStore(bus, clock, config.logic.addresses)
    return GatewayContext(
        config=config,
        clock=clock,
        bus=bus,
        store=store,
        simulator=simulator,
        drivers=build_drivers(config, simulator),
    )


def build_components(ctx: GatewayContext) -> list[Component]:
    """Instantiate every registered adapter, the engine, and every publisher the config enables."""
    components: list[Component] = []
    for name, entry in sorted(registry.discover("bms_gateway.adapters").items()):
        factory: ComponentFactory = entry.load()
        if (c := factory(ctx)) is not None:
            log.debug("adapter %s enabled", name)
            components.append(c)
    if (engine := build_engine(ctx)) is not None:
        components.append(engine)
    components.append(energy.create(ctx))
    for name, entry in sorted(registry.discover("bms_gateway.publishers").items()):
        factory = entry.load()
        if (c := factory(ctx)) is not None:
            log.debug("publisher %s enabled", name)
            components.append(c)
    return components


def summary_line(config: GatewayConfig, s: GatewayState, published: int) -> str:
    """The periodic summary: what a user watching the log needs, in words."""
    vmin, vmax, pack = s.cell_voltage_min_v, s.cell_voltage_max_v, s.pack_voltage_v
    ctl = s.control
    if config.gateway.mode == "bridge":
        # what the bridged BMS Main reports (this gateway does not scan the cells itself)
        def point(*names: str) -> float | None:
            for name in names:
                v = s.points.get(name)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    return float(v)
            return None

        boards = point("main2x.logic_boards")
        bridged_pack = point("bms_main.pack_voltage_v")
        current = s.current_a if s.current_a is not None else point("main2x.current_a")
        parts = [
            "bridge: BMS Main reports "
            + ("no data yet" if boards is None and bridged_pack is None else "")
            + (f"{boards:.0f} Logic boards" if boards is not None else ""),
            f"pack {'-' if bridged_pack is None else f'{bridged_pack:.1f}'} V",
            f"current {'-' if current is None else f'{current:.1f}'} A",
        ]
    else:
        parts = [
            f"boards online {s.boards_online}/{len(s.boards)}",
            f"pack {'-' if pack is None else f'{pack:.2f}'} V",
            f"cell min {'-' if vmin is None else f'{vmin:.3f}'} V max "
            f"{'-' if vmax is None else f'{vmax:.3f}'} V",
        ]
    if ctl.soc is not None:
        parts.append(f"SOC {ctl.soc * 100:.0f} %")
    if config.gateway.mode != "bridge":  # the bridge parts name the current already
        parts.append(f"current {'-' if s.current_a is None else f'{s.current_a:.1f}'} A")
    if "ccl_a" in ctl.limits and "dcl_a" in ctl.limits:
        parts.append(f"CCL {ctl.limits['ccl_a']:.0f} A DCL {ctl.limits['dcl_a']:.0f} A")
    if config.gateway.mode == "controller":
        closed = [str(n) for n, sw in sorted(ctl.relays.items()) if sw.on]
        parts.append(f"relays closed {','.join(closed) or 'none'}")
        parts.append(f"blocking: {blocking_reason(s)}")
    parts.append(f"errors {','.join(ctl.errors_active) or 'none'}")
    parts.append(f"messages published {published}")
    return ", ".join(parts)


async def summary_loop(ctx: GatewayContext) -> None:
    """Log one line every `gateway.summary_interval_s`."""
    interval = ctx.config.gateway.summary_interval_s
    while True:
        await ctx.clock.sleep(interval)
        s = ctx.store.state
        published = sum(
            sample.value
            for metric in ctx.health.mqtt_publishes.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
        log.info("%s", summary_line(ctx.config, s, int(published)))


@contextlib.asynccontextmanager
async def _logic_port(
    config: GatewayConfig,
) -> AsyncIterator[tuple[GatewayConfig, PackModel | None]]:
    """Yield the config to run with; start the embedded simulator when no port is set.

    `gateway.sim.embedded.embedded_simulator(config)` is an async context manager yielding
    `(gateway_side_port_path, pack_model)` while it serves the Logic boards on a pty.
    """
    if not config.embedded_simulator:
        yield config, None
        return
    from gateway.sim.embedded import embedded_simulator  # noqa: PLC0415

    async with embedded_simulator(config) as (port, pack):
        log.info(
            "embedded simulator serving %d Logic boards on %s", len(config.logic.addresses), port
        )
        logic = config.logic.model_copy(update={"port": port})
        yield config.model_copy(update={"logic": logic}), pack


# The parts that keep the relays safe: their crash ends the gateway (relays open, exit 1).
CRITICAL_COMPONENTS = frozenset({"engine", "hal"})


def gateway_tasks(
    ctx: GatewayContext, components: list[Component]
) -> list[tuple[str, Coroutine[Any, Any, Any]]]:
    """The named tasks of one gateway: adapters and publishers restart after a crash."""
    restarts = ctx.health.component_restarts

    def report(name: str, err: BaseException, delay_s: float, count: int) -> None:
        restarts.labels(component=name).inc()
        log.error(
            "%s crashed (%s: %s); restarting in %.0f s (restart %d); the control loop "
            "keeps running",
            name,
            type(err).__name__,
            err,
            delay_s,
            count,
            exc_info=err,
        )
        ctx.bus.publish(
            ComponentRestarted(
                at_s=ctx.clock.now(),
                component=name,
                error=f"{type(err).__name__}: {err}",
                restart_in_s=delay_s,
                restarts=count,
            )
        )

    def task(c: Component) -> Coroutine[Any, Any, Any]:
        if c.name in CRITICAL_COMPONENTS:
            return c.run()
        return restarting(c.name, c.run, report)

    return [
        ("state", ctx.store.run()),
        ("summary", restarting("summary", lambda: summary_loop(ctx), report)),
        *((c.name, task(c)) for c in components),
        ("sdnotify", sdnotify.supervise(ctx.registry, ctx.clock)),
    ]


async def run_gateway(config: GatewayConfig, clock: Clock | None = None) -> None:
    """Run the gateway until cancelled (or until the engine or driver service crashes)."""
    async with _logic_port(config) as (cfg, pack):
        ctx = build_context(cfg, clock, pack)
        components = build_components(ctx)
        await run_tasks(gateway_tasks(ctx, components))


SHUTDOWN_DEADLINE_S = 1.8


def _force_exit() -> None:
    """Last resort when a task ignores cancellation: leave now (the OS releases the lines)."""
    pending = [t.get_name() for t in asyncio.all_tasks() if not t.done()]
    log.error(
        "shutdown took longer than %.1f s (still running: %s); exiting",
        SHUTDOWN_DEADLINE_S,
        pending,
    )
    logging.shutdown()
    os._exit(1)


def main_run(config: GatewayConfig) -> int:
    """Run with SIGINT/SIGTERM handling; return the exit code."""

    async def _main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def _stop() -> None:
            task.cancel()
            loop.call_later(SHUTDOWN_DEADLINE_S, _force_exit)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _stop)
        with runlock.hold(config.gateway.state_dir) as locked:
            if not locked:
                log.warning(
                    "another gateway may be running on %s (its lock is held)",
                    config.gateway.state_dir,
                )
            with contextlib.suppress(asyncio.CancelledError):
                await run_gateway(config)
        log.info("stopped")

    try:
        asyncio.run(_main())
    except BaseException as err:
        fatal = _fatal_errors(err)
        if fatal:
            for e in fatal:
                log.critical("%s", e)
            return EXIT_FATAL
        if not isinstance(err, Exception):
            raise
        # the engine or the driver service crashed (every relay was opened on the way out)
        log.critical(
            "the gateway stopped on a crash of a safety component (%s); every relay was "
            "opened. Exiting with status 1 so systemd or the container restarts it.",
            err,
            exc_info=err,
        )
        logging.shutdown()
        return 1
    return 0


EXIT_FATAL = 3  # a FatalError stopped the gateway (e.g. a duplicate gateway.id)


def _fatal_errors(err: BaseException) -> list[FatalError]:
    """The FatalErrors in `err` (an exception or a nested exception group)."""
    if isinstance(err, FatalError):
        return [err]
    if isinstance(err, BaseExceptionGroup):
        return [f for e in err.exceptions for f in _fatal_errors(e)]
    return []
