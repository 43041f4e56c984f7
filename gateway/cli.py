"""The `bms-gateway` command. Each sub-command lives in `gateway/commands/<name>.py`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gateway import __version__

# Sub-command modules; each defines `add_parser(subparsers)` which sets `func(args) -> int`.
COMMANDS = (
    "gateway.commands.run",
    "gateway.commands.check_config",
    "gateway.commands.commission",
    "gateway.commands.config_docs",
    "gateway.commands.simulate",
    "gateway.commands.can",
    "gateway.commands.calibrate",
    "gateway.commands.scenario",
    "gateway.commands.ack",
    "gateway.commands.history",
)

DESCRIPTION = """\
bms-gateway reads a modular lithium battery (BMS Logic boards on RS-485), protects it by
driving the contactor relays, and publishes it to MQTT, Home Assistant, Prometheus, inverters
(CAN) and Modbus.

First steps:
  bms-gateway run                    run on an embedded simulated battery (no config needed)
  bms-gateway check-config CFG.yaml  check a config the way `run` would, with a summary
  bms-gateway commission CFG.yaml    step-by-step checks of a newly wired battery
  bms-gateway run CFG.yaml           run with your battery
"""

EPILOG = """\
Global options (-v, --version) work before or after the command: `bms-gateway run cfg.yaml -v`.
Every config key can be set from the environment: BMSGW_MQTT__PORT=1884.
`bms-gateway COMMAND --help` explains each command; docs/ has the full reference.
"""


def _add_global_flags(parser: argparse.ArgumentParser, top: bool) -> None:
    # On sub-commands the default is SUPPRESS, so a flag given before the command survives.
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="debug logging (overrides gateway.log_level)",
    )


def _walk(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                out.append(child)
                out.extend(_walk(child))
    return out


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser from the command modules."""
    parser = argparse.ArgumentParser(
        prog="bms-gateway",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bms-gateway {__version__}")
    _add_global_flags(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
    for child in _walk(parser):
        if not any("--verbose" in a.option_strings for a in child._actions):
            _add_global_flags(child, top=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
