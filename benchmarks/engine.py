"""Sync engine benchmarks (`make bench` runs this module as a child process; it also runs alone:
`.venv/bin/python benchmarks/engine.py [--quick]` prints its section).

e1. Durable ingest: jobs accepted and committed per second by `Queue.enqueue` (each call returns
    only after its commit: SQLite in WAL with synchronous=FULL, PostgreSQL with its default
    synchronous_commit), 16 concurrent producers, a webhook-sized payload, unique keys.
e2. Coalescing: 1,000 ticket field changes (50 orders x 2 fields, random order) arrive at
    250 per second while a worker writes them to a fake upstream over HTTP under the default
    commercetools limit (20/s); upstream requests per 1,000 changes, and whether every field
    ends at its latest value.
e3. Rate limits: 240 jobs through two instances (two workers, each its own database
    connection or pool) against a fake upstream that allows 20 requests per one-second window
    and answers 429 with Retry-After beyond; the 429s received with the configured limit below
    the upstream's (18/s) and above it (30/s), and whether every job completed once.

PostgreSQL: 127.0.0.1:5432, database `test`, a schema of its own dropped afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from commerce_context.database import Database  # noqa: E402
from commerce_context.exceptions import UpstreamUnavailable  # noqa: E402
from commerce_context.jobs import Queue, Rate, parse_rate  # noqa: E402
from commerce_context.worker import JobContext, Worker  # noqa: E402
from common import bench_main, serve  # noqa: E402
from common import in_child as run_child  # noqa: E402

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")
Row = dict[str, Any]


@contextlib.asynccontextmanager
async def databases(backend: str, count: int = 1) -> AsyncIterator[list[Database]]:
    """`count` instances (connections or pools) on one fresh SQLite file or PostgreSQL schema."""
    opened: list[Database] = []
    schema = f"cc_bench_{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory(prefix="cc-bench-engine-") as tmp:
        url = f"sqlite:///{tmp}/engine.sqlite3" if backend == "sqlite" else PG_URL
        try:
            for _ in range(count):
                db = Database.from_url(url, schema=schema if backend != "sqlite" else None)
                await db.open()
                opened.append(db)
            yield opened
        finally:
            for db in opened:
                await db.close()
            if backend != "sqlite":
                with psycopg.connect(PG_URL, autocommit=True) as connection:
                    connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- e1. durable ingest -----------------------------------------------------------------------

WEBHOOK = {
    "ticket_id": 123456,
    "order_number": "DE-100234",
    "field": "supportStatus",
    "value": "waiting_for_customer",
    "changed_at": "2026-11-29T12:00:00Z",
    "invocation": "01J" + "X" * 23,
    "note": "n" * 400,  # a webhook body is a few hundred bytes
}


async def ingest(backend: str, seconds: float, producers: int = 16) -> Row:
    async with databases(backend) as [db]:
        queue = Queue(db)
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds
        counter = 0

        async def produce() -> None:
            nonlocal counter
            while time.perf_counter() < deadline:
                counter += 1
                key = f"zendesk:{counter}:{uuid.uuid4().hex}"
                started = time.perf_counter()
                await queue.enqueue(
                    "writeback", WEBHOOK, key=key, destination="commercetools", source="bench"
                )
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(produce() for _ in range(producers)))
        elapsed = time.perf_counter() - started
        stored = (await queue.counts())["queued"]
    latencies.sort()
    return {
        "backend": backend,
        "producers": producers,
        "jobs": stored,
        "seconds": elapsed,
        "per_second": stored / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
    }


# -- the fake upstream (e2, e3) ---------------------------------------------------------------


class Upstream:
    """Records writes; allows `limit` requests per one-second window (fixed, by wall clock)."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.window = 0
        self.in_window = 0
        self.requests = 0
        self.throttled = 0
        self.values: dict[str, Any] = {}
        self.writes: Counter[str] = Counter()

    async def write(self, request: Request) -> JSONResponse:
        self.requests += 1
        now = time.time()
        if int(now) != self.window:
            self.window, self.in_window = int(now), 0
        self.in_window += 1
        if self.limit is not None and self.in_window > self.limit:
            self.throttled += 1
            retry = max(1, int(self.window + 1 - now + 0.999))
            return JSONResponse({"error": "rate limited"}, 429, {"Retry-After": str(retry)})
        body = await request.json()
        target = request.path_params["target"]
        self.values[target] = body["value"]
        self.writes[target] += 1
        return JSONResponse({"ok": True})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/write/{target:path}", self.write, methods=["PUT"])])


