"""Scenario files: battery stories run on virtual time against the real engine, the Logic
boards polled by the real Logic adapter over an in-memory link.

Extension API (for other subsystems): `registry.register_set_action`,
`registry.register_expectation`, `registry.register_extension`, loaded from the entry-point
group `bms_gateway.scenario`; see `gateway.scenario.registry`.
"""
