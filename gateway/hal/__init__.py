"""Hardware drivers behind small Protocols: relays, discrete I/O, ADC, indicators."""
