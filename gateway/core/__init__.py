"""The ground floor: clock, events, bus, state store, errors, plugin registry, supervision,
config building blocks. Imports nothing above it (type-only imports aside)."""
