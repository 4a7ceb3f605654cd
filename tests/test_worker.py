"""Workers (worker.py) on SQLite and PostgreSQL: outcomes of handlers (done, retry with backoff,
throttled with a shared pause, dead), heartbeats, graceful stop, several workers at once."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from commerce_context.audit import Audit
from commerce_context.database import Database
from commerce_context.exceptions import (
    ConcurrentModification,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from commerce_context.jobs import Job, Permanent, Queue, Rate, Retry, Throttled
from commerce_context.worker import Handler, JobContext, Worker
from tests.engine import (
    Clock,
    Location,
    clock,
    database,
    eventually,
    location,
    queue_on,
    services,
    state_of,
)

__all__ = ["clock", "database", "location"]


@contextlib.asynccontextmanager
async def running(
    queue: Queue, handlers: dict[str, Handler], **options: Any
) -> AsyncIterator[Worker]:
    async with httpx.AsyncClient() as http:
        context = services(queue, http)
        options.setdefault("poll_interval", 0.02)
        options.setdefault("jitter", lambda: 0.0)
        worker = Worker(queue, handlers, context.context, audit=context.audit, **options)
        task = asyncio.create_task(worker.run())
        try:
            yield worker
        finally:
            await worker.stop()
            await task


async def test_a_handler_runs_once_with_its_context(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    seen: list[tuple[str, dict[str, Any]]] = []

    async def handler(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        seen.append((ctx.job.id, payload))
        assert ctx.queue is queue
        return {"applied": payload["value"]}

    job = await queue.enqueue(
        "set", {"value": 3, "ticket_id": 42}, key="a", destination="d", correlation_id="cc-abc12345"
    )
    async with running(queue, {"set": handler}):
        await eventually(lambda: _is(queue, job, "done"))
    assert seen == [(job.id, {"value": 3, "ticket_id": 42})]
    done = await queue.get(job.id)
    assert done is not None
    assert done.result == {"applied": 3}
    [entry] = await Audit(database).query(ticket=42)
    assert (entry.action, entry.outcome, entry.job_id, entry.correlation_id) == (
        "job:set",
        "done",
        job.id,
        "cc-abc12345",
    )


async def test_transient_failures_retry_with_backoff_then_succeed(
    database: Database, clock: Clock
) -> None:
    queue = queue_on(database, clock)
    failures = [UpstreamUnavailable("commercetools is unavailable (503)"), ConcurrentModification()]
    calls: list[int] = []

    async def flaky(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls.append(ctx.job.attempts)
        if failures:
            raise failures.pop(0)

    job = await queue.enqueue("flaky", {}, key="a", destination="d")
    async with running(queue, {"flaky": flaky}, backoff_base=10, backoff_max=1000):
        await eventually(lambda: _attempts_after_failure(queue, job, 1))
        first = await queue.get(job.id)
        assert first is not None
        # Equal jitter (jitter() = 0 here): half of base * 2^(attempt-1).
        assert first.run_at == pytest.approx(clock.now + 5, abs=1e-3)
        assert first.last_error == "commercetools is unavailable (503)"
        clock.advance(5)
        await eventually(lambda: _attempts_after_failure(queue, job, 2))
        second = await queue.get(job.id)
        assert second is not None
        assert second.run_at == pytest.approx(clock.now + 10, abs=1e-3)
        clock.advance(10)
        await eventually(lambda: _is(queue, job, "done"))
    assert calls == [1, 2, 3]
    outcomes = [e.outcome for e in await Audit(database).query(job_id=job.id)]
    assert outcomes == ["retry", "retry", "done"]


async def test_attempts_run_out_and_the_job_dies(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)  # max_attempts=3

    async def down(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise httpx.ReadTimeout("timed out")

    job = await queue.enqueue("down", {}, key="a", destination="d")
    async with running(queue, {"down": down}, backoff_base=1, backoff_max=1):
        for attempt in (1, 2):
            await eventually(lambda a=attempt: _attempts_after_failure(queue, job, a))
            clock.advance(1)
        await eventually(lambda: _is(queue, job, "dead"))
    dead = await queue.get(job.id)
    assert dead is not None
    assert dead.last_error == "gave up after 3 attempts: the upstream timed out"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UpstreamNotFound("order o-9 no longer exists"), "order o-9 no longer exists"),
        (Permanent("the mapping does not allow that value"), "the mapping does not allow"),
    ],
)
async def test_a_permanent_error_is_dead_at_once_with_its_reason(
    database: Database, clock: Clock, error: Exception, reason: str
) -> None:
    queue = queue_on(database, clock)

    async def fails(ctx: JobContext, payload: dict[str, Any]) -> None:
        raise error

    job = await queue.enqueue("w", {"order_id": "o-9"}, key="a", destination="d")
    unknown = await queue.enqueue("no-such-kind", {}, key="b", destination="d")
    async with running(queue, {"w": fails}):
        await eventually(lambda: _is(queue, job, "dead"))
        await eventually(lambda: _is(queue, unknown, "dead"))
    dead = await queue.get(job.id)
    assert dead is not None
    assert dead.attempts == 1
    assert reason in (dead.last_error or "")
    orphan = await queue.get(unknown.id)
    assert orphan is not None
    assert orphan.last_error == "no handler for job kind 'no-such-kind'"
    [entry] = await Audit(database).query(order="o-9")
    assert entry.outcome == "dead"
    assert reason in entry.detail["error"]


async def test_a_retry_request_does_not_count_as_a_failure(
    database: Database, clock: Clock
) -> None:
    queue = queue_on(database, clock)  # max_attempts=3
    calls = Counter[str]()

    async def later(ctx: JobContext, payload: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] <= 5:
            raise Retry("not yet", after=2)

    job = await queue.enqueue("later", {}, key="a", destination="d")
    async with running(queue, {"later": later}):
        for n in range(1, 6):
            await eventually(lambda n=n: _called(calls, n))
            await eventually(lambda: _is(queue, job, "queued"))
            clock.advance(2)
        await eventually(lambda: _is(queue, job, "done"))
    assert calls["n"] == 6  # more runs than max_attempts: none counted


async def test_a_429_pauses_the_destination_for_every_worker(
    location: Location, database: Database, clock: Clock
) -> None:
    one = queue_on(database, clock, ct=Rate(1000, 1))
    two = queue_on(await location.open(), clock, ct=Rate(1000, 1))
    runs: list[tuple[str, float]] = []
    throttle = [UpstreamUnavailable("commercetools is unavailable (429)", retry_after=30)]

    async def write(ctx: JobContext, payload: dict[str, Any]) -> None:
        runs.append((ctx.job.key, clock.now))
        if throttle:
            raise throttle.pop()

    first = await one.enqueue("write", {}, key="first", destination="ct")
    async with running(one, {"write": write}, name="one"), running(two, {"write": write}):
        await eventually(lambda: _throttled_once(one, first, runs))
        assert await two.paused_until("ct") == pytest.approx(clock.now + 30, abs=1e-3)
        for n in range(4):
            await one.enqueue("write", {}, key=f"more-{n}", destination="ct")
        other = await two.enqueue("zendesk", {}, key="z", destination="zendesk")
        await eventually(lambda: _is(two, other, "dead"))  # other destinations still run
        await asyncio.sleep(0.2)  # both workers poll several times while paused
        assert len(runs) == 1
        clock.advance(31)
        await eventually(lambda: _done(one, 5))
    assert len(runs) == 6
    assert all(at >= runs[0][1] + 30 for _, at in runs[1:])
    [throttled] = [e for e in await Audit(database).query(job_id=first.id)][:1]
    assert throttled.outcome == "throttled"


@pytest.mark.parametrize(
    "make",
    [
        lambda: Throttled("zendesk said 429"),
        # What the commercetools client raises when it gave up on 429s without Retry-After.
        lambda: UpstreamUnavailable("commercetools is unavailable (HTTP 429)", throttled=True),
    ],
    ids=["Throttled", "UpstreamUnavailable-throttled"],
)
async def test_a_429_without_retry_after_backs_off_harder_each_time(
    database: Database, clock: Clock, make: Callable[[], Exception]
) -> None:
    queue = queue_on(database, clock)
    throttles = [make(), make()]

    async def write(ctx: JobContext, payload: dict[str, Any]) -> None:
        if throttles:
            raise throttles.pop()

    job = await queue.enqueue("write", {}, key="a", destination="zendesk:tickets")
    async with running(queue, {"write": write}, backoff_base=4, backoff_max=100):
        await eventually(lambda: _paused(queue, "zendesk:tickets"))
        assert await queue.paused_until("zendesk:tickets") == pytest.approx(clock.now + 2, abs=1e-3)
        clock.advance(2.5)
        await eventually(lambda: _strikes(queue, "zendesk:tickets", 2))
        assert await queue.paused_until("zendesk:tickets") == pytest.approx(clock.now + 4, abs=1e-3)
        clock.advance(4.5)
        await eventually(lambda: _is(queue, job, "done"))
    assert await queue.strikes("zendesk:tickets") == 0


async def test_heartbeats_keep_a_long_job_leased(location: Location, database: Database) -> None:
    queue = Queue(database, max_attempts=3)  # the real clock: leases of 0.3 s
    thief = Queue(await location.open(), max_attempts=3)
    release = asyncio.Event()
    runs = Counter[str]()

    async def slow(ctx: JobContext, payload: dict[str, Any]) -> None:
        runs[ctx.job.id] += 1
        await release.wait()

    job = await queue.enqueue("slow", {}, key="a", destination="d")
    async with running(queue, {"slow": slow}, lease=0.3):
        await eventually(lambda: _is(queue, job, "running"))
        for _ in range(10):  # well past several lease lengths
            assert await thief.claim(1, worker="thief", lease=10) == []
            await asyncio.sleep(0.1)
        release.set()
        await eventually(lambda: _is(queue, job, "done"))
    assert runs[job.id] == 1


async def test_stop_hands_running_jobs_back(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    started = asyncio.Event()

    async def stuck(ctx: JobContext, payload: dict[str, Any]) -> None:
        started.set()
        await asyncio.Event().wait()

    job = await queue.enqueue("stuck", {}, key="a", destination="d")
    async with httpx.AsyncClient() as http:
        worker = Worker(queue, {"stuck": stuck}, services(queue, http).context, poll_interval=0.02)
        task = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        await worker.stop(grace=0.05)
        await task
    back = await queue.get(job.id)
    assert back is not None
    assert (back.state, back.attempts, back.lease_until) == ("queued", 0, None)
    [again] = await queue.claim(1, worker="next", lease=10)  # at once, by anyone
    assert again.id == job.id


async def test_several_workers_run_each_job_once(location: Location, clock: Clock) -> None:
    queues = [queue_on(await location.open(), clock) for _ in range(3)]
    runs = Counter[str]()

    async def count(ctx: JobContext, payload: dict[str, Any]) -> None:
        runs[ctx.job.id] += 1
        await asyncio.sleep(0)

    jobs = [await queues[0].enqueue("c", {}, key=f"k{n}", destination="d") for n in range(60)]
    async with (
        running(queues[0], {"c": count}, concurrency=3),
        running(queues[1], {"c": count}, concurrency=3),
        running(queues[2], {"c": count}, concurrency=3),
    ):
        await eventually(lambda: _done(queues[0], 60), within=30)
    assert set(runs) == {job.id for job in jobs}
    assert set(runs.values()) == {1}


async def test_workers_apply_the_retention(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    audit = Audit(database, clock=clock)
    old = await queue.enqueue("c", {}, key="old", destination="d")
    [claimed] = await queue.claim(1, worker="w", lease=10)
    await queue.complete(claimed, None)
    await audit.record(action="old", source="s", target="t", outcome="ok", ticket_id=1)
    clock.advance(3 * 86400)
    await audit.record(action="new", source="s", target="t", outcome="ok", ticket_id=1)
    async with running(queue, {}, retention_days=2):  # maintenance runs when a worker starts
        await eventually(lambda: _gone(queue, old))
    assert [e.action for e in await audit.query(ticket=1)] == ["new"]


# -- helpers ------------------------------------------------------------------------------------


async def _is(queue: Queue, job: Job, state: str, attempts: int | None = None) -> bool:
    found = await queue.get(job.id)
    assert found is not None
    return found.state == state and (attempts is None or found.attempts == attempts)


async def _attempts_after_failure(queue: Queue, job: Job, attempts: int) -> bool:
    found = await queue.get(job.id)
    return found is not None and found.state == "queued" and found.attempts == attempts


async def _throttled_once(queue: Queue, job: Job, runs: list[tuple[str, float]]) -> bool:
    found = await queue.get(job.id)
    assert found is not None
    return len(runs) == 1 and found.state == "queued" and found.last_error is not None


async def _gone(queue: Queue, job: Job) -> bool:
    return await queue.get(job.id) is None


async def _done(queue: Queue, n: int) -> bool:
    return (await queue.counts())["done"] == n


async def _called(calls: Counter[str], n: int) -> bool:
    return calls["n"] >= n


async def _paused(queue: Queue, destination: str) -> bool:
    return await queue.paused_until(destination) > queue.clock()


async def _strikes(queue: Queue, destination: str, n: int) -> bool:
    return await queue.strikes(destination) == n and await _paused(queue, destination)


__all__ += ["state_of"]
