"""The gateway's one configuration: a YAML file validated by pydantic, overridable by env.

Every key has a default that runs (the embedded simulator). Environment variables override
file keys: prefix `BMSGW_`, `__` between levels (`BMSGW_MQTT__PORT=1884`). Each section is a
model of its own; sections owned by a subsystem live next to it (built on
`gateway.core.section.Section`) and are composed here. Every check that spans sections runs in
`GatewayConfig`'s model validator, so a file `check-config` accepts is a file `run` accepts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from gateway.adapters.can.config import CanSection
from gateway.adapters.modbus.config import ModbusSection
from gateway.control.settings import (
    BalancingSection,
    ChargeControlSection,
    CoolerSection,
    DischargeControlSection,
    EngineSection,
    HeaterSection,
    InputsSection,
    LimitsSection,
    OutputsSection,
    PackSection,
    ProtectionsSection,
    RelaysSection,
    SignalLevelsSection,
    SocSection,
    resolve,
)
from gateway.core.errors import ConfigError
from gateway.core.section import Section, SocFraction, deep_merge, format_validation_error
from gateway.core.yaml_source import read_yaml
from gateway.hal.settings import (
    BoardIoSection,
    CurrentSensorSection,
    DriversSection,
    HumiditySensorSection,
    TemperatureSensorSection,
)
from gateway.protocols import logic_map
from gateway.publishers.commands_section import CommandsSection
from gateway.publishers.history.section import HistorySection
from gateway.publishers.homeassistant_section import HomeAssistantSection
from gateway.publishers.modbus_server_section import ModbusServerSection
from gateway.publishers.mqtt_section import MqttTlsSection, parse_endpoint
from gateway.publishers.web.section import WebSection


def default_state_dir() -> Path:
    """The state directory when the config names none (always absolute).

    systemd's `StateDirectory=` (env `STATE_DIRECTORY`) wins; a service (env `INVOCATION_ID`)
    or a container (env `container`) uses `/var/lib/bms-gateway`; an interactive user gets a
    per-user directory, so `bms-gateway ack` finds the same state from any working directory.
    """
    if systemd := os.environ.get("STATE_DIRECTORY"):
        return Path(systemd.split(":")[0])
    if os.environ.get("INVOCATION_ID") or os.environ.get("container"):  # noqa: SIM112 (set by podman, nspawn)
        return Path("/var/lib/bms-gateway")
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return (Path(base) / "bms-gateway").absolute()


class GatewaySection(Section):
    """The gateway itself."""

    id: str = Field(
        "bms-gateway", pattern=r"^[A-Za-z0-9_-]+$", description="Gateway id, used in MQTT topics."
    )
    mode: Literal["controller", "bridge"] = Field(
        "controller",
        description="controller: the gateway drives the relays; bridge: a real BMS Main 2.x "
        "protects the battery and the gateway only reads, publishes and raises alarms.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level (`-v` on the command line forces DEBUG)."
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Directory for persisted state (latched errors, SOC, go-safe). A relative "
        "path is taken relative to the config file's directory.",
        json_schema_extra={
            "default_doc": "`/var/lib/bms-gateway` under systemd or in a container, else "
            "`$XDG_STATE_HOME/bms-gateway` (`~/.local/state/bms-gateway`)"
        },
    )
    summary_interval_s: float = Field(10.0, gt=0, description="Period of the summary log line.")


class MqttSection(Section):
    """MQTT broker connection and topics."""

    enabled: bool = Field(True, description="Publish to MQTT at all.")
    host: str = Field("localhost", description="Broker host name or address.")
    port: int = Field(1883, ge=1, lt=65536, description="Broker TCP port.")
    topic_prefix: str = Field(
        "bms", pattern=r"^[^#+]+$", description="First topic level: `<prefix>/<gateway.id>/...`."
    )
    username: str | None = Field(None, description="Broker user name (none: anonymous).")
    password: SecretStr | None = Field(None, description="Or set BMSGW_MQTT__PASSWORD.")
    password_file: Path | None = Field(None, description="File whose first line is the password.")
    client_id: str | None = Field(None, description="MQTT client id (default: from gateway.id).")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive.")
    publish_interval_s: float = Field(
        1.0, gt=0, le=3600, description="The retained `state` message is sent at most this often."
    )
    reconnect_min_s: float = Field(1.0, gt=0, description="First reconnect delay (doubles).")
    reconnect_max_s: float = Field(30.0, gt=0, description="Longest reconnect delay.")
    outbox_max_events: int = Field(
        100_000,
        ge=10,
        le=10_000_000,
        description="Events kept in the persistent outbox "
        "(`<gateway.state_dir>/mqtt_outbox.sqlite3`) until the broker acknowledges them; "
        "beyond it the oldest are dropped, counted and reported (docs/mqtt.md).",
    )
    brokers: list[str] = Field(
        default_factory=list,
        description='Several brokers (cluster nodes) as "host:port", tried in turn with '
        "backoff and jitter; empty: `host`/`port`.",
    )
    tls: MqttTlsSection | None = Field(None, description="TLS to the broker; null: plain TCP.")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version.")
    session_expiry_s: int = Field(
        0, ge=0, le=4_294_967_295, description="MQTT 5: how long the broker keeps the session."
    )
    state_expiry_s: int | None = Field(
        None,
        ge=1,
        le=4_294_967_295,
        description="MQTT 5: message expiry of the retained `state` (the broker drops it when "
        "no newer one came in this time); null: never.",
    )
    duplicate_check_s: float = Field(
        1.0,
        ge=0,
        le=30,
        description="At start, how long to wait for another live gateway with the same id "
        "to answer (only when the retained availability says `online`); 0: no check.",
    )

    @model_validator(mode="after")
    def _check_session(self) -> MqttSection:
        if self.session_expiry_s > 0 and self.client_id is None:
            raise ValueError(
                "session_expiry_s: a session kept by the broker needs a fixed mqtt.client_id "
                "(the default id is random per connection)"
            )
        if self.session_expiry_s > 0 and self.protocol != "5":
            raise ValueError('session_expiry_s: needs mqtt.protocol: "5"')
        return self

    @model_validator(mode="after")
    def _check_brokers(self) -> MqttSection:
        for i, text in enumerate(self.brokers):
            try:
                parse_endpoint(text)
            except ValueError as err:
                raise ValueError(f"brokers.{i}: {err}") from None
        return self

    @property
    def endpoints(self) -> list[tuple[str, int]]:
        """The brokers to try, in order."""
        return [parse_endpoint(b) for b in self.brokers] or [(self.host, self.port)]

    @model_validator(mode="after")
    def _password_from_file(self) -> MqttSection:
        if self.password is None and self.password_file is not None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as err:
                raise ValueError(
                    f"password_file: cannot read {self.password_file}: {err.strerror or err}"
                ) from err
            except UnicodeDecodeError:
                raise ValueError(f"password_file: {self.password_file} is not UTF-8 text") from None
            self.password = SecretStr(text.splitlines()[0] if text else "")
        return self


class MetricsSection(Section):
    """Prometheus /metrics endpoint."""

    enabled: bool = Field(True, description="Serve Prometheus metrics.")
    host: str = Field("127.0.0.1", description="Listen address (0.0.0.0 in a container).")
    port: int = Field(9108, ge=0, lt=65536, description="0 picks a free port.")


class LogicSection(Section):
    """The RS-485 link to the BMS Logic cell boards."""

    port: str | None = Field(
        None, description="Serial device; null runs the embedded simulator on a pty."
    )
    baudrate: Literal[600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        115200, description="Serial speed (the vendor's internal Logic link runs 115200)."
    )
    parity: Literal["N", "E", "O"] = Field("N", description="Serial parity.")
    stopbits: Literal[1, 2] = Field(1, description="Serial stop bits.")
    bytesize: Literal[7, 8] = Field(8, description="Serial data bits.")
    boards: int | list[int] = Field(
        2, description="Number of boards (addresses 1..n) or an explicit address list."
    )
    cells_per_board: int = Field(
        16, ge=1, le=logic_map.MAX_CELLS, description="Cells on each board (1..18)."
    )
    sensors_per_board: int | None = Field(
        None, ge=0, le=logic_map.MAX_SENSORS, description="Default: same as cells_per_board."
    )
    poll_interval_s: float = Field(1.0, gt=0, le=60, description="One scan of every board.")
    timeout_s: float = Field(0.2, gt=0, le=10, description="Reply timeout per request.")
    retries: int = Field(
        2,
        ge=0,
        le=5,
        description="Retries of a failed read within the same poll cycle before the board "
        "counts a failure (not for a board already offline).",
    )
    offline_after: int = Field(3, ge=1, le=100, description="Consecutive failures.")

    @model_validator(mode="after")
    def _check_boards(self) -> LogicSection:
        n = logic_map.MAX_BOARDS
        if isinstance(self.boards, int) and not 1 <= self.boards <= n:
            raise ValueError(f"boards: 1..{n} boards (the chain addresses at most {n})")
        if isinstance(self.boards, list) and len(self.boards) > n:
            raise ValueError(f"boards: at most {n} addresses")
        addrs = self.addresses
        if not addrs:
            raise ValueError("boards: at least one board")
        if len(set(addrs)) != len(addrs):
            raise ValueError("boards: duplicate address")
        if any(not 1 <= a <= logic_map.MAX_BOARDS for a in addrs):
            raise ValueError(f"boards: addresses must be 1..{logic_map.MAX_BOARDS}")
        return self

    @property
    def addresses(self) -> list[int]:
        """Board addresses to poll."""
        return list(range(1, self.boards + 1)) if isinstance(self.boards, int) else self.boards

    @property
    def sensors(self) -> int:
        """Temperature sensors per board."""
        return self.cells_per_board if self.sensors_per_board is None else self.sensors_per_board


class SimulatorSection(Section):
    """The embedded battery simulator (used when `logic.port` is null)."""

    chemistry: Literal["lfp", "nmc"] = Field("lfp", description="Simulated cell chemistry.")
    capacity_ah: float = Field(100.0, gt=0, description="Nominal cell capacity.")
    soc: SocFraction = Field(
        0.6, ge=0, le=1, description="Start state of charge: 0.6, 60 or `60 %`."
    )
    temperature_c: float = Field(25.0, description="Every temperature sensor at start.")
    current_a: float = Field(0.0, description="Constant pack current, + = charging.")
    current_amplitude_a: float = Field(
        20.0, ge=0, description="Amplitude of a slow sine added to current_a (0 = constant)."
    )
    current_period_s: float = Field(600.0, gt=0, description="Period of that sine.")
    humidity_pct: float = Field(40.0, ge=0, le=100, description="Simulated humidity.")
    seed: int = Field(1, description="Seed of the cells' capacity/resistance spread.")


class GatewayConfig(BaseSettings):
    """The whole configuration."""

    model_config = SettingsConfigDict(
        env_prefix="BMSGW_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    gateway: GatewaySection = Field(default_factory=GatewaySection)
    mqtt: MqttSection = Field(default_factory=MqttSection)
    metrics: MetricsSection = Field(default_factory=MetricsSection)
    logic: LogicSection = Field(default_factory=LogicSection)
    simulator: SimulatorSection = Field(default_factory=SimulatorSection)
    drivers: DriversSection = Field(default_factory=DriversSection)
    board_io: BoardIoSection = Field(default_factory=BoardIoSection)
    current_sensor: CurrentSensorSection = Field(default_factory=CurrentSensorSection)
    humidity_sensor: HumiditySensorSection = Field(default_factory=HumiditySensorSection)
    temperature_sensor: TemperatureSensorSection = Field(default_factory=TemperatureSensorSection)
    homeassistant: HomeAssistantSection = Field(default_factory=HomeAssistantSection)
    commands: CommandsSection = Field(default_factory=CommandsSection)
    modbus: ModbusSection = Field(default_factory=ModbusSection)
    can: CanSection = Field(default_factory=CanSection)
    modbus_server: ModbusServerSection = Field(default_factory=ModbusServerSection)
    pack: PackSection = Field(default_factory=PackSection)
    protections: ProtectionsSection = Field(default_factory=ProtectionsSection)
    charge_control: ChargeControlSection = Field(default_factory=ChargeControlSection)
    discharge_control: DischargeControlSection = Field(default_factory=DischargeControlSection)
    heater: HeaterSection = Field(default_factory=HeaterSection)
    cooler: CoolerSection = Field(default_factory=CoolerSection)
    balancing: BalancingSection = Field(default_factory=BalancingSection)
    relays: RelaysSection = Field(default_factory=RelaysSection)
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    inputs: InputsSection = Field(default_factory=InputsSection)
    engine: EngineSection = Field(default_factory=EngineSection)
    limits: LimitsSection = Field(default_factory=LimitsSection)
    soc: SocSection = Field(default_factory=SocSection)
    signal_levels: SignalLevelsSection = Field(default_factory=SignalLevelsSection)
    web: WebSection = Field(default_factory=WebSection)
    history: HistorySection = Field(default_factory=HistorySection)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Environment beats the file (which arrives as init kwargs)."""
        return env_settings, init_settings, file_secret_settings

    @model_validator(mode="after")
    def _cross_section_checks(self) -> GatewayConfig:
        """Run every check that spans sections here, so `check-config` and `run` agree.

        The control checks (a value against another, chemistry defaults filled in) live
        with the values they resolve, in `gateway.control.settings.resolve`.
        """
        try:
            resolve(self)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        return self

    @property
    def embedded_simulator(self) -> bool:
        """True when the gateway runs against its in-process Logic simulator.

        In bridge mode a real BMS Main 2.x owns the Logic bus, so there is none.
        """
        return self.logic.port is None and self.gateway.mode == "controller"


