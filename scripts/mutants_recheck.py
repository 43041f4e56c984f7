"""Run the survivors of the last `make mutants` run again, against today's tests.

    .venv/bin/python scripts/mutants_recheck.py [--tests FILE]... [MUTANT-GLOB ...]

A test added after a run cannot change the run's verdicts (mutmut keeps them; see
scripts/mutants). This reruns survivors (and `no tests` mutants) of the run in `mutants/`
with the tests as they are now: it copies `tests/` and `scenarios/` into `mutants/`, then
runs pytest there once per mutant with `MUTANT_UNDER_TEST` set, as mutmut's workers do,
against `--tests` (default: the `[tool.mutmut]` test selection of pyproject.toml). A clean
run (no mutant) must pass first. Verdicts go to `mutants/recheck.json`
({mutant: the first failing test, or "" when it survived again}); scripts/mutants_report.py
counts a survivor that a recheck killed as `killed since` and names the test. JOBS (default
2) mutants run at once.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from mutants_reasons import reason_for
from mutants_report import describe, load

RECHECK = Path("mutants/recheck.json")


def run_tests(tests: list[str], mutant: str) -> tuple[bool, str]:
    """(passed, the first failing test) with `mutant` active ("": none)."""
    env = dict(
        os.environ,
        MUTANT_UNDER_TEST=mutant,
        PYTHONPATH=str(Path("mutants").resolve()),
        BMSGW_INVARIANT_EXAMPLES=os.environ.get("BMSGW_INVARIANT_EXAMPLES", "20"),
    )
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-rf", *tests]
    r = subprocess.run(cmd, cwd="mutants", env=env, capture_output=True, text=True, check=False)
    failed = [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("FAILED ")]
    return r.returncode == 0, (failed[0] if failed else f"exit {r.returncode}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tests", action="append", default=None, help="a test file (repeatable)")
    ap.add_argument(
        "--unexplained", action="store_true", help="only survivors no rule gives a reason"
    )
    ap.add_argument("globs", nargs="*", default=["*"])
    args = ap.parse_args()
    tests = (
        args.tests
        or tomllib.loads(Path("pyproject.toml").read_text())["tool"]["mutmut"][
            "pytest_add_cli_args_test_selection"
        ]
    )
    for d in ("tests", "scenarios"):
        shutil.rmtree(Path("mutants") / d, ignore_errors=True)  # no test deleted since stays
        shutil.copytree(d, Path("mutants") / d)
    ok, why = run_tests(tests, "")
    if not ok:
        print(f"the tests fail without a mutant ({why}): nothing rechecked", file=sys.stderr)
        return 1
    done: dict[str, str] = json.loads(RECHECK.read_text()) if RECHECK.exists() else {}
    names = [
        name
        for module, statuses in load().items()
        for name, status in statuses.items()
        if status in ("survived", "no tests")
        and any(fnmatch.fnmatch(name, g) for g in args.globs)
        and not (args.unexplained and reason_for(module, *describe(name)))
    ]
    todo = [n for n in names if not done.get(n)]  # not killed by an earlier recheck
    jobs = int(os.environ.get("JOBS", "2"))
    with ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(run_tests, tests, name): name for name in todo}
        for i, future in enumerate(as_completed(futures), 1):
            name = futures[future]
            passed, why = future.result()
            done[name] = "" if passed else why
            print(f"[{i}/{len(todo)}] {'survived' if passed else 'killed by ' + why}: {name}")
            RECHECK.write_text(json.dumps(done, indent=1, sort_keys=True))
    killed = sum(1 for n in names if done.get(n))
    print(f"{killed} of {len(names)} survivors killed by today's tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
