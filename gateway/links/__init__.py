"""Transports shared by the adapters, the simulators and the servers: Modbus client and server
links, pty pairs. They move bytes or registers; what the bytes mean lives in `protocols/`."""
