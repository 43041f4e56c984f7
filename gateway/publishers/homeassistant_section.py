"""The `homeassistant` config section (its own module so gateway.config can import it early).

It imports nothing from the gateway, so `gateway/config.py` can import it at the top without a
cycle; it has the same base behaviour as `gateway.config.Section` (unknown keys are errors).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class HomeAssistantSection(BaseModel):
    """Home Assistant MQTT discovery (needs `mqtt.enabled`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Publish Home Assistant discovery configs.")
    discovery_prefix: str = Field(
        "homeassistant",
        pattern=r"^[^#+\s]+$",
        description="Home Assistant's MQTT discovery prefix.",
    )
    status_topic: str = Field(
        "homeassistant/status",
        pattern=r"^[^#+\s]+$",
        description="Home Assistant's birth topic; `online` there triggers a re-announce.",
    )
    node_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Node id in discovery topics and unique_ids (default: gateway.id).",
    )
    device_name: str | None = Field(
        None, description="Device name shown in Home Assistant (default: `BMS <gateway.id>`)."
    )
    manufacturer: str = Field("bms-gateway", description="Device manufacturer shown in HA.")
    configuration_url: str | None = Field(
        None, description="Link on the device page (e.g. the gateway's web page), if any."
    )
    per_cell_entities: bool = Field(
        False,
        description="Also announce one voltage and one temperature sensor per cell "
        "(boards × cells entities; off by default).",
    )
