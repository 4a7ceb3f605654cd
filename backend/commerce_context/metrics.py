"""Prometheus metrics and the access log: `GET /metrics`, one line and one sample per request.

`Metrics` (one per app, made in `create_app`, with its own `CollectorRegistry`, so tests can
build several apps) holds:

* `RequestObserver`, a pure ASGI middleware: request latency per route *template*
  (`/zendesk/actions/{job_id}`, never the raw path, so the series stay few), 401s on the
  webhook routes as failed verifications, and the structured access-log line (method, route,
  status, duration_ms; never the query string, never the client's address);
* `MeteredTransport`, the shared httpx client's transport: upstream requests per destination
  (commercetools, zendesk, tidio) with their outcome and latency;
* a collector that reads, at scrape time, what other parts already count: the cache reader's
  upstream reads, the circuit breaker's state, token and key fetches, and from the job
  database the queue depth and oldest job per destination, dead jobs and rate-limit pauses
  (shared by every instance, so any instance reports them);
* process-wide counters fed by one-line calls at named places (`job_settled` in the worker,
  `cache_read` after a ticket view's read), registered in every app's registry.

`/metrics` is served only when configured: with `CC_METRICS_TOKEN` on the main port (bearer
token), or with `CC_METRICS_PORT` on a port of its own without a token (keep that port off the
load balancer). Neither set: no metrics route at all. Each server process counts its own
requests; scale by instances with one process each (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import tokens
from .exceptions import DatabaseUnavailable, NotFound, Unauthorized
from .lru import LRU

if TYPE_CHECKING:
    from .breaker import CircuitBreaker
    from .cache import Answer, Reader
    from .commercetools import CommercetoolsClient
    from .jobs import Queue
    from .queries import Read
    from .settings import Settings
    from .tokens import ZendeskKeys

__all__ = [
    "CACHE_READS",
    "JOBS_SETTLED",
    "MeteredTransport",
    "Metrics",
    "RequestObserver",
    "cache_read",
    "job_settled",
]

access_log = logging.getLogger("commerce_context.access")
log = logging.getLogger("commerce_context.metrics")

# Seconds; a ticket view's budget is 3 s, so the buckets are finest below it.
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A 401 on these routes is a delivery whose signature or secret did not verify.
WEBHOOK_ROUTES: Final = {
    "/zendesk/webhooks": "zendesk",
    "/tidio/webhooks": "tidio",
    "/commercetools/events": "commercetools",
}
UNMATCHED: Final = "unmatched"  # 404s for paths no route knows: one series, not one per path

# -- process-wide counters, fed by one-line calls ---------------------------------------------

JOBS_SETTLED: Final = Counter(
    "cc_jobs_settled",
    "Job runs settled by this process's workers, by kind, destination and outcome "
    "(done, retry, throttled, dead).",
    ["kind", "destination", "outcome"],
    registry=None,
)
JOB_DURATION: Final = Histogram(
    "cc_job_duration_seconds",
    "Seconds from claim to settled outcome, by job kind.",
    ["kind"],
    buckets=LATENCY_BUCKETS,
    registry=None,
)
CACHE_READS: Final = Counter(
    "cc_cache_reads",
    "Ticket-view reads by the kind of entity they read and how the cache answered "
    "(hit: fresh entries; miss: commercetools asked; stale: old entries served in an outage).",
    ["kind", "outcome"],
    registry=None,
)


def job_settled(kind: str, destination: str, outcome: str, seconds: float) -> None:
    """Called by the worker once per settled run."""
    JOBS_SETTLED.labels(kind, destination, outcome).inc()
    JOB_DURATION.labels(kind).observe(max(seconds, 0.0))


def cache_read(reads: Sequence[Read], answer: Answer) -> None:
    """Called after a ticket view's `Reader.fetch`: one count per kind of entity read."""
    if answer.as_of is not None:
        outcome = "stale"
    elif answer.upstream_requests:
        outcome = "miss"
    else:
        outcome = "hit"  # fresh entries, or the answer another view's request just stored
    for kind in {read.type for read in reads}:
        _cache_reads(kind, outcome).inc()


