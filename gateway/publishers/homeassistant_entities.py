"""Home Assistant entities, declared once as data: the `DESCRIPTIONS` table.

One `EntityDescription` per entity the gateway offers: its component, name, the Jinja
template that reads its state from the retained `state` JSON, its command topic name (for
controls) and a `has_fn(config)` saying whether the config produces it. The numeric pack
sensors are the rows of the measurement table (`gateway.publishers.measurements`); relays,
inputs and outputs follow the board (`gateway.board`); one problem sensor per error name.
`entity_descriptions(config)` keeps the rows the config produces and adds the optional
per-cell rows. `gateway.publishers.homeassistant` turns them into discovery messages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from gateway.board import INPUT_COUNT, OUTPUT_COUNT
from gateway.board import RELAYS as BOARD_RELAYS
from gateway.control.commands import ACK, GO_SAFE
from gateway.control.names import ERROR_NAMES
from gateway.publishers.commands_section import HA_IDENTITY
from gateway.publishers.measurements import MEASUREMENTS

if TYPE_CHECKING:
    from gateway.config import GatewayConfig

RELAYS = BOARD_RELAYS
INPUTS = INPUT_COUNT  # dry-contact discrete inputs on the board
OUTPUTS = OUTPUT_COUNT  # +5 V discrete outputs on the board

Component = Literal["sensor", "binary_sensor", "switch", "button"]


def _always(_config: GatewayConfig) -> bool:
    return True


def _per_cell(config: GatewayConfig) -> bool:
    return config.homeassistant.per_cell_entities


def _ha_trusted(config: GatewayConfig) -> bool:
    """HA's identity topic authorises less-safe commands (commands.trusted_identities)."""
    return HA_IDENTITY in config.commands.trusted_identities


def _go_safe_switchable(config: GatewayConfig) -> bool:
    """Go-safe as a switch: commands on and `off` (release) accepted from HA."""
    c = config.commands
    return c.enabled and c.allow_go_safe_release and _ha_trusted(config)


def _go_safe_request_only(config: GatewayConfig) -> bool:
    """Go-safe as a button: commands on, but `off` not accepted from HA."""
    return config.commands.enabled and not _go_safe_switchable(config)


def _ack_allowed(config: GatewayConfig) -> bool:
    return config.commands.enabled and config.commands.allow_ack and _ha_trusted(config)


@dataclass(frozen=True, kw_only=True)
class EntityDescription:
    """One Home Assistant entity: state read from the retained `state` JSON, commands sent
    to `<prefix>/<id>/command/<command>`; a field left None is left out of the config."""

    key: str  # object_id; unique_id is `<node_id>_<key>`
    component: Component
    name: str  # without the device name: Home Assistant prefixes it
    value_template: str | None = None  # None: no state (a button)
    command: str | None = None  # command topic name (gateway.control.commands.COMMANDS)
    payload_on: str | None = None  # binary_sensor: state payloads; switch: command payloads
    payload_off: str | None = None
    state_on: str | None = None  # switch: what `value_template` renders for on/off
    state_off: str | None = None
    payload_press: str | None = None  # button
    device_class: str | None = None
    state_class: str | None = None
    unit: str | None = None
    entity_category: Literal["diagnostic", "config"] | None = None
    icon: str | None = None
    precision: int | None = None  # suggested_display_precision
    has_fn: Callable[[GatewayConfig], bool] = _always
    name_fn: Callable[[GatewayConfig], str] | None = None  # a name that follows the config


def _value(key: str) -> str:
    return "{{ value_json." + key + " }}"


def _flag(test: str) -> str:
    """Binary-sensor template: ON when the Jinja expression `test` is true."""
    return "{{ 'ON' if " + test + " else 'OFF' }}"


def _tristate(expr: str) -> str:
    """Binary-sensor template: ON/OFF from a value that may be absent or null (-> unknown)."""
    return (
        "{% set v = " + expr + " %}"
        "{{ None if v is undefined or v is none else ('ON' if v else 'OFF') }}"
    )


def _listed(collection: str, id_key: str, number: int, attr: str) -> str:
    """Jinja expression: `attr` of the list item whose `id_key` is `number` (else undefined)."""
    return (
        f"value_json.{collection} | selectattr('{id_key}', 'equalto', {number}) "
        f"| map(attribute='{attr}') | first"
    )


