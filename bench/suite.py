"""The suite runner: each benchmark is a module with `run(Bounds) -> {"rows", "details"}`."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Bounds, Row, machine

# In run order; the suite skips a module that is not there (e.g. one another branch adds).
BENCHMARKS = (
    "crc",
    "logic_scan",
    "can_ingest",
    "mqtt_paths",
    "startup",
    "footprint",
    "boards_cpu",
    "fleet_budget",
    "reaction",
)
RESULTS = Path(__file__).resolve().parent / "results.json"


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: list[Row]) -> str:
    """Render the rows as a Markdown table (also what docs/performance.md keeps)."""
    lines = [
        "| metric | gateway | anchor | ratio | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        lines.append(
            f"| {r.metric} | {_fmt(r.gateway)} {r.unit} | {r.anchor_name}: {_fmt(r.anchor)} "
            f"{r.unit} | {ratio} | {r.goal} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run the chosen benchmarks, print and save the results."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny bounds (the test suite's run)")
    p.add_argument("--scale", type=float, default=1.0, help="multiply durations and counts")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    p.add_argument("--out", type=Path, default=RESULTS, help="results file (JSON)")
    args = p.parse_args(argv)
    bounds = Bounds(smoke=args.smoke, scale=args.scale)
    # The benchmarks drive real gateways: their log lines (alarms raised on purpose, links
    # opened) are not results.
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("gateway").setLevel(logging.CRITICAL)
    rows: list[Row] = []
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "bounds": {"smoke": bounds.smoke, "scale": bounds.scale},
        "benchmarks": {},
    }
    failed = 0
    for name in args.only or BENCHMARKS:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"bench.{name}":
                raise
            continue
        t0 = time.perf_counter()
        print(f"# {name} ...", flush=True)
        try:
            out = module.run(bounds)
        except Exception as err:  # one broken benchmark must not lose the others' figures
            failed += 1
            traceback.print_exc()
            results["benchmarks"][name] = {"error": f"{type(err).__name__}: {err}"}
            continue
        elapsed = time.perf_counter() - t0
        rows.extend(out["rows"])
        results["benchmarks"][name] = {
            "seconds": round(elapsed, 2),
            "rows": [r.as_dict() for r in out["rows"]],
            "details": out.get("details", {}),
        }
    results["table"] = [r.as_dict() for r in rows]
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(rows))
    print(f"\nwritten: {args.out}")
    return 1 if failed else 0
