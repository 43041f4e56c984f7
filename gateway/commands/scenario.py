"""`bms-gateway scenario FILE...`: run scenario files on virtual time (docs/scenarios.md).

Exit codes: 0 every expectation held, 1 one failed, 2 a file is invalid (the message
names the dotted path of the bad key).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gateway.scenario.runner import report, run_file


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "scenario", help="run scenario files against the real engine on virtual time"
    )
    p.add_argument("files", nargs="+", type=Path, help="scenario YAML files")
    p.add_argument("--log", action="store_true", help="show the engine's log lines")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    gateway_log = logging.getLogger("gateway")
    saved_level = gateway_log.level
    if not args.log and not args.verbose:
        gateway_log.setLevel(logging.ERROR)
    try:
        results = [run_file(f) for f in args.files]
    finally:
        gateway_log.setLevel(saved_level)  # the CLI may run inside a longer-lived process
    return report(results, sys.stdout)
