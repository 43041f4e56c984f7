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
    "gateway.commands.config_docs",
    "gateway.commands.simulate",
    "gateway.commands.can",
    "gateway.commands.calibrate",
    "gateway.commands.scenario",
    "gateway.commands.ack",
    "gateway.commands.history",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser from the command modules."""
    parser = argparse.ArgumentParser(prog="bms-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"bms-gateway {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        importlib.import_module(module).add_parser(sub)
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