@lru_cache(maxsize=64)
def _cache_reads(kind: str, outcome: str) -> Any:
    # The labelled child, looked up once (labels() validates and locks on every call).
    return CACHE_READS.labels(kind, outcome)


# -- the per-app metrics ------------------------------------------------------------------------


@dataclass
class _Sources:
    """What the lifespan made, read at scrape time."""

    reader: Reader | None = None
    breaker: CircuitBreaker | None = None
    commercetools: CommercetoolsClient | None = None
    zendesk_keys: ZendeskKeys | None = None
    queue: Queue | None = None
    destinations: tuple[str, ...] = ()


@dataclass
class _Snapshot:
    """The job database's figures, read before each scrape (collectors cannot await)."""

    database_up: bool = False
    depth: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, float] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    paused: dict[str, float] = field(default_factory=dict)
    strikes: dict[str, int] = field(default_factory=dict)


class _StateCollector(Collector):
    def __init__(self, sources: _Sources) -> None:
        self.sources = sources
        self.snapshot = _Snapshot()

    def collect(self) -> Iterable[Any]:
        yield from self._process_state()
        yield from self._queue_state()

    def _process_state(self) -> Iterable[Any]:
        s = self.sources
        reads = CounterMetricFamily(
            "cc_commercetools_reads",
            "GraphQL documents the cache reader sent to commercetools (coalesced, delta reads).",
        )
        reads.add_metric([], s.reader.upstream_requests if s.reader else 0)
        yield reads
        breaker = GaugeMetricFamily(
            "cc_circuit_breaker_state",
            "The commercetools circuit breaker: 1 for the state it is in.",
            labels=["state"],
        )
        current = s.breaker.state if s.breaker else "closed"
        for state in ("closed", "open", "half-open"):
            breaker.add_metric([state], 1.0 if state == current else 0.0)
        yield breaker
        tokens = CounterMetricFamily(
            "cc_token_fetches",
            "Credentials fetched: commercetools OAuth tokens, the Zendesk app's public key.",
            labels=["issuer"],
        )
        tokens.add_metric(
            ["commercetools"], s.commercetools.token_fetches if s.commercetools else 0
        )
        tokens.add_metric(["zendesk_app_key"], s.zendesk_keys.fetches if s.zendesk_keys else 0)
        yield tokens

    def _queue_state(self) -> Iterable[Any]:
        snap = self.snapshot
        up = GaugeMetricFamily(
            "cc_database_up", "1 when the job database answered this scrape's queries."
        )
        up.add_metric([], 1.0 if snap.database_up else 0.0)
        yield up
        if not snap.database_up:
            return  # no figures beat stale ones: alert on cc_database_up instead
        names = sorted(
            {*self.sources.destinations, *snap.depth, *snap.dead, *snap.paused, *snap.running}
        )
        families = {
            "depth": GaugeMetricFamily(
                "cc_job_queue_depth",
                "Jobs queued (not yet running) per destination.",
                labels=["destination"],
            ),
            "running": GaugeMetricFamily(
                "cc_jobs_running",
                "Jobs running now (leased) per destination, every instance.",
                labels=["destination"],
            ),
            "oldest": GaugeMetricFamily(
                "cc_job_queue_oldest_age_seconds",
                "Age of the oldest queued job per destination (0 when none is queued).",
                labels=["destination"],
            ),
            "dead": GaugeMetricFamily(
                "cc_jobs_dead",
                "Dead jobs kept per destination (retry or cancel them).",
                labels=["destination"],
            ),
            "paused": GaugeMetricFamily(
                "cc_rate_limit_pause_seconds",
                "Seconds until a destination paused by a 429 or 503 may be called again.",
                labels=["destination"],
            ),
            "strikes": GaugeMetricFamily(
                "cc_rate_limit_strikes",
                "Throttling answers in a row from a destination (0 after a success).",
                labels=["destination"],
            ),
        }
        for name in names:
            families["depth"].add_metric([name], snap.depth.get(name, 0))
            families["running"].add_metric([name], snap.running.get(name, 0))
            families["oldest"].add_metric([name], snap.oldest.get(name, 0.0))
            families["dead"].add_metric([name], snap.dead.get(name, 0))
            families["paused"].add_metric([name], snap.paused.get(name, 0.0))
            families["strikes"].add_metric([name], snap.strikes.get(name, 0))
        yield from families.values()


