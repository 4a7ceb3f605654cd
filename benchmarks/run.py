"""`make bench`: every benchmark in one run, side by side; prints the tables and writes
docs/benchmarks.md.

One process orchestrates: it starts the commercetools emulator (seeded), serves its own GraphQL
bridge on a proper TCP socket, and starts each server under test and each load generator in a
process of its own. Upstream latency is injected by `upstream.LatencyTransport`, the httpx
transport the app is given (no monkeypatching). Only ratios measured in this run are compared.
Benchmarks assert nothing: each target is marked met or not met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from commerce_context import queries
from commerce_context.app import create_app
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.bridge import create_bridge_app
from commerce_context.emulator.harness import Harness, demo_tickets, running
from commerce_context.resolution import TicketContext, plan
from commerce_context.tokens import signed_url_audience, signed_url_issuer
from common import (
    HOST,
    ROOT,
    Meter,
    ServerProcess,
    child_json,
    cleanup,
    git_revision,
    machine_cpu,
    machine_facts,
    run_load,
    serve,
    server_process,
    settings_from,
    write_json,
    zendesk_spec,
)
from engine import in_child as engine_benchmarks
from engine import render as render_engine
from report import FLOOR, HIT, HIT_REDIS, HIT_RENDER, Run, render
from rest_view import rest_ticket_view
from tidio import in_child as tidio_benchmarks
from tidio import render as render_tidio
from upstream import LatencyTransport, Traffic
from writeback import in_child as writeback_benchmarks
from writeback import render as render_writeback
from zendesk import in_child as zendesk_benchmarks
from zendesk import render as render_zendesk

DELAY = 0.050  # injected upstream latency per request, seconds
CONCURRENCY = 8  # connections of the closed-loop (max throughput) runs
DURATION = 5.0  # seconds recorded per closed-loop run, after WARMUP
WARMUP = 1.0
ROUNDS = 3  # closed-loop runs per endpoint, interleaved (order reversed every other round)
OPEN_DURATION = 5.0  # seconds per rate-limited (open-loop) run
BURST = 100  # concurrent cold views
MEMORY_SIZES = (10_000, 100_000)
REDIS_SAMPLE = 200
REDIS_URL = "redis://127.0.0.1:6379/15"
LONG_TTL = 3600  # freshness for the cache-hit runs: every request in them is a hit
DOC = ROOT / "docs" / "benchmarks.md"
COMMAND = "make bench"

Row = dict[str, Any]


@dataclass
class Env:
    harness: Harness
    bridge_url: str
    zendesk: DemoZendesk
    context: dict[str, Any]  # the ticket the views are measured on (demo ticket 1)
    email: str
    order_context: dict[str, Any]  # a ticket with only the order-number field set

    def settings_spec(self, **overrides: Any) -> dict[str, Any]:
        return {
            "api_url": self.bridge_url,
            "project_key": self.harness.project_key,
            "zendesk": zendesk_spec(self.zendesk),
            # One session makes every measured view: the lookup limits (counted all the same,
            # so their cost is measured) must not turn the load into 429s.
            "overrides": {
                "lookups_per_session": 10**9,
                "lookups_per_agent": 10**9,
                **overrides,
            },
        }

    def sidebar(self, **overrides: Any) -> dict[str, Any]:
        return {"kind": "sidebar", "delay": DELAY, "settings": self.settings_spec(**overrides)}

    def floor(self) -> dict[str, Any]:
        settings = settings_from(self.settings_spec())
        return {
            "kind": "floor",
            "floor": {
                "public_pem": self.zendesk.public_pem,
                "audience": signed_url_audience(settings),
                "issuer": signed_url_issuer(settings),
                "token": self.zendesk.token(lifetime=3600),
            },
        }


def long_ttls() -> dict[str, Any]:
    return {
        "cache_ttl_order": LONG_TTL,
        "cache_ttl_customer": LONG_TTL,
        "cache_ttl_cart": LONG_TTL,
        "cache_ttl_lists": LONG_TTL,
    }


def zero_ttls() -> dict[str, Any]:
    return {
        "cache_ttl_order": 0,
        "cache_ttl_customer": 0,
        "cache_ttl_cart": 0,
        "cache_ttl_lists": 0,
    }


def ticket_context(ticket: dict[str, Any]) -> dict[str, Any]:
    """What sidebar.js sends for a ticket (see zendesk_app / static/sidebar.js)."""
    requester = ticket["requester"]
    return {
        "ticket_id": ticket["id"],
        "emails": [i["value"] for i in requester["identities"] if i["type"] == "email"],
        "external_id": requester.get("externalId"),
        "order_number": ticket.get("order_number"),
        "brand_id": ticket["brand"]["id"],
    }


async def open_session(http: httpx.AsyncClient, url: str, zendesk: DemoZendesk) -> str:
    """The real entry: Zendesk's signed-URL POST; returns the session the page carries."""
    response = await http.post(
        f"{url}/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=bench",
        data={"token": zendesk.token()},
    )
    found = re.search(r'data-session="([^"]+)"', response.text)
    if response.status_code != 200 or found is None:
        raise RuntimeError(f"the sidebar did not open (HTTP {response.status_code})")
    return found.group(1)


