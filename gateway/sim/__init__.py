"""The battery simulator: a pack model and the devices that serve it (Logic boards, ...)."""

from gateway.sim.pack import PackModel

__all__ = ["PackModel"]
