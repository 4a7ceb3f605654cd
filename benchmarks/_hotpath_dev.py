"""Where a cache-hit panel spends its server time: `python benchmarks/hotpath.py CONFIG_JSON`.

In its own process, without HTTP: the app is called as an ASGI callable (lifespan run by
asgi-lifespan), after one cold view has filled the cache. It prints one JSON object with

* the median server time of a cache-hit `POST /zendesk/panels` (the same request again, and the
  same ticket data under a ticket id never seen), and of the floor endpoint;
* what each step of a panels render costs when it runs (token check, body parsing, planning,
  the cache read, resolution, panel context, template), each timed on its own with the app's
  own objects: no profiler overhead;
* a cProfile of the cache-hit calls as they run: time inside chosen functions, and the
  functions with the most own time.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import pstats
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
from asgi_lifespan import LifespanManager
from cryptography.hazmat.primitives import serialization
from starlette.types import ASGIApp, Message

from commerce_context import tokens
from commerce_context.app import create_app
from commerce_context.panels import panel_context
from commerce_context.resolution import TicketContext, plan, resolve_answer
from common import settings_from
from floor import create_floor_app
from upstream import LatencyTransport

Headers = dict[str, str]


async def call(
    app: ASGIApp, method: str, path: str, headers: Headers, body: bytes, query: str = ""
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    delivered = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> Message:
        nonlocal delivered
        if delivered:
            return {"type": "http.disconnect"}
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


async def timed(fn: Callable[[], Awaitable[Any]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await fn()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(config: dict[str, Any]) -> dict[str, Any]:
    count = int(config["count"])
    settings = settings_from(config["settings"])
    http = httpx.AsyncClient(transport=LatencyTransport(0.0))
    app = create_app(settings, http=http)
    async with LifespanManager(app) as manager:
        asgi = manager.app
        state = manager._state
        status, page = await call(
            asgi,
            "POST",
            "/zendesk/sidebar",
            {"content-type": "application/x-www-form-urlencoded"},
            f"token={config['signed_url_token']}".encode(),
            query="origin=https%3A%2F%2Fdemo.zendesk.com&app_guid=bench",
        )
        found = re.search(rb'data-session="([^"]+)"', page)
        if status != 200 or found is None:
            raise RuntimeError(f"the sidebar page did not open (HTTP {status})")
        session = found.group(1).decode()
        body = json.dumps(config["context"]).encode()
        headers = {"authorization": f"Bearer {session}", "content-type": "application/json"}

        async def panels() -> None:
            code, _ = await call(asgi, "POST", "/zendesk/panels", headers, body)
            if code != 200:
                raise RuntimeError(f"panels answered HTTP {code}")

        fresh_ids = iter(range(10_000_000, 10_000_000 + 10 * count))

        async def panels_new_ticket() -> None:
            """The same ticket data under a ticket id never seen: the panel is rendered."""
            ticket = json.dumps({**config["context"], "ticket_id": next(fresh_ids)}).encode()
            code, _ = await call(asgi, "POST", "/zendesk/panels", headers, ticket)
            if code != 200:
                raise RuntimeError(f"panels answered HTTP {code}")

        await panels()  # cold: fills the cache
        reader = state["reader"]
        before = reader.upstream_requests
        await timed(panels, 200)  # warm-up

        # The whole call and the same work step by step (with the app's own objects),
        # interleaved so that any noise on the machine weighs on both alike.
        full: list[float] = []
        steps: dict[str, list[float]] = {
            k: [] for k in ("token", "body", "plan", "cache read", "resolve", "context", "template")
        }
        template = state["templates"].get_template("panels.html")
        fields = settings.mappings.order_custom_fields
        new_ticket: list[float] = []
        for _ in range(count):
            full += await timed(panels, 1)
            new_ticket += await timed(panels_new_ticket, 1)
            t0 = time.perf_counter()
            tokens.verify_session(session, settings=settings)
            t1 = time.perf_counter()
            context = TicketContext.parse(json.loads(body))
            t2 = time.perf_counter()
            reads = plan(context, fields)
            t3 = time.perf_counter()
            answer = await reader.fetch(reads, refresh=False, name="TicketView")
            t4 = time.perf_counter()
            store = settings.mappings.store_for_brand(context.brand_id)
            resolution, missing = resolve_answer(context, store, answer.found)
            t5 = time.perf_counter()
            values = panel_context(resolution, settings)
            t6 = time.perf_counter()
            template.render(values)
            t7 = time.perf_counter()
            for name, start, end in zip(
                steps, (t0, t1, t2, t3, t4, t5, t6), (t1, t2, t3, t4, t5, t6, t7), strict=True
            ):
                steps[name].append(end - start)
        cache_hits = reader.upstream_requests == before and missing is None

        profile = cProfile.Profile()
        profile.enable()
        for _ in range(count // 2):
            await panels()
        profile.disable()
        profile.dump_stats("/tmp/hp/prof.out")
    await http.aclose()

    floor = create_floor_app(
        config["floor"]["public_pem"],
        audience=config["floor"]["audience"],
        issuer=config["floor"]["issuer"],
    )
    floor_headers = {
        "authorization": f"Bearer {config['floor']['token']}",
        "content-type": "application/json",
    }

    async def floor_call() -> None:
        code, _ = await call(floor, "POST", "/floor", floor_headers, body)
        if code != 200:
            raise RuntimeError(f"floor answered HTTP {code}")

    await timed(floor_call, 200)
    floor_samples = await timed(floor_call, count)

    public_key = serialization.load_pem_public_key(config["floor"]["public_pem"].encode())
    rs256 = []
    for _ in range(count):
        started = time.perf_counter()
        jwt.decode(
            config["floor"]["token"],
            public_key,  # type: ignore[arg-type]
            algorithms=["RS256"],
            audience=config["floor"]["audience"],
            issuer=config["floor"]["issuer"],
        )
        rs256.append(time.perf_counter() - started)

    secret = settings.session_secret.get_secret_value() if settings.session_secret else ""
    one_decode = []
    for _ in range(count):
        started = time.perf_counter()
        jwt.decode(
            session,
            secret,
            algorithms=["HS256"],
            audience=tokens.SESSION_AUDIENCE,
            issuer=tokens.SESSION_ISSUER,
        )
        one_decode.append(time.perf_counter() - started)

    rows: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    own_total = sum(row[2] for row in rows.values())
    whole = _cumulative(rows, "starlette/applications.py", "__call__") or 1.0
    top = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:12]
    return {
        "session_chars": len(session),
        "session_one_decode_us": median_us(one_decode),
        "profile_cumulative": {
            label: None if (cum := _cumulative(rows, file, name)) is None else cum / whole
            for label, file, name in INTEREST
        },
        "count": count,
        "cache_hits_only": cache_hits,
        "panels_us": median_us(full),
        "panels_new_ticket_us": median_us(new_ticket),
        "panels_p99_us": sorted(full)[int(len(full) * 0.99) - 1] * 1e6,
        "floor_us": median_us(floor_samples),
        "rs256_verify_us": median_us(rs256),
        "steps_us": {name: median_us(samples) for name, samples in steps.items()},
        "profile_top": [
            {
                "function": f"{_short(file)}:{line}({name})",
                "calls": row[1],
                "own_share": row[2] / own_total if own_total else 0.0,
            }
            for (file, line, name), row in top
        ],
    }


# Functions worth watching on the cache-hit path (absent ones are reported as not called).
INTEREST = (
    ("sidebar.authenticate (the token check)", "commerce_context/sidebar.py", "authenticate"),
    ("↳ tokens.verify_session", "commerce_context/tokens.py", "verify_session"),
    ("resolution.TicketContext.parse", "commerce_context/resolution.py", "parse"),
    ("resolution.resolve", "commerce_context/resolution.py", "resolve"),
    ("↳ cache.Reader.fetch", "commerce_context/cache.py", "fetch"),
    ("↳ ↳ stores.MemoryStore.get_many", "commerce_context/stores.py", "get_many"),
    ("↳ ↳ entries._unpack (zlib + json)", "commerce_context/entries.py", "_unpack"),
    ("↳ resolution.resolve_answer", "commerce_context/resolution.py", "resolve_answer"),
    ("panels.panel_context", "commerce_context/panels.py", "panel_context"),
    ("jinja2 Template.render (panels.html)", "jinja2/environment.py", "render"),
    ("↳ formatting.money", "commerce_context/formatting.py", "money"),
    ("↳ formatting.date", "commerce_context/formatting.py", "date"),
)


def _cumulative(
    rows: dict[tuple[str, int, str], tuple[Any, ...]], file: str, name: str
) -> float | None:
    found = [
        row[3] for (path, _, func), row in rows.items() if path.endswith(file) and func == name
    ]
    return float(sum(found)) if found else None


def _short(path: str) -> str:
    for marker in ("site-packages/", "backend/", "lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        print(json.dumps(asyncio.run(measure(json.load(file)))))
