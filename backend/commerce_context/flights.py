"""Request coalescing: identical concurrent requests make one upstream call.

* In this process, `Flights` runs one task per key; every caller with that key waits on it,
  each within its own time budget (`commercetools.budget`). The task is shielded: a caller
  that stops waiting (budget spent, client gone) cancels neither the task nor the others'
  wait, and a late answer still lands (in the cache).
* Across instances sharing a store (Redis), `across_instances` takes a short lock carrying an
  owner token; the others poll the cache for the winner's result instead of asking upstream,
  and go ahead themselves only if the lock's holder takes longer than the lock lasts.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from .commercetools import remaining
from .stores import Store

__all__ = ["Flights", "across_instances"]

T = TypeVar("T")
POLL = 0.02  # seconds between looks at the cache while another instance holds the lock


class Flights(Generic[T]):
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[T]] = {}

    async def join(self, key: str, start: Callable[[], Awaitable[T]]) -> T:
        """The result of the flight `key`, started with `start()` unless one is under way.

        Raises TimeoutError when the current budget runs out first (the flight goes on)."""
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.create_task(_run(start), name="cache-flight")
            self._tasks[key] = task
            task.add_done_callback(functools.partial(self._landed, key))
        return await asyncio.wait_for(asyncio.shield(task), remaining())

    def _landed(self, key: str, task: asyncio.Task[T]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: the waiters (if any are left) re-raise it

    async def close(self) -> None:
        """Cancel the flights still under way (at shutdown: nobody waits for them)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _run(start: Callable[[], Awaitable[T]]) -> T:
    return await start()


async def across_instances(
    store: Store,
    lock: str,
    *,
    wait: float,
    clock: Callable[[], float],
    landed: Callable[[], Awaitable[T | None]],
    work: Callable[[], Awaitable[T]],
) -> T:
    """`work()` under the lock `lock`; while another instance holds it, `landed()` (the
    cache) is polled for its result, for at most `wait` seconds."""
    deadline = clock() + wait
    while (owner := await store.acquire(lock, wait)) is None:
        if clock() > deadline:
            break
        await asyncio.sleep(POLL)
        result = await landed()
        if result is not None:
            return result
    try:
        return await work()
    finally:
        if owner is not None:
            await store.release(lock, owner)