def writer(base: str) -> Any:
    async def write(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
        response = await ctx.http.put(f"{base}/write/{payload['target']}", json=payload)
        if response.status_code == 429:
            raise UpstreamUnavailable(
                "the upstream said 429", retry_after=float(response.headers["Retry-After"])
            )
        response.raise_for_status()
        return {"written": payload["value"]}

    return write


class _Context:
    """The slice of JobContext the benchmark handler uses (the engine passes it through)."""

    def __init__(self, job: Any, http: httpx.AsyncClient) -> None:
        self.job = job
        self.http = http


@contextlib.asynccontextmanager
async def workers(
    queues: Sequence[Queue], base: str, concurrency: int = 8
) -> AsyncIterator[list[Worker]]:
    async with httpx.AsyncClient(timeout=30) as http:
        running = [
            Worker(
                queue,
                {"write": writer(base)},
                lambda job, http=http: _Context(job, http),
                concurrency=concurrency,
                poll_interval=0.05,
                lease=30,
                backoff_base=0.2,
                backoff_max=2,
            )
            for queue in queues
        ]
        tasks = [asyncio.create_task(worker.run()) for worker in running]
        try:
            yield running
        finally:
            for worker in running:
                await worker.stop()
            await asyncio.gather(*tasks)


async def drained(queue: Queue, limit: float) -> bool:
    deadline = time.perf_counter() + limit
    while time.perf_counter() < deadline:
        counts = await queue.counts()
        if counts["queued"] == 0 and counts["running"] == 0:
            return True
        await asyncio.sleep(0.05)
    return False


# -- e2. coalescing ---------------------------------------------------------------------------


async def coalescing(backend: str, changes: int, rate: float = 250.0) -> Row:
    upstream = Upstream()
    rng = random.Random(8)
    targets = [f"order-{o}/{field}" for o in range(50) for field in ("supportStatus", "note")]
    latest: dict[str, str] = {}
    async with serve(upstream.app()) as base, databases(backend) as [db]:
        queue = Queue(db, limits={"commercetools": parse_rate("20/s")})
        started = time.perf_counter()
        async with workers([queue], base):
            for n in range(changes):
                target = rng.choice(targets)
                value = f"v{n}"
                latest[target] = value
                await queue.enqueue(
                    "write",
                    {"target": target, "value": value},
                    key=f"change-{n}",
                    destination="commercetools",
                    coalesce=target,
                )
                await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.perf_counter()))
            arrived = time.perf_counter() - started
            complete = await drained(queue, 120)
        elapsed = time.perf_counter() - started
        jobs = sum((await queue.counts()).values())
    return {
        "backend": backend,
        "changes": changes,
        "targets": len(latest),
        "arrival_seconds": arrived,
        "jobs": jobs,
        "requests": upstream.requests,
        "per_1000": upstream.requests * 1000 / changes,
        "latest_everywhere": complete and upstream.values == latest,
        "seconds": elapsed,
    }


# -- e3. 429s under a configured limit below / above the upstream's -----------------------------


