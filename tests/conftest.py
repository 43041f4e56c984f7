"""Shared fixtures: a real Mosquitto per test that asks for one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import MOSQUITTO, Broker


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
