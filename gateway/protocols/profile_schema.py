"""The schema of a Modbus register-map profile (the YAML document), as pydantic models.

`parse_profile` validates the mapping with these models (every error names its dotted path,
as the gateway config's do: `points.3.address: ...`), expands `repeat`, applies `defaults`
and then checks what spans entries (duplicate names, overlapping points, points outside every
block). The result is the plain `Profile` the codec in `gateway.protocols.modbus_profile`
works on. See docs/modbus.md for the format.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationError, field_validator, model_validator

from gateway.core.errors import ConfigError
from gateway.core.section import Section, format_validation_error
from gateway.core.yaml_source import YamlSource
from gateway.protocols.modbus_profile import (
    FEEDS,
    READ_FUNCTIONS,
    SCALAR_WIDTH,
    U8_RE,
    Block,
    Point,
    Profile,
    Unknown,
    WordOrder,
)

MAX_REPEAT = 1000  # no device has more registers than a 16-bit address space anyway
NAME_PATTERN = r"^[A-Za-z0-9_.\-\[\]{}]+$"
_NAME_RE = re.compile(NAME_PATTERN)


def _register_int(value: Any) -> Any:
    """An integer as written in a register map: 8192 or "0x2000" (never a bool)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")  # noqa: TRY004 (pydantic)
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f"expected an integer (e.g. 8192 or 0x2000), got {value!r}") from None
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected an integer (e.g. 8192 or 0x2000), got {value!r}")
    return value


RegInt = Annotated[int, BeforeValidator(_register_int)]
Address = Annotated[int, BeforeValidator(_register_int), Field(ge=0, le=0xFFFF)]
Function = Annotated[int, BeforeValidator(_register_int)]


def _check_function(value: int | None) -> int | None:
    if value is not None and value not in READ_FUNCTIONS:
        raise ValueError(f"function must be 3 (holding) or 4 (input), got {value}")
    return value


class RepeatSpec(Section):
    """`repeat`: copies of a point at `address + i * stride`, `{n}` = first + i in names."""

    count: RegInt = Field(1, ge=1, le=MAX_REPEAT)
    stride: RegInt = Field(1, ge=0, le=0xFFFF)
    first: RegInt = Field(1, ge=0, le=0xFFFF)


