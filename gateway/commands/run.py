"""`bms-gateway run [CONFIG]`: run the gateway (no config: embedded simulator)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gateway.app import main_run
from gateway.config import load_config
from gateway.core.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("run", help="run the gateway")
    p.add_argument("config", nargs="?", type=Path, help="YAML config (default: embedded simulator)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"invalid configuration:\n{err}", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(
        logging.DEBUG if args.verbose else getattr(logging, config.gateway.log_level)
    )
    return main_run(config)
