"""The supervisor stops every task, even one that swallows a cancellation."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.core.supervise import run_tasks


async def test_cancel_reaches_a_task_that_swallows_the_first_cancel() -> None:
    swallowed = 0
    stopped = asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed
        try:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed == 0:  # as asyncio.wait_for can on Python 3.11
                        swallowed += 1
                        continue
                    raise
        finally:
            stopped.set()

    async def polite() -> None:
        await asyncio.sleep(3600)

    main = asyncio.create_task(run_tasks([("stubborn", stubborn()), ("polite", polite())]))
    await asyncio.sleep(0.01)
    main.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(main, timeout=10)
    assert swallowed == 1 and stopped.is_set()


async def test_a_crashing_task_cancels_its_siblings() -> None:
    sibling_cancelled = asyncio.Event()

    async def crash() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    async def sibling() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise

    with pytest.raises(ExceptionGroup) as info:
        await asyncio.wait_for(run_tasks([("crash", crash()), ("sibling", sibling())]), 10)
    assert info.group_contains(RuntimeError)
    assert sibling_cancelled.is_set()


async def test_a_cancel_swallowed_by_a_library_is_honoured_at_the_next_check() -> None:
    from gateway.core.supervise import reraise_swallowed_cancel

    reached_after = False

    async def library_call() -> str:  # what asyncio.wait_for does on 3.11 in the race
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            return "reply that arrived together with the cancel"
        return "reply"

    async def worker() -> None:
        nonlocal reached_after
        await library_call()
        reraise_swallowed_cancel()
        reached_after = True

    task = asyncio.create_task(worker())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert not reached_after


async def test_a_failed_taskgroup_leaves_no_stray_cancel_on_a_parent_that_carries_on() -> None:
    from gateway.core.supervise import taskgroup_cancel_fix

    async def fail_soon() -> None:
        await asyncio.sleep(0)
        raise OSError("link lost")

    async def parent() -> int:
        with pytest.raises(ExceptionGroup), taskgroup_cancel_fix():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fail_soon())
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    assert await asyncio.wait_for(asyncio.create_task(parent()), 10) == 0
