"""The `commands` config section (its own module so gateway.config can import it early).

It imports nothing from the gateway, so `gateway/config.py` can import it at the top without a
cycle; like `gateway.config.Section`, unknown keys are errors.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CommandsSection(BaseModel):
    """MQTT command topics `<prefix>/<id>/command/...` (needs `mqtt.enabled`; docs/mqtt.md)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        True,
        description="Accept commands on `<prefix>/<id>/command/<name>` (go_safe, ack).",
    )
    allow_go_safe_release: bool = Field(
        True,
        description=(
            "Accept `command/go_safe` `off`, which withdraws only the MQTT go-safe request "
            "(other go-safe sources stay in force). False: once requested over MQTT, go-safe "
            "stays until it is released locally (see docs/mqtt.md)."
        ),
    )
    allow_ack: bool = Field(
        False,
        description=(
            "Accept `command/ack` (acknowledge latched errors over MQTT). Off by default: a "
            "latch exists so that a person looks at the battery before a contactor re-closes; "
            "enable it only on a broker with authentication and ACLs."
        ),
    )
    persist_go_safe: bool = Field(
        True,
        description=(
            "Keep an MQTT go-safe request across gateway restarts "
            "(`<gateway.state_dir>/command_go_safe.json`) until it is released."
        ),
    )
