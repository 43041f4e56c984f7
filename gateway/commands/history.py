"""`bms-gateway history export --from --to --format csv|jsonl`: print the history store.

Reads `<gateway.state_dir>/history.sqlite3` (or `history.path`); safe while the gateway runs
(SQLite WAL: readers never block the writer). `--what pack` (default) prints the pack series
one row per stored period, `cells` the per-cell min/max/mean rows, `events` the events.
"""

from __future__ import annotations

import argparse
import csv
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from gateway.config import load_config
from gateway.core.errors import ConfigError
from gateway.publishers.history.store import PACK_SERIES, HistoryStore


def add_parser(sub: Any) -> None:
    """Register the sub-command."""
    p: argparse.ArgumentParser = sub.add_parser("history", help="the local history store")
    hsub = p.add_subparsers(dest="history_command", required=True)
    e: argparse.ArgumentParser = hsub.add_parser("export", help="print stored history")
    e.add_argument("--config", type=Path, help="gateway config (for history.path / state_dir)")
    e.add_argument("--file", type=Path, help="the SQLite file (overrides the config)")
    e.add_argument(
        "--from", dest="start", help="start, ISO 8601 or UNIX seconds (default: 24 h ago)"
    )
    e.add_argument("--to", dest="end", help="end, exclusive (default: now)")
    e.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    e.add_argument("--what", choices=("pack", "cells", "events"), default="pack")
    e.set_defaults(func=_export)


def _time(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _export(args: argparse.Namespace) -> int:
    if args.file is not None:
        path: Path = args.file
    else:
        try:
            config = load_config(args.config)
        except ConfigError as err:
            print(f"invalid configuration:\n{err}", file=sys.stderr)
            return 2
        path = config.history.file(config.gateway.state_dir)
    if not path.exists():
        print(f"no history store at {path} (history.path, gateway.state_dir)", file=sys.stderr)
        return 1
    now = datetime.now(UTC).timestamp()
    try:
        start, end = _time(args.start, now - 86400), _time(args.end, now)
    except ValueError as err:
        print(f"--from/--to: {err}", file=sys.stderr)
        return 2
    try:
        store = HistoryStore(path)
        try:
            _write(store, args.what, args.format, start, end, sys.stdout)
        finally:
            store.close()
    except sqlite3.Error as err:
        print(f"cannot read {path}: {err}", file=sys.stderr)
        return 1
    return 0


def _write(store: HistoryStore, what: str, fmt: str, start: float, end: float, out: TextIO) -> None:
    rows: list[dict[str, Any]]
    if what == "pack":
        rows = [
            {"time": _iso(ts), "step_s": step, **values}
            for ts, step, values in store.pack_rows(start, end)
        ]
        fields = ["time", "step_s", *PACK_SERIES]
    elif what == "cells":
        rows = []
        for ts, step, data in store.cell_rows(start, end):
            for bi, board in enumerate(data.boards):
                for ci in range(len(data.vmean[bi])):
                    rows.append(
                        {
                            "time": _iso(ts),
                            "step_s": step,
                            "board": board,
                            "cell": ci + 1,
                            "min": data.vmin[bi][ci],
                            "max": data.vmax[bi][ci],
                            "mean": data.vmean[bi][ci],
                        }
                    )
        fields = ["time", "step_s", "board", "cell", "min", "max", "mean"]
    else:
        rows = [e.body for e in store.events_between(start, end)]
        fields = ["seq", "timestamp", "type", "body"]
        if fmt == "csv":
            rows = [
                {"seq": b.get("seq"), "timestamp": b.get("timestamp"), "type": b.get("type"),
                 "body": json.dumps(b)}
                for b in rows
            ]  # fmt: skip
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
        return
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
