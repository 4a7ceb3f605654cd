"""Tidio contact-sync benchmarks (`make bench` runs this module as a child process; it also
runs alone: `.venv/bin/python benchmarks/tidio.py [--quick]` prints its section).

The Tidio side of the sync, end to end from the queue: property changes enter the engine as
`tidio.push` jobs exactly as the order and cart handlers enqueue them (after their
commercetools read, which runs on the `commercetools` destination and is not counted here); a
real worker sends them to the fake Tidio over loopback HTTP, with the engine's rate limit and
the fake's fixed one-minute window of 60 requests (Tidio Plus).

t1. Tidio requests per 1,000 order events: 1,000 events for 250 shoppers (4 each, in random
    order), arriving at 100 per second; configured limit 54/min.
t2. Tidio requests per 1,000 cart changes: 1,000 changes of 50 carts (20 each), same arrival.
    Both report whether every contact ends with its latest values, the batch sizes, the time
    from the last event until all was sent, and the time the same requests take to drain at
    60 per minute from the limiter (a bucket of 6, then one a second); without batching and
    coalescing each event would be one request: 1,000 requests, 16.6 minutes at 60/min.
t3. 429s at steady state: changes for 2,000 shoppers arriving at 20 per second for longer than
    Tidio's one-minute window, no batch window (every claim sends what is queued), with the
    engine limit configured at 54/min and at 60/min against the upstream's 60 per minute.
t4. The storefront snippet's size, raw and gzipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import random
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from commerce_context.audit import Audit  # noqa: E402
from commerce_context.cache import Freshness, Reader  # noqa: E402
from commerce_context.commercetools import CommercetoolsClient  # noqa: E402
from commerce_context.database import Database  # noqa: E402
from commerce_context.emulator.tidio import FakeTidio, serve_fake_tidio  # noqa: E402
from commerce_context.jobs import Ledger, Queue, parse_rate  # noqa: E402
from commerce_context.policy import Policy  # noqa: E402
from commerce_context.settings import Settings, load_settings  # noqa: E402
from commerce_context.stores import MemoryStore  # noqa: E402
from commerce_context.tidio import Contacts  # noqa: E402
from commerce_context.tidio_sync import PROPERTIES, PUSH_KIND, enqueue_push, push  # noqa: E402
from commerce_context.worker import Services, Worker  # noqa: E402
from common import bench_main  # noqa: E402
from common import in_child as run_child  # noqa: E402

SNIPPET = HERE.parent / "tidio_widget" / "commerce-context-tidio.js"
CLIENT_ID, CLIENT_SECRET = "ci_bench", "cs_bench0secret"
UPSTREAM_PER_MINUTE = 60


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _settings(url: str, state: Path, window: float) -> Settings:
    return load_settings(
        _env_file=None,
        ct_project_key="bench",
        ct_client_id="bench",
        ct_client_secret="bench",
        ct_api_url="http://127.0.0.1:9",
        ct_auth_url="http://127.0.0.1:9",
        state_path=state,
        tidio_api_url=url,
        tidio_client_id=CLIENT_ID,
        tidio_client_secret=CLIENT_SECRET,
        tidio_identity_secret="i" * 40,
        tidio_batch_window=window,
    )


@contextlib.asynccontextmanager
async def engine(
    limit: str, window: float, shoppers: int
) -> AsyncIterator[tuple[Queue, FakeTidio, Settings, Worker]]:
    fake = FakeTidio(
        client_id=CLIENT_ID, client_secret=CLIENT_SECRET, limit_per_minute=UPSTREAM_PER_MINUTE
    )
    for name, kind in PROPERTIES.items():
        fake.define(name, kind)
    with tempfile.TemporaryDirectory() as tmp:
        async with serve_fake_tidio(fake) as (_, url), httpx.AsyncClient(timeout=10) as http:
            settings = _settings(url, Path(tmp) / "state.sqlite3", window)
            db = Database.from_url(f"sqlite:///{Path(tmp) / 'engine.sqlite3'}")
            await db.open()
            try:
                contacts = Contacts(db)
                for n in range(shoppers):
                    cid = fake.add_contact(distinct_id=f"cc_bench_{n}")
                    await contacts.remember(f"cc_bench_{n}", cid, at=time.time())
                queue = Queue(db, limits={"tidio": parse_rate(limit)})
                commercetools = CommercetoolsClient(settings, http)
                reader = Reader(
                    commercetools, Policy(), MemoryStore(1 << 20), freshness=Freshness()
                )
                services = Services(
                    settings, commercetools, reader, Audit(db), http, Ledger(db), queue
                )
                worker = Worker(
                    queue, {PUSH_KIND: push}, services.context, concurrency=2,
                    poll_interval=0.05, backoff_base=0.05, backoff_max=1.0,
                )  # fmt: skip
                yield queue, fake, settings, worker
            finally:
                await db.close()


async def _produce(
    queue: Queue, settings: Settings, events: list[tuple[int, dict[str, Any]]], rate: float
) -> float:
    """Enqueue the events at `rate` per second; returns when the last one went in."""
    started = time.monotonic()
    for index, (shopper, values) in enumerate(events):
        wait = started + index / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        await enqueue_push(
            queue,
            settings,
            distinct_id=f"cc_bench_{shopper}",
            group="order" if "cc_last_order" in values else "cart",
            values=values,
            key=f"bench-{index}",
        )
    return time.monotonic()


async def _drained(queue: Queue) -> float:
    while True:
        counts = await queue.counts()
        if counts["queued"] == 0 and counts["running"] == 0:
            return time.monotonic()
        await asyncio.sleep(0.05)


def _limiter_seconds(requests: int, per_minute: float) -> float:
    """Seconds a bucket of per_minute/10 (at least 1), refilled at per_minute/60 a second,
    takes to let `requests` through (the engine's Rate)."""
    rate = parse_rate(f"{per_minute:g}/min")
    return max(0.0, requests - rate.burst) / rate.per_second


async def burst(kind: str, shoppers: int, events: int, limit: str) -> dict[str, Any]:
    rng = random.Random(7)
    plan = [n for n in range(shoppers) for _ in range(events // shoppers)]
    rng.shuffle(plan)
    seen: dict[int, int] = {}
    stream: list[tuple[int, dict[str, Any]]] = []
    latest: dict[int, str] = {}
    for shopper in plan:
        seen[shopper] = seen.get(shopper, 0) + 1
        count = seen[shopper]
        if kind == "order":
            values = {"cc_last_order": f"B-{shopper}-{count}", "cc_order_count": count}
            latest[shopper] = f"B-{shopper}-{count}"
        else:
            values = {"cc_cart_items": count, "cc_cart_total": f"{count * 9.95:.2f}"}
            latest[shopper] = str(count)
        stream.append((shopper, values))
    async with engine(limit, 2.0, shoppers) as (queue, fake, settings, worker):
        task = asyncio.create_task(worker.run())
        try:
            last_event = await _produce(queue, settings, stream, rate=100.0)
            done = await _drained(queue)
        finally:
            await worker.stop()
            await task
        name = "cc_last_order" if kind == "order" else "cc_cart_items"
        ids = {f"cc_bench_{n}": n for n in range(shoppers)}
        right = all(
            fake.property(c["id"], name) == latest[ids[c["distinct_id"]]]
            for c in fake.contacts.values()
            if c["distinct_id"] in ids
        )
        requests = len(fake.requests)
        return {
            "kind": kind,
            "events": len(stream),
            "shoppers": shoppers,
            "requests": requests,
            "batches": len(fake.batch_sizes),
            "largest_batch": max(fake.batch_sizes, default=0),
            "per_1000": requests * 1000 / len(stream),
            "throttled": fake.throttled,
            "latest": right,
            "drain_s": done - last_event,
            "at_60_s": _limiter_seconds(requests, 60),
            "unbatched_at_60_s": _limiter_seconds(len(stream), 60),
        }


async def steady(limit: str, seconds: float, shoppers: int = 2000) -> dict[str, Any]:
    rng = random.Random(11)
    count = int(seconds * 20)
    stream = [(rng.randrange(shoppers), {"cc_cart_items": i}) for i in range(count)]
    async with engine(limit, 0.0, shoppers) as (queue, fake, settings, worker):
        task = asyncio.create_task(worker.run())
        try:
            started = time.monotonic()
            await _produce(queue, settings, stream, rate=20.0)
            elapsed = time.monotonic() - started
        finally:
            await worker.stop()
            await task
        return {
            "configured": limit,
            "upstream": f"{UPSTREAM_PER_MINUTE}/min",
            "seconds": elapsed,
            "changes": count,
            "requests": len(fake.requests),
            "throttled": fake.throttled,
        }


def snippet() -> dict[str, Any]:
    raw = SNIPPET.read_bytes()
    return {"bytes": len(raw), "gzip_bytes": len(gzip.compress(raw, compresslevel=9))}


async def run(quick: bool) -> dict[str, Any]:
    scale = 4 if quick else 1
    log("t1. Tidio requests per 1,000 order events")
    orders = await burst("order", 250 // scale, 1000 // scale, "54/min")
    log("t2. Tidio requests per 1,000 cart changes")
    carts = await burst("cart", 50 // scale, 1000 // scale, "54/min")
    span = 15.0 if quick else 75.0
    log(f"t3. 429s at steady state ({span:.0f} s per limit)")
    rows = [await steady(limit, span) for limit in ("54/min", "60/min")]
    return {"bursts": [orders, carts], "steady": rows, "snippet": snippet()}


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render(results: dict[str, Any]) -> list[str]:
    bursts, steady_rows, size = results["bursts"], results["steady"], results["snippet"]
    below = [r for r in steady_rows if r["configured"] == "54/min"]
    zero = all(r["throttled"] == 0 for r in below)
    return [
        "## Tidio contact sync",
        "",
        "`benchmarks/tidio.py` (see its docstring): property changes through the job engine to "
        "the fake Tidio over HTTP, batched (`PATCH /contacts/batch`, up to 100 contacts) and "
        "coalesced per contact. Targets: every contact at its latest values — "
        f"{_met(all(b['latest'] for b in bursts))}; no 429 at steady state with the limit "
        f"configured below Tidio's (54/min against 60/min) — {_met(zero)}.",
        "",
        "**t1, t2. Tidio requests per 1,000 events** (100 events/s arriving, limit 54/min; "
        "drain: from the last event until everything was sent; at 60/min: the limiter's time "
        "for the same requests, and for one request per event):",
        "",
        _table(
            [
                "events",
                "shoppers",
                "requests",
                "per 1,000",
                "batches",
                "largest",
                "429s",
                "latest",
                "drain s",
                "at 60/min s",
                "unbatched at 60/min s",
            ],
            [
                [
                    f"{b['events']} {b['kind']}",
                    b["shoppers"],
                    b["requests"],
                    f"{b['per_1000']:.0f}",
                    b["batches"],
                    b["largest_batch"],
                    b["throttled"],
                    "yes" if b["latest"] else "**no**",
                    f"{b['drain_s']:.1f}",
                    f"{b['at_60_s']:.0f}",
                    f"{b['unbatched_at_60_s']:.0f}",
                ]
                for b in bursts
            ],
        ),
        "",
        "**t3. 429s at steady state** (20 changes/s for 2,000 shoppers, no batch window, Tidio "
        "allowing 60 requests per one-minute window):",
        "",
        _table(
            ["configured", "upstream", "seconds", "changes", "requests", "429s"],
            [
                [
                    r["configured"],
                    r["upstream"],
                    f"{r['seconds']:.0f}",
                    r["changes"],
                    r["requests"],
                    r["throttled"],
                ]
                for r in steady_rows
            ],
        ),
        "",
        f"**t4. The storefront snippet**: {size['bytes']:,} bytes, {size['gzip_bytes']:,} "
        "gzipped (`tidio_widget/commerce-context-tidio.js`).",
        "",
    ]


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


async def in_child(quick: bool, limit: float = 900) -> dict[str, Any]:
    """Runs this module in a process of its own (as `make bench` does); returns its results."""
    return await run_child(__file__, quick, limit)


def main() -> None:
    bench_main("Tidio contact-sync benchmarks", run, render)


if __name__ == "__main__":
    main()
