"""The house's layer order holds: no import circle between folders, no import from a lower
layer to a higher one except type-only imports (the contract is in pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

import grimp
import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert lint_imports(config_filename="pyproject.toml", no_cache=True, no_logo=True) == 0


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
