"""Config sections of the relays, outputs and discrete inputs (`relays`, `outputs`, `inputs`).

Public keys and values: docs/protections.md. A relay or an output is assigned a function
(`RelayFunction`: a contactor, the heater/cooler or any engine signal); an input carries
one `InputSignal`, optionally inverted. YAML integer keys (`1:`) are accepted.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, model_validator

from gateway.board import DEFAULT_RELAY_FUNCTIONS
from gateway.control.names import SIGNAL_NAMES
from gateway.core.section import Section

# Input signals a discrete input (or a point `override.<signal>`) can carry.
InputSignal = Literal[
    "none",
    "battery_cover",
    "charger_connected",
    "power_down_request",
    "inhibit_charging",
    "inhibit_discharging",
    "charge_contactor_feedback",
    "discharge_contactor_feedback",
    "charge_request",
    "discharge_request",
    "balancing_request",
    "go_safe",
]
INPUT_SIGNALS: tuple[str, ...] = get_args(InputSignal)

CONTACTOR_FUNCTIONS: tuple[str, ...] = (
    "discharge_contactor",
    "allow_charging",
    "charge_contactor",
    "heater",
    "cooler",
)
EXTRA_SIGNALS: tuple[str, ...] = ("cooler", "end_of_charge", "go_safe", "any_error")
OUTPUT_FUNCTIONS: tuple[str, ...] = (
    "none",
    *CONTACTOR_FUNCTIONS,
    *(s for s in (*SIGNAL_NAMES, *EXTRA_SIGNALS) if s not in CONTACTOR_FUNCTIONS),
)


def _int_keys(data: Any) -> Any:
    """Accept YAML integer keys (`1:`) for fields aliased "1".."4"."""
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    return data


class _Numbered(Section):
    @model_validator(mode="before")
    @classmethod
    def _keys(cls, data: Any) -> Any:
        return _int_keys(data)


RelayFunction = Literal[
    "none",
    "discharge_contactor",
    "allow_charging",
    "charge_contactor",
    "heater",
    "cooler",
    "charge_allowed",
    "discharge_allowed",
    "charger_connected",
    "balancing",
    "low_soc",
    "high_charging_current",
    "critical_error",
    "end_of_charge",
    "go_safe",
    "any_error",
]


def _default_relay(n: int) -> Any:
    return Field(DEFAULT_RELAY_FUNCTIONS[n], alias=str(n))  # the board's default (gateway.board)


class RelaysSection(_Numbered):
    """`relays.<1-4>`: what each relay does (seed defaults: 1 DCH, 2 ACH, 3 CH, 4 heater)."""

    r1: RelayFunction = _default_relay(1)
    r2: RelayFunction = _default_relay(2)
    r3: RelayFunction = _default_relay(3)
    r4: RelayFunction = _default_relay(4)

    def functions(self) -> dict[int, str]:
        """Relay number -> function."""
        return {1: self.r1, 2: self.r2, 3: self.r3, 4: self.r4}

    @model_validator(mode="after")
    def _unique(self) -> RelaysSection:
        used = [f for f in self.functions().values() if f in CONTACTOR_FUNCTIONS]
        if len(used) != len(set(used)):
            raise ValueError("a contactor function may drive only one relay")
        return self


class OutputsSection(_Numbered):
    """`outputs.<1-4>`: the signal each discrete output follows."""

    o1: RelayFunction = Field("none", alias="1")
    o2: RelayFunction = Field("none", alias="2")
    o3: RelayFunction = Field("none", alias="3")
    o4: RelayFunction = Field("none", alias="4")

    def functions(self) -> dict[int, str]:
        """Output number -> function."""
        return {1: self.o1, 2: self.o2, 3: self.o3, 4: self.o4}


class InputAssignment(Section):
    """One discrete input: the signal it carries and whether it is inverted."""

    signal: InputSignal = "none"
    invert: bool = Field(False, description="True: an open contact means the signal is active.")


def _input() -> Any:
    return Field(default_factory=InputAssignment)


class InputsSection(_Numbered):
    """`inputs.<1-4>`: `{signal, invert}` per discrete input."""

    i1: InputAssignment = Field(default_factory=InputAssignment, alias="1")
    i2: InputAssignment = Field(default_factory=InputAssignment, alias="2")
    i3: InputAssignment = Field(default_factory=InputAssignment, alias="3")
    i4: InputAssignment = Field(default_factory=InputAssignment, alias="4")

    def assignments(self) -> dict[int, InputAssignment]:
        """Input number -> assignment."""
        return {1: self.i1, 2: self.i2, 3: self.i3, 4: self.i4}

    @model_validator(mode="after")
    def _unique(self) -> InputsSection:
        used = [a.signal for a in self.assignments().values() if a.signal != "none"]
        if len(used) != len(set(used)):
            raise ValueError("a signal may be assigned to only one input")
        return self
