"""The durable job queue: jobs, idempotency keys, coalescing, leases, shared rate limits.

The design is the one proven by database-backed queues (Oban, Solid Queue, good_job): a `jobs`
table is the queue; a worker *claims* runnable rows in one transaction (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), marking them `running` with a lease it keeps
extending by heartbeats; a crashed worker's lease expires and the job is claimed again. So
delivery is at-least-once, and handlers make effects apply once (the `ledger`, version checks).

* `key` is the idempotency key: every key ever accepted is kept in `job_keys`, so enqueueing a
  key again, even one whose job was coalesced into another, changes nothing.
* `coalesce` names a target (e.g. one order field): a still-queued job with the same coalesce
  key takes the new payload instead of a new row being added: the latest value wins.
* Rate limits are token buckets stored in the `limits` table, one row per destination, so every
  instance draws from the same bucket; `pause()` (on a 429) stops claims for a destination
  everywhere until the given time.

Times are epoch seconds from an injectable clock (tests drive it by hand).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import math
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .database import Database, Row, Transaction
from .exceptions import BadRequest, CommerceContextError, NotFound, UpstreamUnavailable

__all__ = [
    "STATES",
    "Job",
    "Ledger",
    "Permanent",
    "Queue",
    "Rate",
    "Retry",
    "Throttled",
    "parse_rate",
]

State = Literal["queued", "running", "done", "dead", "cancelled"]
STATES: tuple[str, ...] = ("queued", "running", "done", "dead", "cancelled")
Clock = Callable[[], float]
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600}
_PERIODS["hour"] = 3600
_EPSILON = 1e-3  # epoch-second floats are coarse (~1e-7 s): a whole token must not read 0.9999
# Keys copied from a job's payload into its audit rows (ids only).
AUDIT_REFS = ("ticket_id", "order_id", "order_number", "customer_id", "agent_id")


class Permanent(CommerceContextError):
    """The job cannot succeed; it goes to the dead state with this reason."""

    code = "permanent"


class Retry(CommerceContextError):
    """Run the job again later, without counting a failed attempt."""

    code = "retry"

    def __init__(self, message: str = "", *, after: float = 1.0) -> None:
        super().__init__(message or "retry requested")
        self.after = after


class Throttled(UpstreamUnavailable):
    """The destination said 429 without a Retry-After: pause it with the fallback backoff."""

    code = "throttled"


@dataclass(frozen=True)
class Rate:
    """`count` requests per `period` seconds; bursts of at most `burst`."""

    count: float
    period: float

    @property
    def per_second(self) -> float:
        return self.count / self.period

    @property
    def burst(self) -> float:
        # A tenth of the window at once: with a bucket of B and a rate r, any window of the
        # upstream's length sees at most B + r*T requests, so we stay under a fixed-window limit
        # as long as ours is at most 90% of it.
        return max(1.0, math.floor(self.count / 10))


def parse_rate(text: str) -> Rate:
    """'20/s', '100/min', '5000/hour' -> Rate; ValueError with a readable message otherwise."""
    found = _RATE.match(text)
    if not found or float(found.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a rate such as 20/s, 100/min or 5000/hour")
    return Rate(float(found.group(1)), float(_PERIODS[found.group(2)]))


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    destination: str
    payload: dict[str, Any]
    key: str
    coalesce: str | None
    state: str
    attempts: int
    run_at: float
    lease_until: float | None
    last_error: str | None
    result: dict[str, Any] | None
    correlation_id: str | None
    source: str | None
    created_at: float
    updated_at: float
    lease_token: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_row(cls, row: Row) -> Job:
        return cls(
            id=row["id"],
            kind=row["kind"],
            destination=row["destination"],
            payload=json.loads(row["payload"]),
            key=row["key"],
            coalesce=row["coalesce_key"],
            state=row["state"],
            attempts=int(row["attempts"]),
            run_at=float(row["run_at"]),
            lease_until=None if row["lease_until"] is None else float(row["lease_until"]),
            last_error=row["last_error"],
            result=None if row["result"] is None else json.loads(row["result"]),
            correlation_id=row["correlation_id"],
            source=row["source"],
            created_at=float(row["created_at"]),
            updated_at=float(row["updated_at"]),
            lease_token=row.get("lease_token"),
        )

    def refs(self) -> dict[str, str]:
        """The ids the payload names (ticket, order, customer, agent), for audit and admin."""
        return {k: str(self.payload[k]) for k in AUDIT_REFS if self.payload.get(k) is not None}

    def summary(self) -> dict[str, Any]:
        """The job without its payload values (which may hold free text): ids and state only."""
        return {
            "id": self.id,
            "kind": self.kind,
            "destination": self.destination,
            "state": self.state,
            "attempts": self.attempts,
            "run_at": self.run_at,
            "lease_until": self.lease_until,
            "last_error": self.last_error,
            "correlation_id": self.correlation_id,
            "source": self.source,
            "coalesce": self.coalesce,
            "refs": self.refs(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Ledger:
    """Effects already applied, by idempotency key: a re-run after a crash looks here first."""

    def __init__(self, db: Database, clock: Clock = time.time) -> None:
        self.db = db
        self.clock = clock

    async def done(self, key: str) -> dict[str, Any] | None:
        row = await self.db.fetchone("SELECT result FROM ledger WHERE key = ?", (key,))
        return None if row is None else dict(json.loads(row["result"]))

    async def record(
        self, key: str, result: dict[str, Any] | None = None, *, tx: Transaction | None = None
    ) -> None:
        """Records an applied effect; inside the caller's transaction when `tx` is given (the
        effect and its record then commit together, so a crash cannot separate them)."""
        sql = "INSERT INTO ledger (key, result, at) VALUES (?, ?, ?) ON CONFLICT (key) DO NOTHING"
        params = (key, json.dumps(result or {}), self.clock())
        if tx is not None:
            await tx.execute(sql, params)
        else:
            await self.db.execute(sql, params)


class Queue:
    def __init__(
        self,
        db: Database,
        *,
        limits: dict[str, Rate] | None = None,
        clock: Clock = time.time,
        max_attempts: int = 10,
    ) -> None:
        self.db = db
        self.limits = dict(limits or {})
        self.clock = clock
        self.max_attempts = max_attempts
        # In-process workers wait on this instead of polling when a job is enqueued here.
        self.wakeup = asyncio.Event()
        # After a claim: seconds until a rate-limited or paused destination may run again.
        self.hint: float | None = None

    # -- producing --------------------------------------------------------------------------

    async def enqueue(
        self,
        kind: str,
        payload: dict[str, Any],
        *,
        key: str,
        destination: str,
        coalesce: str | None = None,
        delay: float = 0.0,
        correlation_id: str | None = None,
        source: str | None = None,
    ) -> Job:
        """Durable before it returns. An existing `key` returns its job unchanged; a queued job
        with the same `coalesce` key takes this payload and key (latest value wins)."""
        if not key:
            raise BadRequest("a job needs an idempotency key")
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
        now = self.clock()
        new_id = uuid.uuid4().hex
        async with self.db.transaction() as tx:
            added = await tx.execute(
                "INSERT INTO job_keys (key, job_id, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                (key, new_id, now),
            )
            if not added:
                existing = await tx.fetchone(
                    "SELECT j.* FROM jobs j JOIN job_keys k ON k.job_id = j.id WHERE k.key = ?",
                    (key,),
                )
                if existing is not None:
                    return Job.from_row(existing)
                # The job was purged by retention but its key kept: nothing to do either.
                raise NotFound("that job no longer exists")
            values = (
                new_id,
                kind,
                destination,
                body,
                key,
                coalesce,
                now + max(delay, 0.0),
                correlation_id,
                source,
                now,
                now,
            )
            columns = (
                "INSERT INTO jobs (id, kind, destination, payload, key, coalesce_key, state, "
                "attempts, run_at, correlation_id, source, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?) "
            )
            if coalesce is None:
                row = await tx.fetchone(columns + "RETURNING *", values)
            else:
                row = await tx.fetchone(
                    columns + "ON CONFLICT (coalesce_key) "
                    "WHERE state = 'queued' AND coalesce_key IS NOT NULL DO UPDATE SET "
                    "payload = excluded.payload, key = excluded.key, kind = excluded.kind, "
                    "correlation_id = excluded.correlation_id, source = excluded.source, "
                    "updated_at = excluded.updated_at RETURNING *",
                    values,
                )
                assert row is not None
                if row["id"] != new_id:  # coalesced: the key now names the surviving job
                    await tx.execute(
                        "UPDATE job_keys SET job_id = ? WHERE key = ?", (row["id"], key)
                    )
        assert row is not None
        self.wakeup.set()
        return Job.from_row(row)

    # -- reading and operating ----------------------------------------------------------------

    async def get(self, job_id: str) -> Job | None:
        row = await self.db.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return None if row is None else Job.from_row(row)

    async def list(
        self, *, state: str | None = None, kind: str | None = None, limit: int = 100
    ) -> builtins.list[Job]:
        if state is not None and state not in STATES:
            raise BadRequest(f"unknown job state {state!r}; one of {', '.join(STATES)}")
        where, params = [], []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self.db.fetchall(
            f"SELECT * FROM jobs {clause}ORDER BY updated_at DESC, id LIMIT ?",  # noqa: S608
            (*params, max(1, min(limit, 1000))),
        )
        return [Job.from_row(r) for r in rows]

    async def counts(self) -> dict[str, int]:
        rows = await self.db.fetchall("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        found = {r["state"]: int(r["n"]) for r in rows}
        return {state: found.get(state, 0) for state in STATES}

    async def retry(self, job_id: str) -> Job:
        """A dead (or cancelled) job back to the queue, its attempts reset."""
        return await self._operate(
            job_id,
            ("dead", "cancelled"),
            "UPDATE jobs SET state = 'queued', attempts = 0, run_at = ?, lease_until = NULL, "
            "lease_token = NULL, worker = NULL, updated_at = ? WHERE id = ? "
            "AND state IN ('dead', 'cancelled')",
            "retried",
        )

    async def cancel(self, job_id: str) -> Job:
        """A queued or dead job will not run."""
        return await self._operate(
            job_id,
            ("queued", "dead"),
            "UPDATE jobs SET state = 'cancelled', run_at = ?, updated_at = ? WHERE id = ? "
            "AND state IN ('queued', 'dead')",
            "cancelled",
        )

    async def _operate(self, job_id: str, allowed: tuple[str, ...], sql: str, verb: str) -> Job:
        now = self.clock()
        async with self.db.transaction() as tx:
            current = await tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
            if verb == "retried" and current is not None and current["state"] in allowed:
                newer = await _queued_sibling(tx, Job.from_row(current))
                if newer is not None:
                    raise BadRequest(
                        f"job {job_id} is superseded: job {newer} already writes a newer value "
                        "to the same target"
                    )
            changed = await tx.execute(sql, (now, now, job_id))
            row = await tx.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row is None:
            raise NotFound(f"no job {job_id}")
        if not changed:
            raise BadRequest(
                f"job {job_id} is {row['state']}; only {' or '.join(allowed)} jobs can be {verb}"
            )
        if verb == "retried":
            self.wakeup.set()
        return Job.from_row(row)

    # -- claiming (the worker's side) -----------------------------------------------------------

    async def claim(self, n: int, *, worker: str, lease: float) -> builtins.list[Job]:
        """Up to `n` runnable jobs, now leased to `worker` until now + `lease`, within the
        destinations' rate limits; jobs whose lease expired are reclaimed."""
        if n <= 0:
            return []
        now = self.clock()
        self.hint = None
        async with self.db.transaction() as tx:
            # A job whose lease expired after its last allowed attempt killed its workers.
            await tx.execute(
                "UPDATE jobs SET state = 'dead', last_error = ?, lease_token = NULL, "
                "updated_at = ? WHERE state = 'running' AND lease_until < ? AND attempts >= ?",
                (
                    "the worker running it stopped answering on every attempt",
                    now,
                    now,
                    self.max_attempts,
                ),
            )
            blocked = await self._blocked(tx, now)
            exclude = ""
            params: builtins.list[Any] = [now, now]
            if blocked:
                exclude = f"AND destination NOT IN ({', '.join('?' * len(blocked))}) "
                params.extend(blocked)
            lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
            # One job per coalesce key at a time: a newer value never overtakes an older one
            # still being written (latest value wins at the destination, too).
            candidates = await tx.fetchall(
                "SELECT id, destination FROM jobs WHERE ((state = 'queued' AND run_at <= ?) "  # noqa: S608
                "OR (state = 'running' AND lease_until < ?)) "
                f"{exclude}AND (coalesce_key IS NULL OR coalesce_key NOT IN (SELECT coalesce_key "
                "FROM jobs WHERE state = 'running' AND coalesce_key IS NOT NULL "
                "AND lease_until >= ?)) "
                f"ORDER BY run_at, created_at LIMIT ?{lock}",
                (*params, now, n * 4),
            )
            chosen = await self._take_tokens(tx, candidates, now, n)
            if not chosen:
                return []
            token = uuid.uuid4().hex
            marks = ", ".join("?" * len(chosen))
            rows = await tx.fetchall(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?, "  # noqa: S608
                "lease_token = ?, worker = ?, updated_at = ? "
                f"WHERE id IN ({marks}) RETURNING *",
                (now + lease, token, worker, now, *chosen),
            )
        return sorted((Job.from_row(r) for r in rows), key=lambda j: (j.run_at, j.created_at))

    async def _blocked(self, tx: Transaction, now: float) -> builtins.list[str]:
        """Destinations that are paused or have no token left right now."""
        rows = await tx.fetchall("SELECT * FROM limits")
        blocked = []
        for row in rows:
            rate = self.limits.get(row["destination"])
            if row["paused_until"] > now:
                blocked.append(row["destination"])
                self._hint(row["paused_until"] - now)
            elif rate is not None and (tokens := _refill(row, rate, now)) < 1 - _EPSILON:
                blocked.append(row["destination"])
                self._hint((1 - tokens) / rate.per_second)
        return blocked

    def _hint(self, seconds: float) -> None:
        self.hint = seconds if self.hint is None else min(self.hint, seconds)

    async def _take_tokens(
        self, tx: Transaction, candidates: builtins.list[Row], now: float, n: int
    ) -> builtins.list[str]:
        chosen: builtins.list[str] = []
        by_destination: dict[str, list[str]] = {}
        for row in candidates:
            by_destination.setdefault(row["destination"], []).append(row["id"])
        lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
        for destination, ids in by_destination.items():
            want = min(len(ids), n - len(chosen))
            if want <= 0:
                break
            rate = self.limits.get(destination)
            if rate is None:
                chosen.extend(ids[:want])
                continue
            await tx.execute(
                "INSERT INTO limits (destination, tokens, refilled_at) VALUES (?, ?, ?) "
                "ON CONFLICT (destination) DO NOTHING",
                (destination, rate.burst, now),
            )
            found = await tx.fetchone(
                f"SELECT * FROM limits WHERE destination = ?{lock}",  # noqa: S608
                (destination,),
            )
            assert found is not None
            row = found
            if row["paused_until"] > now:
                continue
            tokens = _refill(row, rate, now)
            take = min(want, math.floor(tokens + _EPSILON))
            if take < want:
                self._hint((1 - (tokens - take)) / rate.per_second)
            await tx.execute(
                "UPDATE limits SET tokens = ?, refilled_at = ? WHERE destination = ?",
                (tokens - take, now, destination),
            )
            chosen.extend(ids[:take])
        return chosen

    async def heartbeat(self, jobs: builtins.list[Job], *, lease: float) -> set[str]:
        """Extends the leases still held; returns the ids whose lease was lost."""
        if not jobs:
            return set()
        now = self.clock()
        lost = set()
        async with self.db.transaction() as tx:
            for job in jobs:
                changed = await tx.execute(
                    "UPDATE jobs SET lease_until = ? WHERE id = ? AND lease_token = ? "
                    "AND state = 'running'",
                    (now + lease, job.id, job.lease_token),
                )
                if not changed:
                    lost.add(job.id)
        return lost

    async def complete(self, job: Job, result: dict[str, Any] | None) -> bool:
        """Marks a claimed job done; False when its lease had been lost (someone else ran it)."""
        now = self.clock()
        async with self.db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE jobs SET state = 'done', result = ?, lease_until = NULL, "
                "lease_token = NULL, updated_at = ? WHERE id = ? AND lease_token = ?",
                (json.dumps(result) if result is not None else None, now, job.id, job.lease_token),
            )
            if changed:
                await tx.execute(
                    "UPDATE limits SET strikes = 0 WHERE destination = ? AND strikes > 0",
                    (job.destination,),
                )
        return bool(changed)

    async def reschedule(
        self, job: Job, *, at: float, error: str | None, count_attempt: bool = True
    ) -> bool:
        """Back to the queue until `at` (a retry); False when the lease had been lost."""
        now = self.clock()
        undo = "" if count_attempt else "attempts = attempts - 1, "
        async with self.db.transaction() as tx:
            if await _superseded(tx, job, now):
                return True
            changed = await tx.execute(
                f"UPDATE jobs SET state = 'queued', {undo}run_at = ?, last_error = ?, "  # noqa: S608
                "lease_until = NULL, lease_token = NULL, worker = NULL, updated_at = ? "
                "WHERE id = ? AND lease_token = ?",
                (at, error, now, job.id, job.lease_token),
            )
        if changed:
            self.wakeup.set()
        return bool(changed)

    async def kill(self, job: Job, reason: str) -> bool:
        """Dead at once, with its reason; False when the lease had been lost."""
        now = self.clock()
        changed = await self.db.execute(
            "UPDATE jobs SET state = 'dead', last_error = ?, lease_until = NULL, "
            "lease_token = NULL, updated_at = ? WHERE id = ? AND lease_token = ?",
            (reason, now, job.id, job.lease_token),
        )
        return bool(changed)

    async def release(self, jobs: builtins.list[Job]) -> None:
        """Hands claimed jobs back untouched (a graceful stop): runnable at once, elsewhere."""
        now = self.clock()
        async with self.db.transaction() as tx:
            for job in jobs:
                if await _superseded(tx, job, now):
                    continue
                await tx.execute(
                    "UPDATE jobs SET state = 'queued', attempts = attempts - 1, run_at = ?, "
                    "lease_until = NULL, lease_token = NULL, worker = NULL, updated_at = ? "
                    "WHERE id = ? AND lease_token = ?",
                    (now, now, job.id, job.lease_token),
                )

    async def pause(self, destination: str, until: float) -> None:
        """No worker of any instance claims jobs for `destination` before `until`."""
        rate = self.limits.get(destination)
        now = self.clock()
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO limits (destination, tokens, refilled_at) VALUES (?, ?, ?) "
                "ON CONFLICT (destination) DO NOTHING",
                (destination, rate.burst if rate else 0.0, now),
            )
            await tx.execute(
                "UPDATE limits SET paused_until = ?, tokens = 0, refilled_at = ?, "
                "strikes = strikes + 1 WHERE destination = ? AND paused_until < ?",
                (until, until, destination, until),
            )

    async def strikes(self, destination: str) -> int:
        """Consecutive throttling answers from `destination` (reset by a success)."""
        row = await self.db.fetchone(
            "SELECT strikes FROM limits WHERE destination = ?", (destination,)
        )
        return 0 if row is None else int(row["strikes"])

    async def paused_until(self, destination: str) -> float:
        row = await self.db.fetchone(
            "SELECT paused_until FROM limits WHERE destination = ?", (destination,)
        )
        return 0.0 if row is None else float(row["paused_until"])

    async def purge(self, before: float) -> int:
        """Deletes finished jobs (done, cancelled) last changed before `before`, their keys and
        ledger entries; returns the number of jobs removed. Dead jobs stay until handled."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "DELETE FROM job_keys WHERE job_id IN (SELECT id FROM jobs WHERE "
                "state IN ('done', 'cancelled') AND updated_at < ?)",
                (before,),
            )
            removed = await tx.execute(
                "DELETE FROM jobs WHERE state IN ('done', 'cancelled') AND updated_at < ?",
                (before,),
            )
            await tx.execute("DELETE FROM ledger WHERE at < ?", (before,))
        return removed


def _refill(row: Row, rate: Rate, now: float) -> float:
    start = max(float(row["refilled_at"]), float(row["paused_until"]))
    elapsed = max(0.0, now - start)
    return float(min(rate.burst, float(row["tokens"]) + elapsed * rate.per_second))


async def _queued_sibling(tx: Transaction, job: Job) -> str | None:
    """The id of a queued job with `job`'s coalesce key, other than `job` itself."""
    if job.coalesce is None:
        return None
    row = await tx.fetchone(
        "SELECT id FROM jobs WHERE coalesce_key = ? AND state = 'queued' AND id <> ?",
        (job.coalesce, job.id),
    )
    return None if row is None else str(row["id"])


async def _superseded(tx: Transaction, job: Job, now: float) -> bool:
    """A claimed job going back to the queue while a newer value for the same target waits
    there: that newer job carries the latest value, so this one ends cancelled (two queued
    jobs of one coalesce key cannot exist, and the older value must not be written after the
    newer one)."""
    newer = await _queued_sibling(tx, job)
    if newer is None:
        return False
    changed = await tx.execute(
        "UPDATE jobs SET state = 'cancelled', last_error = ?, lease_until = NULL, "
        "lease_token = NULL, worker = NULL, updated_at = ? WHERE id = ? AND lease_token = ?",
        (f"superseded by job {newer}, which writes a newer value", now, job.id, job.lease_token),
    )
    return bool(changed)
