"""Shared fixtures: a real Mosquitto per test that asks for one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.broker import MOSQUITTO, Broker

# The default gateway.state_dir depends on the environment (systemd, container, per-user):
# tests that do not set one get a private per-user directory for this run.
for _var in ("STATE_DIRECTORY", "INVOCATION_ID", "container"):
    os.environ.pop(_var, None)
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="bmsgw-test-state-")

# No per-example deadline: the CI machine is shared and 2-core, and time is not what these
# properties test. `derandomize` makes every CI run explore the same examples, so a run is
# reproducible; set BMSGW_HYPOTHESIS=explore locally to search with fresh randomness.
settings.register_profile(
    "ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("BMSGW_HYPOTHESIS", "ci"))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running Mosquitto on a free loopback port, killed after the test."""
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def stopped_broker(tmp_path: Path) -> Iterator[Broker]:
    """A Mosquitto configured on a free port but not started yet."""
    if MOSQUITTO is None:
        pytest.fail("mosquitto is not installed: run scripts/ensure-test-tools")
    b = Broker(tmp_path)
    yield b
    b.stop()
