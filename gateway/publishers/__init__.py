"""Outputs: MQTT (state, events, commands), Home Assistant discovery, Prometheus, the Modbus
server. Their numeric pack values come from one table (`measurements`), their MQTT topics
from one module (`topics`). (The CAN inverter/charger output lives in `adapters/can/`.)"""
