"""Hardware drivers behind small Protocols: relays, discrete I/O, ADC, indicators."""

# gateway.config imports this package's `settings` module for its sections, and `settings`
# subclasses gateway.config.Section: loading gateway.config first keeps that cycle resolvable
# whichever module is imported first.
import gateway.config  # noqa: F401
