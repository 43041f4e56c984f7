"""bms-gateway: an asyncio edge gateway for the BMS Main 2.1 modular BMS."""

__version__ = "0.1.0"
__all__ = ["__version__"]
