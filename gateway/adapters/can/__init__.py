"""CAN bus: python-can adapter, DBC decoding, inverter, charger and CANopen protocols.

The component lives in `gateway.adapters.can.adapter` (entry point `can`); this package
init stays import-light because `gateway.config` imports the section model from here.
"""
