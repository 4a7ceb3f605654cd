"""Zendesk outbound sync benchmarks (`make bench` runs this module as a child process; it also
runs alone: `.venv/bin/python benchmarks/zendesk.py [--quick]` prints its section).

The real sync (zendesk_sync's handlers, the job queue on SQLite, a worker, the Zendesk client)
against the fake Zendesk (`emulator/zendesk.py`) over HTTP on loopback. commercetools is a small
stub GraphQL server here (`Commercetools` below) that answers the sync's own documents from
memory: these benchmarks count Zendesk requests and time Zendesk-bound work, and 10,000 seeded
customers would take the emulator minutes to create. The fake's Zendesk jobs take 2 x 20 ms
(queued, working); real ones take seconds, which adds waiting, not requests.

z1. Requests per 1,000 customer changes: 1,000 changes of 250 customers (4 each) in one minute,
    each enqueued as the events endpoint does (`enqueue_customer`), under the default limits
    and batch window (2 s); run 2x faster with the limits and the window scaled alike. Zendesk
    requests per 1,000 changes, by endpoint, against 1,000 for one call per change.
z2. Requests per 1,000 order events: 1,000 events of 100 orders (10 each; every event moves the
    order to a new shipment state) in one minute, each order with one open ticket found by its
    order-number field; default limits, 2x faster as in z1. Requests by endpoint, and whether
    every ticket ends at its order's final state.
z3. Backfill drain: 10,000 customers through `backfill_customers` (100 jobs of 100). The
    configured `zendesk:users` limit is 60/min; the run uses it scaled 60x (60/s) and reports
    the measured time, the requests, and the drain time computed at the configured limit
    (the token bucket's burst, then one job per second) plus the measured time of one job.
z4. 429s at steady state: customer changes and order events together for a fixed time, with
    the default limits (zendesk 400/min, zendesk:tickets 100/min, zendesk:users 60/min) and
    the fake's account limit of 700/min, both scaled 60x (per second; the fake's window 1 s).
    429s received with the configured limits below the fake's, and with the fake's limit cut
    below ours (then 429s are expected: each pauses the destination, nothing is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from commerce_context.audit import Audit  # noqa: E402
from commerce_context.cache import Reader  # noqa: E402
from commerce_context.commercetools import CommercetoolsClient  # noqa: E402
from commerce_context.database import Database  # noqa: E402
from commerce_context.emulator.zendesk import FakeZendesk, serve_fake_zendesk  # noqa: E402
from commerce_context.jobs import Ledger, Queue, parse_rate  # noqa: E402
from commerce_context.policy import Policy  # noqa: E402
from commerce_context.settings import DEFAULT_RATE_LIMITS, Settings, load_settings  # noqa: E402
from commerce_context.stores import MemoryStore  # noqa: E402
from commerce_context.worker import Services, Worker  # noqa: E402
from commerce_context.zendesk_sync import (  # noqa: E402
    HANDLERS,
    backfill_customers,
    enqueue_customer,
    enqueue_customers,
    enqueue_order,
)
from common import bench_main, serve  # noqa: E402
from common import in_child as run_child  # noqa: E402

EMAIL, TOKEN = "bench@example.com", "bench-token"
ORDER_FIELD, STATE_FIELD, SHIPMENT_FIELD = 360000001, 501, 502
SCALE = 60.0  # z3, z4: limits per minute run per second
EVENTS_SCALE = 2.0  # z1, z2: a minute of events in 30 s (each enqueue is a durable commit)
STATES = ("Pending", "Ready", "Shipped", "Delayed", "Delivered")
CONFIG = f"""
[zendesk_sync]
customers = true
orders = true
organizations = false
job_poll_interval = 0.02
batch_window = {{window}}

[zendesk_sync.user_fields]
cc_locale = "locale"

