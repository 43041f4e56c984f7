"""`bms-gateway run [CONFIG]`: run the gateway (no config: embedded simulator)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gateway.app import main_run
from gateway.commands.preflight import preflight
from gateway.config import load_config
from gateway.core.errors import ConfigError, GatewayError

log = logging.getLogger("gateway")


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="run the gateway (no CONFIG: on its embedded simulated battery)",
        description="Run the gateway until Ctrl-C or SIGTERM. Without CONFIG it runs on an "
        "embedded simulated battery. Every key can be overridden from the environment "
        "(BMSGW_MQTT__PORT=1884).",
    )
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
    findings = preflight(config)
    errors = [f for f in findings if f.level == "error" and not f.retried]
    for f in findings:
        if f not in errors:
            log.warning("%s: %s", f.key, f.message)
    if errors:
        for f in errors:
            print(f"cannot start: {f.key}: {f.message}", file=sys.stderr)
        return 1
    try:
        return main_run(config)
    except GatewayError as err:  # a driver that cannot open its hardware, ...
        print(f"cannot start: {err}", file=sys.stderr)
        return 1
