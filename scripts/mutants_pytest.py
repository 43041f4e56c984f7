"""pytest plugin for the mutation runs (`-p mutants_pytest`, added by scripts/mutmut_fast.py).

No hypothesis example database: every run of a test explores exactly the same derandomised
examples, as in the line-coverage run, and none are replayed from another mutant's failure.
Loaded after tests/conftest.py has chosen its profile, so it keeps everything else of it.
"""

from __future__ import annotations

import pytest
from hypothesis import settings


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    settings.register_profile("mutants", parent=settings(), database=None)
    settings.load_profile("mutants")
