"""Outputs: MQTT, Prometheus, CAN, Modbus server, Home Assistant discovery."""
