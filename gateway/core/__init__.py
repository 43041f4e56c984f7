"""The middle of the data flow: clock, events, bus, state."""
