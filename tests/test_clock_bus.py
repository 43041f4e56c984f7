"""The virtual clock and the bus: ordering, overflow policies, isolation."""

from __future__ import annotations

import asyncio

from gateway.core.bus import EventBus, Overflow
from gateway.core.clock import VirtualClock
from gateway.core.events import BoardCameOnline, BoardScanned, Notice


async def test_virtual_clock_wakes_sleepers_in_deadline_order() -> None:
    clock = VirtualClock()
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, s: float) -> None:
        await clock.sleep(s)
        woke.append((name, clock.now()))

    tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3.0), ("a", 1.0), ("b", 2.0))]
    await clock.advance(1.5)
    assert woke == [("a", 1.0)]
    await clock.advance(10)
    assert woke == [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    assert clock.now() == 11.5
    await asyncio.gather(*tasks)


async def test_virtual_clock_runs_periodic_loop_for_an_hour_without_sleeping() -> None:
    clock = VirtualClock()
    ticks = 0

    async def loop() -> None:
        nonlocal ticks
        while True:
            await clock.sleep(1.0)
            ticks += 1

    t = asyncio.create_task(loop())
    await clock.advance(3600)
    t.cancel()
    assert ticks == 3600


def scan(board: int, at: float) -> BoardScanned:
    return BoardScanned(
        at_s=at,
        board=board,
        cell_voltages_v=(3.3,),
        temperatures_c=(25.0,),
        board_temperature_c=25.0,
    )


async def test_keep_latest_drops_oldest_and_counts() -> None:
    bus = EventBus()
    sub = bus.subscribe("slow", BoardScanned, overflow=Overflow.KEEP_LATEST, maxsize=3)
    for i in range(10):
        bus.publish(scan(1, float(i)))
    assert sub.dropped == 7
    assert bus.drop_counts["slow"] == 7
    got = [sub.get_nowait() for _ in range(3)]
    assert [e.at_s for e in got if e] == [7.0, 8.0, 9.0]


async def test_never_drop_keeps_a_burst_and_slow_subscriber_does_not_block_others() -> None:
    bus = EventBus()
    slow = bus.subscribe("notices", Notice, overflow=Overflow.NEVER_DROP, maxsize=2)
    fast = bus.subscribe("fast", BoardScanned, maxsize=1)
    for i in range(500):
        bus.publish(BoardCameOnline(at_s=float(i), board=1))
        bus.publish(scan(1, float(i)))
    assert len(slow) == 500 and slow.dropped == 0
    assert fast.dropped == 499
    assert (await fast.get()).at_s == 499.0


async def test_subscription_matches_subclasses_only() -> None:
    bus = EventBus()
    sub = bus.subscribe("n", Notice, overflow=Overflow.NEVER_DROP)
    bus.publish(scan(1, 0.0))
    bus.publish(BoardCameOnline(at_s=0.0, board=2))
    assert len(sub) == 1
