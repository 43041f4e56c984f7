"""Own a set of long-running tasks, make sure they really stop, restart the ones that may.

Every task runs in one `asyncio.TaskGroup`: a crash in one cancels its siblings, so the
gateway wraps each adapter and publisher in `restarting` (a crash is reported as a
`ComponentRestarted` notice and a metric, and the component runs again after a backoff)
and leaves only the parts that keep the relays safe (engine, driver service, state store)
to end the whole gateway with them. On Python
3.11 a task can swallow a cancellation (a library's `asyncio.wait_for` that completes in the
same loop iteration as the cancel), so when the group is cancelled a reaper keeps cancelling
the children that are still running until they are all done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway.core.errors import FatalError
from gateway.core.events import Notice

log = logging.getLogger(__name__)

RECANCEL_INTERVAL_S = 0.1  # real time: shutdown must not depend on a (possibly virtual) clock
_reapers: set[asyncio.Task[None]] = set()


async def run_tasks(named: Iterable[tuple[str, Coroutine[Any, Any, Any]]]) -> None:
    """Run every coroutine as a named task until cancelled or until one fails."""
    async with asyncio.TaskGroup() as tg:
        tasks = [tg.create_task(coro, name=name) for name, coro in named]
        try:
            await asyncio.get_running_loop().create_future()
        except asyncio.CancelledError:
            reaper = asyncio.get_running_loop().create_task(_reap(tasks), name="reaper")
            _reapers.add(reaper)
            reaper.add_done_callback(_reapers.discard)
            raise


async def _reap(tasks: list[asyncio.Task[Any]]) -> None:
    rounds = 0
    while True:
        await asyncio.sleep(RECANCEL_INTERVAL_S)
        pending = [t for t in tasks if not t.done()]
        if not pending:
            return
        rounds += 1
        if rounds == 5:
            log.warning(
                "tasks still stopping after cancel: %s", ", ".join(t.get_name() for t in pending)
            )
        for t in pending:
            t.cancel()


async def cancel_and_wait(task: asyncio.Task[Any], retry_s: float = RECANCEL_INTERVAL_S) -> int:
    """Cancel `task` and wait until it is done, repeating the cancel if it was swallowed.

    Returns how many cancels it took. Exceptions the task ends with are not raised here
    (the owner logs or re-raises them); `CancelledError` of the task itself is absorbed.
    """
    attempts = 0
    while not task.done():
        task.cancel()
        attempts += 1
        await asyncio.wait({task}, timeout=retry_s)
    if not task.cancelled() and task.exception() is not None:
        log.debug("task %s ended with %r while being stopped", task.get_name(), task.exception())
    return attempts


def reraise_swallowed_cancel() -> None:
    """Raise `CancelledError` if this task was asked to stop but a library ate the request.

    Call it right after awaiting a library that uses `asyncio.wait_for` internally (aiomqtt,
    pymodbus): on Python 3.11 `wait_for` returns the result instead of raising when the
    cancellation arrives together with the reply. `Task.cancelling()` still counts the
    request, so the task can honour it here instead of running on (and a TaskGroup, which
    cancels each child only once, waiting for it forever).
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop runs (a harness stepping an adapter synchronously)
        return
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@contextlib.contextmanager
def taskgroup_cancel_fix() -> Iterator[None]:
    """Undo the stray cancel request a failing `TaskGroup` leaves on its parent task.

    On Python 3.11 a TaskGroup whose child fails cancels the parent task and, when the
    parent was already waiting in `__aexit__`, never `uncancel()`s it (fixed in 3.12). A
    parent that handles the error and carries on (a reconnect loop) would then look
    "cancelling" for ever and `reraise_swallowed_cancel` would stop it. A genuine cancel
    absorbed in that window is re-sent by the supervisor, which cancels until tasks end.
    """
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    try:
        yield
    except asyncio.CancelledError:
        raise
    except BaseException:
        if task is not None:
            while task.cancelling() > before:
                task.uncancel()
        raise


# --- restarts ------------------------------------------------------------------------

RESTART_MIN_S = 1.0  # real time: the first restart of a crashed component
RESTART_MAX_S = 60.0  # the backoff doubles up to this
RESTART_RESET_AFTER_S = 60.0  # a component that ran this long restarts at the minimum again


@dataclass(frozen=True, slots=True, kw_only=True)
class ComponentRestarted(Notice):
    """An adapter or publisher crashed and is restarted after `restart_in_s`."""

    component: str
    error: str
    restart_in_s: float
    restarts: int

    def payload(self) -> dict[str, Any]:
        """Return the event body."""
        return {
            "type": "component_restarted",
            "component": self.component,
            "error": self.error,
            "restart_in_s": round(self.restart_in_s, 3),
            "restarts": self.restarts,
        }


def _is_fatal(err: BaseException) -> bool:
    """True for a FatalError, also inside (nested) exception groups."""
    if isinstance(err, FatalError):
        return True
    if isinstance(err, BaseExceptionGroup):
        return any(_is_fatal(e) for e in err.exceptions)
    return False


CrashReport = Callable[[str, BaseException, float, int], None]


async def restarting(
    name: str,
    run: Callable[[], Awaitable[Any]],
    report: CrashReport,
    *,
    min_s: float = RESTART_MIN_S,
    max_s: float = RESTART_MAX_S,
) -> None:
    """Run `run()`; when it crashes, `report` it and run it again after a backoff.

    A component that returns ends for good; a cancellation ends at once. The backoff
    (real time, like the re-cancel above) doubles from `min_s` up to `max_s`, and starts
    over once a run lasted `RESTART_RESET_AFTER_S`.
    """
    delay = min_s
    restarts = 0
    while True:
        started = time.monotonic()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as err:  # any crash of a component is restarted, except:
            if _is_fatal(err):
                raise  # a FatalError stops the gateway on purpose (e.g. a duplicate gateway.id)
            reraise_swallowed_cancel()
            if time.monotonic() - started >= RESTART_RESET_AFTER_S:
                delay = min_s
            restarts += 1
            try:
                report(name, err, delay, restarts)
            except Exception:
                log.exception("reporting the crash of %s failed", name)
            await asyncio.sleep(delay)
            delay = min(max_s, 2 * delay)
            continue
        return
