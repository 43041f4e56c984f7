"""`python -m bench --smoke`: the suite runs end to end and writes a well-formed results file.

Only the shape is checked: benchmarks are not timed tests, so no figure is asserted.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import MOSQUITTO

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")


def test_the_suite_runs_with_tiny_bounds_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["bounds"]["smoke"] is True
    assert results["machine"]["cores"] >= 1
    benchmarks = results["benchmarks"]
    assert {"crc", "logic_scan", "can_ingest"} <= set(benchmarks)
    for name, bench in benchmarks.items():
        assert "error" not in bench, (name, bench)
        assert bench["rows"], name
        for row in bench["rows"]:
            assert row["benchmark"] == name
            for key in ("metric", "unit", "anchor_name"):
                assert isinstance(row[key], str)
                assert row[key]
            for key in ("gateway", "anchor"):
                assert isinstance(row[key], int | float)
                assert math.isfinite(row[key])
            assert row["ratio"] is None or math.isfinite(row["ratio"])
    assert len(results["table"]) == sum(len(b["rows"]) for b in benchmarks.values())
    # The printed table carries one line per row.
    assert proc.stdout.count("\n| ") >= len(results["table"]) + 1
