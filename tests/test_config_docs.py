"""docs/configuration.md is the generated reference: it must match the models."""

from __future__ import annotations

from pathlib import Path

from gateway.config_docs import render

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_configuration_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "docs/configuration.md is stale: run `.venv/bin/bms-gateway config-docs "
        "--output docs/configuration.md`"
    )


def test_reference_names_public_keys() -> None:
    text = render()
    for key in (
        "`gateway.id`",
        "`mqtt.host`",
        "`mqtt.port`",
        "`mqtt.topic_prefix`",
        "`mqtt.username`",
        "`mqtt.password`",
        "`mqtt.publish_interval_s`",
        "`metrics.host`",
        "`metrics.port`",
        "`logic.port`",
        "`logic.baudrate`",
        "`logic.boards`",
        "`logic.cells_per_board`",
        "`logic.poll_interval_s`",
        "`logic.timeout_s`",
        "`logic.offline_after`",
        "`relays.1`",
        "`inputs.1.signal`",
        "`pack.chemistry`",
        "`charge_control.mode`",
    ):
        assert key in text, key
