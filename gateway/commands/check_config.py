"""`bms-gateway check-config FILE`: validate a config file, list each bad key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.hal.drivers import config_warnings


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("check-config", help="validate a config file")
    p.add_argument("config", type=Path)
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        return 1
    for warning in config_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.config}: valid")
    return 0
