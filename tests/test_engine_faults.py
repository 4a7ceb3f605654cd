"""Faults with real worker processes (tests/fault_worker.py): a worker killed with SIGKILL in
the middle of a job, the SQLite file locked by another process's connection, PostgreSQL
connections of the worker terminated by the server. In each case every job completes and its
effect (a row in `effects`, written with the ledger entry in one transaction) is applied once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psycopg

from commerce_context.database import Database
from commerce_context.jobs import Job, Queue
from commerce_context.worker import Worker
from tests.engine import (
    PG_URL,
    Location,
    database,
    eventually,
    location,
    pg_location,
    services,
    sqlite_location,
)
from tests.fault_worker import apply, prepare

__all__ = ["database", "location", "pg_location", "sqlite_location"]

SCRIPT = Path(__file__).with_name("fault_worker.py")
ROOT = Path(__file__).resolve().parents[1]


def worker_env(url: str, schema: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(
        CC_CT_PROJECT_KEY="faults",
        CC_CT_CLIENT_ID="client",
        CC_CT_CLIENT_SECRET="secret",
        CC_CT_API_URL="http://127.0.0.1:9",
        CC_CT_AUTH_URL="http://127.0.0.1:9",
        CC_DATABASE_URL=url,
        CC_JOBS_LEASE="1",
        CC_JOBS_POLL_INTERVAL="0.05",
        CC_JOBS_BACKOFF_BASE="0.1",
        CC_JOBS_BACKOFF_MAX="0.5",
        CC_WORKER_CONCURRENCY="4",
        CC_LOG_LEVEL="warning",
    )
    if schema:
        env["CC_DATABASE_SCHEMA"] = schema
    return env


@contextlib.asynccontextmanager
async def worker_process(
    env: dict[str, str], log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), env=env, cwd=log.parent, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def effects(db: Database) -> list[tuple[str, int]]:
    rows = await db.fetchall("SELECT key, attempt FROM effects ORDER BY key, attempt")
    return [(r["key"], int(r["attempt"])) for r in rows]


async def all_done(queue: Queue, n: int) -> bool:
    return (await queue.counts())["done"] == n


async def test_a_worker_killed_mid_job_its_job_completes_once(
    location: Location, database: Database, tmp_path: Path
) -> None:
    await prepare(database)
    queue = Queue(database)
    job = await queue.enqueue("apply", {"hold": 60}, key="effect-1", destination="ct")
    env = worker_env(location.url, location.schema)
    log = tmp_path / "workers.log"
    async with worker_process(env, log) as first:
        await eventually(lambda: _applied(database, 1), within=30, what="the first run's effect")
        first.send_signal(signal.SIGKILL)  # after the effect, before the job is marked done
        assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
    held = await queue.get(job.id)
    assert held is not None
    assert (held.state, held.attempts) == ("running", 1)
    # Another instance (here, a worker in this process) reclaims it once the lease expires.
    async with httpx.AsyncClient() as http:
        rerun = Worker(
            queue, {"apply": apply}, services(queue, http).context, poll_interval=0.05, lease=1
        )
        task = asyncio.create_task(rerun.run())
        try:
            await eventually(lambda: _state(queue, job, "done"), within=30, what="the re-run")
        finally:
            await rerun.stop()
            await task
    done = await queue.get(job.id)
    assert done is not None
    assert done.attempts == 2  # claimed again once the dead worker's lease expired
    assert done.result == {"applied": False}  # the re-run found the ledger entry
    assert await effects(database) == [("effect-1", 1)]


async def test_workers_resume_after_the_database_was_locked(
    sqlite_location: Location, tmp_path: Path
) -> None:
    location = sqlite_location
    database = await location.open()
    await prepare(database)
    queue = Queue(database)
    jobs = [
        await queue.enqueue("apply", {"hold": 0.2}, key=f"e{n}", destination="ct", delay=n * 0.2)
        for n in range(12)
    ]
    log = tmp_path / "workers.log"
    # A short busy timeout in the worker: its statements fail while the lock is held.
    env = worker_env(location.url + "?busy_timeout=0.2", None)
    async with worker_process(env, log) as worker:
        await eventually(lambda: _applied(database, 1), within=30, what="the first effect")
        path = location.url.removeprefix("sqlite:///")
        locker = sqlite3.connect(path, timeout=10, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")  # another process's writer holds the file
            await asyncio.sleep(2.0)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        await eventually(lambda: all_done(queue, len(jobs)), within=30, what="all jobs")
        assert worker.returncode is None
        worker.terminate()  # SIGTERM: a graceful stop, exit status 0
        assert await asyncio.wait_for(worker.wait(), 20) == 0
    assert "database is locked" in log.read_text()  # the worker did hit the lock
    # Each effect applied exactly once (a run cut off by the fault may apply it on a later
    # attempt: the effect and its ledger entry commit together or not at all).
    assert [key for key, _ in await effects(database)] == sorted(job.key for job in jobs)


async def test_workers_resume_after_postgres_dropped_their_connections(
    pg_location: Location, tmp_path: Path
) -> None:
    location = pg_location
    database = await location.open()
    await prepare(database)
    queue = Queue(database)
    jobs = [
        await queue.enqueue("apply", {"hold": 0.1}, key=f"e{n}", destination="ct", delay=n * 0.2)
        for n in range(12)
    ]
    name = f"cc_fault_{location.schema}"[:60]
    env = worker_env(f"{PG_URL}?application_name={name}", location.schema)
    terminated = 0
    async with worker_process(env, tmp_path / "workers.log") as worker:
        await eventually(lambda: _applied(database, 1), within=30, what="the first effect")
        for _ in range(4):
            terminated += await asyncio.to_thread(_terminate, name)
            await asyncio.sleep(0.4)
        await eventually(lambda: all_done(queue, len(jobs)), within=30, what="all jobs")
        assert worker.returncode is None
    assert terminated >= 1
    # Each effect applied exactly once (a run cut off by the fault may apply it on a later
    # attempt: the effect and its ledger entry commit together or not at all).
    assert [key for key, _ in await effects(database)] == sorted(job.key for job in jobs)


def _terminate(application_name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return sum(1 for (ok,) in rows if ok)


async def _applied(db: Database, n: int) -> bool:
    return len(await effects(db)) >= n


async def _state(queue: Queue, job: Job, state: str) -> bool:
    found = await queue.get(job.id)
    return found is not None and found.state == state