class PointSpec(Section):
    """One `points` entry."""

    name: str = Field(pattern=NAME_PATTERN)
    address: Address
    type: str
    function: Function | None = None
    word_order: WordOrder | None = None
    byte_order: WordOrder = "low_first"
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    feeds: str | None = None
    bits: dict[RegInt, str] = Field(default_factory=dict)
    format: str | None = None
    bcd: bool = False
    missing: RegInt | None = Field(None, ge=0, le=0xFFFFFFFF)
    description: str = ""
    repeat: RepeatSpec | None = None

    _function = field_validator("function")(_check_function)

    @field_validator("type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value in SCALAR_WIDTH:
            return value
        if (m := U8_RE.match(value)) is None:
            kinds = ", ".join(SCALAR_WIDTH)
            raise ValueError(f"type must be one of {kinds} or U8[n], got {value!r}")
        if not 1 <= int(m.group(1)) <= 250:
            raise ValueError("U8[n] needs 1 <= n <= 250")
        return value

    @field_validator("scale")
    @classmethod
    def _scale(cls, value: float) -> float:
        if value == 0 or not math.isfinite(value):
            raise ValueError("scale must be finite and non-zero")
        return value

    @field_validator("offset")
    @classmethod
    def _offset(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("offset must be finite")
        return value

    @field_validator("feeds")
    @classmethod
    def _feeds(cls, value: str | None) -> str | None:
        if value is not None and value not in FEEDS and not value.startswith("extra."):
            raise ValueError(f"feeds must be one of {', '.join(FEEDS)} or extra.<key>")
        return value

    @model_validator(mode="after")
    def _bits(self) -> PointSpec:
        if not self.bits:
            return self
        if not self.type.startswith("bitfield"):
            raise ValueError("bits are only allowed on bitfield16/bitfield32")
        width = 16 if self.type == "bitfield16" else 32
        for bit, bit_name in self.bits.items():
            if not 0 <= bit < width:
                raise ValueError(f"bit {bit} outside 0..{width - 1}")
            if not _NAME_RE.match(bit_name.replace("{n}", "0")):
                raise ValueError(f"bad bit name {bit_name!r}")
        return self


class BlockSpec(Section):
    """One `blocks` entry: a read request the profile asks for."""

    function: Function | None = None
    start: Address
    count: RegInt = Field(ge=1, le=0x10000)
    every: RegInt = Field(1, ge=1, le=1_000_000)

    _function = field_validator("function")(_check_function)


class UnknownSpec(Section):
    """One `unknown` entry: a range the vendor does not document (left out on purpose)."""

    function: Function | None = None
    start: Address
    count: RegInt = Field(1, ge=1, le=0x10000)
    note: str = ""


class DefaultsSpec(Section):
    """`defaults`: link settings and point defaults."""

    unit_id: RegInt | None = Field(None, ge=0, le=247)
    port: RegInt | None = Field(None, ge=1, le=65535)
    baudrate: RegInt | None = Field(None, ge=300, le=921600)
    parity: Literal["N", "E", "O"] | None = None
    stopbits: Literal[1, 2] | None = None
    function: Function = 4
    word_order: WordOrder = "low_first"

    _function = field_validator("function")(_check_function)


class ProfileSpec(Section):
    """A whole profile document."""

    name: str | None = None
    description: str = ""
    defaults: DefaultsSpec = Field(default_factory=DefaultsSpec)
    blocks: list[BlockSpec] = Field(default_factory=list)
    points: list[PointSpec] = Field(min_length=1)
    unknown: list[UnknownSpec] = Field(default_factory=list)


def _points(spec: PointSpec, defaults: DefaultsSpec, where: str) -> list[Point]:
    """The point(s) of one entry, `repeat` expanded and defaults applied."""
    rep = spec.repeat or RepeatSpec()
    out = []
    for i in range(rep.count):
        n = str(rep.first + i) if spec.repeat else "{n}"

        def expand(text: str, n: str = n) -> str:
            return text.replace("{n}", n)

        point = Point(
            name=expand(spec.name),
            address=spec.address + i * rep.stride,
            type=spec.type,
            function=defaults.function if spec.function is None else spec.function,
            word_order=spec.word_order or defaults.word_order,
            byte_order=spec.byte_order,
            scale=spec.scale,
            offset=spec.offset,
            unit=spec.unit,
            feeds=spec.feeds,
            bits={b: expand(name) for b, name in spec.bits.items()},
            fmt=spec.format,
            bcd=spec.bcd,
            missing=spec.missing,
            description=spec.description,
        )
        if point.end > 0x10000:
            raise ConfigError(f"{where}: point {point.name!r} ends beyond register 65535")
        out.append(point)
    return out


def parse_profile(
    data: Mapping[str, Any], source: str = "<profile>", yaml: YamlSource | None = None
) -> Profile:
    """Build a `Profile` from its mapping form (the YAML document; `yaml` adds line numbers).

    Raises:
        ConfigError: the profile is malformed; each line names the dotted path that is wrong.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a profile must be a mapping")
    try:
        spec = ProfileSpec.model_validate(dict(data))
    except ValidationError as err:
        lines = format_validation_error(err, ProfileSpec, yaml)
        if yaml is None:
            lines = [f"{source}: {line}" for line in lines]
        raise ConfigError("\n".join(lines)) from None
    d = spec.defaults
    points = [p for i, s in enumerate(spec.points) for p in _points(s, d, f"{source}: points.{i}")]
    names = [n for p in points for n in p.names()]
    if dupes := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"{source}: duplicate point names {dupes}")
    _check_overlaps(points, source)
    blocks = [
        Block(d.function if b.function is None else b.function, b.start, b.count, b.every)
        for b in spec.blocks
    ]
    if blocks:
        for p in points:
            if not any(b.covers(p) for b in blocks):
                raise ConfigError(
                    f"{source}: point {p.name!r} (0x{p.address:04X}) lies in no block"
                )
    unknown = tuple(
        Unknown(d.function if u.function is None else u.function, u.start, u.count, u.note)
        for u in spec.unknown
    )
    return Profile(
        name=spec.name or source,
        description=spec.description,
        points=tuple(points),
        blocks=tuple(blocks),
        defaults=d.model_dump(exclude_none=True),
        unknown=unknown,
    )


def _check_overlaps(points: Sequence[Point], source: str) -> None:
    for fc in READ_FUNCTIONS:
        ordered = sorted((p for p in points if p.function == fc), key=lambda p: p.address)
        for a, b in itertools.pairwise(ordered):
            if b.address < a.end:
                raise ConfigError(f"{source}: points {a.name!r} and {b.name!r} overlap")
