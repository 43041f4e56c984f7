"""StatePayload: the cached `state` encoder gives exactly the bytes of `encode(state_message)`."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import GatewayConfig, load_config
from gateway.core.clock import VirtualClock
from gateway.core.state import BoardState, GatewayState
from gateway.publishers import payloads
from gateway.publishers.payloads import StatePayload, encode, state_message
from tests.test_payloads import fixed_state


def _config() -> GatewayConfig:
    return load_config(overrides={"logic": {"boards": 3, "cells_per_board": 3}}, env=False)


def test_the_cached_encoder_gives_the_bytes_of_the_plain_one() -> None:
    clock, cfg = VirtualClock(start_s=100.0), _config()
    state = fixed_state()
    assert StatePayload(cfg).encode(state, clock) == encode(state_message(state, clock, cfg))


def test_each_board_is_encoded_once_per_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, cfg = VirtualClock(start_s=100.0), _config()
    state = fixed_state()
    built: list[int] = []
    original = payloads._board

    def counting(board: BoardState, cells: int, sensors: int) -> dict[str, object]:
        built.append(board.board)
        return original(board, cells, sensors)

    monkeypatch.setattr(payloads, "_board", counting)
    encoder = StatePayload(cfg)
    for _ in range(3):
        encoder.encode(state, clock)
    assert sorted(built) == [1, 2, 3]  # three publishes, one encoding per board
    state.boards[2].cell_voltages_v = (3.2, 3.2, 3.2)  # the next scan of board 2
    state.boards[3].online = True
    encoder.encode(state, clock)
    assert sorted(built) == [1, 2, 2, 3, 3]


Reading = tuple[bool, tuple[float, ...], tuple[float | None, ...], float | None, int]
readings = st.tuples(
    st.booleans(),
    st.lists(st.one_of(st.floats(0.0, 5.0), st.just(math.nan)), max_size=4).map(tuple),
    st.lists(st.one_of(st.none(), st.floats(-40.0, 90.0)), max_size=4).map(tuple),
    st.one_of(st.none(), st.floats(-40.0, 90.0)),
    st.integers(0, 15),
)


@given(scans=st.lists(st.dictionaries(st.integers(1, 3), readings, max_size=3), max_size=6))
def test_any_sequence_of_scans_encodes_like_the_plain_encoder(
    scans: list[dict[int, Reading]],
) -> None:
    clock, cfg = VirtualClock(start_s=5.0), _config()
    state = GatewayState(boards={n: BoardState(board=n) for n in (1, 2, 3)})
    encoder = StatePayload(cfg)
    for scan in scans:
        for n, (online, volts, temps, board_temp, mask) in scan.items():
            b = state.boards[n]
            b.online, b.cell_voltages_v, b.temperatures_c = online, volts, temps
            b.board_temperature_c, b.balancing_mask = board_temp, mask
        assert encoder.encode(state, clock) == encode(state_message(state, clock, cfg))