def _humanize(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _sensor(key: str, name: str, **kw: Any) -> EntityDescription:
    return EntityDescription(key=key, component="sensor", name=name, **kw)


def _binary(key: str, name: str, template: str, **kw: Any) -> EntityDescription:
    return EntityDescription(
        key=key, component="binary_sensor", name=name, value_template=template,
        payload_on="ON", payload_off="OFF", **kw,
    )  # fmt: skip


def _switch(key: str, name: str, command: str, template: str, **kw: Any) -> EntityDescription:
    """A switch whose state is an ON/OFF/None template (`_tristate`) on the `state` JSON."""
    return EntityDescription(
        key=key, component="switch", name=name, value_template=template, command=command,
        state_on="ON", state_off="OFF", **kw,
    )  # fmt: skip


def _button(key: str, name: str, command: str, press: str, **kw: Any) -> EntityDescription:
    return EntityDescription(
        key=key, component="button", name=name, command=command, payload_press=press, **kw
    )


def _relay_name(n: int) -> Callable[[GatewayConfig], str]:
    def name(config: GatewayConfig) -> str:
        function = config.relays.functions().get(n, "none")
        return f"Relay {n}" if function == "none" else f"{_humanize(function)} (relay {n})"

    return name


def _input_name(n: int) -> Callable[[GatewayConfig], str]:
    def name(config: GatewayConfig) -> str:
        signal = config.inputs.assignments()[n].signal
        return f"Input {n}" if signal == "none" else f"Input {n} ({_humanize(signal).lower()})"

    return name


def _output_name(n: int) -> Callable[[GatewayConfig], str]:
    def name(config: GatewayConfig) -> str:
        function = config.outputs.functions().get(n, "none")
        return (
            f"Output {n}" if function == "none" else f"Output {n} ({_humanize(function).lower()})"
        )

    return name


M = "measurement"
TOTAL = "total_increasing"

# What a relay's state means, by its function (the same words as the web dashboard).
_STATE_WORDS = (
    "{% set words = {'charge_contactor': ['charging allowed', 'charging blocked'], "
    "'allow_charging': ['charging allowed', 'charging blocked'], "
    "'discharge_contactor': ['discharging allowed', 'discharging blocked'], "
    "'heater': ['heating', 'heater off'], 'cooler': ['cooling', 'cooler off']} %}"
)


def _relay_reason(n: int) -> str:
    """Text-sensor template: "charging blocked: low_temperature_charge" (None when unknown)."""
    return (
        _STATE_WORDS
        + "{% set r = value_json.relays | selectattr('relay', 'equalto', "
        + str(n)
        + ") | first %}"
        "{% if r is undefined %}{{ None }}{% else %}"
        "{% set w = words[r.function] if r.function in words else ['closed', 'open'] %}"
        "{{ (w[0] if r.closed else w[1]) ~ ': ' ~ ((r.reasons if r.reasons is defined else [])"
        " | join(', ') or '-') }}{% endif %}"
    )


def _reason_name(n: int) -> Callable[[GatewayConfig], str]:
    relay = _relay_name(n)
    return lambda config: f"{relay(config)} reason"


def _measured(
    key: str, name: str, template: str, device_class: str, unit: str, precision: int, **kw: Any
) -> EntityDescription:
    """A numeric sensor: device class, unit and display precision, state class measurement."""
    return _sensor(key, name, value_template=template, device_class=device_class,
                   state_class=M, unit=unit, precision=precision, **kw)  # fmt: skip


DESCRIPTIONS: tuple[EntityDescription, ...] = (
    # --- pack values and limits: one sensor per row of the measurement table -----------
    *(
        _sensor(m.key, m.name, value_template=_value(m.path), device_class=m.device_class,
                state_class=TOTAL if m.kind == "total" else M, unit=m.unit,
                precision=m.display_precision)
        for m in MEASUREMENTS
        if "homeassistant" in m.outputs
    ),
    # --- control signals --------------------------------------------------------------
    _binary("charge_allowed", "Charge allowed", _tristate("value_json.signals.charge_allowed"),
            icon="mdi:battery-arrow-up"),
    _binary("discharge_allowed", "Discharge allowed",
            _tristate("value_json.signals.discharge_allowed"), icon="mdi:battery-arrow-down"),
    # --- relays (by function), discrete inputs and outputs ----------------------------
    *(
        _binary(f"relay_{n}", f"Relay {n}", _tristate(_listed("relays", "relay", n, "closed")),
                icon="mdi:electric-switch", name_fn=_relay_name(n))
        for n in RELAYS
    ),
    *(
        _sensor(f"relay_{n}_reason", f"Relay {n} reason", value_template=_relay_reason(n),
                icon="mdi:information-outline", name_fn=_reason_name(n))
        for n in RELAYS
    ),
    *(
        _binary(f"input_{n}", f"Input {n}", _tristate(_listed("inputs", "input", n, "closed")),
                icon="mdi:electric-switch", name_fn=_input_name(n))
        for n in range(1, INPUTS + 1)
    ),
    *(
        _binary(f"output_{n}", f"Output {n}", _tristate(_listed("outputs", "output", n, "on")),
                icon="mdi:export", name_fn=_output_name(n))
        for n in range(1, OUTPUTS + 1)
    ),
    # --- one problem sensor per protection/error ---------------------------------------
    *(
        _binary(f"error_{error}", _humanize(error), _flag(f"'{error}' in value_json.errors"),
                device_class="problem")
        for error in ERROR_NAMES
    ),
    # --- gateway health ---------------------------------------------------------------
    _sensor("boards_online", "Boards online", value_template=_value("boards_online"),
            state_class=M, entity_category="diagnostic", icon="mdi:expansion-card"),
    _sensor("mode", "Mode", value_template=_value("mode"),
            entity_category="diagnostic", icon="mdi:cog"),
    _sensor("last_update", "Last update", value_template=_value("timestamp"),
            device_class="timestamp", entity_category="diagnostic"),
    # --- controls: the MQTT command topics (only what `commands` accepts) --------------
    _switch("go_safe", "Go safe", GO_SAFE, _tristate("value_json.signals.go_safe"),
            payload_on="on", payload_off="off", entity_category="config",
            icon="mdi:shield-alert", has_fn=_go_safe_switchable),
    _button("go_safe", "Go safe", GO_SAFE, "on", entity_category="config",
            icon="mdi:shield-alert", has_fn=_go_safe_request_only),
    _button("ack", "Acknowledge errors", ACK, "all", entity_category="config",
            icon="mdi:check-all", has_fn=_ack_allowed),
)  # fmt: skip


def _board_expr(board: int) -> str:
    return f"value_json.boards | selectattr('board', 'equalto', {board}) | first"


def _cell_rows(config: GatewayConfig) -> Iterator[EntityDescription]:
    """Per-cell voltage and temperature sensors (only with `per_cell_entities`)."""
    for board in config.logic.addresses:
        for cell in range(1, config.logic.cells_per_board + 1):
            yield _measured(
                f"board_{board}_cell_{cell}_voltage",
                f"Board {board} cell {cell} voltage",
                _indexed(board, "cell_voltages", cell - 1), "voltage", "V", 3,
                has_fn=_per_cell,
            )  # fmt: skip
        for sensor in range(1, config.logic.sensors + 1):
            yield _measured(
                f"board_{board}_temperature_{sensor}",
                f"Board {board} temperature {sensor}",
                _indexed(board, "temperatures", sensor - 1), "temperature", "°C", 1,
                has_fn=_per_cell,
            )  # fmt: skip


def _indexed(board: int, field: str, index: int) -> str:
    """Template for `boards[board].field[index]`, `None` (= unknown in HA) when absent."""
    return (
        f"{{% set b = {_board_expr(board)} %}}"
        f"{{{{ b.{field}[{index}] if b is defined and (b.{field} | length) > {index} "
        "else None }}"
    )


def entity_descriptions(config: GatewayConfig) -> list[EntityDescription]:
    """Return the entities this config produces, in announce order."""
    rows = [*DESCRIPTIONS, *_cell_rows(config)]
    return [d for d in rows if d.has_fn(config)]
