"""The scale-out proof: `make cluster-test` (about 4 minutes) and `make cluster-soak` (longer).

Processes on loopback, no containers:

* its **own** `redis-server` on a free port (restarted during the run; the shared 6379 is never
  touched) and a PostgreSQL schema of its own in database `test` on 127.0.0.1:5432 (created by
  the first instance's migrations, dropped at the end);
* the commercetools emulator with the demo seed, behind its GraphQL bridge, the fake Zendesk
  and the fake Tidio, served in this process behind a **recorder** (`Recorder`): an ASGI layer that
  logs every request the upstream receives (time, method, path, status, the body of order
  updates) and injects faults by the clock (429 with Retry-After, 503) — the upstreams' own
  record of what was asked and applied;
* three `commerce-context serve` processes (settings through CC_* environment variables,
  secrets and the Zendesk key pair generated for the run), each with its in-process workers;
* a load balancer: `python benchmarks/cluster.py balance` in its own process, a round-robin
  HTTP/1.1 reverse proxy (uvicorn + httpx; haproxy is not installed here and a Python one
  needs nothing new). It retries a request on the next instance only when the connection
  was refused (nothing was sent); a request lost with a killed instance is answered 502.

Load (through the balancer): sidebar views (a signed-URL token minted per view with the run's
RS256 key, then the panels), signed Zendesk trigger webhooks that set orders' internal notes
(writeback jobs into commercetools; some deliveries repeated, as Zendesk retries), and
commercetools events (`POST /commercetools/events`): one per order update the emulator applied
(as a subscription would deliver it), some delivered twice, plus order-state events that feed
the Zendesk and Tidio syncs; the Zendesk customer backfill, twice. Faults during it: the
upstreams answer 429, then 503, for a while; one instance is killed with SIGKILL and restarted;
Redis is stopped for two seconds and restarted empty.

Afterwards it checks (and exits 1 if any check fails): every change applied exactly once (the
emulator's order updates and versions against what the webhooks asked), no jobs dead or left
behind, no 5xx to clients outside the kill window, the engine's rate limits respected in the
upstreams' own logs, 100 concurrent cold views of one ticket across the three instances cost
one GraphQL request, and each instance's RSS flat. Components whose feature has not landed
are skipped and the printout says so.

    .venv/bin/python benchmarks/cluster.py            # make cluster-test
    .venv/bin/python benchmarks/cluster.py --soak 10  # make cluster-soak: RSS and p99 per minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from cluster_checks import (  # noqa: E402
    RateCheck,
    Window,
    applied_once,
    check_rate,
    errors_outside,
    per_minute,
    percentile,
    replace_block,
    rss_growth,
)
from common import HOST, run_load, serve  # noqa: E402

DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Added to the demo mappings when the Zendesk outbound sync has landed.
ZENDESK_SYNC = """
[zendesk_sync]
customers = true
orders = true
organizations = false

