"""`bms-gateway ack ERROR... [--config FILE]`: acknowledge latched errors.

Edits `<gateway.state_dir>/latched_errors.json` while the gateway is stopped; the next
start no longer restores the acknowledged latches. `--list` shows what is latched. While a
gateway runs on the same state directory (it holds `gateway.lock`) acknowledging is refused:
the running gateway owns the file; use the MQTT command `<prefix>/<id>/command/ack`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.config import GatewayConfig, load_config
from gateway.control.latches import acknowledge, latch_path, load_latched
from gateway.control.names import ERROR_NAMES
from gateway.core import runlock
from gateway.core.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "ack", help="acknowledge latched errors (while the gateway is stopped)"
    )
    p.add_argument("errors", nargs="*", help="error names, or `all`")
    p.add_argument("--config", type=Path, help="gateway config (for gateway.state_dir)")
    p.add_argument("--state-dir", type=Path, help="state directory (overrides the config)")
    p.add_argument("--list", action="store_true", help="list the latched errors")
    p.set_defaults(func=_ack)


def _ack(args: argparse.Namespace) -> int:
    config: GatewayConfig | None = None
    if args.state_dir is not None:
        state_dir: Path = args.state_dir
    else:
        try:
            config = load_config(args.config)
        except ConfigError as err:
            print(f"invalid configuration:\n{err}", file=sys.stderr)
            return 2
        state_dir = config.gateway.state_dir
    latched = load_latched(state_dir)
    if args.list or not args.errors:
        if not latched:
            print(f"no latched errors in {latch_path(state_dir)}")
        for name, info in sorted(latched.items()):
            print(f"{name}: since {info.get('since')} {info.get('detail', '')}".rstrip())
        return 0
    pid = runlock.holder(state_dir)
    if pid is not None:
        topic = (
            f"{config.mqtt.topic_prefix}/{config.gateway.id}/command/ack"
            if config
            else ("<prefix>/<gateway id>/command/ack")
        )
        print(
            f"the gateway is running on {state_dir}"
            + (f" (pid {pid})" if pid else "")
            + ": it owns the latches, so this edit would be lost. Acknowledge through the "
            f"running gateway instead: mosquitto_pub -q 1 -t {topic} "
            f"""-m '{{"error": "{args.errors[0]}", "token": "<commands.token>"}}' """
            "(needs `commands.allow_ack: true` and the token; docs/mqtt.md), or stop the "
            "gateway first.",
            file=sys.stderr,
        )
        return 1
    names = list(latched) if args.errors == ["all"] else args.errors
    unknown = [n for n in names if n not in ERROR_NAMES]
    if unknown:
        print(f"unknown error name(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    try:
        removed = acknowledge(state_dir, names)
    except OSError as err:
        print(
            f"cannot write {latch_path(state_dir)}: {err.strerror or err}; nothing was "
            "acknowledged (check gateway.state_dir: free space, permissions)",
            file=sys.stderr,
        )
        return 1
    for n in names:
        print(f"{n}: {'acknowledged' if n in removed else 'was not latched'}")
    return 0
