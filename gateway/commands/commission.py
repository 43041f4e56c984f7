"""`bms-gateway commission CONFIG`: check a newly wired battery step by step.

What an integrator checks by hand, one verdict per line: the config, the serial port, which
Logic boards answer (cells and sensors each), every reading plausible, the current sensor's
zero offset, the discrete inputs, the MQTT broker and its credentials, and, only with
`--relays` and a typed confirmation per relay, a click test of each relay (with its feedback
input where one is assigned). Exit 0 only when every check passes; `--json` for tools.

Relays are never closed without the confirmation, never while a check that protects the
battery failed (a board missing, a reading implausible), and always opened again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from gateway.commands.commission_battery import (
    check_current,
    check_inputs,
    check_logic,
    check_modbus_devices,
)
from gateway.commands.commission_relays import check_relays
from gateway.commands.commission_report import Check, Report
from gateway.commands.preflight import preflight
from gateway.config import GatewayConfig, load_config
from gateway.core.devices import os_reason
from gateway.core.errors import ConfigError

__all__ = ["Check", "Report", "add_parser", "commission"]


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "commission",
        help="check a newly wired battery step by step (exit 0 only when all pass)",
        description="Check, one verdict per line: the config, the serial port, which Logic "
        "boards answer, every reading, the current sensor's zero offset, the inputs, the MQTT "
        "broker and credentials; with --relays, click each relay after you confirm it.",
    )
    p.add_argument("config", type=Path, help="YAML config of the battery")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--relays",
        action="store_true",
        help="click-test each relay, after a typed confirmation per relay",
    )
    p.add_argument(
        "--yes-relay",
        type=int,
        action="append",
        default=[],
        metavar="N",
        help="confirm relay N without asking (for scripted test benches); repeatable",
    )
    p.set_defaults(func=_commission)


def _commission(args: argparse.Namespace) -> int:
    report = Report()
    try:
        config = load_config(args.config)
    except ConfigError as err:
        report.add("config", "fail", str(err).replace("\n", "; "), "fix the keys listed")
        return _finish(report, args.json)
    report.add("config", "pass", f"{args.config} is valid")

    def ask(question: str) -> bool:
        if args.json or not sys.stdin.isatty():
            return False
        return input(f"{question} Type 'yes' to go ahead: ").strip().lower() == "yes"

    asyncio.run(
        commission(config, report, relays=args.relays, confirmed=set(args.yes_relay), ask=ask)
    )
    return _finish(report, args.json)


def _finish(report: Report, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"ok": report.ok, "checks": [asdict(c) for c in report.checks]}))
    else:
        width = max(len(c.step) for c in report.checks)
        for c in report.checks:
            print(f"[{c.verdict.upper():4}] {c.step:<{width}}  {c.detail}")
            if c.fix and c.verdict in ("fail", "warn"):
                print(f"       {'':<{width}}  -> {c.fix}")
        failed = [c for c in report.checks if c.verdict == "fail"]
        if failed:
            print(f"\n{len(failed)} check(s) failed: fix the lines marked -> and run again.")
        else:
            print("\nevery check passed")
    return 0 if report.ok else 1


async def commission(
    config: GatewayConfig,
    report: Report,
    *,
    relays: bool = False,
    confirmed: set[int] | None = None,
    ask: Callable[[str], bool] = lambda _q: False,
) -> None:
    """Run every check into `report` (never raises for an expected failure)."""
    for f in preflight(config):
        if f.key == "drivers.adc":
            continue  # the current sensor step says it, with the fix
        report.add(f"preflight {f.key}", "fail" if f.level == "error" else "warn", f.message)
    safe = await check_logic(config, report)
    await check_modbus_devices(config, report)
    await check_current(config, report)
    check_inputs(config, report)
    await _mqtt(config, report)
    if relays:
        check_relays(config, report, safe and report.ok, confirmed or set(), ask)


# --- MQTT -----------------------------------------------------------------------------------


async def _mqtt(config: GatewayConfig, report: Report) -> None:
    m = config.mqtt
    if not m.enabled:
        report.add("mqtt", "skip", "mqtt.enabled is false")
        return
    import aiomqtt  # noqa: PLC0415

    password = m.password.get_secret_value() if m.password is not None else None
    where = f"{m.host}:{m.port}"
    try:
        async with asyncio.timeout(10):
            async with aiomqtt.Client(
                m.host, m.port, username=m.username, password=password, identifier=None
            ):
                pass
    except aiomqtt.MqttCodeError as err:
        rc = getattr(err, "rc", None)
        code = getattr(rc, "value", rc)
        if code in (4, 5, 134, 135):
            report.add(
                "mqtt",
                "fail",
                f"{where} refused the credentials (not authorised)",
                "check mqtt.username and mqtt.password / mqtt.password_file (and the broker's ACL)",
            )
        else:
            report.add("mqtt", "fail", f"{where} refused the connection ({err})", "check mqtt.*")
        return
    except (aiomqtt.MqttError, OSError, TimeoutError) as err:
        why = os_reason(err) if isinstance(err, OSError) else str(err) or "timed out"
        why = re.sub(r"\[Errno \d+\] ", "", why)
        report.add(
            "mqtt",
            "fail",
            f"cannot reach the broker at {where} ({why})",
            "is the broker running there? check mqtt.host, mqtt.port and the firewall",
        )
        return
    user = f" as {m.username}" if m.username else " (anonymous)"
    report.add("mqtt", "pass", f"connected to {where}{user}")
