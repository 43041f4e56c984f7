"""`bms-gateway simulate`: serve a simulated pack as BMS Logic boards on a serial port.

`--port /dev/ttyUSB0` serves a real port (bench-testing a gateway on other hardware);
`--pty` creates a pty pair and prints the gateway-side path on stdout (one line), then runs
until Ctrl-C/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from contextlib import AbstractAsyncContextManager
from typing import Any

from gateway.config import GatewayConfig, load_config
from gateway.core.clock import RealClock
from gateway.core.errors import ConfigError
from gateway.sim.embedded import build_pack, step_forever
from gateway.sim.logic_server import LogicRtuServer, serve_on_port, serve_on_pty
from gateway.sim.pack import PackModel

log = logging.getLogger("gateway.simulate")


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="serve a simulated battery as BMS Logic boards (Modbus RTU slaves)"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", help="serial device to serve the Logic boards on")
    where.add_argument(
        "--pty", action="store_true", help="create a pty pair and print the gateway-side path"
    )
    p.add_argument("--boards", type=int, default=2, help="Logic boards, addresses 1..N")
    p.add_argument("--cells", type=int, default=16, help="cells per board (1..18)")
    p.add_argument("--sensors", type=int, help="temperature sensors per board (default: cells)")
    p.add_argument("--chemistry", choices=["lfp", "nmc"], default="lfp")
    p.add_argument(
        "--soc", default="60", help="initial state of charge in %% (60, 60%%) or as 0..1 (0.6)"
    )
    p.add_argument("--current", type=float, default=0.0, help="pack current, A (+ = charging)")
    p.add_argument(
        "--amplitude", type=float, default=20.0, help="amplitude of a slow current sine, A"
    )
    p.add_argument("--baudrate", type=int, default=115200)
    p.add_argument("--parity", choices=["N", "E", "O"], default="N")
    p.add_argument("--stopbits", type=int, choices=[1, 2], default=1)
    p.add_argument(
        "--pace", action="store_true", help="delay each reply by its wire time at --baudrate"
    )
    # --- H-modbus: `--main2x-tcp HOST:PORT` / `--main2x-rtu PORT` go here (see
    # `_extra_servers` below, which serves the same pack as a BMS Main 2.x).
    p.add_argument(
        "--main2x-tcp",
        metavar="HOST:PORT",
        help="also serve the pack as a BMS Main 2.x over Modbus TCP (unit 32)",
    )
    p.add_argument(
        "--main2x-rtu",
        metavar="PORT",
        help="also serve the pack as a BMS Main 2.x over Modbus RTU on this serial port",
    )
    p.add_argument("--main2x-baudrate", type=int, default=9600, help="RTU bit/s (9600 8N1)")
    p.set_defaults(func=_simulate)


def simulator_config(args: argparse.Namespace) -> GatewayConfig:
    """Validate the options through the same models as the gateway's config."""
    return load_config(
        overrides={
            "logic": {
                "port": args.port,
                "boards": args.boards,
                "cells_per_board": args.cells,
                "sensors_per_board": args.sensors,
                "baudrate": args.baudrate,
                "parity": args.parity,
                "stopbits": args.stopbits,
            },
            "simulator": {
                "chemistry": args.chemistry,
                "soc": args.soc,
                "current_a": args.current,
                "current_amplitude_a": args.amplitude,
            },
        },
        env=False,
    )


def _extra_servers(
    args: argparse.Namespace, pack: PackModel
) -> list[AbstractAsyncContextManager[str]]:
    """Other devices served from the same pack (H-modbus adds the BMS Main 2.x here)."""
    from gateway.sim.main2x import main2x_endpoint, parse_host_port  # noqa: PLC0415

    tcp_arg, rtu = getattr(args, "main2x_tcp", None), getattr(args, "main2x_rtu", None)
    if tcp_arg is None and rtu is None:
        return []
    tcp = parse_host_port(tcp_arg) if tcp_arg is not None else None
    return [main2x_endpoint(pack, tcp=tcp, rtu=rtu, baudrate=args.main2x_baudrate)]


async def serve(args: argparse.Namespace, config: GatewayConfig) -> None:
    """Serve until cancelled."""
    pack = build_pack(config)
    logic = config.logic
    server = LogicRtuServer(pack, baudrate=logic.baudrate, pace=args.pace)
    async with contextlib.AsyncExitStack() as stack:
        path = "-"
        if args.pty:
            path = await stack.enter_async_context(serve_on_pty(server))
            print(path, flush=True)
        elif args.port:
            path = await stack.enter_async_context(
                serve_on_port(server, args.port, parity=logic.parity, stopbits=logic.stopbits)
            )
        for extra in _extra_servers(args, pack):
            log.info("also serving on %s", await stack.enter_async_context(extra))
        log.info(
            "serving %d Logic boards × %d cells (%s) on %s at %d Bd%s",
            pack.board_count,
            logic.cells_per_board,
            config.simulator.chemistry,
            path,
            logic.baudrate,
            ", paced" if args.pace else "",
        )
        await step_forever(pack, RealClock())


def _simulate(args: argparse.Namespace) -> int:
    if not args.port and not args.pty and not (args.main2x_tcp or args.main2x_rtu):
        print("simulate: give --port DEVICE, --pty, --main2x-tcp or --main2x-rtu", file=sys.stderr)
        return 2
    if args.main2x_tcp:
        from gateway.sim.main2x import parse_host_port  # noqa: PLC0415

        try:
            parse_host_port(args.main2x_tcp)
        except ValueError as err:
            print(f"simulate: --main2x-tcp: {err}", file=sys.stderr)
            return 2
    try:
        config = simulator_config(args)
    except ConfigError as err:
        print(f"invalid simulator options:\n{err}", file=sys.stderr)
        return 2

    async def _main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await serve(args, config)

    try:
        asyncio.run(_main())
    except OSError as err:
        print(f"simulate: {err}", file=sys.stderr)
        return 1
    return 0