def load_config(
    path: Path | None = None,
    overrides: dict[str, Any] | None = None,
    env: bool = True,
) -> GatewayConfig:
    """Build the configuration from a file (optional), overrides and the environment.

    Raises:
        ConfigError: the file is unreadable or invalid; the message lists each bad key.
    """
    source = read_yaml(path, "config file") if path is not None else None
    data: dict[str, Any] = source.data if source is not None else {}
    if overrides:
        data = deep_merge(data, overrides)
    if bad := [k for k in data if not isinstance(k, str)]:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}top-level key {bad[0]!r} is not a section name")
    try:
        if env:
            config = GatewayConfig(**data)
        else:
            saved = {k: v for k, v in os.environ.items() if k.upper().startswith("BMSGW_")}
            for k in saved:
                del os.environ[k]
            try:
                config = GatewayConfig(**data)
            finally:
                os.environ.update(saved)
    except ValidationError as err:
        lines = format_validation_error(err, GatewayConfig, source)
        raise ConfigError("\n".join(lines)) from None
    except RecursionError:
        where = f"{path}: " if path is not None else ""
        raise ConfigError(f"{where}values nested too deeply") from None
    state_dir = config.gateway.state_dir.expanduser()
    if not state_dir.is_absolute():  # relative to the config file, not to the cwd
        base = path.resolve().parent if path is not None else Path.cwd()
        state_dir = base / state_dir
    config.gateway.state_dir = state_dir
    return config