def panels_spec(port: int, session: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": HOST,
        "port": port,
        "path": "/zendesk/panels",
        "headers": {"Authorization": f"Bearer {session}", "Content-Type": "application/json"},
        "body": json.dumps(context),
    }


def floor_spec(port: int, token: str, context: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": HOST,
        "port": port,
        "path": "/floor",
        "headers": {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        "body": json.dumps(context),
    }


async def server_traffic(http: httpx.AsyncClient, server: ServerProcess) -> dict[str, int]:
    response = await http.get(f"{server.url}/_bench/traffic")
    response.raise_for_status()
    result: dict[str, int] = response.json()
    return result


async def purge_redis(project_key: str) -> None:
    """Drop this run's cache keys (RedisStore prefix "cc:", namespace = project key)."""
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"cc:{project_key}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def require_redis() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        raise SystemExit(
            f"make bench needs Redis on 127.0.0.1:6379, as the tests do ({exc}); "
            "start one with: redis-server --daemonize yes --bind 127.0.0.1"
        ) from None
    finally:
        await client.aclose()


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- a. cache-hit throughput and latency beside the floor -----------------------------------------


async def gc_pauses(server: ServerProcess) -> dict[str, Any]:
    """The server's garbage-collector pauses since the last call (and a reset)."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(f"{server.url}/_bench/traffic")
        response.raise_for_status()
        body = response.json()
    return {"gc_collections": body["gc_collections"], "gc_longest_ms": body["gc_longest_ms"]}


async def closed_run(
    server: ServerProcess,
    spec: dict[str, Any],
    concurrency: int = CONCURRENCY,
    duration: float | None = None,
) -> Row:
    await gc_pauses(server)  # resets them
    meter = Meter(server.pid)
    result = await run_load(
        "closed",
        spec,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration or DURATION),
        "--warmup",
        str(WARMUP),
    )
    return {**result, **meter.read(), **await gc_pauses(server)}


async def open_run(server: ServerProcess, spec: dict[str, Any], rate: float) -> Row:
    await gc_pauses(server)  # resets them
    meter = Meter(server.pid)
    result = await run_load(
        "open", spec, "--rate", f"{rate:.1f}", "--duration", str(OPEN_DURATION), "--pool", "32"
    )
    return {**result, **meter.read(), **await gc_pauses(server)}


RENDER_BODIES = 12_000  # distinct ticket ids per HIT_RENDER run: none repeats within a run
_variant_runs = 0


def fixed(spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: spec


def new_ticket_ids(spec: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """`spec` with a fresh ticket id in every body: nothing rendered before can be reused."""
    global _variant_runs
    _variant_runs += 1
    first = 10_000_000 + _variant_runs * RENDER_BODIES
    bodies = [json.dumps({**context, "ticket_id": first + i}) for i in range(RENDER_BODIES)]
    return {**{k: v for k, v in spec.items() if k != "body"}, "bodies": bodies}


async def bench_throughput(env: Env) -> dict[str, Any]:
    await purge_redis(env.harness.project_key)
    async with (
        server_process(env.sidebar(**long_ttls())) as sidebar,
        server_process(
            env.sidebar(**long_ttls(), cache_backend="redis", redis_url=REDIS_URL)
        ) as redis_sidebar,
        server_process(env.floor()) as floor,
        httpx.AsyncClient(timeout=30) as http,
    ):
        floor_token = env.floor()["floor"]["token"]
        targets: dict[str, tuple[ServerProcess, Callable[[], dict[str, Any]]]] = {}
        page_bytes = 0
        for name, server in ((HIT, sidebar), (HIT_REDIS, redis_sidebar)):
            session = await open_session(http, server.url, env.zendesk)
            spec = panels_spec(server.port, session, env.context)
            for _ in range(2):  # cold, then a hit
                page = await http.post(
                    f"{server.url}/zendesk/panels", json=env.context, headers=spec["headers"]
                )
                page.raise_for_status()
            page_bytes = len(page.content)
            targets[name] = (server, fixed(spec))
            if server is sidebar:
                targets[HIT_RENDER] = (sidebar, partial(new_ticket_ids, spec, env.context))
        targets[FLOOR] = (floor, fixed(floor_spec(floor.port, floor_token, env.context)))
        servers = {sidebar.port: sidebar, redis_sidebar.port: redis_sidebar}
        before = {port: await server_traffic(http, s) for port, s in servers.items()}

        closed: dict[str, list[Row]] = {name: [] for name in targets}
        order = [FLOOR, HIT, HIT_RENDER, HIT_REDIS]
        for round_ in range(ROUNDS):
            for name in order if round_ % 2 == 0 else order[::-1]:
                log(f"a. closed loop {name}, round {round_ + 1}")
                server, make_spec = targets[name]
                closed[name].append(await closed_run(server, make_spec()))
        best = {name: sum(r["rps"] for r in runs) / len(runs) for name, runs in closed.items()}
        single: dict[str, Row] = {}  # one connection: no queueing, no overlap between requests
        for name in order:
            log(f"a. closed loop {name}, one connection")
            server, make_spec = targets[name]
            single[name] = await closed_run(server, make_spec(), concurrency=1, duration=3.0)

        opened: dict[str, Row] = {}
        plans = [
            (HIT, HIT, best[HIT] / 2),
            (HIT_RENDER, HIT_RENDER, best[HIT_RENDER] / 2),
            (HIT_REDIS, HIT_REDIS, best[HIT_REDIS] / 2),
            (FLOOR, FLOOR, best[FLOOR] / 2),
            ("floor at the cache hit's rate", FLOOR, best[HIT] / 2),
        ]
        for label, name, rate in plans:
            log(f"a. open loop {label} at {rate:.0f} req/s")
            server, make_spec = targets[name]
            opened[label] = await open_run(server, make_spec(), rate)
        after = {port: await server_traffic(http, s) for port, s in servers.items()}
        heap = {}
        for name, server in (("the sidebar server (memory store)", sidebar), ("the floor", floor)):
            census = await http.get(f"{server.url}/_bench/gc")
            census.raise_for_status()
            heap[name] = census.json()

    def views_on(port: int) -> int:
        """Panel views recorded on one server (the memory-store one serves two loads)."""
        names = [n for n, (s, _) in targets.items() if s.port == port]
        return sum(
            sum(r["requests"] for r in closed[n]) + single[n]["requests"] + opened[n]["requests"]
            for n in names
        )

    upstream: dict[str, int] = {}
    served: dict[str, int] = {}
    for name, (server, _) in targets.items():
        if server.port in servers:
            upstream[name] = (
                after[server.port]["api_requests"] - before[server.port]["api_requests"]
            )
            served[name] = views_on(server.port)
    return {
        "closed": closed,
        "single": single,
        "max_rps": best,
        "open": opened,
        "upstream_during": upstream,
        "served_during": served,
        "page_bytes": page_bytes,
        "heap": heap,
    }


# -- b. upstream requests and bytes per view, beside plain REST -----------------------------------


@contextlib.asynccontextmanager
async def app_over_http(
    env: Env, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, LatencyTransport, str]]:
    """The real app, served over loopback HTTP in this process, on a counting transport."""
    transport = LatencyTransport(DELAY)
    settings = settings_from(env.settings_spec(**overrides))
    async with (
        httpx.AsyncClient(transport=transport, timeout=30) as upstream,
        serve(create_app(settings, http=upstream)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        session = await open_session(client, url, env.zendesk)
        ready = await client.get("/readyz")  # the OAuth token, before anything is counted
        ready.raise_for_status()
        yield client, transport, session


async def view(
    client: httpx.AsyncClient, transport: LatencyTransport, session: str, context: dict[str, Any]
) -> tuple[Traffic, float, str]:
    before = transport.traffic.copy()
    started = time.perf_counter()
    response = await client.post(
        "/zendesk/panels", json=context, headers={"Authorization": f"Bearer {session}"}
    )
    elapsed = (time.perf_counter() - started) * 1000
    response.raise_for_status()
    return transport.traffic.minus(before), elapsed, response.text


async def set_note(env: Env, http: httpx.AsyncClient, order_id: str, note: str) -> None:
    """Change an order through the REST API (an agent in Merchant Center, say): not counted."""
    client = CommercetoolsClient(settings_from(env.settings_spec()), http)
    token = await client.access_token()
    base = f"{env.bridge_url}/{env.harness.project_key}/orders/{order_id}"
    headers = {"Authorization": f"Bearer {token}"}
    current = await http.get(base, headers=headers)
    current.raise_for_status()
    response = await http.post(
        base,
        headers=headers,
        json={
            "version": current.json()["version"],
            "actions": [{"action": "setCustomField", "name": "internalNote", "value": note}],
        },
    )
    response.raise_for_status()


def view_row(name: str, traffic: Traffic, ms: float, **extra: Any) -> Row:
    return {
        "view": name,
        "requests": traffic.api_requests,
        "bytes_out": traffic.api_bytes_out,
        "bytes_in": traffic.api_bytes_in,
        "oauth": traffic.oauth_requests,
        "ms": ms,
        **extra,
    }


async def bench_views(env: Env) -> dict[str, Any]:
    sidebar: list[Row] = []
    orders = env.harness.demo.orders_of("anna-schmidt")
    async with app_over_http(env) as (client, transport, session):
        traffic, ms, _ = await view(client, transport, session, env.context)
        sidebar.append(view_row("cold", traffic, ms))
        traffic, ms, _ = await view(client, transport, session, env.context)
        sidebar.append(view_row("warm (fresh)", traffic, ms))
    # Freshness 0: every view is past freshness, as after the TTLs expire.
    async with (
        app_over_http(env, **zero_ttls()) as (client, transport, session),
        httpx.AsyncClient(timeout=30) as plain,
    ):
        await view(client, transport, session, env.context)  # cold, fills the cache
        traffic, ms, _ = await view(client, transport, session, env.context)
        sidebar.append(view_row("expired, unchanged", traffic, ms))
        for label, order in (("the detailed order", orders[0]), ("a listed order", orders[-1])):
            note = f"bench {uuid.uuid4().hex[:8]}"
            await set_note(env, plain, order.id, note)
            traffic, ms, html = await view(client, transport, session, env.context)
            sidebar.append(view_row(f"changed ({label})", traffic, ms, change_visible=note in html))

    rest: list[Row] = []
    transport = LatencyTransport(DELAY)
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:
        ct = CommercetoolsClient(settings_from(env.settings_spec()), http)
        token = await ct.access_token()
        for name in ("cold", "warm (fresh)", "expired, unchanged", "changed (the detailed order)"):
            if name.startswith("changed"):
                async with httpx.AsyncClient(timeout=30) as plain:
                    await set_note(env, plain, orders[0].id, f"bench {uuid.uuid4().hex[:8]}")
            before = transport.traffic.copy()
            started = time.perf_counter()
            found = await rest_ticket_view(
                http, env.bridge_url, env.harness.project_key, token, env.email
            )
            ms = (time.perf_counter() - started) * 1000
            rest.append(view_row(name, transport.traffic.minus(before), ms))
        shown = [o["orderNumber"] for o in found["orders"]]

    # Every demo ticket, cold in a fresh cache each: the one-request rule across resolution paths.
    per_ticket: list[Row] = []
    for ticket in demo_tickets(env.harness.demo):
        async with app_over_http(env) as (client, transport, session):
            traffic, ms, _ = await view(client, transport, session, ticket_context(ticket))
            per_ticket.append(
                {
                    "ticket": ticket["id"],
                    "subject": ticket["subject"],
                    **view_row("cold", traffic, ms),
                }
            )
    return {"sidebar": sidebar, "rest": rest, "rest_orders": shown, "per_ticket": per_ticket}


# -- c. 100 concurrent cold views of one ticket ---------------------------------------------------


CUSTOMER_PANEL = 'data-testid="customer"'


async def burst_on(
    env: Env, http: httpx.AsyncClient, servers: list[ServerProcess], setup: str, ticket: str
) -> Row:
    """BURST concurrent cold views of `ticket` ("email" or "order") over `servers`."""
    context = env.context if ticket == "email" else env.order_context
    session = await open_session(http, servers[0].url, env.zendesk)  # valid on every replica
    before = [await server_traffic(http, s) for s in servers]
    for server in servers:
        (await http.post(f"{server.url}/_bench/traffic")).raise_for_status()  # reset the peak
    spec = panels_spec(servers[0].port, session, context)
    ports = [arg for s in servers for arg in ("--port", str(s.port))]
    log(f"c. burst: {setup}, {ticket} ticket")
    result = await run_load(
        "burst", spec, "--count", str(BURST), "--expect", CUSTOMER_PANEL, *ports
    )
    after = [await server_traffic(http, s) for s in servers]
    pairs = list(zip(after, before, strict=True))
    return {
        "setup": setup,
        "ticket": ticket,
        **result,
        "api": sum(a["api_requests"] - b["api_requests"] for a, b in pairs),
        "oauth": sum(a["oauth_requests"] - b["oauth_requests"] for a, b in pairs),
        "peak": sum(a["max_in_flight"] for a in after),
    }


async def bench_burst(env: Env) -> list[Row]:
    rows: list[Row] = []
    async with server_process(env.sidebar()) as server, httpx.AsyncClient(timeout=30) as http:
        # Two different tickets: the second is as cold as the first (no entity in common).
        for ticket in ("email", "order"):
            rows.append(await burst_on(env, http, [server], "1 instance, memory store", ticket))
    await purge_redis(env.harness.project_key)
    redis = env.sidebar(cache_backend="redis", redis_url=REDIS_URL)
    async with (
        server_process(redis) as one,
        server_process(redis) as two,
        httpx.AsyncClient(timeout=30) as http,
    ):
        for ticket in ("email", "order"):
            setup = "2 instances sharing Redis (50 each)"
            rows.append(await burst_on(env, http, [one, two], setup, ticket))
    await purge_redis(env.harness.project_key)
    return rows


# -- the cache-hit path, in process ---------------------------------------------------------------


async def bench_hotpath(env: Env) -> dict[str, Any]:
    floor = env.floor()["floor"]
    config = {
        "settings": env.settings_spec(**long_ttls()),
        "signed_url_token": env.zendesk.token(),
        "context": env.context,
        "floor": floor,
        "count": 2000,
    }
    return await child("hotpath.py", config)


async def child(script: str, config: dict[str, Any], limit: float = 240) -> dict[str, Any]:
    return await child_json(ROOT / "benchmarks" / script, write_json(config), limit=limit, cwd=ROOT)


# -- d. memory per cached entity ------------------------------------------------------------------

KINDS = (
    ("order, as detailed in the panel", "el"),
    ("order, as a row of the orders list", "eo"),
    ("customer", "e0"),
)


async def bench_memory(env: Env) -> list[Row]:
    settings = settings_from(env.settings_spec())
    reads = plan(TicketContext.parse(env.context), settings.mappings.order_custom_fields)
    async with httpx.AsyncClient(timeout=30) as http:
        # The raw upstream answer of the real ticket view: what Reader admits.
        found = await CommercetoolsClient(settings, http).fetch(
            queries.compose(reads, "TicketView")
        )
    rows = []
    for label, key in KINDS:
        for n in MEMORY_SIZES:
            log(f"d. memory: {n} x {label}")
            config = {
                "settings": env.settings_spec(),
                "context": env.context,
                "found": found,
                "read": key,
                "label": label,
                "n": n,
                "redis_sample": REDIS_SAMPLE if n == MEMORY_SIZES[0] else 0,
                "traced": n == MEMORY_SIZES[0],
                "redis_url": REDIS_URL,
            }
            rows.append(await child("memory.py", config))
    return rows


async def main(quick: bool) -> None:
    global DURATION, OPEN_DURATION, ROUNDS, MEMORY_SIZES
    if quick:  # a smoke run: every code path, small numbers, docs/benchmarks.md left alone
        DURATION, OPEN_DURATION, ROUNDS, MEMORY_SIZES = 1.0, 1.0, 1, (2_000, 4_000)
    started = datetime.now(UTC)
    clock = time.perf_counter()
    revision = git_revision()  # the code the servers start from
    facts = machine_facts()
    await require_redis()
    busy, total = machine_cpu()
    await asyncio.sleep(1.0)
    busy_now, total_now = machine_cpu()
    idle_load = (busy_now - busy) / (total_now - total) * (os.cpu_count() or 1)
    facts["CPU busy just before the run"] = f"{idle_load:.2f} cores"
    if idle_load > 0.25:
        log(f"warning: the machine is busy ({idle_load:.2f} cores) before the run starts")
    project = f"bench-{uuid.uuid4().hex[:8]}"  # a fresh namespace: no cache survives a run
    log(f"starting the emulator (project {project})")
    results: dict[str, Any] = {}
    try:
        async with (
            running(project) as harness,
            serve(create_bridge_app(harness.emulator_url)) as bridge,
        ):
            zendesk = DemoZendesk.generate()
            tickets = demo_tickets(harness.demo)
            ticket = tickets[0]
            # The order-number field only (no requester email): the order's customer is shown.
            with_order = next(t for t in tickets if t["order_number"])
            env = Env(
                harness,
                bridge,
                zendesk,
                ticket_context(ticket),
                ticket["requester"]["email"],
                {**ticket_context(with_order), "emails": []},
            )
            steps: list[tuple[str, Callable[[Env], Any]]] = [
                ("b", bench_views),
                ("c", bench_burst),
                ("a", bench_throughput),
                ("hotpath", bench_hotpath),
                ("d", bench_memory),
            ]
            for key, step in steps:
                log(f"{key}: {step.__name__}")
                results[key] = await step(env)
            log("engine: the sync engine (benchmarks/engine.py, in its own process)")
            results["engine"] = await engine_benchmarks(quick)
            log("writeback: webhook-to-writeback latency (benchmarks/writeback.py, own process)")
            results["writeback"] = await writeback_benchmarks(quick)
            log("tidio: the Tidio contact sync (benchmarks/tidio.py, in its own process)")
            results["tidio"] = await tidio_benchmarks(quick)
            log("zendesk: the Zendesk outbound sync (benchmarks/zendesk.py, own process)")
            results["zendesk"] = await zendesk_benchmarks(quick)
    finally:
        await purge_redis(project)  # the Redis-store servers' entries
        cleanup()
    run = Run(
        command=COMMAND,
        started=started,
        seconds=time.perf_counter() - clock,
        revision=revision,
        facts=facts,
        delay=DELAY,
        concurrency=CONCURRENCY,
        warmup=WARMUP,
        duration=DURATION,
        rounds=ROUNDS,
        open_duration=OPEN_DURATION,
        burst=BURST,
        redis_sample=REDIS_SAMPLE,
    )
    text = render(results, run).rstrip("\n") + "\n\n" + "\n".join(render_engine(results["engine"]))
    text = text.rstrip("\n") + "\n\n" + "\n".join(render_writeback(results["writeback"]))
    text = text.rstrip("\n") + "\n\n" + "\n".join(render_tidio(results["tidio"]))
    text = text.rstrip("\n") + "\n\n" + "\n".join(render_zendesk(results["zendesk"]))
    print(text)
    if not quick:
        DOC.write_text(text.rstrip("\n") + "\n" + kept_sections(), encoding="utf-8")
        log(f"wrote {DOC.relative_to(ROOT)}")


# docs/benchmarks.md from this heading on is not make bench's: `make cluster-test` writes the
# scale-out figures there, and notes added by hand follow them. A run keeps it as it is.
KEPT_FROM = "## Scale-out"


def kept_sections() -> str:
    if not DOC.exists():
        return ""
    old = DOC.read_text(encoding="utf-8")
    at = old.find("\n" + KEPT_FROM + "\n")
    return "" if at < 0 else old[at:]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run every benchmark; write docs/benchmarks.md.")
    parser.add_argument("--quick", action="store_true", help="a short smoke run; writes no docs")
    asyncio.run(main(parser.parse_args().quick))
