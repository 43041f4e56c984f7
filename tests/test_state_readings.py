"""GatewayState's pack figures are cached per scan and never stale."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.state import BoardState, GatewayState


def _plain(state: GatewayState) -> tuple[object, ...]:
    online = [b for _, b in sorted(state.boards.items()) if b.online]
    cells = [v for b in online for v in b.cell_voltages_v]
    temps = [t for b in online for t in b.temperatures_c if t is not None]
    return (
        cells,
        temps,
        round(sum(cells), 4) if cells else None,
        min(cells, default=None),
        max(cells, default=None),
        min(temps, default=None),
        max(temps, default=None),
    )


def _cached(state: GatewayState) -> tuple[object, ...]:
    return (
        state.cell_voltages_v(),
        state.temperatures_c(),
        state.pack_voltage_v,
        state.cell_voltage_min_v,
        state.cell_voltage_max_v,
        state.temperature_min_c,
        state.temperature_max_c,
    )


change = st.tuples(
    st.integers(1, 4),
    st.booleans(),
    st.lists(st.floats(2.0, 4.0), max_size=3).map(tuple),
    st.lists(st.one_of(st.none(), st.floats(-20.0, 60.0)), max_size=3).map(tuple),
    st.booleans(),  # store lists instead of tuples (never cached)
)


@given(changes=st.lists(change, max_size=12))
def test_the_figures_follow_every_change(
    changes: list[tuple[int, bool, tuple[float, ...], tuple[float | None, ...], bool]],
) -> None:
    state = GatewayState(boards={n: BoardState(board=n) for n in (1, 2)})
    assert _cached(state) == _plain(state)
    for n, online, volts, temps, as_list in changes:
        b = state.boards.setdefault(n, BoardState(board=n))  # boards 3 and 4 appear later
        b.online = online
        b.cell_voltages_v = list(volts) if as_list else volts  # type: ignore[assignment]
        b.temperatures_c = list(temps) if as_list else temps  # type: ignore[assignment]
        assert _cached(state) == _plain(state)
        assert _cached(state) == _plain(state)  # the cached answer is the same


def test_a_list_changed_in_place_is_seen() -> None:
    state = GatewayState(boards={1: BoardState(board=1, online=True)})
    cells = [3.3, 3.2]
    state.boards[1].cell_voltages_v = cells  # type: ignore[assignment]
    assert state.cell_voltage_min_v == 3.2
    cells[1] = 3.0
    assert state.cell_voltage_min_v == 3.0
    returned = state.cell_voltages_v()
    returned.clear()  # a caller's copy: the state is not affected
    assert state.cell_voltage_min_v == 3.0
