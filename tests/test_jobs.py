"""The queue (jobs.py) on SQLite and PostgreSQL: durability, idempotency keys, coalescing,
concurrent claims, leases, shared rate limits and pauses, dead jobs, retention."""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter

import pytest

from commerce_context.database import Database
from commerce_context.exceptions import BadRequest, ConfigError, DatabaseUnavailable, NotFound
from commerce_context.jobs import Ledger, Queue, Rate, parse_rate
from tests.engine import (
    Clock,
    Location,
    clock,
    database,
    location,
    queue_on,
    settings,
    sqlite_location,
)

__all__ = ["clock", "database", "location", "sqlite_location"]  # the fixtures used


async def test_enqueue_is_durable(location: Location, database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    job = await queue.enqueue(
        "writeback",
        {"order_id": "o-1", "value": "open"},
        key="k-1",
        destination="commercetools",
        correlation_id="cc-test-0001",
        source="zendesk:webhook",
    )
    await database.close()
    location.opened.remove(database)
    # A new instance (a restarted process) sees the job as it was committed.
    other = queue_on(await location.open(), clock)
    found = await other.get(job.id)
    assert found is not None
    assert (found.kind, found.payload, found.state, found.key) == (
        "writeback",
        {"order_id": "o-1", "value": "open"},
        "queued",
        "k-1",
    )
    assert found.correlation_id == "cc-test-0001"
    assert found.source == "zendesk:webhook"
    assert found.refs() == {"order_id": "o-1"}


async def test_an_idempotency_key_is_enqueued_once(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    first = await queue.enqueue("kind", {"v": 1}, key="same", destination="d")
    clock.advance(5)
    second = await queue.enqueue("kind", {"v": 2}, key="same", destination="d")
    assert second.id == first.id
    assert second.payload == {"v": 1}
    assert second.updated_at == first.updated_at
    assert len(await queue.list()) == 1
    with pytest.raises(BadRequest):
        await queue.enqueue("kind", {}, key="", destination="d")


async def test_pending_updates_of_one_field_coalesce_to_the_latest(
    database: Database, clock: Clock
) -> None:
    queue = queue_on(database, clock)
    target = "ct:order:o-1:field:supportStatus"
    jobs = []
    for n in range(5):
        clock.advance(1)
        jobs.append(
            await queue.enqueue(
                "writeback",
                {"value": f"v{n}"},
                key=f"change-{n}",
                destination="ct",
                coalesce=target,
            )
        )
    assert {job.id for job in jobs} == {jobs[0].id}
    queued = await queue.list(state="queued")
    assert len(queued) == 1
    assert queued[0].payload == {"value": "v4"}
    assert queued[0].key == "change-4"
    # A replayed older change (a webhook retried) maps to the surviving job: no stale write.
    replay = await queue.enqueue(
        "writeback", {"value": "v1"}, key="change-1", destination="ct", coalesce=target
    )
    assert replay.id == jobs[0].id
    assert replay.payload == {"value": "v4"}
    # Another field of the same order is a separate job.
    other = await queue.enqueue(
        "writeback", {"value": "x"}, key="note-1", destination="ct", coalesce="ct:order:o-1:note"
    )
    assert other.id != jobs[0].id
    # Once the job runs, a new change is a new job (the running one may already have written).
    clock.advance(1)
    claimed = await queue.claim(10, worker="w", lease=30)
    assert {job.id for job in claimed} == {jobs[0].id, other.id}
    later = await queue.enqueue(
        "writeback", {"value": "v5"}, key="change-5", destination="ct", coalesce=target
    )
    assert later.id != jobs[0].id
    assert later.state == "queued"
    assert later.payload == {"value": "v5"}
    # ... and it waits until the older write has finished: values land in order.
    assert await queue.claim(10, worker="w2", lease=30) == []
    assert await queue.complete(next(j for j in claimed if j.id == jobs[0].id), None)
    [after] = await queue.claim(10, worker="w2", lease=30)
    assert after.id == later.id


async def test_concurrent_claims_never_hand_out_a_job_twice(
    location: Location, database: Database, clock: Clock
) -> None:
    producer = queue_on(database, clock)
    for n in range(120):
        await producer.enqueue("k", {"n": n}, key=f"job-{n}", destination=f"d{n % 3}")
    # Four instances, each with its own connection (SQLite) or pool (PostgreSQL).
    instances = [queue_on(await location.open(), clock) for _ in range(4)]
    claimed: list[str] = []

    async def drain(queue: Queue, name: str) -> None:
        while True:
            batch = await queue.claim(3, worker=name, lease=60)
            if not batch:
                return
            claimed.extend(job.id for job in batch)
            for job in batch:
                assert await queue.complete(job, {"by": name})
            await asyncio.sleep(0)

    await asyncio.gather(*(drain(q, f"w{i}") for i, q in enumerate(instances)))
    counts = Counter(claimed)
    assert len(counts) == 120
    assert max(counts.values()) == 1
    assert (await producer.counts())["done"] == 120


async def test_an_expired_lease_is_reclaimed_and_the_old_holder_cannot_settle(
    database: Database, clock: Clock
) -> None:
    queue = queue_on(database, clock)
    await queue.enqueue("k", {}, key="one", destination="d")
    [first] = await queue.claim(5, worker="crashed", lease=10)
    assert first.attempts == 1
    clock.advance(5)
    assert await queue.claim(5, worker="other", lease=10) == []
    clock.advance(6)  # past the lease
    [again] = await queue.claim(5, worker="other", lease=10)
    assert again.id == first.id
    assert again.attempts == 2
    assert not await queue.complete(first, None)  # the stale holder's outcome is refused
    assert await queue.complete(again, {"ok": True})
    done = await queue.get(first.id)
    assert done is not None
    assert (done.state, done.result) == ("done", {"ok": True})


async def test_heartbeats_extend_leases(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    await queue.enqueue("k", {}, key="one", destination="d")
    [job] = await queue.claim(1, worker="w", lease=10)
    for _ in range(3):
        clock.advance(8)
        assert await queue.heartbeat([job], lease=10) == set()
        assert await queue.claim(1, worker="thief", lease=10) == []
    clock.advance(11)
    [stolen] = await queue.claim(1, worker="thief", lease=10)
    assert await queue.heartbeat([job], lease=10) == {job.id}  # the old holder learns it lost
    assert stolen.id == job.id


async def test_a_job_that_kills_every_worker_ends_dead(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)  # max_attempts=3
    job = await queue.enqueue("k", {}, key="poison", destination="d")
    for _ in range(3):
        assert len(await queue.claim(1, worker="w", lease=10)) == 1
        clock.advance(11)
    assert await queue.claim(1, worker="w", lease=10) == []
    dead = await queue.get(job.id)
    assert dead is not None
    assert dead.state == "dead"
    assert "stopped answering" in (dead.last_error or "")


async def test_rate_limits_bound_claims_per_window(database: Database, clock: Clock) -> None:
    rate = parse_rate("10/s")
    assert rate.burst == 1
    queue = queue_on(database, clock, d=rate)
    for n in range(40):
        await queue.enqueue("k", {}, key=f"j{n}", destination="d")
    for n in range(20):
        await queue.enqueue("k", {}, key=f"free{n}", destination="unlimited")
    start = clock.now
    per_window: Counter[int] = Counter()
    free = 0
    for _ in range(60):  # 3 s in steps of 50 ms, claiming greedily each step
        for job in await queue.claim(50, worker="w", lease=60):
            await queue.complete(job, None)
            if job.destination == "d":
                per_window[int((clock.now - start) // 1)] += 1
            else:
                free += 1
        clock.advance(0.05)
    assert free == 20  # a destination without a limit is not held back
    assert set(per_window) == {0, 1, 2}
    assert all(count <= 10 + rate.burst for count in per_window.values()), per_window
    assert all(count >= 9 for count in per_window.values()), per_window
    assert queue.hint is not None and queue.hint <= 0.1


async def test_the_limit_is_shared_by_instances(
    location: Location, database: Database, clock: Clock
) -> None:
    rate = Rate(10, 1)
    one = queue_on(database, clock, d=rate)
    two = queue_on(await location.open(), clock, d=rate)
    for n in range(40):
        await one.enqueue("k", {}, key=f"j{n}", destination="d")
    claimed = 0
    for _ in range(40):  # 2 s, both instances claiming at each step
        for queue in (one, two):
            claimed += len(await queue.claim(10, worker=str(id(queue)), lease=60))
        clock.advance(0.05)
    assert claimed <= 2 * 10 + rate.burst


async def test_a_pause_stops_every_instance_until_it_ends(
    location: Location, database: Database, clock: Clock
) -> None:
    one = queue_on(database, clock, ct=Rate(100, 1))
    two = queue_on(await location.open(), clock, ct=Rate(100, 1))
    for n in range(3):
        await one.enqueue("k", {}, key=f"ct{n}", destination="ct")
    await one.enqueue("k", {}, key="other", destination="zendesk")
    await one.pause("ct", clock.now + 30)
    assert await two.paused_until("ct") == clock.now + 30
    got = await two.claim(10, worker="w2", lease=60)
    assert [job.destination for job in got] == ["zendesk"]  # others still flow
    assert two.hint == pytest.approx(30)
    clock.advance(29)
    assert await two.claim(10, worker="w2", lease=60) == []
    assert await one.claim(10, worker="w1", lease=60) == []
    clock.advance(2)
    resumed = await two.claim(10, worker="w2", lease=60)
    assert len(resumed) >= 1  # the bucket refills from the end of the pause
    assert {job.destination for job in resumed} == {"ct"}
    assert await two.strikes("ct") == 1
    await two.complete(resumed[0], None)
    assert await two.strikes("ct") == 0  # a success resets the throttle count


@pytest.mark.parametrize("way", ["reschedule", "release", "retry"])
async def test_an_older_value_going_back_to_the_queue_yields_to_a_newer_one(
    database: Database, clock: Clock, way: str
) -> None:
    """A running write of one target fails, is handed back or dies while a newer value for
    the same target already waits: the newer job wins, the older never runs again (and the
    queue does not trip over two queued jobs of one coalesce key)."""
    queue = queue_on(database, clock)
    target = "ct:order:o-1:field:supportStatus"
    old = await queue.enqueue("w", {"value": "old"}, key="k-old", destination="ct", coalesce=target)
    [claimed] = await queue.claim(1, worker="w", lease=30)
    new = await queue.enqueue("w", {"value": "new"}, key="k-new", destination="ct", coalesce=target)
    assert new.id != old.id
    if way == "reschedule":
        assert await queue.reschedule(claimed, at=clock.now + 1, error="HTTP 503")
    elif way == "release":
        await queue.release([claimed])
    else:
        assert await queue.kill(claimed, "order o-1 does not exist")
        with pytest.raises(BadRequest, match="superseded"):
            await queue.retry(old.id)
    before = await queue.get(old.id)
    assert before is not None
    if way == "retry":
        assert before.state == "dead"
    else:
        assert before.state == "cancelled"
        assert before.last_error is not None and new.id in before.last_error
    clock.advance(2)
    [runnable] = await queue.claim(10, worker="w2", lease=30)
    assert runnable.id == new.id
    assert runnable.payload == {"value": "new"}


async def test_dead_jobs_can_be_retried_or_cancelled(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    job = await queue.enqueue("k", {}, key="a", destination="d")
    with pytest.raises(BadRequest, match="only dead or cancelled"):
        await queue.retry(job.id)
    [claimed] = await queue.claim(1, worker="w", lease=10)
    with pytest.raises(BadRequest, match="is running"):
        await queue.cancel(job.id)
    assert await queue.kill(claimed, "order o-1 does not exist")
    dead = await queue.list(state="dead")
    assert [(j.id, j.last_error) for j in dead] == [(job.id, "order o-1 does not exist")]
    retried = await queue.retry(job.id)
    assert (retried.state, retried.attempts) == ("queued", 0)
    [again] = await queue.claim(1, worker="w", lease=10)
    assert await queue.kill(again, "still missing")
    cancelled = await queue.cancel(job.id)
    assert cancelled.state == "cancelled"
    assert await queue.claim(1, worker="w", lease=10) == []
    with pytest.raises(NotFound):
        await queue.retry("no-such-job")
    with pytest.raises(BadRequest, match="unknown job state"):
        await queue.list(state="nonsense")


async def test_a_retry_without_counting_and_a_release(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    job = await queue.enqueue("k", {}, key="a", destination="d", delay=5)
    assert await queue.claim(1, worker="w", lease=10) == []  # delayed
    clock.advance(5)
    [claimed] = await queue.claim(1, worker="w", lease=10)
    assert await queue.reschedule(claimed, at=clock.now + 3, error=None, count_attempt=False)
    clock.advance(3)
    [claimed] = await queue.claim(1, worker="w", lease=10)
    assert claimed.attempts == 1
    await queue.release([claimed])
    back = await queue.get(job.id)
    assert back is not None
    assert (back.state, back.attempts, back.lease_until) == ("queued", 0, None)


async def test_ledger_and_retention(database: Database, clock: Clock) -> None:
    queue = queue_on(database, clock)
    ledger = Ledger(database, clock=clock)
    assert await ledger.done("effect-1") is None
    await ledger.record("effect-1", {"version": 7})
    await ledger.record("effect-1", {"version": 8})  # first record wins
    assert await ledger.done("effect-1") == {"version": 7}
    old = await queue.enqueue("k", {}, key="old", destination="d")
    [claimed] = await queue.claim(1, worker="w", lease=10)
    await queue.complete(claimed, None)
    dead = await queue.enqueue("k", {}, key="dead", destination="d")
    [claimed] = await queue.claim(1, worker="w", lease=10)
    await queue.kill(claimed, "broken")
    clock.advance(100)
    recent = await queue.enqueue("k", {}, key="recent", destination="d")
    assert await queue.purge(clock.now - 50) == 1
    assert await queue.get(old.id) is None
    assert await queue.get(dead.id) is not None  # dead jobs wait for a person
    assert await queue.get(recent.id) is not None
    assert await ledger.done("effect-1") is None


def test_rates_parse_or_explain() -> None:
    assert parse_rate("100/min") == Rate(100, 60)
    assert parse_rate(" 20 / s") == Rate(20, 1)
    assert parse_rate("5000/hour").per_second == pytest.approx(5000 / 3600)
    for bad in ("", "fast", "0/s", "10/fortnight", "-1/min"):
        with pytest.raises(ValueError, match="is not a rate"):
            parse_rate(bad)


async def test_a_locked_database_is_a_clear_503_then_works_again(
    sqlite_location: Location, clock: Clock
) -> None:
    db = Database.from_url(sqlite_location.url + "?busy_timeout=0.1")
    await db.open()
    sqlite_location.opened.append(db)
    queue = queue_on(db, clock)
    locker = sqlite3.connect(sqlite_location.url.removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(DatabaseUnavailable) as raised:
            await queue.enqueue("k", {}, key="a", destination="d")
        assert raised.value.status_code == 503
        assert "database is locked" in raised.value.message
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    job = await queue.enqueue("k", {}, key="a", destination="d")
    assert (await queue.get(job.id)) is not None


def test_bad_database_and_rate_settings_read_clearly() -> None:
    for url, problem in (
        ("mysql://x", "must start with sqlite:/// or postgresql://"),
        ("sqlite://relative.db", "three slashes"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
    ):
        with pytest.raises(ConfigError, match=problem):
            Database.from_url(url)
    with pytest.raises(ConfigError, match="not a valid PostgreSQL schema"):
        Database.from_url("postgresql://h/db", schema="Robert'); DROP")
    with pytest.raises(ConfigError, match=r"CC_RATE_LIMITS.*tidio: 'lots' is not a rate"):
        settings(rate_limits={"tidio": "lots"})
    with pytest.raises(ConfigError, match="CC_DATABASE_URL"):
        settings(database_url="mongodb://x")
    assert "secret-pw" not in repr(settings(database_url="postgresql://u:secret-pw@h/db"))
    configured = settings(rate_limits={"tidio": "120/min"})
    assert configured.rate_limits["tidio"] == "120/min"
    assert configured.rate_limits["commercetools"] == "20/s"
