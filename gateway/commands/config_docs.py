"""`bms-gateway config-docs`: print the configuration reference generated from the models."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.config_docs import render


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "config-docs", help="print (or write) the configuration reference"
    )
    p.add_argument("--output", type=Path, help="write to this file instead of stdout")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    text = render()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0
