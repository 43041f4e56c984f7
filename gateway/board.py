"""The BMS Main 2.1 board's facts, declared once: relays, inputs, outputs, indicators, ADC.

Everything that counts relays, names an indicator or picks a default relay function reads it
from here (the drivers in `hal/`, the engine, the publishers, the scenario harness). A leaf
module: it imports nothing from the gateway. Numbers are 1-based as printed on the board.
See docs/hardware.md for the connector pin-out.
"""

from __future__ import annotations

RELAY_COUNT = 4
INPUT_COUNT = 4
OUTPUT_COUNT = 4

RELAYS: tuple[int, ...] = tuple(range(1, RELAY_COUNT + 1))
INPUTS: tuple[int, ...] = tuple(range(1, INPUT_COUNT + 1))
OUTPUTS: tuple[int, ...] = tuple(range(1, OUTPUT_COUNT + 1))

# Connector of each relay (one normally-open contact each), and of the discrete I/O.
RELAY_CONNECTORS: dict[int, str] = {1: "P8", 2: "P9", 3: "P6", 4: "P7"}
DISCRETE_IO_CONNECTOR = "P11"  # inputs 1-4 (dry contacts) and outputs 1-4 (+5 V, 20 mA)

# The vendor's default function of each relay (`relays.<n>` in the config).
DEFAULT_RELAY_FUNCTIONS: dict[int, str] = {
    1: "discharge_contactor",
    2: "allow_charging",
    3: "charge_contactor",
    4: "heater",
}
DEFAULT_OUTPUT_FUNCTION = "none"
DEFAULT_INPUT_SIGNAL = "none"

# Indicators DS2-DS8; DS5..DS8 follow relays 3, 4, 1 and 2.
INDICATORS: tuple[str, ...] = ("DS2", "DS3", "DS4", "DS5", "DS6", "DS7", "DS8")
RELAY_INDICATORS: dict[str, int] = {"DS5": 3, "DS6": 4, "DS7": 1, "DS8": 2}

# Analog inputs: current sensor and its reference on P12, humidity and temperature on P13.
ADC_CHANNELS: tuple[str, ...] = ("vcs", "vref", "vhs", "vts")
ADC_CONNECTORS: dict[str, str] = {"vcs": "P12", "vref": "P12", "vhs": "P13", "vts": "P13"}
SENSOR_SUPPLY_V = 5.0  # the sensor supply on P12/P13: sensor outputs stay within 0..5 V
