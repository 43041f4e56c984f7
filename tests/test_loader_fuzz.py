"""Loaders never throw (issue 9 item 8): malformed config, profile and state files.

Every generated file either loads or gives a `ConfigError` naming the file (never another
exception), and no message repeats the MQTT password planted in the file. State files of the
wrong shape are corrupt (the safe reading), never "empty". CI runs a bounded number of
examples; BMSGW_SLOW=1 runs 10,000 of each.
"""

from __future__ import annotations

import json
import os
import tempfile
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gateway.config import GatewayConfig, load_config
from gateway.control.latches import PERSISTENCE_FAULT, load_latched
from gateway.control.soc import load_soc
from gateway.core.errors import ConfigError
from gateway.protocols.profiles import load_profile

SLOW = os.environ.get("BMSGW_SLOW") == "1"
EXAMPLES = 10_000 if SLOW else 60
SECRET = "Pw-7c1d-NEVER-ECHO"
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
_DIR = Path(tempfile.mkdtemp(prefix="bmsgw-fuzz-"))


def _key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, f in model.model_fields.items():
        key = (*prefix, f.alias or name)
        out.append(key)
        for arg in (f.annotation, *typing.get_args(f.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out.extend(_key_paths(arg, key))
    return out


KEY_PATHS = _key_paths(GatewayConfig)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["lfp", "nmc", "controller", "bridge", "/dev/ttyUSB0", "1e999", "0x10"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _nest(items: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path, value in items:
        node = root
        for part in path[:-1]:
            nxt = node.get(part)
            if not isinstance(nxt, dict):
                nxt = node[part] = {}
            node = nxt
        node[path[-1]] = value
    return root


configs = st.builds(
    _nest,
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(KEY_PATHS),
                st.lists(st.text(max_size=6), min_size=1, max_size=3).map(tuple),
            ),
            values,
        ),
        max_size=8,
    ),
)
secrets_in = st.sampled_from(
    [SECRET, [SECRET], {"x": SECRET}, {SECRET: 1}, 12, None, f"{SECRET}\n"]
)


def _dump(data: Any) -> bytes:
    try:
        return yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    except (yaml.YAMLError, UnicodeEncodeError, RecursionError):
        return b"{}"


def _check_config_file(path: Path) -> None:
    try:
        load_config(path, env=False)
    except ConfigError as err:
        msg = str(err)
        assert str(path) in msg, msg
        assert SECRET not in msg, msg
        assert "Traceback" not in msg and "Value error," not in msg


@FUZZ
@given(data=configs, secret=secrets_in)
def test_structured_configs_never_throw(data: dict[str, Any], secret: Any) -> None:
    mqtt = data.get("mqtt") if isinstance(data.get("mqtt"), dict) else {}
    data["mqtt"] = {**mqtt, "password": secret}
    path = _DIR / "structured.yaml"
    path.write_bytes(_dump(data))
    _check_config_file(path)


@FUZZ
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.integers(1, 300).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 300).map(
            lambda n: b"a:\n" + b"".join(b" " * i + b"b:\n" for i in range(1, n))
        ),
    ),
    line=st.integers(0, 3),
)
def test_raw_config_files_never_throw_and_never_echo_the_password(raw: bytes, line: int) -> None:
    lines = raw.split(b"\n")
    lines.insert(min(line, len(lines)), f"mqtt:\n  password: {SECRET}".encode())
    path = _DIR / "raw.yaml"
    path.write_bytes(b"\n".join(lines))
    _check_config_file(path)


point_keys = st.sampled_from(
    ["name", "address", "type", "scale", "offset", "unit", "feeds", "word_order", "byte_order",
     "function", "bits", "repeat", "format", "bcd", "missing", "description", "count"]
)  # fmt: skip
profiles = st.fixed_dictionaries(
    {
        "name": values,
        "points": st.lists(st.dictionaries(point_keys, values, max_size=6), max_size=4),
    },
    optional={"defaults": values, "blocks": values, "unknown": values, "extra": values},
)


@FUZZ
@given(data=profiles)
def test_modbus_profiles_never_throw(data: dict[str, Any]) -> None:
    path = _DIR / "profile.yaml"
    path.write_bytes(_dump(data))
    try:
        load_profile(str(path))
    except ConfigError as err:
        assert str(path) in str(err)


def test_a_non_string_top_level_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(f"mqtt:\n  password: {SECRET}\n?\n".encode())  # found by the slow fuzz
    with pytest.raises(ConfigError, match="top-level key None is not a section name"):
        load_config(path, env=False)


@pytest.mark.parametrize(
    "point",
    [
        {"name": "a{n}", "address": 0, "type": "U16", "repeat": {"count": 10**12}},
        {"name": "a{n}", "address": 0, "type": "U16", "repeat": {"count": 1e300}},
        {"name": "a", "address": 10**40, "type": "U16"},
    ],
)
def test_profile_sizes_beyond_any_device_are_errors(point: dict[str, Any]) -> None:
    path = _DIR / "big-profile.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "points": [point]}))
    with pytest.raises(ConfigError):
        load_profile(str(path))


@pytest.mark.parametrize(
    ("logic", "message"),
    [
        ({"boards": 24}, "logic.boards"),
        ({"boards": 10**30}, "logic.boards"),
        ({"boards": list(range(1, 30))}, "logic.boards"),
        ({"cells_per_board": 19}, "logic.cells_per_board"),
        ({"sensors_per_board": 10**20}, "logic.sensors_per_board"),
    ],
)
def test_sizes_beyond_the_hardware(logic: dict[str, Any], message: str, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({"logic": logic}))
    with pytest.raises(ConfigError, match=message):
        load_config(path, env=False)


state_texts = st.one_of(
    st.binary(max_size=100),
    st.builds(json.dumps, values).map(str.encode),
    st.builds(lambda v: json.dumps({"latched": v, "soc": v}), values).map(str.encode),
    st.integers(1, 5000).map(lambda n: b"[" * n + b"]" * n),
)


@FUZZ
@given(raw=state_texts)
def test_state_files_never_throw_and_wrong_shapes_are_corrupt(raw: bytes) -> None:
    state = _DIR / "state"
    state.mkdir(exist_ok=True)
    (state / "latched_errors.json").write_bytes(raw)
    (state / "soc.json").write_bytes(raw)
    latched = load_latched(state)
    soc = load_soc(state)
    assert soc is None or 0.0 <= soc <= 1.0
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        data = None
    good_shape = (
        isinstance(data, dict)
        and isinstance(data.get("latched", {}), dict)
        and all(isinstance(v, dict) for v in data.get("latched", {}).values())
    )
    if not good_shape:  # corrupt, never "nothing latched": relays stay open until acknowledged
        assert set(latched) == {PERSISTENCE_FAULT}