async def _read_queue(queue: Queue) -> _Snapshot:
    now = queue.clock()
    snap = _Snapshot(database_up=True)
    rows = await queue.db.fetchall(
        "SELECT destination, state, COUNT(*) AS n, MIN(created_at) AS oldest FROM jobs "
        "WHERE state IN ('queued', 'running', 'dead') GROUP BY destination, state"
    )
    for row in rows:
        destination, count = str(row["destination"]), int(row["n"])
        if row["state"] == "queued":
            snap.depth[destination] = count
            snap.oldest[destination] = max(now - float(row["oldest"]), 0.0)
        elif row["state"] == "running":
            snap.running[destination] = count
        else:
            snap.dead[destination] = count
    for row in await queue.db.fetchall("SELECT destination, paused_until, strikes FROM limits"):
        destination = str(row["destination"])
        snap.paused[destination] = max(float(row["paused_until"]) - now, 0.0)
        snap.strikes[destination] = int(row["strikes"])
    return snap


class Metrics:
    """One app's registry and instruments; `routes` names the route templates."""

    def __init__(self, settings: Settings) -> None:
        self.token = settings.metrics_token
        self.port = settings.metrics_port
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Histogram(
            "cc_http_request_duration_seconds",
            "Request latency by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_failures = Counter(
            "cc_webhook_verification_failures",
            "Webhook and event deliveries refused with 401 (signature, secret, replay window).",
            ["source"],
            registry=self.registry,
        )
        self.upstream = Counter(
            "cc_upstream_requests",
            "HTTP requests to upstreams by destination and outcome (ok, client_error, "
            "throttled, server_error, error: no answer).",
            ["destination", "outcome"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "cc_upstream_request_duration_seconds",
            "Seconds until an upstream's response headers (or the failure), by destination.",
            ["destination"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        for shared in (JOBS_SETTLED, JOB_DURATION, CACHE_READS):
            self.registry.register(shared)
        ProcessCollector(registry=self.registry)  # RSS, CPU, open files
        PlatformCollector(registry=self.registry)
        self.sources = _Sources(destinations=tuple(sorted(settings.rate_limits)))
        self._state = _StateCollector(self.sources)
        self.registry.register(self._state)
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.token is not None or self.port is not None

    def attach(
        self,
        *,
        reader: Reader,
        breaker: CircuitBreaker,
        commercetools: CommercetoolsClient,
        zendesk_keys: ZendeskKeys,
        queue: Queue,
    ) -> None:
        """Called by the lifespan once the long-lived objects exist."""
        self.sources.reader = reader
        self.sources.breaker = breaker
        self.sources.commercetools = commercetools
        self.sources.zendesk_keys = zendesk_keys
        self.sources.queue = queue

    async def exposition(self) -> bytes:
        """The text format, after reading the job database's figures."""
        async with self._lock:
            queue = self.sources.queue
            if queue is not None:
                try:
                    self._state.snapshot = await _read_queue(queue)
                except DatabaseUnavailable:
                    self._state.snapshot = _Snapshot(database_up=False)
            return generate_latest(self.registry)

    # -- the route -------------------------------------------------------------------------

    async def endpoint(self, request: Request) -> Response:
        """`GET /metrics` on the main port: bearer token only."""
        if self.token is None:
            raise NotFound("Metrics are not served here (CC_METRICS_TOKEN is not set).")
        given = tokens.bearer(request.headers.get("authorization"))
        expected = self.token.get_secret_value()
        if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
            raise Unauthorized("GET /metrics needs the bearer token of CC_METRICS_TOKEN.")
        return Response(await self.exposition(), media_type=CONTENT_TYPE_LATEST)

    # -- the separate port -----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serving(self, host: str) -> AsyncIterator[int | None]:
        """Serves `GET /metrics` on CC_METRICS_PORT while the app runs; yields the bound port."""
        if self.port is None:
            yield None
            return
        # A request head longer than 8 KiB is dropped (LimitOverrunError in _answer).
        server = await asyncio.start_server(self._answer, host, self.port, limit=8192)
        try:
            yield int(server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """A deliberately tiny HTTP/1.0 responder: one GET per connection, head ≤ 8 KiB."""
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
            method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
            path = rest.split(" ", 1)[0].split("?", 1)[0]
            if method != "GET" or path != "/metrics":
                status, body, kind = "404 Not Found", b"not found\n", "text/plain; charset=utf-8"
            else:
                status, body, kind = "200 OK", await self.exposition(), CONTENT_TYPE_LATEST
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: {kind}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("latin-1")
                + body
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a client that sent no complete request head gets nothing
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


# -- requests -------------------------------------------------------------------------------------


def route_template(routes: Sequence[BaseRoute], scope: Scope) -> str:
    """The path template of the route that matches `scope` (a method mismatch counts: its
    405 belongs to the route), or `unmatched`."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return str(getattr(route, "path", UNMATCHED)) or "/"
        if match is Match.PARTIAL and partial is None:
            partial = route
    return str(getattr(partial, "path", UNMATCHED)) if partial is not None else UNMATCHED


class RequestObserver:
    """Pure ASGI middleware: latency histogram and one access-log line per HTTP request.
    Sits inside the correlation middleware, so the line carries the request's id."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes
        # Per method and path: the route template, and each series' labelled child. Bounded:
        # paths are the client's choice (ids in paths, or junk).
        self._templates: LRU[tuple[str, str], str] = LRU(2048)
        self._series: LRU[tuple[str, str, int], Any] = LRU(512)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts: an exception escaped every handler

        async def observe(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observe)
        finally:
            self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        method = str(scope.get("method", "GET"))
        where = (method, str(scope.get("path", "")))
        route = self._templates.get(where)
        if route is None:
            route = route_template(self.routes, scope)
            self._templates.put(where, route)
        series = self._series.get((route, method, status))
        if series is None:
            series = self.metrics.requests.labels(route, method, str(status))
            self._series.put((route, method, status), series)
        series.observe(seconds)
        if status == 401 and route in WEBHOOK_ROUTES:
            self.metrics.webhook_failures.labels(WEBHOOK_ROUTES[route]).inc()
        duration_ms = round(seconds * 1000, 1)
        level = logging.ERROR if status >= 500 else logging.INFO
        access_log.log(
            level,
            "%s %s %d %.1fms",
            method,
            route,
            status,
            duration_ms,
            extra={"method": method, "route": route, "status": status, "duration_ms": duration_ms},
        )


# -- upstream requests ----------------------------------------------------------------------------


def destinations(settings: Settings) -> dict[str, str]:
    """host[:port] -> destination name, from the configured upstream URLs."""
    found: dict[str, str] = {}

    def add(url: str | None, name: str) -> None:
        if url:
            netloc = urlsplit(url).netloc.lower()
            if netloc:
                found.setdefault(netloc, name)

    add(settings.api_url, "commercetools")
    add(settings.auth_url, "commercetools")
    if settings.zendesk_subdomain:
        add(settings.zendesk_api_base, "zendesk")
        add(settings.zendesk_key_url, "zendesk")
        add(f"https://{settings.zendesk_subdomain}.zendesk.com", "zendesk")
    add(settings.tidio_api_base, "tidio")
    return found


class MeteredTransport(httpx.AsyncBaseTransport):
    """Wraps the shared client's transport: counts each request by destination and outcome."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, metrics: Metrics, names: dict[str, str]
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.names = names

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        destination = self.names.get(request.url.netloc.decode("ascii").lower(), "other")
        started = time.perf_counter()
        outcome = "error"
        try:
            response = await self.inner.handle_async_request(request)
            outcome = _outcome(response.status_code)
            return response
        finally:
            self.metrics.upstream.labels(destination, outcome).inc()
            self.metrics.upstream_latency.labels(destination).observe(time.perf_counter() - started)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _outcome(status: int) -> str:
    if status == 429:
        return "throttled"
    if status >= 500:
        return "server_error"
    if status >= 400:
        return "client_error"
    return "ok"
