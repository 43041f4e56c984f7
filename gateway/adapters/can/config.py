"""The `can` config section: the bus, DBC signal mappings, inverter, charger and CANopen."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from gateway.core.section import Section


class CanMessageMap(Section):
    """Decode one DBC message into gateway points, optionally with a receive timeout."""

    message: str = Field(description="DBC message name (from a shipped or a `dbc_files` DBC).")
    signals: dict[str, str] = Field(
        default_factory=dict,
        description="DBC signal name -> gateway point name (e.g. `KeyOn: vehicle.key_on`).",
    )
    timeout_s: float | None = Field(
        None,
        gt=0,
        description="Receive timeout; when the message is silent longer, the peer is lost "
        "(point `<peer>.connected` = false and a `can_peer_lost` notice).",
    )
    peer: str | None = Field(
        None,
        pattern=r"^[a-z0-9_]+$",
        description="Peer name for the timeout point and notices (default: the message name "
        "in lower case).",
    )

    @property
    def peer_name(self) -> str:
        """Name used in `<peer>.connected` and in notices."""
        return self.peer or self.message.lower()


class CanInverterSection(Section):
    """The outbound battery protocol that inverters follow (Pylontech-compatible family)."""

    enabled: bool = Field(False, description="Send the battery frames to an inverter.")
    profile: Literal["pylon", "victron", "sma"] = Field(
        "pylon",
        description="pylon: 0x351 0x355 0x356 0x359 0x35C 0x35E; victron: 0x351 0x355 0x356 "
        "0x35A 0x35E 0x35F 0x370-0x377; sma: 0x351 0x355 0x356 0x35A 0x35E 0x35F.",
    )
    period_s: float = Field(1.0, gt=0, le=3, description="Period of the frame set (<= 3 s).")
    keepalive_timeout_s: float = Field(
        600.0, gt=0, description="Inverter lost when no 0x305 for this long."
    )
    startup_grace_s: float = Field(
        300.0, ge=0, description="No 'inverter lost' before this long after start."
    )
    withhold_full_soc: bool = Field(
        False, description="Report at most 99 % SOC until the pack is really full."
    )
    full_cell_voltage_v: float = Field(
        3.45, gt=0, description="With withhold_full_soc: the highest cell must reach this."
    )
    manufacturer: str = Field(
        "PYLON", max_length=8, description="0x35E text (Deye matches names starting PYLON)."
    )
    bms_name: str = Field("bms-gateway", max_length=16, description="0x370/0x371 text.")
    module_count: int = Field(1, ge=0, le=255, description="0x359 byte 4 module count.")
    soh_pct: float = Field(100.0, ge=0, le=100, description="Reported state of health.")
    capacity_ah: float = Field(100.0, ge=0, le=65535, description="0x35F capacity (Ah).")
    discharge_voltage_v: float | None = Field(
        None, gt=0, description="0x351 discharge cut-off; default cells x discharge_cell_v."
    )
    discharge_cell_voltage_v: float = Field(2.8, gt=0)
    zero_current_a: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Sent instead of a 0 A CCL/DCL (e.g. 0.1 for inverters that fault on 0).",
    )


class CanChargerSection(Section):
    """A J1939-style charger (0x1806E5F4 command, 0x18FF50E5 status)."""

    enabled: bool = Field(False, description="Command a charger and read its status.")
    period_s: float = Field(1.0, gt=0, le=5, description="Command period.")
    timeout_s: float = Field(5.0, gt=0, description="Charger lost when silent this long.")
    max_voltage_v: float | None = Field(None, gt=0, description="Cap on the commanded voltage.")
    max_current_a: float | None = Field(None, gt=0, description="Cap on the commanded current.")


class CanopenSection(Section):
    """The BMS Main 2.x CANopen TPDO1/TPDO2 (emitted in controller mode, decoded in bridge)."""

    enabled: bool = False
    node_id: int = Field(0x20, ge=1, le=127, description="CANopen node id (COB-ID base + node).")
    mode: Literal["sync", "period"] = Field(
        "sync", description="Controller mode: answer each SYNC (0x80), or send every period_s."
    )
    period_s: float = Field(1.0, gt=0)
    timeout_s: float = Field(
        5.0, gt=0, description="Bridge mode: the board is lost when TPDO1 is silent this long."
    )


class CanSection(Section):
    """The CAN port (python-can) and everything spoken on it."""

    enabled: bool = Field(False, description="Open the CAN bus.")
    interface: str = Field(
        "socketcan", description="python-can interface (socketcan, slcan, pcan, virtual, ...)."
    )
    channel: str = Field("can0", description="python-can channel (can0, /dev/ttyACM0, ...).")
    bitrate: Literal[125000, 250000, 500000, 1000000] = Field(
        250000, description="Bit rate; inverters mostly use 500000."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra python-can Bus keyword arguments (e.g. `hop_limit: 0`).",
    )
    dbc_files: list[Path] = Field(
        default_factory=list, description="Your own DBC files, searched after the shipped ones."
    )
    messages: list[CanMessageMap] = Field(
        default_factory=list, description="DBC message/signal -> point mappings."
    )
    reopen_min_s: float = Field(1.0, gt=0, description="First reopen delay after a bus failure.")
    reopen_max_s: float = Field(30.0, gt=0, description="Longest reopen delay (doubling).")
    rx_queue: int = Field(
        20000, ge=100, description="Frames buffered between the reader thread and the loop."
    )
    inverter: CanInverterSection = Field(default_factory=CanInverterSection)
    charger: CanChargerSection = Field(default_factory=CanChargerSection)
    canopen: CanopenSection = Field(default_factory=CanopenSection)

    @field_validator("interface")
    @classmethod
    def _known_interface(cls, value: str) -> str:
        import can  # noqa: PLC0415

        if value not in can.VALID_INTERFACES:
            raise ValueError(
                f"unknown interface {value!r}; one of: {', '.join(sorted(can.VALID_INTERFACES))}"
            )
        return value

    @model_validator(mode="after")
    def _mappings_exist(self) -> CanSection:
        if not self.messages and not self.dbc_files:
            return self
        from gateway.adapters.can.dbc import load_databases  # noqa: PLC0415
        from gateway.core.errors import ConfigError  # noqa: PLC0415

        try:
            dbs = load_databases(self.dbc_files)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        for i, m in enumerate(self.messages):
            msg = next((d.message(m.message) for d in dbs if d.message(m.message)), None)
            if msg is None:
                raise ValueError(f"messages.{i}.message: no DBC message {m.message!r}")
            names = {s.name for s in msg.signals}
            for sig in m.signals:
                if sig not in names:
                    raise ValueError(
                        f"messages.{i}.signals: {m.message} has no signal {sig!r} "
                        f"(has {', '.join(sorted(names))})"
                    )
        return self