async def throttling(backend: str, configured: str, jobs: int, upstream_limit: int = 20) -> Row:
    upstream = Upstream(limit=upstream_limit)
    rate: Rate = parse_rate(configured)
    async with serve(upstream.app()) as base, databases(backend, count=2) as dbs:
        queues = [Queue(db, limits={"ct": rate}, max_attempts=10) for db in dbs]
        for n in range(jobs):
            await queues[0].enqueue(
                "write", {"target": f"t{n}", "value": n}, key=f"j{n}", destination="ct"
            )
        started = time.perf_counter()
        async with workers(queues, base):
            complete = await drained(queues[0], 120)
        elapsed = time.perf_counter() - started
        done = (await queues[0].counts())["done"]
    return {
        "backend": backend,
        "configured": configured,
        "upstream": f"{upstream_limit}/s",
        "jobs": jobs,
        "requests": upstream.requests,
        "throttled": upstream.throttled,
        "done": done,
        "once": complete and done == jobs and set(upstream.writes.values()) == {1},
        "seconds": elapsed,
        "per_second": jobs / elapsed,
    }


# -- orchestration and report -------------------------------------------------------------------


async def run(quick: bool) -> dict[str, Any]:
    seconds, changes, jobs = (1.0, 300, 60) if quick else (3.0, 1000, 240)
    results: dict[str, Any] = {"ingest": [], "coalescing": [], "throttling": []}
    for backend in BACKENDS:
        log(f"e1. ingest on {backend}")
        results["ingest"].append(await ingest(backend, seconds))
    for backend in BACKENDS:
        log(f"e2. coalescing on {backend}")
        results["coalescing"].append(await coalescing(backend, changes))
    for backend, configured in (("sqlite", "18/s"), ("postgresql", "18/s"), ("sqlite", "30/s")):
        log(f"e3. limit {configured} on {backend}")
        results["throttling"].append(await throttling(backend, configured, jobs))
    return results


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> list[str]:
    """The markdown section for docs/benchmarks.md."""
    below = [r for r in results["throttling"] if r["configured"] == "18/s"]
    lines = [
        "## Sync engine",
        "",
        "`benchmarks/engine.py` (see its docstring). Targets: no 429 when the configured limit "
        f"is below the upstream's — {_met(all(r['throttled'] == 0 for r in below))}; every "
        "job applied exactly once in every run — "
        f"{_met(all(r['once'] for r in results['throttling']))}; every coalesced field at "
        f"its latest value — {_met(all(r['latest_everywhere'] for r in results['coalescing']))}.",
        "",
        "**e1. Durable ingest** (`Queue.enqueue`, committed before it returns):",
        "",
        _table(
            ["database", "producers", "jobs", "jobs/s", "p50 ms", "p99 ms"],
            [
                [
                    r["backend"],
                    r["producers"],
                    r["jobs"],
                    f"{r['per_second']:.0f}",
                    f"{r['p50_ms']:.2f}",
                    f"{r['p99_ms']:.2f}",
                ]
                for r in results["ingest"]
            ],
        ),
        "",
        "**e2. Upstream requests per 1,000 ticket field changes** (coalescing; 250 changes/s "
        "arriving, commercetools limited to 20/s):",
        "",
        _table(
            ["database", "changes", "fields", "jobs", "requests", "per 1,000", "latest", "s"],
            [
                [
                    r["backend"],
                    r["changes"],
                    r["targets"],
                    r["jobs"],
                    r["requests"],
                    f"{r['per_1000']:.0f}",
                    "yes" if r["latest_everywhere"] else "**no**",
                    f"{r['seconds']:.1f}",
                ]
                for r in results["coalescing"]
            ],
        ),
        "",
        "**e3. 429s received** (two instances sharing the limit; the upstream allows 20 "
        "requests per one-second window):",
        "",
        _table(
            ["database", "configured", "upstream", "jobs", "requests", "429s", "jobs/s", "once"],
            [
                [
                    r["backend"],
                    r["configured"],
                    r["upstream"],
                    r["jobs"],
                    r["requests"],
                    r["throttled"],
                    f"{r['per_second']:.1f}",
                    "yes" if r["once"] else "**no**",
                ]
                for r in results["throttling"]
            ],
        ),
        "",
    ]
    return lines


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


async def in_child(quick: bool, limit: float = 600) -> dict[str, Any]:
    """Runs this module in a process of its own (as `make bench` does); returns its results."""
    return await run_child(__file__, quick, limit)


def main() -> None:
    bench_main("Sync engine benchmarks", run, render)


if __name__ == "__main__":
    main()
