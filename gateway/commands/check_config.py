"""`bms-gateway check-config FILE`: the checks `run` makes, without running.

Validation (each bad key as `file:line: dotted.key: message`, with "did you mean" for typos),
then the machine checks of `gateway.commands.preflight` (devices that do not exist or may not
be opened, configurations that can never close a contactor), then a short summary.
Exit 0: valid, no errors (warnings allowed); 1: invalid or an error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.commands.preflight import preflight, summary
from gateway.config import load_config
from gateway.core.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "check-config",
        help="check a config file the way `run` would (keys, devices, contactor blockers)",
        description="Validate CONFIG, check the devices it names on this machine and warn "
        "about settings that can never close a contactor; on success print a summary.",
    )
    p.add_argument("config", type=Path, help="YAML config file")
    p.set_defaults(func=_check)


def _check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"{args.config}: invalid configuration", file=sys.stderr)
        print(str(err), file=sys.stderr)
        return 1
    findings = preflight(config)
    errors = [f for f in findings if f.level == "error"]
    for f in findings:
        print(str(f), file=sys.stderr)
    if errors:
        print(f"{args.config}: {len(errors)} error(s): `run` would not start", file=sys.stderr)
        return 1
    warnings = len(findings) - len(errors)
    print(f"{args.config}: valid" + (f" ({warnings} warning(s) above)" if warnings else ""))
    for line in summary(config):
        print(f"  {line}")
    return 0
