"""Inputs: each adapter reads a bus or device and publishes typed events on the bus."""
