"""Run mutmut 3 with two speed-ups that do not change any verdict (used by scripts/mutants).

mutmut routes every call of a mutated function through a "trampoline" that looks up the
mutant under test in `os.environ` on each call. The engine calls small functions millions of
times per test run (`Debounced.due_s` alone ~600 000 times in the invariant test), so that
lookup made the control tests 4-9x slower than without mutmut. Here:

1. the trampoline reads the mutant under test from a module-level cell that mutmut's own
   `set_mutant_under_test` keeps in step (mutmut always sets the variable and the cell
   together); the stats and forced-fail modes still go through mutmut's own trampoline;
2. `importlib.metadata.entry_points` is memoised for the run: plugin discovery scans every
   installed distribution's metadata, ~10 times per scenario, and the installed entry
   points cannot change during a run.

Both patches are applied before any mutated module is imported and are inherited by the
forked workers. They are tied to the mutmut version they were written for: with another
version this script runs stock mutmut (slower, same results) and says so.

    python scripts/mutmut_fast.py run [--max-children N] [MUTANT-GLOB ...]
    python scripts/mutmut_fast.py results|show NAME|browse ...   (as `mutmut`)
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import os
import sys
from collections.abc import Callable
from typing import Any

PATCHED_FOR = "3.8.1"
SPECIAL_MODES = frozenset({"stats", "fail"})


def _patch_entry_points() -> None:
    original = importlib.metadata.entry_points
    cache: dict[tuple[tuple[str, Any], ...], Any] = {}

    @functools.wraps(original)
    def entry_points(**params: Any) -> Any:
        key = tuple(sorted(params.items()))
        if key not in cache:
            cache[key] = original(**params)
        return cache[key]

    importlib.metadata.entry_points = entry_points  # type: ignore[assignment]


def _patch_trampoline() -> None:
    import mutmut.__main__ as mutmut_main
    import mutmut.mutation.trampoline as trampoline
    import mutmut.workers.isolation as isolation

    # [module of the mutant, its name inside the module, mutmut's own trampoline needed]
    state: list[Any] = ["", "", False]

    def remember(name: str | None) -> None:
        if name is None:
            name = os.environ.get("MUTANT_UNDER_TEST", "")
        module, _, short = name.rpartition(".")
        state[0], state[1], state[2] = module, short, name in SPECIAL_MODES

    original_set = trampoline.set_mutant_under_test

    def set_mutant_under_test(name: str | None) -> None:
        original_set(name)
        remember(name)

    for owner in (trampoline, isolation, mutmut_main):
        owner.set_mutant_under_test = set_mutant_under_test  # type: ignore[attr-defined]
    remember(os.environ.get("MUTANT_UNDER_TEST", ""))

    original_wrap = trampoline.wrap_in_trampoline

    def wrap_in_trampoline(
        mutants_dict: dict[str, Callable[..., Any]], is_classmethod: bool = False
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        stock = original_wrap(mutants_dict, is_classmethod)

        def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
            slow = stock(func)
            if (
                is_classmethod
                or not inspect.isfunction(func)
                or (
                    inspect.isgeneratorfunction(func)
                    or inspect.iscoroutinefunction(func)
                    or inspect.isasyncgenfunction(func)
                )
            ):
                return slow
            module = func.__module__

            @functools.wraps(func)
            def fast(*args: Any, **kwargs: Any) -> Any:
                if state[2]:
                    return slow(*args, **kwargs)
                if state[0] == module:
                    mutant = mutants_dict.get(state[1])
                    if mutant is not None:
                        return mutant(*args, **kwargs)
                return mutants_dict["_mutmut_orig"](*args, **kwargs)

            return fast

        return decorate

    trampoline.wrap_in_trampoline = wrap_in_trampoline  # type: ignore[assignment]


def _add_plugin() -> None:
    """Every pytest session of the run loads scripts/mutants_pytest.py."""
    from mutmut.configuration import config

    args = config().pytest_add_cli_args
    if "mutants_pytest" not in args:
        args += ["-p", "mutants_pytest"]


def _patch_test_selection() -> None:
    """Per mutant: skip it when it only changes a logging call's arguments; run only the tests
    that execute a line it changes (scripts/mutants_lines.py; mutmut's per-function choice
    where that cannot be told); and run first the tests that killed the most mutants of the
    same function, then of any function (mutants/kills.tsv), then the quickest."""
    import json
    from collections import Counter, defaultdict
    from pathlib import Path

    import mutmut.workers.isolation as isolation
    from mutants_lines import LINE_TESTS, only_log_text, tests_for
    from mutmut.state import state

    line_tests = json.loads(LINE_TESTS.read_text(encoding="utf-8")) if LINE_TESTS.exists() else None
    if line_tests is None:
        print(f"mutmut_fast: no {LINE_TESTS}: tests chosen per function", file=sys.stderr)
    kills_path = Path("mutants/kills.tsv")
    read_to = 0
    kills_by_function: defaultdict[str, Counter[str]] = defaultdict(Counter)
    kills: Counter[str] = Counter()
    original = isolation.ForkRunner.submit

    def learn() -> None:
        nonlocal read_to
        if not kills_path.exists():
            return
        with kills_path.open(encoding="utf-8") as f:
            f.seek(read_to)
            for line in f:
                if not line.endswith("\n"):
                    break
                read_to += len(line.encode())
                mutant, _, test = line.rstrip("\n").partition("\t")
                kills_by_function[mutant.partition("__mutmut_")[0]][test] += 1
                kills[test] += 1

    def submit(self: Any, mutant_name: str, tests: list[str], *args: Any) -> None:
        try:
            if only_log_text(mutant_name):
                self._no_tests_results.append(
                    isolation.MutantResult(mutant_name=mutant_name, exit_code=34, duration=0.0)
                )
                return
            narrowed = tests_for(mutant_name, line_tests) if line_tests is not None else None
        except Exception as err:  # never lose a mutant to the narrowing: run all its tests
            print(f"mutmut_fast: {mutant_name}: {err!r}", file=sys.stderr)
            narrowed = None
        if narrowed is not None:
            tests = [t for t in tests if t in narrowed]
        learn()
        here = kills_by_function[mutant_name.partition("__mutmut_")[0]]
        durations = state().duration_by_test
        ordered = sorted(tests, key=lambda t: (-here[t], -kills[t], durations.get(t, 0.0)))
        saved = {t: durations[t] for t in tests if t in durations}
        for rank, test in enumerate(ordered):  # the forked worker sorts by these values
            durations[test] = float(rank)
        try:
            original(self, mutant_name, tests, *args)
        finally:
            durations.update(saved)

    isolation.ForkRunner.submit = submit  # type: ignore[method-assign]


def _patch_type_check_mapping() -> None:
    """Same mapping of mypy errors to mutants as mutmut's, with `ast` positions instead of
    libcst metadata (minutes on the 30 000-line generated engine module, here seconds)."""
    import ast
    import json
    from pathlib import Path

    import mutmut.__main__ as mutmut_main
    from mutmut.configuration import config
    from mutmut.mutation.file_mutation import FailedTypeCheckMutant, MutatedMethodLocation
    from mutmut.type_checking import run_type_checker
    from mutmut.utils.file_utils import change_cwd
    from mutmut.utils.format_utils import get_mutant_name, is_mutated_method_name

    def filter_mutants_with_type_checker() -> dict[str, Any]:
        found: dict[str, Any] = {}
        with change_cwd(Path("mutants")):
            errors = run_type_checker(config().type_check_command)
            by_path: dict[Path, list[Any]] = {}
            for error in errors:
                by_path.setdefault(error.file_path, []).append(error)
            for path, errors_of_file in by_path.items():
                tree = ast.parse(path.read_text(encoding="utf-8"))
                methods = []
                for node in tree.body:
                    nodes = node.body if isinstance(node, ast.ClassDef) else [node]
                    for f in nodes:
                        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and (
                            is_mutated_method_name(f.name)
                        ):
                            start = min([f.lineno, *(d.lineno for d in f.decorator_list)])
                            methods.append(
                                MutatedMethodLocation(path, f.name, start, f.end_lineno or start)
                            )
                if not methods:
                    continue
                for error in errors_of_file:
                    where = next(
                        (
                            m
                            for m in methods
                            if m.line_number_start <= error.line_number <= m.line_number_end
                        ),
                        None,
                    )
                    if where is None:
                        raise RuntimeError(
                            f"mypy error outside any mutant: {path}:{error.line_number} "
                            f"{error.error_description}"
                        )
                    name = get_mutant_name(
                        path.relative_to(Path(".").absolute()), where.function_name
                    )
                    found[name] = FailedTypeCheckMutant(where, name, error)
        # every mutant mypy rejects, also those a stopped run never reached (for the report)
        Path("mutants/mypy-caught.json").write_text(json.dumps(sorted(found)), encoding="utf-8")
        return found

    mutmut_main.filter_mutants_with_type_checker = filter_mutants_with_type_checker


# Safety-relevant modules first, so that a run stopped for time has covered them.
PRIORITY = [
    "contactors",
    "contactor_stage",
    "relays",
    "switching",
    "signals",
    "engine",
    "debounce",
    "detect",
    "error_book",
    "latches",
    "readings",
    "measure",
    "thermal",
    "balancing",
    "balancer",
    "commands",
    "limits",
    "limiting",
    "deadlines",
    "wake",
    "bridge",
]


def _patch_order() -> None:
    """mutmut runs the cheapest mutants first; here by PRIORITY module, then cheapest."""
    import mutmut.__main__ as mutmut_main

    original = mutmut_main.estimated_worst_case_time

    def estimated_worst_case_time(mutant_name: str) -> Any:
        module = mutant_name.partition("__mutmut_")[0].rpartition(".")[0].rpartition(".")[2]
        rank = PRIORITY.index(module) if module in PRIORITY else len(PRIORITY)
        return (rank, original(mutant_name))

    mutmut_main.estimated_worst_case_time = estimated_worst_case_time


def main() -> None:
    version = importlib.metadata.version("mutmut")
    _add_plugin()
    if version == PATCHED_FOR:
        _patch_entry_points()
        _patch_trampoline()
        _patch_test_selection()
        _patch_type_check_mapping()
        _patch_order()
    else:
        print(
            f"mutmut_fast: written for mutmut {PATCHED_FOR}, found {version}: "
            "running stock mutmut (same results, several times slower)",
            file=sys.stderr,
        )
    from mutmut.__main__ import cli

    sys.argv[0] = "mutmut"
    cli()


if __name__ == "__main__":
    main()