[zendesk_sync.ticket_fields]
order_state = 360000011
shipment_state = 360000012
payment_state = 360000013
"""
ORDER_STATE_FIELD = 360000011
BACKFILL_AT = (43.0, 67.0)  # the customer backfill runs twice: the second run changes nothing
ORDER_FIELD = 360000001  # the demo's order-number ticket field
NOTE_FIELD = 360000003  # mapped to the order custom field internalNote (demo.toml)
CUSTOMER_PANEL = 'data-testid="customer"'
BURST = 100
# Limits of this run (CC_RATE_LIMITS): low enough that the load presses on them.
RATE_LIMITS = {
    # commercetools allows far more; per minute here so that the sliding 60 s windows of the
    # check are the limit's own (a token is drawn when a job starts, its request follows).
    "commercetools": "30/min",
    "zendesk": "400/min",
    "zendesk:tickets": "100/min",
    "zendesk:users": "60/min",
    "tidio": "50/min",  # the fake Tidio allows 60 a minute, as Tidio documents
}
# The timeline (seconds after the load starts).
CT_429 = (20.0, 28.0)
CT_503 = (34.0, 40.0)
ZD_429 = (42.0, 48.0)  # the fake Zendesk's faults come later: its jobs read commercetools first
ZD_503 = (66.0, 72.0)
TIDIO_429 = (44.0, 50.0)
TIDIO_503 = (68.0, 74.0)
KILL_AT = 50.0
REDIS_AT = 80.0
REDIS_DOWN = 2.0
LOAD_SECONDS = 120.0
DRAIN_LIMIT = 120.0
# Rates of the load (per second).
VIEW_RATE = 2.0
WEBHOOK_RATE = 0.5
STALE_EVENT_RATE = 1.0
MAX_IN_FLIGHT = 200
# RSS flat: median of the tail (last RSS_TAIL s) vs the median just after RSS_SETTLE s.
RSS_SETTLE = 30.0
RSS_TAIL = 20.0
RSS_MAX_GROWTH_MB = 12.0
RSS_MAX_GROWTH = 0.10
KILL_GRACE = 1.0  # the kill window ends this long after the restarted instance is ready
# A view that started during an upstream outage may answer up to the view budget later, and a
# client retry of a transient failure needs a moment more.
OUTAGE_GRACE = 5.0
REDIS_GRACE = 3.0
UNAVAILABLE = frozenset({"upstream_unavailable"})


def log(message: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# -- the upstreams' records and faults -----------------------------------------------------------


@dataclass
class Call:
    t: float
    method: str
    path: str
    status: int = 0
    injected: bool = False
    body: Any = None  # the JSON body of captured requests (order updates)


@dataclass
class Recorder:
    """ASGI layer in front of an upstream: its request log, and faults switched on by the clock.

    Requests with the header `x-cluster-harness` (the harness's own reads) are neither logged
    nor faulted. OAuth token requests are logged but never faulted (a real outage would hit
    them too, but the run is about the API calls).
    """

    app: Any
    name: str
    capture: Callable[[str, str], bool] = lambda method, path: False
    calls: list[Call] = field(default_factory=list)
    faults: list[tuple[float, float, str]] = field(default_factory=list)  # (start, end, kind)

    def fault_at(self, t: float) -> str | None:
        for start, end, kind in self.faults:
            if start <= t < end:
                return kind
        return None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if b"x-cluster-harness" in headers:
            await self.app(scope, receive, send)
            return
        call = Call(time.time(), scope["method"], scope["path"])
        self.calls.append(call)
        kind = None if "/oauth/" in call.path else self.fault_at(call.t)
        if kind is not None:
            call.injected = True
            call.status = int(kind.removesuffix("-bare"))
            extra = [(b"retry-after", b"1")] if kind == "429" else []
            kind = kind.removesuffix("-bare")  # 429-bare: no Retry-After (Tidio sends none)
            body = b'{"error":"injected fault"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": call.status,
                    "headers": [(b"content-type", b"application/json"), *extra],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        if self.capture(call.method, call.path):
            chunks = []
            while True:
                message = await receive()
                chunks.append(message.get("body", b""))
                if not message.get("more_body"):
                    break
            raw = b"".join(chunks)
            with contextlib.suppress(ValueError):
                call.body = json.loads(raw)
            replayed = False

            async def replay() -> Any:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": raw, "more_body": False}
                return await receive()

            receive = replay

        async def observe(message: Any) -> None:
            if message["type"] == "http.response.start":
                call.status = message["status"]
            await send(message)

        await self.app(scope, receive, observe)


def is_order_update(method: str, path: str) -> bool:
    return method == "POST" and "/orders/" in path and not path.endswith("/graphql")


def is_graphql(call: Call) -> bool:
    return call.method == "POST" and call.path.endswith("/graphql")


# -- processes -----------------------------------------------------------------------------------


class RedisServer:
    """A throwaway redis-server of this run (no persistence: a restart loses everything)."""

    def __init__(self, directory: str) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    async def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: ASYNC220 - returns at once
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(HOST, self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    async def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait, 10)
        self.process = None


@dataclass
class Instance:
    index: int
    port: int
    env: dict[str, str]
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    generation: int = 0
    rss: dict[int, list[tuple[float, float]]] = field(default_factory=dict)  # pid -> (t, MB)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    async def start(self) -> None:
        self.generation += 1
        handle = self.log_path.open("ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "commerce_context",
            "serve",
            env=self.env,
            stdout=handle,
            stderr=handle,
            cwd=ROOT,
        )
        handle.close()
        await self.ready()

    async def ready(self, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                if self.process.returncode is not None:
                    raise RuntimeError(
                        f"instance {self.index} exited ({self.process.returncode}); "
                        f"see {self.log_path}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"instance {self.index} not ready within {limit:.0f} s")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()

    def sample_rss(self, t: float) -> None:
        pid = self.pid
        if pid is None or self.process is None or self.process.returncode is not None:
            return
        kb = 0
        for each in [pid, *children(pid)]:
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{each}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        kb += int(line.split()[1])
        if kb:
            self.rss.setdefault(pid, []).append((t, kb / 1024))


def children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *children(int(child))]
    return found


@contextlib.asynccontextmanager
async def balancer(backends: list[str]) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__)),
        "balance",
        *backends,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        yield f"http://{HOST}:{json.loads(line)['port']}", process
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.wait(), 10)


# -- the load balancer (its own process) ---------------------------------------------------------

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "content-length",
}


class RoundRobin:
    """A round-robin HTTP/1.1 reverse proxy. Connection refused -> the next instance (nothing
    was sent, so a retry is safe even for a POST); any other failure -> 502 (the request may
    have been processed: only the client may retry it). A refusing instance is skipped for
    a second."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self.turn = itertools.cycle(range(len(backends)))
        self.down_until = [0.0] * len(backends)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(30.0, connect=2.0),
            limits=httpx.Limits(max_connections=400, max_keepalive_connections=100),
        )

    def pick(self) -> list[int]:
        first = next(self.turn)
        order = [(first + i) % len(self.backends) for i in range(len(self.backends))]
        now = time.monotonic()
        return sorted(order, key=lambda i: self.down_until[i] > now)  # up ones first, in turn

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await self.http.aclose()
            await send({"type": "lifespan.shutdown.complete"})
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1").lower() not in HOP_BY_HOP | {"host"}
        ]
        client = scope.get("client") or ("127.0.0.1", 0)
        headers.append(("x-forwarded-for", client[0]))
        target = scope["path"] + (
            "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
        )
        status, out_headers, content = 502, [], b'{"error":"bad gateway"}'
        for index in self.pick():
            try:
                request = self.http.build_request(
                    scope["method"], self.backends[index] + target, headers=headers, content=body
                )
                response = await self.http.send(request, stream=True)
                try:
                    content = b"".join([c async for c in response.aiter_raw()])
                finally:
                    await response.aclose()
                status = response.status_code
                out_headers = [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in response.headers.multi_items()
                    if k.lower() not in HOP_BY_HOP
                ]
                out_headers.append((b"x-cluster-backend", str(index).encode()))
                break
            except httpx.ConnectError:
                self.down_until[index] = time.monotonic() + 1.0
                continue
            except httpx.HTTPError:
                status, out_headers = 502, [(b"x-cluster-backend", str(index).encode())]
                break
        out_headers.append((b"content-length", str(len(content)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": content})


def run_balancer(backends: list[str]) -> None:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))
    sock.listen(2048)  # before the port is announced: connections queue until uvicorn runs
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    config = uvicorn.Config(
        RoundRobin(backends), log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run(sockets=[sock])


# -- the client side -----------------------------------------------------------------------------


@dataclass
class Answer:
    t: float
    kind: str
    status: int  # 0: no answer
    seconds: float
    backend: str | None
    code: str | None = None  # the error code of a 5xx answer (errors.py's shape)


@dataclass
class Clients:
    """Everything the load sends, and every answer it got."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    http: httpx.AsyncClient = field(
        default_factory=lambda: httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=MAX_IN_FLIGHT)
        )
    )

    async def request(self, kind: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        started = time.time()
        clock = time.perf_counter()
        try:
            response = await self.http.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            seconds = time.perf_counter() - clock
            self.answers.append(Answer(started, kind, 0, seconds, None, type(exc).__name__))
            raise
        code = None
        if response.status_code >= 500:
            with contextlib.suppress(ValueError, LookupError, TypeError):
                code = str(response.json()["error"]["code"])
        self.answers.append(
            Answer(
                started,
                kind,
                response.status_code,
                time.perf_counter() - clock,
                response.headers.get("x-cluster-backend"),
                code,
            )
        )
        return response

    def spawn(self, work: Awaitable[None]) -> None:
        if len(self.in_flight) >= MAX_IN_FLIGHT:
            work.close()  # type: ignore[attr-defined]
            return
        task = asyncio.ensure_future(work)
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)


async def paced(
    rate: float, until: float, make: Callable[[int], Awaitable[None]], c: Clients
) -> None:
    """Starts make(i) at `rate` per second until `until` (time.time()), whatever the answers."""
    start = time.time()
    for i in itertools.count():
        at = start + i / rate
        if at >= until:
            return
        await asyncio.sleep(max(0.0, at - time.time()))
        c.spawn(make(i))


def ticket_context(ticket: dict[str, Any]) -> dict[str, Any]:
    requester = ticket["requester"]
    return {
        "ticket_id": ticket["id"],
        "emails": [i["value"] for i in requester["identities"] if i["type"] == "email"],
        "external_id": requester.get("externalId"),
        "order_number": ticket.get("order_number"),
        "brand_id": ticket["brand"]["id"],
    }


def webhook_headers(secret: str, body: bytes, invocation: str) -> dict[str, str]:
    from commerce_context.webhooks import expected_signature

    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Invocation-Id": invocation,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": expected_signature(secret, stamp, body),
    }


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Components:
    """What the load exercises: each part only once its feature has landed."""

    zendesk: bool = False  # commercetools events -> Zendesk ticket fields; customer backfill
    tidio: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def detect(cls) -> Components:
        import inspect

        from commerce_context import events

        found = cls()
        found.notes.append("sidebar views (signed-URL token, then panels): on")
        found.notes.append("Zendesk webhooks -> writebacks into commercetools orders: on")
        found.notes.append("commercetools events (POST /commercetools/events): on")
        receive = inspect.getsource(events.receive)
        if importlib.util.find_spec("commerce_context.zendesk_sync") is None:
            found.notes.append("Zendesk outbound sync: not landed, skipped")
        elif "enqueue_zendesk" not in receive:
            found.notes.append(
                "Zendesk outbound sync: events do not reach it yet; customer backfill only"
            )
            found.zendesk = True
        else:
            found.notes.append(
                "Zendesk outbound sync (order events -> ticket fields, customer backfill): on"
            )
            found.zendesk = True
        if importlib.util.find_spec("commerce_context.tidio_sync") is None:
            found.notes.append("Tidio outbound sync: not landed, skipped")
        elif "tidio_sync.enqueue_for_events" not in receive:
            found.notes.append("Tidio outbound sync: events do not reach it yet, skipped")
        else:
            found.notes.append("Tidio updates (order events -> contact properties): on")
            found.tidio = True
        return found


@dataclass
class Run:
    soak_minutes: float | None
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    sent_notes: dict[str, list[str]] = field(default_factory=dict)  # order id -> values
    versions: dict[str, int] = field(default_factory=dict)  # order id -> version (ours)
    windows: list[Window] = field(default_factory=list)
    events_sent: int = 0
    events_repeated: int = 0
    webhooks_repeated: int = 0
    marks: dict[str, float] = field(default_factory=dict)
    tickets: dict[int, str] = field(default_factory=dict)  # fake Zendesk ticket -> order id
    contacts: dict[str, str] = field(default_factory=dict)  # fake Tidio contact id -> email
    backfills: list[int] = field(default_factory=list)  # exit codes

    @property
    def load_seconds(self) -> float:
        return self.soak_minutes * 60 if self.soak_minutes else LOAD_SECONDS


async def admin_token(http: httpx.AsyncClient, api_url: str) -> str:
    from commerce_context.emulator.harness import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    response = await http.post(
        f"{api_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        headers={"x-cluster-harness": "1"},
    )
    response.raise_for_status()
    token: str = response.json()["access_token"]
    return token


async def all_orders(http: httpx.AsyncClient, api_url: str, key: str) -> dict[str, Any]:
    token = await admin_token(http, api_url)
    response = await http.get(
        f"{api_url}/{key}/orders",
        params={"limit": "500"},
        headers={"Authorization": f"Bearer {token}", "x-cluster-harness": "1"},
    )
    response.raise_for_status()
    return {o["id"]: o for o in response.json()["results"]}


def worst_window(times: list[float], window: float) -> tuple[float, float]:
    ordered = sorted(times)
    best, at = 0, 0.0
    for index, first in enumerate(ordered):
        n = sum(1 for t in ordered[index:] if t < first + window)
        if n > best:
            best, at = n, first
    return at, at + window


def note_of(order: dict[str, Any]) -> str | None:
    value = ((order.get("custom") or {}).get("fields") or {}).get("internalNote")
    return value if isinstance(value, str) else None


def written_note(call: Call) -> str | None:
    """The internalNote an order update sets, if it sets one."""
    for action in (call.body or {}).get("actions", []):
        if action.get("action") == "setCustomField" and action.get("name") == "internalNote":
            return str(action.get("value"))
        if action.get("action") == "setCustomType":
            value = (action.get("fields") or {}).get("internalNote")
            if value is not None:
                return str(value)
    return None


def order_id_of(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


async def main(soak: float | None) -> int:
    from commerce_context.database import Database
    from commerce_context.demo import DemoZendesk
    from commerce_context.emulator.bridge import create_bridge_app
    from commerce_context.emulator.harness import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, demo_tickets
    from commerce_context.emulator.process import EmulatorProcess
    from commerce_context.emulator.seed import seed_demo_project
    from commerce_context.emulator.tidio import FakeTidio
    from commerce_context.emulator.zendesk import FakeZendesk
    from commerce_context.jobs import parse_rate

    await preflight()
    components = Components.detect()
    run = Run(soak)
    tmp = tempfile.mkdtemp(prefix="commerce-context-cluster-")
    schema = f"cc_cluster_{run.run_id}"
    project_key = f"cluster-{run.run_id}"
    zendesk = DemoZendesk.generate()
    events_secret = secrets.token_urlsafe(32)
    redis = RedisServer(tmp)
    instances: list[Instance] = []
    started = time.time()
    log(f"run {run.run_id}: temp dir {tmp}, PostgreSQL schema {schema}, project {project_key}")
    emulator = await asyncio.to_thread(EmulatorProcess(project_key).start)
    try:
        await redis.start()
        ct = Recorder(create_bridge_app(emulator.url), "commercetools", capture=is_order_update)
        fake = FakeZendesk()
        zd = Recorder(fake, "zendesk")
        tidio = FakeTidio(limit_per_minute=60)
        td = Recorder(tidio, "tidio")
        async with (
            serve(ct) as api_url,
            serve(zd) as zendesk_url,
            serve(td) as tidio_url,
            httpx.AsyncClient(timeout=30) as http,
        ):
            fake._base = zendesk_url
            demo = await seed_demo_project(
                http, api_url=api_url, auth_url=api_url, project_key=project_key
            )
            # The tickets the sidebar views open exist in the fake Zendesk too (the sync writes
            # to every ticket a view associated with an order), under the fake's ids.
            tickets = tuple(
                {
                    **t,
                    "id": fake.add_ticket(
                        t["subject"],
                        custom_fields={ORDER_FIELD: t["order_number"]}
                        if t["order_number"]
                        else None,
                    )["id"],
                }
                for t in demo_tickets(demo)
            )
            config = Path(tmp) / "mappings.toml"
            text = (ROOT / "backend" / "commerce_context" / "demo.toml").read_text()
            if components.zendesk:
                text += ZENDESK_SYNC
                for order in demo.orders.values():
                    ticket = fake.add_ticket(
                        f"About {order.order_number}",
                        custom_fields={ORDER_FIELD: order.order_number},
                    )
                    run.tickets[ticket["id"]] = order.id
            if components.tidio:
                from commerce_context.tidio_sync import PROPERTIES

                for name, kind in PROPERTIES.items():
                    tidio.define(name, kind)
                for email in sorted({o.email.lower() for o in demo.orders.values()}):
                    run.contacts[tidio.add_contact(email=email)] = email
            config.write_text(text)
            ct.calls.clear()
            orders0 = await all_orders(http, api_url, project_key)
            run.versions = {oid: int(o["version"]) for oid, o in orders0.items()}
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("CC_")},
                "CC_HOST": HOST,
                "CC_CT_PROJECT_KEY": project_key,
                "CC_CT_CLIENT_ID": DEMO_CLIENT_ID,
                "CC_CT_CLIENT_SECRET": DEMO_CLIENT_SECRET,
                "CC_CT_API_URL": api_url,
                "CC_CT_AUTH_URL": api_url,
                "CC_CONFIG_FILE": str(config),
                "CC_ZENDESK_SUBDOMAIN": zendesk.subdomain,
                "CC_ZENDESK_APP_ID": str(zendesk.app_id),
                "CC_ZENDESK_INSTALLATION_ID": str(zendesk.installation_id),
                "CC_ZENDESK_PUBLIC_KEY": zendesk.public_pem,
                "CC_SESSION_SECRET": zendesk.session_secret,
                "CC_ZENDESK_WEBHOOK_SECRET": zendesk.webhook_secret,
                "CC_ZENDESK_ORDER_FIELD_ID": str(ORDER_FIELD),
                "CC_EVENTS_SECRET": events_secret,
                "CC_CACHE_BACKEND": "redis",
                "CC_REDIS_URL": redis.url,
                "CC_DATABASE_URL": DATABASE_URL,
                "CC_DATABASE_SCHEMA": schema,
                "CC_STATE_PATH": str(Path(tmp) / "unused.sqlite3"),
                "CC_RATE_LIMITS": json.dumps(RATE_LIMITS),
                "CC_LOOKUPS_PER_SESSION": "1000000",
                "CC_LOOKUPS_PER_AGENT": "1000000",
                # One request per rate-limit token: a job's retries go through the engine
                # (which pauses on 429 and draws a token per attempt), not through the
                # client's own retry loop, which the shared bucket does not see.
                "CC_CT_MAX_RETRIES": "0",
                "CC_JOBS_LEASE": "6",
                "CC_JOBS_POLL_INTERVAL": "0.5",
                "CC_JOBS_BACKOFF_BASE": "0.5",
                "CC_JOBS_BACKOFF_MAX": "5",
                "CC_WEB_CONCURRENCY": "1",
                "CC_LOG_LEVEL": "warning",
                "CC_ADMIN_TOKEN": secrets.token_urlsafe(24),
            }
            if components.zendesk:
                env.update(
                    CC_ZENDESK_API_URL=zendesk_url,
                    CC_ZENDESK_API_EMAIL=fake.email,
                    CC_ZENDESK_API_TOKEN=fake.api_token,
                    CC_ZENDESK_FALLBACK_BACKOFF="5",
                )
            if components.tidio:
                env.update(
                    CC_TIDIO_CLIENT_ID=tidio.client_id,
                    CC_TIDIO_CLIENT_SECRET=tidio.client_secret,
                    CC_TIDIO_API_URL=tidio_url,
                    CC_TIDIO_IDENTITY_SECRET=secrets.token_urlsafe(32),
                    CC_TIDIO_FALLBACK_BACKOFF="5",
                )
            for index in range(3):
                port = free_port()
                instances.append(
                    Instance(
                        index,
                        port,
                        {**env, "CC_PORT": str(port)},
                        Path(tmp) / f"instance-{index}.log",
                    )
                )
            log("starting instance 0 (runs the migrations), then 1 and 2")
            await instances[0].start()
            await asyncio.gather(instances[1].start(), instances[2].start())
            async with balancer([i.url for i in instances]) as (lb_url, _):
                clients = Clients(lb_url)
                try:
                    result = await scenario(
                        run,
                        components,
                        ct,
                        zd,
                        td,
                        instances[0].env,
                        clients,
                        instances,
                        redis,
                        zendesk,
                        demo,
                        tickets,
                        events_secret,
                        project_key,
                    )
                finally:
                    for task in list(clients.in_flight):
                        task.cancel()
                    await clients.http.aclose()
            db = Database.from_url(DATABASE_URL, schema=schema)
            await db.open()
            try:
                await drain(db)
                jobs = await db.fetchall(
                    "SELECT kind, state, COUNT(*) AS n FROM jobs GROUP BY kind, state"
                )
                dead = await db.fetchall(
                    "SELECT kind, last_error FROM jobs WHERE state = 'dead' LIMIT 5"
                )
            finally:
                await db.close()
            orders1 = await all_orders(http, api_url, project_key)
            for instance in instances:
                await instance.stop()
            limits = {name: parse_rate(text) for name, text in RATE_LIMITS.items()}
            ok = report(
                run,
                components,
                ct,
                zd,
                fake,
                td,
                tidio,
                demo,
                clients,
                instances,
                result,
                jobs,
                dead,
                orders0,
                orders1,
                limits,
                time.time() - started,
            )
            return 0 if ok else 1
    finally:
        for instance in instances:
            with contextlib.suppress(Exception):
                await instance.stop()
        await redis.stop()
        await asyncio.to_thread(emulator.stop)
        await drop_schema(schema)
        log(f"instance logs kept in {tmp}")


async def preflight() -> None:
    """What the run needs, checked first, each with a readable message."""
    import shutil

    import psycopg

    if shutil.which("redis-server") is None:
        raise SystemExit(
            "make cluster-test starts its own Redis: install redis-server "
            "(sudo apt-get install redis-server)"
        )
    if shutil.which("node") is None:
        raise SystemExit("make cluster-test needs Node for the commercetools emulator")
    try:
        conn = await psycopg.AsyncConnection.connect(DATABASE_URL, connect_timeout=5)
        await conn.close()
    except psycopg.Error as exc:
        raise SystemExit(
            f"make cluster-test needs PostgreSQL at {DATABASE_URL} (trust authentication, as "
            f"the tests use): {str(exc).strip().splitlines()[0]}"
        ) from None


async def drop_schema(schema: str) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(DATABASE_URL, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def drain(db: Any) -> None:
    """Wait (bounded) until no job is queued or running."""
    deadline = time.monotonic() + DRAIN_LIMIT
    while time.monotonic() < deadline:
        rows = await db.fetchall(
            "SELECT COUNT(*) AS n FROM jobs WHERE state IN ('queued', 'running')"
        )
        if int(rows[0]["n"]) == 0:
            return
        await asyncio.sleep(0.5)
    log(f"jobs still pending after {DRAIN_LIMIT:.0f} s")


async def scenario(  # noqa: C901 - one timeline, read top to bottom
    run: Run,
    components: Components,
    ct: Recorder,
    zd: Recorder,
    td: Recorder,
    env: dict[str, str],
    c: Clients,
    instances: list[Instance],
    redis: RedisServer,
    zendesk: Any,
    demo: Any,
    tickets: tuple[dict[str, Any], ...],
    events_secret: str,
    project_key: str,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    # 1. 100 concurrent cold views of one ticket, spread over the three instances.
    session = await open_session(c, zendesk)
    context = ticket_context(tickets[0])
    before = sum(1 for call in ct.calls if is_graphql(call))
    spec = {
        "host": HOST,
        "port": instances[0].port,
        "path": "/zendesk/panels",
        "headers": {"Authorization": f"Bearer {session}", "Content-Type": "application/json"},
        "body": json.dumps(context),
    }
    ports = [a for i in instances for a in ("--port", str(i.port))]
    log(f"burst: {BURST} concurrent cold views of ticket 1 over 3 instances")
    burst = await run_load("burst", spec, "--count", str(BURST), "--expect", CUSTOMER_PANEL, *ports)
    burst["graphql"] = sum(1 for call in ct.calls if is_graphql(call)) - before
    result["burst"] = burst

    # 2. The mixed load, with faults on a timeline.
    orders = [o for o in demo.orders.values()]
    contexts = [ticket_context(t) for t in tickets]
    ticket_of = {order_id: ticket_id for ticket_id, order_id in run.tickets.items()}
    start = time.time()
    run.marks["load_start"] = start
    until = start + run.load_seconds
    ct.faults = [
        (start + CT_429[0], start + CT_429[1], "429"),
        (start + CT_503[0], start + CT_503[1], "503"),
    ]
    zd.faults = [
        (start + ZD_429[0], start + ZD_429[1], "429"),
        (start + ZD_503[0], start + ZD_503[1], "503"),
    ]
    td.faults = [
        (start + TIDIO_429[0], start + TIDIO_429[1], "429-bare"),
        (start + TIDIO_503[0], start + TIDIO_503[1], "503"),
    ]
    for first, last in (CT_429, CT_503):
        # A view with nothing cached (or only entries an event marked outdated) cannot be
        # answered while commercetools refuses: 503 upstream_unavailable, by design.
        run.windows.append(
            Window(
                "commercetools outage (views with nothing cached)",
                start + first,
                start + last + OUTAGE_GRACE,
                frozenset({"panels"}),
                UNAVAILABLE,
            )
        )
    seen_writes = 0

    async def view(i: int) -> None:
        with contextlib.suppress(httpx.HTTPError, RuntimeError):
            token_session = await open_session(c, zendesk)
            await c.request(
                "panels",
                "POST",
                "/zendesk/panels",
                json=contexts[i % len(contexts)],
                headers={"Authorization": f"Bearer {token_session}"},
            )

    async def webhook(i: int) -> None:
        order = orders[i % len(orders)]
        value = f"cluster {run.run_id} #{i}"
        body = json.dumps(
            {
                "event": "ticket.updated",
                "ticket": {
                    # The Zendesk ticket that carries this order's number (the fake's, when
                    # the outbound sync runs: it writes to the tickets an order is linked to).
                    "id": str(ticket_of.get(order.id, 7000 + i % len(orders))),
                    "requester_email": "",
                    "brand_id": "",
                    "fields": {str(ORDER_FIELD): order.order_number, str(NOTE_FIELD): value},
                },
            }
        ).encode()
        invocation = uuid.uuid4().hex
        repeats = 2 if i % 7 == 0 else 1  # Zendesk delivers some twice
        run.webhooks_repeated += repeats - 1
        accepted = False
        for _ in range(repeats):
            # A delivery answered 5xx or not at all is retried (as Zendesk does), same id.
            for attempt in range(5):
                try:
                    response = await c.request(
                        "webhook",
                        "POST",
                        "/zendesk/webhooks",
                        content=body,
                        headers=webhook_headers(zendesk.webhook_secret, body, invocation),
                    )
                except httpx.HTTPError:
                    await asyncio.sleep(1 + attempt)
                    continue
                if response.status_code < 500:
                    accepted |= response.status_code == 202
                    break
                await asyncio.sleep(1 + attempt)
        if accepted:
            run.sent_notes.setdefault(order.id, []).append(value)

    async def deliver(payloads: list[dict[str, Any]]) -> None:
        for attempt in range(5):  # a queue bridge redelivers until 2xx
            try:
                response = await c.request(
                    "events",
                    "POST",
                    "/commercetools/events",
                    json=payloads,
                    headers={"Authorization": f"Bearer {events_secret}"},
                )
            except httpx.HTTPError:
                await asyncio.sleep(1 + attempt)
                continue
            if response.status_code < 500:
                return
            await asyncio.sleep(1 + attempt)

    def message(order_id: str, version: int, kind: str) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        run.events_sent += 1
        return {
            "notificationType": "Message",
            "projectKey": project_key,
            "id": str(uuid.uuid4()),
            "version": 1,
            "sequenceNumber": version,
            "resource": {"typeId": "order", "id": order_id},
            "resourceVersion": version,
            "type": kind,
            "createdAt": now,
            "lastModifiedAt": now,
        }

    async def subscription() -> None:
        """The emulator's applied order updates become events, as a subscription delivers
        them (at least once: every fifth one twice)."""
        nonlocal seen_writes
        while time.time() < until + 30:
            calls = ct.calls[seen_writes:]
            seen_writes += len(calls)
            for call in calls:
                if is_order_update(call.method, call.path) and call.status == 200:
                    order_id = order_id_of(call.path)
                    version = int((call.body or {}).get("version", 0)) + 1
                    run.versions[order_id] = max(run.versions.get(order_id, 0), version)
                    payload = message(order_id, version, "OrderCustomFieldChanged")
                    c.spawn(deliver([payload]))
                    if run.events_sent % 5 == 0:
                        run.events_repeated += 1
                        c.spawn(deliver([payload]))
            await asyncio.sleep(0.2)

    async def stale_event(i: int) -> None:
        order = orders[i % len(orders)]
        await deliver([message(order.id, run.versions.get(order.id, 1), "OrderStateChanged")])

    async def faults() -> None:
        await asyncio.sleep(max(0.0, start + KILL_AT - time.time()))
        victim = instances[1]
        log(f"SIGKILL instance {victim.index} (pid {victim.pid}), then restart it")
        killed = time.time()
        await victim.kill()
        await victim.start()
        ready = time.time()
        run.windows.append(Window("instance kill", killed, ready + KILL_GRACE))
        run.marks["kill"], run.marks["restarted"] = killed, ready
        log(f"instance {victim.index} back after {ready - killed:.1f} s (pid {victim.pid})")
        await asyncio.sleep(max(0.0, start + REDIS_AT - time.time()))
        log(f"stopping Redis for {REDIS_DOWN:.0f} s, then starting it empty")
        run.marks["redis_down"] = time.time()
        await redis.stop()
        await asyncio.sleep(REDIS_DOWN)
        await redis.start()
        run.marks["redis_up"] = time.time()
        # Events are applied to the cache: while Redis is down they are refused with 503 and
        # the queue bridge redelivers them (at least once); nothing else may fail.
        run.windows.append(
            Window(
                "Redis restart (events refused for redelivery)",
                run.marks["redis_down"],
                run.marks["redis_up"] + REDIS_GRACE,
                frozenset({"events"}),
                frozenset({"cache_unavailable"}),
            )
        )

    async def backfills() -> None:
        if not components.zendesk:
            return
        for at in BACKFILL_AT:
            await asyncio.sleep(max(0.0, start + at - time.time()))
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "commerce_context.zendesk_sync", "customers",
                "--since", "2000-01-01", env=env, cwd=ROOT,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                run.backfills.append(await asyncio.wait_for(process.wait(), 60))
            except TimeoutError:
                process.kill()
                run.backfills.append(await process.wait())
            log(f"Zendesk customer backfill enqueued (exit {run.backfills[-1]})")

    async def sample() -> None:
        while time.time() < until:
            now = time.time()
            for instance in instances:
                instance.sample_rss(now)
            await asyncio.sleep(2.0)

    log(
        f"load for {run.load_seconds:.0f} s: {VIEW_RATE:g} views/s, {WEBHOOK_RATE:g} webhooks/s, "
        f"events; faults: commercetools 429 at {CT_429[0]:.0f}-{CT_429[1]:.0f} s, 503 at "
        f"{CT_503[0]:.0f}-{CT_503[1]:.0f} s, Zendesk 429 at {ZD_429[0]:.0f}-{ZD_429[1]:.0f} s, "
        f"503 at {ZD_503[0]:.0f}-{ZD_503[1]:.0f} s, SIGKILL at {KILL_AT:.0f} s, Redis restart "
        f"at {REDIS_AT:.0f} s"
    )
    minute_task = asyncio.create_task(progress(run, c, instances, until))
    await asyncio.gather(
        paced(VIEW_RATE, until, view, c),
        paced(WEBHOOK_RATE, until, webhook, c),
        paced(STALE_EVENT_RATE, until, stale_event, c),
        subscription(),
        faults(),
        backfills(),
        sample(),
    )
    minute_task.cancel()
    # Let the last requests finish (bounded), then stop the event deliveries too.
    if c.in_flight:
        await asyncio.wait(list(c.in_flight), timeout=60)
    run.marks["load_end"] = time.time()
    return result


async def open_session(c: Clients, zendesk: Any) -> str:
    response = await c.request(
        "sidebar",
        "POST",
        "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=cluster",
        data={"token": zendesk.token(sub=f"agent-{random.randrange(50)}")},
    )
    found = re.search(r'data-session="([^"]+)"', response.text)
    if response.status_code != 200 or found is None:
        raise RuntimeError(f"the sidebar did not open (HTTP {response.status_code})")
    return found.group(1)


async def progress(run: Run, c: Clients, instances: list[Instance], until: float) -> None:
    """A line per minute (soak mode's figures)."""
    start = run.marks["load_start"]
    minute = 0
    while time.time() < until:
        minute += 1
        await asyncio.sleep(max(0.0, start + minute * 60 - time.time()))
        log(minute_line(minute - 1, run, c, instances))


def minute_line(minute: int, run: Run, c: Clients, instances: list[Instance]) -> str:
    start = run.marks["load_start"]
    lo, hi = start + minute * 60, start + (minute + 1) * 60
    panels = [a.seconds * 1000 for a in c.answers if a.kind == "panels" and lo <= a.t < hi]
    errors = sum(1 for a in c.answers if lo <= a.t < hi and (a.status == 0 or a.status >= 500))
    rss = []
    for instance in instances:
        values = [mb for series in instance.rss.values() for t, mb in series if lo <= t < hi]
        rss.append(f"{values[-1]:.0f}" if values else "-")
    p99 = percentile(panels, 99)
    return (
        f"minute {minute + 1}: {len(panels)} panels, p99 "
        f"{'-' if p99 is None else f'{p99:.0f}'} ms, 5xx {errors}, RSS MB {' / '.join(rss)}"
    )


# -- checks and the printout ---------------------------------------------------------------------


def report(  # noqa: C901 - one check after another
    run: Run,
    components: Components,
    ct: Recorder,
    zd: Recorder,
    fake: Any,
    td: Recorder,
    tidio: Any,
    demo: Any,
    c: Clients,
    instances: list[Instance],
    result: dict[str, Any],
    jobs: list[Any],
    dead: list[Any],
    orders0: dict[str, Any],
    orders1: dict[str, Any],
    limits: dict[str, Any],
    seconds: float,
) -> bool:
    checks: list[tuple[str, bool, str]] = []
    start = run.marks["load_start"]
    lines = [f"# Scale-out run {run.run_id} ({seconds:.0f} s)", ""]
    lines.append("Components:")
    lines += [f"  {note}" for note in components.notes]
    # Exactly once.
    writes = [
        (order_id_of(call.path), note)
        for call in ct.calls
        if is_order_update(call.method, call.path)
        and call.status == 200
        and (note := written_note(call)) is not None
    ]
    final = {oid: note_of(order) for oid, order in orders1.items()}
    figures, problems = applied_once(run.sent_notes, writes, final)
    version_problems = []
    for oid, order in orders1.items():
        applied = sum(
            1
            for call in ct.calls
            if is_order_update(call.method, call.path)
            and call.status == 200
            and order_id_of(call.path) == oid
        )
        delta = int(order["version"]) - int(orders0[oid]["version"])
        if delta != applied:
            version_problems.append(f"{oid}: version moved {delta}, {applied} updates seen")
    states: dict[str, int] = {}
    for row in jobs:
        states[row["state"]] = states.get(row["state"], 0) + int(row["n"])
    left = states.get("queued", 0) + states.get("running", 0)
    checks.append(
        (
            "every change applied exactly once",
            not problems and not version_problems and not states.get("dead") and not left,
            f"{figures['sent']} notes accepted for {figures['targets']} orders; "
            f"{figures['written']} written once, {figures['superseded']} superseded by a newer "
            f"value before they ran, {figures['twice']} written twice; versions match the "
            f"updates: {not version_problems}; jobs {dict(sorted(states.items()))}"
            + "".join(f"\n      {p}" for p in (problems + version_problems)[:10])
            + "".join(f"\n      dead {d['kind']}: {d['last_error']}" for d in dead),
        )
    )
    # 5xx.
    inside, outside = errors_outside(
        [(a.t, a.seconds, a.status, a.kind, a.code) for a in c.answers], run.windows
    )
    checks.append(
        (
            "no 5xx outside the documented windows",
            not outside,
            f"{len(c.answers)} answers; 5xx or none inside windows: "
            + (", ".join(f"{n} {name}" for name, n in inside.items()) or "0")
            + f"; outside: {len(outside)}"
            + "".join(
                f"\n      at +{t - start:.1f} s: {kind} {status or 'no answer'} {code or ''}"
                for t, _, status, kind, code in outside[:10]
            ),
        )
    )
    # Rate limits.
    rate_checks: list[RateCheck] = []
    ct_writes = [call.t for call in ct.calls if is_order_update(call.method, call.path)]
    rate = limits["commercetools"]
    rate_checks.append(
        check_rate("commercetools (job writes)", ct_writes, rate.count, rate.period, rate.burst)
    )
    worst = worst_window(ct_writes, rate.period)
    statuses_in_worst = {}
    for call in ct.calls:
        if is_order_update(call.method, call.path) and worst[0] <= call.t < worst[1]:
            statuses_in_worst[call.status] = statuses_in_worst.get(call.status, 0) + 1
    lines.append(
        f"Busiest {rate.period:g} s of commercetools job writes: +{worst[0] - start:.1f} s, "
        f"statuses {statuses_in_worst}"
    )
    checks.append(
        (
            "upstream requests within the configured rate limits",
            all(r.ok for r in rate_checks),
            "; ".join(
                f"{r.name}: {r.requests} requests, at most {r.worst} in any {r.period:g} s "
                f"(allowed {r.allowed:g})"
                for r in rate_checks
            ),
        )
    )
    if components.zendesk:
        checks += zendesk_checks(run, zd, fake, demo, orders1, limits)
    if components.tidio:
        checks += tidio_checks(run, td, tidio, orders1, limits)
    # Burst.
    burst = result["burst"]
    statuses = burst.get("statuses", {})
    checks.append(
        (
            f"{BURST} concurrent cold views of one ticket cost what one cold view costs",
            # Ticket 1's address belongs to an account: its document, then the orders by id.
            burst["graphql"] == 2 and burst.get("with_expected") == BURST,
            f"{burst['graphql']} GraphQL requests; answers {statuses}, "
            f"{burst.get('with_expected')} with the customer panel, p99 "
            f"{burst.get('p99_ms') or 0:.0f} ms",
        )
    )
    # RSS.
    rss_ok = True
    rss_parts = []
    for instance in instances:
        for pid, series in instance.rss.items():
            growth = rss_growth(series, RSS_SETTLE, RSS_TAIL)
            if growth is None:
                rss_parts.append(f"instance {instance.index} pid {pid}: too short to judge")
                continue
            early, late = growth
            flat = late <= early * (1 + RSS_MAX_GROWTH) + RSS_MAX_GROWTH_MB
            rss_ok &= flat
            # Between the middles of the two windows compared: a slow leak shows as a rate.
            span = series[-1][0] - series[0][0] - RSS_SETTLE - RSS_TAIL
            minutes = max(span, 1.0) / 60
            rss_parts.append(
                f"instance {instance.index} pid {pid}: {early:.1f} -> {late:.1f} MB "
                f"({(late - early) / minutes:+.2f} MB/min)" + ("" if flat else " (grew)")
            )
    checks.append(("RSS of each instance flat", rss_ok, "; ".join(rss_parts)))
    # Figures.
    panels = [a.seconds * 1000 for a in c.answers if a.kind == "panels" and a.status == 200]
    by_kind: dict[str, dict[int, int]] = {}
    for a in c.answers:
        by_kind.setdefault(a.kind, {}).setdefault(a.status, 0)
        by_kind[a.kind][a.status] += 1
    backends: dict[str, int] = {}
    for a in c.answers:
        if a.backend is not None:
            backends[a.backend] = backends.get(a.backend, 0) + 1
    injected: dict[str, int] = {}
    for recorder in (ct, zd, td):
        for call in recorder.calls:
            if call.injected:
                name = f"{recorder.name} {call.status}"
                injected[name] = injected.get(name, 0) + 1
    lines.append("")
    lines.append(
        f"Load: {run.load_seconds:.0f} s; answers by kind and status "
        f"{json.dumps(by_kind, sort_keys=True)}; per instance {dict(sorted(backends.items()))}"
    )
    lines.append(
        f"Panels p50 {percentile(panels, 50) or 0:.0f} ms, p99 {percentile(panels, 99) or 0:.0f} "
        f"ms; webhooks repeated {run.webhooks_repeated}, events {run.events_sent} "
        f"(+{run.events_repeated} redelivered)"
    )
    lines.append(
        f"Faults injected: {injected}; SIGKILL at "
        f"+{run.marks['kill'] - start:.0f} s, back in "
        f"{run.marks['restarted'] - run.marks['kill']:.1f} s; Redis down "
        f"+{run.marks['redis_down'] - start:.0f} s to "
        f"+{run.marks['redis_up'] - start:.0f} s"
    )
    if run.soak_minutes:
        lines.append("")
        lines.append("Per minute (panels latency, RSS of instances 0 / 1 / 2):")
        minutes = per_minute([(a.t, a.seconds) for a in c.answers if a.kind == "panels"], start)
        for minute in sorted(minutes):
            lines.append("  " + minute_line(minute, run, c, instances))
    lines.append("")
    for name, ok, detail in checks:
        lines.append(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print("\n".join(lines), flush=True)
    passed = all(ok for _, ok, _ in checks)
    if passed:
        write_docs(run, lines, checks)
    else:
        log("a check failed: docs/benchmarks.md left as it was")
    return passed


def write_docs(run: Run, lines: list[str], checks: list[tuple[str, bool, str]]) -> None:
    """The run's figures into the Scale-out section of docs/benchmarks.md (its own
    subsection only: `make bench` writes the rest of the file)."""
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    heading = "### make cluster-soak" if run.soak_minutes else "### make cluster-test"
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    block = [
        heading,
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, revision {revision}, "
        f"{os.cpu_count()} cores ({cpu}), shared with whatever else ran; "
        + (f"soak of {run.soak_minutes:g} minutes." if run.soak_minutes else "120 s of load."),
        "",
        "| Check | Result | Figures |",
        "|---|---|---|",
    ]
    for name, ok, detail in checks:
        first = detail.split("\n")[0].replace("|", "/")
        block.append(f"| {name} | {'pass' if ok else 'FAIL'} | {first} |")
    block += ["", "The run's printout:", "", "```", *lines, "```"]
    doc = ROOT / "docs" / "benchmarks.md"
    doc.write_text(replace_block(doc.read_text(encoding="utf-8"), heading, "\n".join(block)))
    log(f"wrote the figures to {doc.relative_to(ROOT)} ({heading})")


def zendesk_checks(
    run: Run, zd: Recorder, fake: Any, demo: Any, orders: dict[str, Any], limits: dict[str, Any]
) -> list[tuple[str, bool, str]]:
    """From the fake Zendesk's own state and the requests it received."""
    checks: list[tuple[str, bool, str]] = []
    emails = {c.email.lower() for c in demo.customers.values()}
    users = list(fake.users.values())
    by_email: dict[str, int] = {}
    for user in users:
        for identity in fake.identities.values():
            if identity["user_id"] == user["id"] and identity["type"] == "email":
                by_email[identity["value"].lower()] = by_email.get(identity["value"].lower(), 0) + 1
    externals = [u.get("external_id") for u in users if u.get("external_id")]
    problems = [f"{e}: {n} users" for e, n in by_email.items() if n > 1]
    problems += [f"{e}: no user" for e in sorted(emails - set(by_email))]
    if len(externals) != len(set(externals)):
        problems.append("an external id is used by two users")
    checks.append(
        (
            "Zendesk users: one per shopper email, whatever the retries",
            not problems and all(code == 0 for code in run.backfills),
            f"{len(users)} users for {len(emails)} customer emails; backfills exit "
            f"{run.backfills}" + "".join(f"\n      {p}" for p in problems[:10]),
        )
    )
    puts: dict[int, int] = {}
    for call in zd.calls:
        if call.method == "PUT" and call.path.startswith("/api/v2/tickets/") and call.status == 200:
            ticket_id = int(call.path.rsplit("/", 1)[-1].removesuffix(".json"))
            puts[ticket_id] = puts.get(ticket_id, 0) + 1
    wrong = []
    for ticket_id, order_id in run.tickets.items():
        state = orders[order_id].get("orderState")
        value = fake.field_value(ticket_id, ORDER_STATE_FIELD)
        if puts.get(ticket_id) and value != state:
            wrong.append(f"ticket {ticket_id}: order_state {value!r}, order {state!r}")
        if puts.get(ticket_id, 0) > 1:
            # The orders' states never change in this run: one write is all a ticket needs.
            wrong.append(f"ticket {ticket_id}: written {puts[ticket_id]} times")
    written = sum(1 for t in run.tickets if puts.get(t))
    checks.append(
        (
            "Zendesk ticket fields written once per ticket",
            not wrong,
            f"{written} of {len(run.tickets)} order tickets written"
            + "".join(f"\n      {w}" for w in wrong[:10]),
        )
    )
    rate_checks = []
    for name, match in (
        ("zendesk:tickets", lambda c: c.method == "PUT" and "/tickets/" in c.path),
        ("zendesk:users", lambda c: "create_or_update_many" in c.path),
    ):
        rate = limits[name]
        times = [call.t for call in zd.calls if match(call)]
        rate_checks.append(check_rate(name, times, rate.count, rate.period, rate.burst))
    checks.append(
        (
            "Zendesk requests within the configured limits, no 429 of its own",
            all(r.ok for r in rate_checks) and fake.throttled == 0,
            "; ".join(
                f"{r.name}: {r.requests} requests, at most {r.worst} in any {r.period:g} s "
                f"(allowed {r.allowed:g})"
                for r in rate_checks
            )
            + f"; {len(zd.calls)} requests in all, {fake.throttled} refused by its own limit, "
            f"{sum(1 for c in zd.calls if c.injected)} faults injected",
        )
    )
    return checks


def tidio_checks(
    run: Run, td: Recorder, tidio: Any, orders: dict[str, Any], limits: dict[str, Any]
) -> list[tuple[str, bool, str]]:
    """From the fake Tidio's contacts and the requests it received."""
    by_number = {o.get("orderNumber"): o for o in orders.values()}
    updated, wrong = 0, []
    for contact_id, email in run.contacts.items():
        number = tidio.property(contact_id, "cc_last_order")
        if number is None:
            continue
        updated += 1
        order = by_number.get(number)
        state = tidio.property(contact_id, "cc_last_order_state")
        if order is None or (order.get("customerEmail") or "").lower() != email:
            wrong.append(f"{email}: last order {number!r} is not one of theirs")
        elif state != order.get("orderState"):
            wrong.append(f"{email}: state {state!r}, order {order.get('orderState')!r}")
    checks: list[tuple[str, bool, str]] = [
        (
            "Tidio contacts carry their shopper's order",
            updated > 0 and not wrong,
            f"{updated} of {len(run.contacts)} contacts updated"
            + "".join(f"\n      {w}" for w in wrong[:10]),
        )
    ]
    rate = limits["tidio"]
    batches = [c.t for c in td.calls if c.method == "PATCH" and c.path.startswith("/contacts")]
    result = check_rate("tidio", batches, rate.count, rate.period, rate.burst)
    checks.append(
        (
            "Tidio requests within the configured limit, no 429 of its own",
            result.ok and tidio.throttled == 0,
            f"contact updates: {result.requests}, at most {result.worst} in any "
            f"{result.period:g} s (allowed {result.allowed:g}); {len(td.calls)} requests in all, "
            f"{tidio.throttled} refused by its own limit, "
            f"{sum(1 for c in td.calls if c.injected)} faults injected",
        )
    )
    return checks


def cli() -> int:
    parser = argparse.ArgumentParser(description="The scale-out proof (make cluster-test).")
    sub = parser.add_subparsers(dest="command")
    balance = sub.add_parser("balance", help="(internal) the round-robin load balancer")
    balance.add_argument("backends", nargs="+")
    parser.add_argument("--soak", type=float, metavar="MINUTES", help="run the load this long")
    args = parser.parse_args()
    if args.command == "balance":
        run_balancer(args.backends)
        return 0
    limit = (args.soak * 60 if args.soak else LOAD_SECONDS) + 600
    import uvloop  # uvicorn's standard extra: the bridge in this process answers sooner

    return uvloop.run(asyncio.wait_for(main(args.soak), limit))


if __name__ == "__main__":
    sys.exit(cli())
