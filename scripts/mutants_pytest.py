"""pytest plugin for the mutation runs (`-p mutants_pytest`, added by scripts/mutmut_fast.py).

Records which test killed each mutant (mutants/kills.tsv), so that scripts/mutmut_fast.py
runs the tests that killed mutants before first (they stop a run early: `-x`).

No hypothesis example database: every run of a test explores exactly the same derandomised
examples, as in the line-coverage run, and none are replayed from another mutant's failure.
Loaded after tests/conftest.py has chosen its profile, so it keeps everything else of it.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

KILLS = "kills.tsv"  # in mutants/, the workers' working directory
NOT_A_MUTANT = frozenset({"", "fail", "stats", "list_all_tests", "mutant_generation"})


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    settings.register_profile("mutants", parent=settings(), database=None)
    settings.load_profile("mutants")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if report.failed and mutant not in NOT_A_MUTANT:
        with open(KILLS, "a", encoding="utf-8") as f:
            f.write(f"{mutant}\t{report.nodeid}\n")
