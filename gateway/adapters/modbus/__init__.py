"""Modbus client adapter: poll RTU/TCP devices through register-map profiles.

Kept import-light (the config module imports `config.py` from here); the component lives
in `gateway.adapters.modbus.adapter` (entry point `modbus` in `bms_gateway.adapters`).
"""
