"""What `check-config` (and `run`, `commission`) check beyond the config's own validation.

`preflight(config)` looks at the machine the way `run` will: serial devices and GPIO chips
exist and may be opened, and it warns about configurations that can never close a contactor
(a protection that needs data no configured source provides). `summary(config)` describes a
valid configuration in a few lines. Pure reads: nothing is opened for writing, no relay moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from gateway.control.settings import resolve
from gateway.core.devices import device_problem
from gateway.core.errors import ConfigError
from gateway.hal.drivers import config_warnings

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

DEVICE_KEYS = ("chip", "device", "port", "serial_port", "path")


@dataclass(frozen=True)
class Finding:
    """One result: an error (run would fail) or a warning (run works but ...)."""

    level: Literal["error", "warning"]
    key: str  # dotted config key to look at
    message: str
    retried: bool = False  # `run` starts anyway and retries (a serial port plugged in later)

    def __str__(self) -> str:
        return f"{self.level}: {self.key}: {self.message}"


def _device_findings(config: GatewayConfig) -> list[Finding]:
    paths: list[tuple[str, str, bool]] = []  # (key, path, retried by run)
    if config.gateway.mode == "controller" and config.logic.port is not None:
        paths.append(("logic.port", config.logic.port, True))
    for concern in ("relays", "outputs", "inputs", "adc", "indicators"):
        choice = getattr(config.drivers, concern)
        if choice is None or choice.backend == "sim":
            continue
        for key, value in sorted(choice.options.items()):
            if key in DEVICE_KEYS and isinstance(value, str) and value.startswith("/"):
                paths.append((f"drivers.{concern}.{key}", value, False))
    for i, dev in enumerate(config.modbus.devices):
        if dev.transport == "rtu" and dev.serial_port:
            paths.append((f"modbus.devices.{i}.serial_port", dev.serial_port, True))
    out = [
        Finding("error", key, why, retried)
        for key, path, retried in paths
        if (why := device_problem(path)) is not None
    ]
    can = config.can
    if (
        can.enabled
        and can.interface == "socketcan"
        and not Path("/sys/class/net", can.channel).exists()
    ):
        out.append(
            Finding(
                "warning",
                "can.channel",
                f"no network interface {can.channel} on this machine (`ip link show`); "
                "the gateway will keep retrying to open it",
            )
        )
    return out


def current_sources(config: GatewayConfig) -> list[str]:
    """Where the pack current comes from, as words (empty: nowhere)."""
    sources: list[str] = []
    adc = config.drivers.adc
    if adc is not None and (adc.backend != "sim" or config.embedded_simulator):
        sources.append(f"drivers.adc ({adc.backend})")
    for i, dev in enumerate(config.modbus.devices):
        try:
            from gateway.protocols.profiles import load_profile  # noqa: PLC0415

            feeds = load_profile(dev.profile).feeds()
        except ConfigError:
            continue
        if "current_a" in feeds.values():
            sources.append(f"modbus.devices.{i} ({dev.name})")
    return sources


def _never_closes(config: GatewayConfig) -> list[Finding]:
    """Settings with which the engine can never close a contactor (its data-validity rule:
    nothing closes without a fresh current reading and fresh assigned inputs)."""
    if config.gateway.mode != "controller" or config.embedded_simulator:
        return []
    out: list[Finding] = []
    if not current_sources(config):
        out.append(
            Finding(
                "warning",
                "drivers.adc",
                "no current source is configured: the engine closes no contactor without a "
                "fresh current reading (relay reason `stale_current`). Set `drivers.adc` to the "
                "board's ADC (docs/hardware.md) or add a Modbus meter that feeds current_a "
                "(`modbus.devices`)",
            )
        )
    if config.drivers.inputs.backend == "sim":
        for n, a in config.inputs.assignments().items():
            if a.signal != "none":
                out.append(
                    Finding(
                        "warning",
                        f"inputs.{n}.signal",
                        f"input {n} carries {a.signal}, but drivers.inputs is `sim` without a "
                        "simulator, so it is never read and no contactor closes (relay reason "
                        f"`stale_input_{a.signal}`). Set `drivers.inputs` (docs/hardware.md)",
                    )
                )
    return out


def _driver_warnings(config: GatewayConfig) -> list[Finding]:
    out = []
    for warning in config_warnings(config):
        key, _, message = warning.partition(": ")
        out.append(Finding("warning", key, message) if message else Finding("warning", "", key))
    return out


def preflight(config: GatewayConfig) -> list[Finding]:
    """Every finding for this config on this machine (errors first)."""
    found = _device_findings(config) + _driver_warnings(config) + _never_closes(config)
    return sorted(found, key=lambda f: f.level != "error")


def summary(config: GatewayConfig) -> list[str]:
    """A few lines saying what this config will do."""
    logic = config.logic
    boards = logic.addresses
    lines = []
    mode = config.gateway.mode
    if mode == "bridge":
        lines.append("mode: bridge (a BMS Main 2.x protects the battery; the gateway reads)")
    else:
        where = "embedded simulator" if config.embedded_simulator else logic.port
        lines.append(
            f"battery: {len(boards)} boards x {logic.cells_per_board} cells = "
            f"{len(boards) * logic.cells_per_board} cells, {config.pack.chemistry.upper()}, "
            f"{config.pack.capacity_ah:g} Ah, Logic link {where} at {logic.baudrate} Bd"
        )
        s = resolve(config)
        p = s.protections

        def lim(name: str, unit: str) -> str:
            v = p[name].threshold
            return "off" if not p[name].enable or v is None else f"{v:g} {unit}"

        lines.append(
            f"limits: cell {lim('cell_undervoltage', 'V')} .. {lim('cell_overvoltage', 'V')}, "
            f"charge current {lim('overcurrent_charge', 'A')}, discharge current "
            f"{lim('overcurrent_discharge', 'A')}, charge temperature "
            f"{lim('low_temperature_charge', '°C')} .. {lim('high_temperature_charge', '°C')}, "
            f"discharge temperature {lim('low_temperature_discharge', '°C')} .. "
            f"{lim('high_temperature_discharge', '°C')}"
        )
        relays = ", ".join(f"{n}={f}" for n, f in config.relays.functions().items())
        lines.append(f"relays: {relays}")
    drivers = ", ".join(
        f"{c}={getattr(config.drivers, c).backend if getattr(config.drivers, c) else 'none'}"
        for c in ("relays", "inputs", "adc", "outputs", "indicators")
    )
    lines.append(f"drivers: {drivers}")
    current = current_sources(config)
    lines.append(f"current from: {', '.join(current) if current else 'nowhere'}")
    outs = []
    if config.mqtt.enabled:
        outs.append(f"MQTT {config.mqtt.host}:{config.mqtt.port}")
        if config.homeassistant.enabled:
            outs.append("Home Assistant discovery")
    if config.metrics.enabled:
        outs.append(f"Prometheus {config.metrics.host}:{config.metrics.port}")
    if config.can.enabled:
        inv = config.can.inverter
        outs.append(
            f"CAN {config.can.interface}:{config.can.channel}"
            + (f" (inverter {inv.profile})" if inv.enabled else "")
        )
    if config.modbus_server.enabled:
        outs.append("Modbus server")
    lines.append(f"outputs: {', '.join(outs) if outs else 'none'}")
    lines.append(f"state: {config.gateway.state_dir}")
    return lines
