"""Error types, named by what the caller must do (style lesson 7)."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""


class ConfigError(GatewayError):
    """The configuration is wrong: the user must fix it."""


class FatalError(GatewayError):
    """The gateway must not run on (e.g. another live gateway has the same id).

    The process stops (every task cancelled, relays opened) and exits non-zero with this
    message; a supervisor must not restart the raising component in-process.
    """


class AdapterUnavailableError(GatewayError):
    """A source or sink cannot be reached now: retry later."""


class PluginError(GatewayError):
    """A plugin name is unknown or its entry point is broken."""


class FrameError(GatewayError, ValueError):
    """A frame or register block is malformed: drop it and count it."""


class FrameTruncatedError(FrameError):
    """Fewer bytes or registers than the format needs."""


class FrameRangeError(FrameError):
    """A field holds a value outside its documented range."""


class FrameCrcError(FrameError):
    """A checksum does not match."""
