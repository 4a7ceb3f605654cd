"""Workers: claim jobs, run their handlers, settle the outcome; plus the engine's wiring.

A `Worker` loops: claim up to `concurrency` runnable jobs (within the destinations' shared rate
limits), run each handler in its own task, keep the leases alive with heartbeats, and settle:

* returned              -> done (the result kept);
* `jobs.Retry(after)`   -> queued again after `after` seconds, no attempt counted;
* `UpstreamUnavailable` with `retry_after` (a 429 or a 503 with Retry-After) or `jobs.Throttled`
                        -> the destination paused for *every* worker until then (fallback:
                           exponential backoff on consecutive throttles), the job queued again,
                           no attempt counted;
* `ClientError`, `UpstreamRejected`, `UpstreamNotFound`, `jobs.Permanent`
                        -> dead at once, with the reason;
* anything else (5xx, timeouts, version conflicts, a locked database, a bug)
                        -> retried with exponential backoff and jitter; dead after
                           `max_attempts` attempts.

A database outage never loses a job: claims pause, and a settle is retried until it lands or
the lease is lost (then another worker runs the job again, and the handler's ledger makes the
re-run a no-op). `stop()` stops claiming, waits `grace` seconds for running jobs, then cancels
the rest and hands them back to the queue untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from . import correlation, metrics
from .audit import Audit
from .cache import Reader
from .commercetools import CommercetoolsClient
from .database import Database
from .exceptions import (
    ClientError,
    DatabaseUnavailable,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .jobs import Job, Ledger, Permanent, Queue, Retry, Throttled, parse_rate
from .settings import Settings

__all__ = ["Engine", "Handler", "JobContext", "Services", "Worker", "open_engine"]

log = logging.getLogger("commerce_context.worker")


@dataclass(frozen=True)
class JobContext:
    """What a handler gets besides its payload: the job and the long-lived clients."""

    job: Job
    settings: Settings
    commercetools: CommercetoolsClient
    reader: Reader
    audit: Audit
    http: httpx.AsyncClient
    ledger: Ledger
    queue: Queue


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True)
class Services:
    """The long-lived clients, created once (app lifespan or `commerce-context worker`)."""

    settings: Settings
    commercetools: CommercetoolsClient
    reader: Reader
    audit: Audit
    http: httpx.AsyncClient
    ledger: Ledger
    queue: Queue

    @classmethod
    def of(
        cls,
        settings: Settings,
        commercetools: CommercetoolsClient,
        reader: Reader,
        http: httpx.AsyncClient,
        engine: Engine,
    ) -> Services:
        """The services of a process whose job engine is `engine` (its audit, ledger, queue)."""
        return cls(settings, commercetools, reader, engine.audit, http, engine.ledger, engine.queue)

    def context(self, job: Job) -> JobContext:
        return JobContext(
            job,
            self.settings,
            self.commercetools,
            self.reader,
            self.audit,
            self.http,
            self.ledger,
            self.queue,
        )


@dataclass(frozen=True)
class Engine:
    database: Database
    queue: Queue
    audit: Audit
    ledger: Ledger


@contextlib.asynccontextmanager
async def open_engine(
    settings: Settings, *, clock: Callable[[], float] = time.time
) -> AsyncIterator[Engine]:
    """The database (migrated), queue, audit log and ledger that `settings` describe."""
    db = Database.from_url(settings.database_location, schema=settings.database_schema)
    await db.open()
    try:
        limits = {name: parse_rate(text) for name, text in settings.rate_limits.items()}
        yield Engine(
            db,
            Queue(db, limits=limits, clock=clock, max_attempts=settings.jobs_max_attempts),
            Audit(db, clock=clock),
            Ledger(db, clock=clock),
        )
    finally:
        await db.close()


class Worker:
    def __init__(
        self,
        queue: Queue,
        handlers: Mapping[str, Handler],
        context_factory: Callable[[Job], JobContext],
        *,
        concurrency: int = 4,
        lease: float = 60.0,
        backoff_base: float = 1.0,
        backoff_max: float = 600.0,
        poll_interval: float = 1.0,
        grace: float = 10.0,
        audit: Audit | None = None,
        retention_days: float | None = None,
        maintenance_interval: float = 3600.0,
        name: str | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.queue = queue
        self.handlers = handlers
        self.context_factory = context_factory
        self.concurrency = concurrency
        self.lease = lease
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.poll_interval = poll_interval
        self.grace = grace
        self.audit = audit
        self.retention_days = retention_days
        self.maintenance_interval = maintenance_interval
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.jitter = jitter
        self._running: dict[str, tuple[Job, asyncio.Task[None]]] = {}
        self._stopping = asyncio.Event()
        self._nudge = asyncio.Event()
        self._finished = asyncio.Event()
        self._started = False

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        engine: Engine,
        handlers: Mapping[str, Handler],
        services: Services,
    ) -> Worker:
        return cls(
            engine.queue,
            handlers,
            services.context,
            concurrency=settings.worker_concurrency,
            lease=settings.jobs_lease,
            backoff_base=settings.jobs_backoff_base,
            backoff_max=settings.jobs_backoff_max,
            poll_interval=settings.jobs_poll_interval,
            audit=engine.audit,
            retention_days=settings.audit_retention_days,
        )

    def __repr__(self) -> str:
        return f"Worker({self.name!r}, running={len(self._running)})"

    @property
    def running(self) -> list[Job]:
        return [job for job, _ in self._running.values()]

    # -- the loop -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Runs until `stop()`; then hands back what it could not finish."""
        self._started = True
        heartbeat = asyncio.create_task(self._heartbeats(), name=f"{self.name}-heartbeat")
        next_maintenance = time.monotonic()
        failures = 0
        try:
            while not self._stopping.is_set():
                if self.retention_days is not None and time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + self.maintenance_interval
                    await self._maintain()
                free = self.concurrency - len(self._running)
                self.queue.wakeup.clear()
                self._nudge.clear()
                claimed: list[Job] = []
                if free > 0:
                    try:
                        claimed = await self.queue.claim(free, worker=self.name, lease=self.lease)
                        failures = 0
                    except DatabaseUnavailable as exc:
                        failures += 1
                        log.warning("worker %s cannot claim jobs: %s", self.name, exc.message)
                        await self._idle(min(self.poll_interval * failures, 5.0), wake=False)
                        continue
                for job in claimed:
                    task = asyncio.create_task(self._execute(job), name=f"job-{job.id}")
                    self._running[job.id] = (job, task)
                if claimed and len(claimed) == free:
                    await self._idle(self.poll_interval, wake=False)  # full: wait for a slot
                elif not claimed:
                    await self._idle(self._wait_hint(), wake=True)
        finally:
            await self._drain()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self._finished.set()

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get `grace` seconds, then go back to the queue."""
        if grace is not None:
            self.grace = grace
        self._stopping.set()
        self._nudge.set()
        if self._started:
            await self._finished.wait()

    def _wait_hint(self) -> float:
        hint = self.queue.hint
        return self.poll_interval if hint is None else min(self.poll_interval, max(hint, 0.005))

    async def _idle(self, seconds: float, *, wake: bool) -> None:
        waits = [asyncio.ensure_future(self._nudge.wait())]
        if wake:
            waits.append(asyncio.ensure_future(self.queue.wakeup.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _drain(self) -> None:
        tasks = [task for _, task in self._running.values()]
        if tasks and self.grace > 0:
            await asyncio.wait(tasks, timeout=self.grace)
        unfinished = [(job, task) for job, task in self._running.values() if not task.done()]
        for _, task in unfinished:
            task.cancel()
        for _, task in unfinished:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if unfinished:
            jobs = [job for job, _ in unfinished]
            for attempt in range(5):
                try:
                    await self.queue.release(jobs)
                    break
                except DatabaseUnavailable:
                    # Left as they are, their leases expire and another worker reclaims them.
                    await asyncio.sleep(0.2 * (attempt + 1))
            log.info("worker %s handed back %d job(s)", self.name, len(jobs))

    async def _heartbeats(self) -> None:
        interval = max(self.lease / 3, 0.01)
        while True:
            await asyncio.sleep(interval)
            jobs = self.running
            if not jobs:
                continue
            try:
                lost = await self.queue.heartbeat(jobs, lease=self.lease)
            except DatabaseUnavailable as exc:
                log.warning("worker %s cannot renew leases: %s", self.name, exc.message)
                continue
            for job_id in lost:
                entry = self._running.get(job_id)
                if entry is not None and not entry[1].done():
                    # Another worker has it now; stop ours (the ledger guards the effect).
                    log.warning("worker %s lost the lease of job %s", self.name, job_id)
                    entry[1].cancel()

    async def _maintain(self) -> None:
        assert self.retention_days is not None
        try:
            if self.audit is not None:
                await self.audit.purge(self.retention_days)
            await self.queue.purge(self.queue.clock() - self.retention_days * 86400)
        except DatabaseUnavailable as exc:
            log.warning("retention purge skipped: %s", exc.message)

    # -- one job ------------------------------------------------------------------------------

    async def _execute(self, job: Job) -> None:
        correlation.use(job.correlation_id)
        try:
            handler = self.handlers.get(job.kind)
            try:
                if handler is None:
                    raise Permanent(f"no handler for job kind {job.kind!r}")
                result = await handler(self.context_factory(job), job.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is settled below, none escapes the worker
                await self._failed(job, exc)
            else:
                await self._settle(job, "done", lambda: self.queue.complete(job, result))
        finally:
            self._running.pop(job.id, None)
            self._nudge.set()

    async def _failed(self, job: Job, exc: Exception) -> None:
        now = self.queue.clock()
        reason = _reason(exc)
        if isinstance(exc, Retry):
            at = now + max(exc.after, 0.0)
            await self._settle(
                job,
                "retry",
                lambda: self.queue.reschedule(job, at=at, error=None, count_attempt=False),
            )
        elif _throttled(exc):
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is None:  # no Retry-After: back off harder on each throttle in a row
                strikes = await self._db_or(self.queue.strikes(job.destination), 0)
                retry_after = self._backoff(int(strikes) + 1)
            until = now + float(retry_after)
            await self._db_or(self.queue.pause(job.destination, until), None)
            await self._settle(
                job,
                "throttled",
                lambda: self.queue.reschedule(job, at=until, error=reason, count_attempt=False),
                reason,
            )
        elif _permanent(exc):
            await self._settle(job, "dead", lambda: self.queue.kill(job, reason), reason)
        elif job.attempts >= self.queue.max_attempts:
            final = f"gave up after {job.attempts} attempts: {reason}"
            await self._settle(job, "dead", lambda: self.queue.kill(job, final), final)
        else:
            at = now + self._backoff(job.attempts)
            await self._settle(
                job, "retry", lambda: self.queue.reschedule(job, at=at, error=reason), reason
            )

    def _backoff(self, attempt: int) -> float:
        """Exponential with equal jitter: half the step fixed, half random."""
        step = min(self.backoff_max, self.backoff_base * 2.0 ** max(attempt - 1, 0))
        return float(step / 2 + step / 2 * self.jitter())

    async def _db_or(self, call: Awaitable[Any], default: Any) -> Any:
        try:
            return await call
        except DatabaseUnavailable:
            return default

    async def _settle(
        self,
        job: Job,
        outcome: str,
        write: Callable[[], Awaitable[bool]],
        error: str | None = None,
    ) -> None:
        """Writes the outcome, retrying while the database is unavailable and the lease holds."""
        delay = 0.05
        deadline = time.monotonic() + self.lease
        while True:
            try:
                held = await write()
                break
            except DatabaseUnavailable as exc:
                if time.monotonic() > deadline:
                    # The lease is gone by now: another worker will run the job again.
                    log.warning("job %s: outcome not recorded (%s)", job.id, exc.message)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
        if not held:
            log.warning("job %s: lease lost before its outcome was recorded", job.id)
            return
        seconds = self.queue.clock() - job.updated_at  # updated_at is the claim's time
        metrics.job_settled(job.kind, job.destination, outcome, seconds)
        log.info(
            "job %s (%s) %s%s",
            job.id,
            job.kind,
            outcome,
            f": {error}" if error else "",
            extra={
                "job_id": job.id,
                "job_kind": job.kind,
                "destination": job.destination,
                "outcome": outcome,
                "attempt": job.attempts,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        if self.audit is not None:
            detail: dict[str, Any] = {"attempt": job.attempts, "kind": job.kind}
            if error:
                detail["error"] = error
            refs = job.refs()
            try:
                await self.audit.record(
                    action=f"job:{job.kind}",
                    source="worker",
                    target=job.destination,
                    outcome=outcome,
                    correlation_id=job.correlation_id,
                    ticket_id=refs.get("ticket_id"),
                    order_id=refs.get("order_id"),
                    order_number=refs.get("order_number"),
                    customer_id=refs.get("customer_id"),
                    agent_id=refs.get("agent_id"),
                    job_id=job.id,
                    detail=detail,
                )
            except DatabaseUnavailable as exc:
                log.warning("job %s: audit row not written (%s)", job.id, exc.message)


def _throttled(exc: Exception) -> bool:
    if isinstance(exc, Throttled):
        return True
    return (
        isinstance(exc, UpstreamUnavailable)
        and not isinstance(exc, DatabaseUnavailable)
        and (exc.retry_after is not None or exc.throttled)
    )


def _permanent(exc: Exception) -> bool:
    return isinstance(exc, Permanent | ClientError | UpstreamRejected | UpstreamNotFound)


def _reason(exc: Exception) -> str:
    """A readable reason without PII: our exceptions' messages are written to be safe; other
    exceptions (httpx, bugs) are named by type only."""
    if isinstance(exc, Permanent | Retry | UpstreamError | ClientError):
        return exc.message
    if isinstance(exc, httpx.TimeoutException):
        return "the upstream timed out"
    if isinstance(exc, httpx.TransportError):
        return f"the upstream could not be reached ({type(exc).__name__})"
    return f"unexpected {type(exc).__name__}"