[zendesk_sync.ticket_fields]
order_number = {ORDER_FIELD}
order_state = {STATE_FIELD}
shipment_state = {SHIPMENT_FIELD}
"""
Row = dict[str, Any]
_ID = re.compile(r"/[0-9a-f]{6,}|/\d+")


class Commercetools:
    """A stub commercetools: OAuth and the GraphQL documents the Zendesk sync sends, answered
    from memory (customers by id, by email, in id pages; orders by id)."""

    def __init__(self) -> None:
        self.customers: dict[str, dict[str, Any]] = {}
        self.orders: dict[str, dict[str, Any]] = {}
        self.requests = 0

    def add_customers(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            customer_id = str(uuid.uuid4())
            self.customers[customer_id] = {
                "id": customer_id,
                "version": 1,
                "createdAt": "2024-01-01T00:00:00.000Z",
                "email": f"{customer_id[:12]}@example.com",
                "customerNumber": None,
                "firstName": "Bench",
                "lastName": customer_id[:6],
                "locale": "en-GB",
                "companyName": None,
                "customerGroup": None,
                "storesRef": [],
            }
            ids.append(customer_id)
        return ids

    def add_order(self) -> dict[str, Any]:
        order_id = str(uuid.uuid4())
        order = {
            "id": order_id,
            "version": 1,
            "orderNumber": f"B-{order_id[:8].upper()}",
            "orderState": "Open",
            "shipmentState": "Pending",
            "paymentState": "Paid",
            "locale": "en-GB",
            "country": "GB",
            "origin": "Customer",
            "storeRef": {"key": "london"},
            "totalPrice": {"currencyCode": "GBP"},
            "shippingAddress": {"country": "GB"},
            "lineItems": [],
        }
        self.orders[order_id] = order
        return order

    async def token(self, request: Request) -> JSONResponse:
        return JSONResponse(
            {"access_token": "stub", "token_type": "Bearer", "expires_in": 172800, "scope": "x"}
        )

    async def graphql(self, request: Request) -> JSONResponse:
        self.requests += 1
        body = await request.json()
        name, variables = body.get("operationName"), body.get("variables") or {}
        data: dict[str, Any] = {}
        if name == "ZendeskSyncCustomers":
            ids = re.findall(r'"([^"]+)"', variables["customers_where"])
            data["customers"] = {"results": [self.customers[i] for i in ids if i in self.customers]}
        elif name == "ZendeskSyncSameEmail":
            emails = set(re.findall(r'"([^"]+)"', variables["same_email_where"]))
            found = [c for c in self.customers.values() if c["email"] in emails]
            data["same_email"] = {"results": found}
        elif name == "ZendeskSyncOrder":
            data["order"] = self.orders.get(variables["order_id"])
        elif name == "ZendeskBackfill":
            cursor = re.findall(r'id > "([^"]*)"', variables["page_where"])[0]
            after = sorted(i for i in self.customers if i > cursor)[: variables["page_limit"]]
            data["page"] = {"results": [{"id": i} for i in after]}
        else:
            return JSONResponse({"errors": [{"message": f"unexpected {name}"}]}, 400)
        return JSONResponse({"data": data})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/oauth/token", self.token, methods=["POST"]),
                Route("/bench/graphql", self.graphql, methods=["POST"]),
            ]
        )


@dataclass
class Rig:
    settings: Settings
    queue: Queue
    services: Services
    fake: FakeZendesk
    ct: Commercetools

    def requests(self) -> Counter[str]:
        """Zendesk requests by endpoint (ids folded)."""
        return Counter(f"{method} {_ID.sub('/{id}', path)}" for method, path in self.fake.requests)

    async def drain(self, worker_count: int = 1, limit: float = 600.0) -> float:
        started = time.perf_counter()
        workers = [
            Worker(
                self.queue,
                HANDLERS,
                self.services.context,
                concurrency=8,
                poll_interval=0.02,
                backoff_base=0.1,
                backoff_max=2.0,
                lease=30,
            )
            for _ in range(worker_count)
        ]
        tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            while time.perf_counter() - started < limit:
                counts = await self.queue.counts()
                if counts["queued"] == 0 and counts["running"] == 0:
                    break
                await asyncio.sleep(0.02)
        finally:
            for worker in workers:
                await worker.stop()
            await asyncio.gather(*tasks)
        return time.perf_counter() - started


@contextlib.asynccontextmanager
async def rig(
    *,
    limits: dict[str, str],
    fake_limit: int = 700,
    window: float = 60.0,
    batch_window: float = 2.0,
) -> AsyncIterator[Rig]:
    ct = Commercetools()
    fake = FakeZendesk(email=EMAIL, api_token=TOKEN, limit_per_minute=fake_limit, window=window)
    with tempfile.TemporaryDirectory(prefix="cc-bench-zendesk-") as tmp:
        config = Path(tmp) / "mappings.toml"
        config.write_text(CONFIG.replace("{window}", str(batch_window)))
        async with serve(ct.app()) as ct_url, serve_fake_zendesk(fake) as (_, zendesk_url):
            settings = load_settings(
                _env_file=None,
                ct_project_key="bench",
                ct_client_id="bench",
                ct_client_secret="bench-secret",
                ct_api_url=ct_url,
                ct_auth_url=ct_url,
                config_file=str(config),
                database_url=f"sqlite:///{tmp}/jobs.sqlite3",
                zendesk_api_url=zendesk_url,
                zendesk_api_email=EMAIL,
                zendesk_api_token=TOKEN,
                zendesk_order_field_id=ORDER_FIELD,
                rate_limits=limits,
            )
            db = Database.from_url(f"sqlite:///{tmp}/jobs.sqlite3")
            await db.open()
            try:
                queue = Queue(db, limits={k: parse_rate(v) for k, v in limits.items()})
                async with httpx.AsyncClient(timeout=30) as http:
                    commercetools = CommercetoolsClient(settings, http)
                    reader = Reader(commercetools, Policy(), MemoryStore(8 << 20))
                    services = Services(
                        settings, commercetools, reader, Audit(db), http, Ledger(db), queue
                    )
                    yield Rig(settings, queue, services, fake, ct)
            finally:
                await db.close()


def scaled(limits: dict[str, str], factor: float = SCALE) -> dict[str, str]:
    """The same budgets on a clock `factor` times faster ('100/min' at 60x: '100/s')."""
    return {k: f"{parse_rate(v).per_second * factor:g}/s" for k, v in limits.items()}


UNLIMITED = {"commercetools": "1000/s", "zendesk": "1000/s", "zendesk:tickets": "1000/s",
             "zendesk:users": "1000/s"}  # fmt: skip


# -- z1. customer changes ----------------------------------------------------------------------


def configured(factor: float = SCALE) -> dict[str, str]:
    """The default limits on a faster clock (commercetools, stubbed here, unlimited)."""
    return {**scaled(dict(DEFAULT_RATE_LIMITS), factor), "commercetools": "1000/s"}


async def customer_changes(changes: int, customers: int, factor: float) -> Row:
    rate = 1000 / 60 * factor  # 1,000 a minute
    limits = configured(factor)
    async with rig(limits=limits, fake_limit=100_000, batch_window=2.0 / factor) as r:
        ids = r.ct.add_customers(customers)
        producer = asyncio.create_task(_customer_events(r, ids, changes, rate))
        elapsed = await _drain_while(r, producer)
        requests = r.requests()
        synced = sum(1 for i in ids if r.fake.user_by_external_id(i) is not None)
    return {
        "changes": changes,
        "customers": customers,
        "requests": sum(requests.values()),
        "per_1000": sum(requests.values()) * 1000 / changes,
        "by_endpoint": dict(requests),
        "users": synced,
        "seconds": elapsed,
    }


async def _customer_events(r: Rig, ids: list[str], changes: int, rate: float) -> None:
    for n in range(changes):
        customer = r.ct.customers[ids[n % len(ids)]]
        customer["version"] += 1
        customer["firstName"] = f"Bench{n}"
        await enqueue_customer(r.queue, r.settings, customer["id"], version=customer["version"])
        await asyncio.sleep(1 / rate)


def _worker(r: Rig) -> Worker:
    return Worker(
        r.queue, HANDLERS, r.services.context, concurrency=8, poll_interval=0.02,
        backoff_base=0.1, backoff_max=2.0, lease=30,
    )  # fmt: skip


async def _drain_while(r: Rig, producer: asyncio.Task[None]) -> float:
    started = time.perf_counter()
    worker = _worker(r)
    task = asyncio.create_task(worker.run())
    try:
        await producer
        while True:
            counts = await r.queue.counts()
            if counts["queued"] == 0 and counts["running"] == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()
        await task
    await r.fake.idle()
    return time.perf_counter() - started


# -- z2. order events --------------------------------------------------------------------------


async def order_events(events: int, orders: int, factor: float) -> Row:
    rate = 1000 / 60 * factor  # 1,000 a minute
    async with rig(limits=configured(factor), fake_limit=100_000) as r:
        made = [r.ct.add_order() for _ in range(orders)]
        tickets = {
            o["id"]: r.fake.add_ticket(custom_fields={ORDER_FIELD: o["orderNumber"]})["id"]
            for o in made
        }
        producer = asyncio.create_task(_order_events(r, made, events, rate))
        elapsed = await _drain_while(r, producer)
        requests = r.requests()
        latest = all(
            r.fake.field_value(tickets[o["id"]], SHIPMENT_FIELD) == o["shipmentState"] for o in made
        )
    return {
        "events": events,
        "orders": orders,
        "requests": sum(requests.values()),
        "per_1000": sum(requests.values()) * 1000 / events,
        "ticket_updates": sum(v for k, v in requests.items() if k.startswith("PUT")),
        "by_endpoint": dict(requests),
        "latest_everywhere": latest,
        "seconds": elapsed,
    }


async def _order_events(r: Rig, orders: list[dict[str, Any]], events: int, rate: float) -> None:
    for n in range(events):
        order = orders[n % len(orders)]
        order["version"] += 1
        order["shipmentState"] = STATES[(n // len(orders)) % len(STATES)]
        await enqueue_order(r.queue, order["id"], version=order["version"])
        await asyncio.sleep(1 / rate)


# -- z3. backfill drain ------------------------------------------------------------------------


async def backfill(customers: int) -> Row:
    limit = parse_rate(DEFAULT_RATE_LIMITS["zendesk:users"])
    limits = {**UNLIMITED, "zendesk:users": DEFAULT_RATE_LIMITS["zendesk:users"]}
    async with rig(limits=scaled(limits), fake_limit=100_000) as r:
        ids = r.ct.add_customers(customers)
        # One job of 100 on its own first: the time a job takes, limits aside.
        await enqueue_customers(r.queue, ids[:100], key="bench:one-job")
        per_job = await r.drain()
        r.fake.requests.clear()
        started = time.perf_counter()
        pages = await backfill_customers(
            r.services.commercetools,
            r.queue,
            r.services.ledger,
            since=datetime(2001, 1, 1, tzinfo=UTC),
        )
        enqueue_seconds = time.perf_counter() - started
        elapsed = await r.drain()
        requests = r.requests()
        job_count = len(await r.queue.list(state="done", limit=10_000)) - 1
        users = len(r.fake.users)
    # The limit's bound (a burst, then one job a second, then the last job's own time), unless
    # the work itself took longer even 60x faster (it does not speed up with the limit).
    bound = max(0.0, job_count - limit.burst) / limit.per_second + per_job
    computed = max(bound, elapsed)
    total = sum(requests.values())
    return {
        "customers": customers,
        "jobs": job_count,
        "pages": pages["pages"],
        "enqueue_seconds": enqueue_seconds,
        "measured_seconds": elapsed,
        "scale": SCALE,
        "per_job_seconds": per_job,
        "computed_seconds": computed,
        "configured": DEFAULT_RATE_LIMITS["zendesk:users"],
        "requests": total,
        "requests_per_minute_at_limit": total / computed * 60 if computed else 0.0,
        "users": users,
    }


# -- z4. 429s at steady state --------------------------------------------------------------------


async def steady(seconds: float, fake_limit: int) -> Row:
    async with rig(limits=configured(), fake_limit=fake_limit, window=1.0, batch_window=0.1) as r:
        ids = r.ct.add_customers(400)
        orders = [r.ct.add_order() for _ in range(100)]
        for order in orders:
            r.fake.add_ticket(custom_fields={ORDER_FIELD: order["orderNumber"]})
        rate = 100.0  # events a second, half customers, half orders: above what the limits pass
        count = int(seconds * rate / 2)
        producer = asyncio.gather(
            _customer_events(r, ids, count, rate / 2), _order_events(r, orders, count, rate / 2)
        )
        started = time.perf_counter()
        worker = _worker(r)
        task = asyncio.create_task(worker.run())
        try:
            await producer
            load_seconds = time.perf_counter() - started
            drained = False
            for _ in range(3000):  # the backlog, bounded
                counts = await r.queue.counts()
                if counts["queued"] == 0 and counts["running"] == 0:
                    drained = True
                    break
                await asyncio.sleep(0.02)
        finally:
            await worker.stop()
            await task
        await r.fake.idle()
        counts = await r.queue.counts()
        requests = sum(r.requests().values())
    return {
        "configured": "zendesk 400, zendesk:tickets 100, zendesk:users 60 (per min, 60x)",
        "fake_limit": f"{fake_limit}/min (60x)",
        "seconds": load_seconds,
        "requests": requests,
        "throttled": r.fake.throttled,
        "drained": drained,
        "dead": counts["dead"],
    }


async def run(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    log("z1: customer changes")
    results["customers"] = await customer_changes(
        200 if quick else 1000, 50 if quick else 250, factor=EVENTS_SCALE
    )
    log("z2: order events")
    results["orders"] = await order_events(
        200 if quick else 1000, 20 if quick else 100, factor=EVENTS_SCALE
    )
    log("z3: backfill drain")
    results["backfill"] = await backfill(1000 if quick else 10_000)
    log("z4: 429s at steady state")
    results["steady"] = [
        await steady(3.0 if quick else 15.0, 700),
        await steady(3.0 if quick else 15.0, 60),
    ]
    return results


def log(message: str) -> None:
    print(f"[zendesk] {message}", file=sys.stderr, flush=True)


def _endpoints(by: dict[str, int]) -> str:
    return ", ".join(f"{k} x{v}" for k, v in sorted(by.items(), key=lambda kv: -kv[1]))


def _met(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def render(results: dict[str, Any]) -> list[str]:
    """The markdown section for docs/benchmarks.md."""
    c, o, b = results["customers"], results["orders"], results["backfill"]
    below = results["steady"][0]
    lines = [
        "## Zendesk outbound sync",
        "",
        "`benchmarks/zendesk.py` (see its docstring): the real sync against the fake Zendesk "
        "over HTTP, commercetools stubbed. Targets: no 429 at steady state with the configured "
        f"limits below the fake's — {_met(below['throttled'] == 0)}; every ticket at its "
        f"order's latest state — {_met(o['latest_everywhere'])}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| z1. Zendesk requests per 1,000 customer changes ({c['changes']} changes of "
        f"{c['customers']} customers, 1,000 a minute, batch window 2 s) | {c['per_1000']:.0f} "
        f"(one call per change: 1,000); {_endpoints(c['by_endpoint'])}; "
        f"{c['users']}/{c['customers']} users |",
        f"| z2. Zendesk requests per 1,000 order events ({o['events']} events of {o['orders']} "
        f"orders, one ticket each, 1,000 a minute) | {o['per_1000']:.0f}, of which "
        f"{o['ticket_updates']} ticket "
        f"updates; {_endpoints(o['by_endpoint'])}; latest state everywhere: "
        f"{'yes' if o['latest_everywhere'] else 'no'} |",
        f"| z3. Backfill of {b['customers']:,} customers: drain time at the configured "
        f"{b['configured']} | **{b['computed_seconds']:.0f} s** computed ({b['jobs']} jobs; "
        f"measured {b['measured_seconds']:.1f} s at {b['scale']:.0f}x; one job "
        f"{b['per_job_seconds'] * 1000:.0f} ms); {b['requests']} Zendesk requests, "
        f"{b['requests_per_minute_at_limit']:.0f}/min at that pace; {b['users']:,} users |",
    ]
    for row in results["steady"]:
        lines.append(
            f"| z4. 429s at steady state, fake limit {row['fake_limit']} "
            f"({row['seconds']:.0f} s of load) | {row['throttled']} 429s in {row['requests']} "
            f"requests; drained: {'yes' if row['drained'] else 'no'}; dead jobs: {row['dead']} |"
        )
    lines += [
        "",
        "z3's computed time: the `zendesk:users` token bucket lets a burst of "
        "count/10 jobs through, then one job per 60/min = 1 s, plus one job's own time; or the "
        "measured time when the work itself (reads, audit rows, Zendesk's job) took longer even "
        "on the 60x clock. Rates are per destination and job: each job also polls Zendesk's job "
        "status, counted under the account-wide limit.",
    ]
    return lines


async def in_child(quick: bool, limit: float = 900) -> dict[str, Any]:
    """Runs this module in a process of its own (as `make bench` does); returns its results."""
    return await run_child(__file__, quick, limit)


def main() -> None:
    bench_main("Zendesk outbound sync benchmarks", run, render)


if __name__ == "__main__":
    main()
