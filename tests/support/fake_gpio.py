"""A fake GPIO chip: stands in for `gpiod.request_lines` (no GPIO chip or gpio-sim on CI).

It receives the real `gpiod.LineSettings` the driver builds and models what the kernel does
with them: an output line's physical level is its logical value XOR `active_low`, an output
starts at `output_value`, an input reads its physical level XOR `active_low`, a line can be
requested only once, and a released request refuses further calls.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import gpiod
from gpiod.line import Direction, Value


class FakeLineRequest:
    """What `gpiod.request_lines` returns, for the offsets of one request."""

    def __init__(self, chip: FakeChip, settings: dict[int, gpiod.LineSettings]) -> None:
        self.chip = chip
        self.settings = settings
        self.released = False

    def _check(self, offset: int) -> gpiod.LineSettings:
        if self.released:
            raise gpiod.RequestReleasedError()
        if offset not in self.settings:
            raise ValueError(f"line {offset} not in this request")
        return self.settings[offset]

    def set_value(self, offset: int, value: Value) -> None:
        """Drive an output line."""
        s = self._check(offset)
        if s.direction != Direction.OUTPUT:
            raise PermissionError(f"line {offset} is not an output")
        self.chip.levels[offset] = (value == Value.ACTIVE) != s.active_low

    def get_values(self, offsets: Iterable[int] | None = None) -> list[Value]:
        """Read lines (logical values)."""
        result = []
        for o in self.settings if offsets is None else offsets:
            s = self._check(o)
            active = self.chip.levels.get(o, False) != s.active_low
            result.append(Value.ACTIVE if active else Value.INACTIVE)
        return result

    def release(self) -> None:
        """Free the lines."""
        if self.released:
            raise gpiod.RequestReleasedError()
        self.released = True
        for o in self.settings:
            self.chip.owners.pop(o, None)


class FakeChip:
    """One GPIO chip with `num_lines` lines; `levels` holds each line's physical level."""

    def __init__(self, path: str = "/dev/gpiochip0", num_lines: int = 32) -> None:
        self.path = path
        self.num_lines = num_lines
        self.levels: dict[int, bool] = {}
        self.owners: dict[int, str] = {}
        self.requests: list[FakeLineRequest] = []

    def request_lines(
        self,
        path: str,
        config: dict[Any, gpiod.LineSettings | None],
        consumer: str | None = None,
        **_: Any,
    ) -> FakeLineRequest:
        """Mimic `gpiod.request_lines(path, config, consumer)`."""
        if path != self.path:
            raise FileNotFoundError(2, "No such file or directory", path)
        settings: dict[int, gpiod.LineSettings] = {}
        for key, s in config.items():
            for o in key if isinstance(key, tuple) else (key,):
                if not 0 <= o < self.num_lines:
                    raise ValueError(f"line {o} out of range")
                if o in self.owners:
                    raise OSError(16, "Device or resource busy")
                settings[o] = s or gpiod.LineSettings()
        for o, s in settings.items():
            self.owners[o] = consumer or "?"
            if s.direction == Direction.OUTPUT:
                self.levels[o] = (s.output_value == Value.ACTIVE) != s.active_low
        req = FakeLineRequest(self, settings)
        self.requests.append(req)
        return req
