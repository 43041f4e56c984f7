"""Which tests execute each line of gateway/control/, and which lines each mutant changes.

mutmut picks the tests of a mutant by *function*: every test that calls the mutated function.
The engine's functions run in every test, so a surviving mutant on a line only one branch
reaches (a go-safe reason, a bridge-mode message) still ran all ~240 tests. A deterministic
test that never executes the changed line behaves exactly as without the mutant, so it
cannot kill it: running only the tests that execute the line gives the same verdict for a
fraction of the time. (The tests used here are deterministic: virtual clock, derandomised
hypothesis without an example database.)

    python scripts/mutants_lines.py      # writes mutants/line-tests.json (run from the repo root)

The mapping is taken on the unmutated tree with coverage.py, one context per test id.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

LINE_TESTS = Path("mutants/line-tests.json")
CONTROL = "gateway/control/"


def mutmut_config() -> dict[str, Any]:
    data = tomllib.loads(Path("pyproject.toml").read_text(encoding="utf-8"))
    return dict(data["tool"]["mutmut"])


def collect() -> int:
    """Run the mutation tests once under coverage, one context per test; write LINE_TESTS."""
    import coverage
    import pytest

    cfg = mutmut_config()
    cov = coverage.Coverage(data_file=None, source=[CONTROL], branch=False)

    class PerTest:
        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> Iterator[None]:
            cov.switch_context(item.nodeid)
            yield
            cov.switch_context("")

    cov.start()
    try:
        code = int(
            pytest.main(
                [
                    "-q",
                    "-p",
                    "no:randomly",
                    "-p",
                    "mutants_pytest",
                    *cfg["pytest_add_cli_args_test_selection"],
                    *cfg.get("pytest_add_cli_args", []),
                ],
                plugins=[PerTest()],
            )
        )
    finally:
        cov.stop()
    if code != 0:
        print(f"mutants_lines: the tests failed without mutants (exit {code})", file=sys.stderr)
        return code
    data = cov.get_data()
    root = Path.cwd()
    out: dict[str, dict[str, list[str]]] = {}
    for measured in data.measured_files():
        rel = Path(measured).resolve().relative_to(root).as_posix()
        _, statements, _, _, _ = cov.analysis2(measured)
        by_line = data.contexts_by_lineno(measured)
        out[rel] = {
            str(line): sorted(c for c in by_line.get(line, []) if c)
            for line in sorted(set(statements) | set(by_line))
        }
    LINE_TESTS.parent.mkdir(exist_ok=True)
    LINE_TESTS.write_text(json.dumps(out), encoding="utf-8")
    print(f"mutants_lines: {sum(len(v) for v in out.values())} lines of {len(out)} files mapped")
    return 0


def source_path(mutant_name: str) -> str:
    module = mutant_name.partition("__mutmut_")[0].rpartition(".")[0]
    path = module.replace(".", "/")
    return f"{path}.py" if Path(f"{path}.py").exists() else f"{path}/__init__.py"


@cache
def _tree(path: str) -> ast.Module:
    return ast.parse(Path(path).read_text(encoding="utf-8"))


def _function(path: str, function: str, klass: str | None) -> ast.AST | None:
    body = _tree(path).body
    if klass is not None:
        cls = [n for n in body if isinstance(n, ast.ClassDef) and n.name == klass]
        if not cls:
            return None
        body = cls[0].body
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            return node
    return None


LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})


@cache
def log_call_lines(path: str) -> frozenset[int]:
    """Lines inside a `log.<level>(...)` call: they only shape a log line's text."""
    lines: set[int] = set()
    for node in ast.walk(_tree(path)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in LOG_METHODS
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("log", "logger")
        ):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def only_log_text(mutant_name: str) -> bool:
    """True when every line the mutant changes is inside a logging call."""
    lines = changed_lines(mutant_name)
    return bool(lines) and set(lines) <= log_call_lines(source_path(mutant_name))


def changed_lines(mutant_name: str) -> list[int] | None:
    """Lines of the original file that the mutant changes (None: cannot tell)."""
    import difflib

    import libcst as cst
    from mutmut.mutation.diff_apply import (
        read_functions_from_index,
        read_mutant_function,
        read_mutants_module,
        read_original_function,
    )
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    path = source_path(mutant_name)
    function, klass = orig_function_and_class_names_from_key(mutant_name)
    node = _function(path, function, klass)
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    functions = read_functions_from_index(mutant_name, path)
    if functions is None:
        module = read_mutants_module(path)
        functions = (
            read_original_function(module, mutant_name),
            read_mutant_function(module, mutant_name),
        )
    old, new = (cst.Module([f]).code.strip().splitlines() for f in functions)
    # the function's text starts with the comments above it, then `def`
    def_index = next(
        (i for i, t in enumerate(old) if t.lstrip().startswith(("def ", "async def "))), None
    )
    if def_index is None:
        return None
    lines: list[int] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, _, _ in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            lines.extend(node.lineno + (i - def_index) for i in range(i1, i2))
    source = Path(path).read_text(encoding="utf-8").splitlines()
    if not lines or not all(0 < n <= len(source) for n in lines):
        return None
    if [source[n - 1].strip() for n in lines] != [
        old[def_index + n - node.lineno].strip() for n in lines
    ]:
        return None  # the text does not line up with the file: cannot tell
    return lines


def tests_for(mutant_name: str, line_tests: dict[str, dict[str, list[str]]]) -> set[str] | None:
    """The tests that execute a line the mutant changes (None: fall back to mutmut's own)."""
    from mutmut.utils.format_utils import orig_function_and_class_names_from_key

    path = source_path(mutant_name)
    by_line = line_tests.get(path)
    lines = changed_lines(mutant_name)
    node = _function(path, *orig_function_and_class_names_from_key(mutant_name))
    if by_line is None or lines is None:
        return None
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return None
    if min(lines) < node.body[0].lineno:
        return None  # the signature (runs at every call, covered at import): all callers
    statements = sorted(int(n) for n in by_line)
    tests: set[str] = set()
    for line in lines:
        tests.update(by_line.get(str(line), ()))
        # a continuation line of a multi-line statement: the statement's first line
        start = max((s for s in statements if s <= line), default=None)
        if start is not None:
            tests.update(by_line.get(str(start), ()))
    return tests


if __name__ == "__main__":
    from mutmut_fast import _patch_entry_points

    os.environ.setdefault("BMSGW_INVARIANT_EXAMPLES", "20")
    _patch_entry_points()
    sys.exit(collect())
