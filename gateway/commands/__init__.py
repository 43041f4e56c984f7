"""Sub-commands of the `bms-gateway` CLI."""
