"""The house's layer order holds: no import circle between folders, no import from a lower
layer to a higher one except type-only imports (the contract is in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# `make test` also runs lint-imports itself; here a venv made before import-linter joined the
# dev extras skips (pip install -e '.[dev]' brings it).
grimp = pytest.importorskip("grimp", reason="import-linter is not installed (dev extras)")

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept() -> None:
    pytest.importorskip("importlinter", reason="import-linter is not installed (dev extras)")
    # In a process of its own: import-linter reconfigures the logging module.
    run = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()",
         "--no-cache"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr


def _top(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_circle_between_folders() -> None:
    graph = grimp.build_graph("gateway", exclude_type_checking_imports=True)
    arrows = {
        (_top(m), _top(i))
        for m in graph.modules
        for i in graph.find_modules_directly_imported_by(m)
        if _top(m) != _top(i) and _top(i) != "gateway"
    }
    circles = sorted((a, b) for a, b in arrows if (b, a) in arrows)
    assert circles == []
