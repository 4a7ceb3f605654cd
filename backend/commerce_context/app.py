"""create_app(settings): the whole service wired on one screen."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TypedDict

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from . import (
    actions,
    errors,
    events,
    health,
    panels,
    sidebar,
    tidio,
    tidio_sync,
    webhooks,
)
from . import demo as demo_pages
from .admin import routes as admin_routes
from .audit import Audit
from .breaker import CircuitBreaker
from .cache import Freshness, Reader
from .commercetools import CommercetoolsClient
from .correlation import CorrelationMiddleware
from .database import Database
from .demo import Demo
from .handlers import HANDLERS
from .headers import SecurityHeaders
from .jobs import Queue
from .limits import BodyLimit
from .metrics import MeteredTransport, Metrics, RequestObserver, destinations
from .panels import Rendered
from .policy import Policy
from .poller import MessagesPoller
from .quota import Quota
from .settings import Settings
from .state import StateFile
from .stores import MemoryStore, RedisStore, Store
from .tokens import VerifiedSessions, ZendeskKeys
from .worker import Services, Worker, open_engine
from .zendesk import ZendeskClient

__all__ = ["State", "create_app"]

PACKAGE_DIR = Path(__file__).parent


class State(TypedDict):
    settings: Settings
    commercetools: CommercetoolsClient
    reader: Reader
    store: Store  # the cache's store: also single-use tokens and lookup counts
    quota: Quota
    rendered: Rendered
    sessions: VerifiedSessions
    zendesk_keys: ZendeskKeys
    policy: Policy
    templates: Jinja2Templates
    demo: Demo | None
    database: Database
    queue: Queue
    audit: Audit
    zendesk: ZendeskClient | None  # the outbound sync's API client, when configured
    tidio: tidio.Tidio  # signed links, visitor identity, Tidio contact ids


def create_app(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    demo: Demo | None = None,
) -> Starlette:
    """`http` is injected by tests; in production the lifespan creates the one shared client."""
    templates = Jinja2Templates(env=_environment())
    actions.install_globals(templates.env, settings)
    policy = Policy.from_mappings(settings.mappings)  # ConfigError on an unknown field path
    metrics = Metrics(settings)  # its own registry: several apps may live in one process

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            client = (
                http
                if http is not None
                else await stack.enter_async_context(
                    httpx.AsyncClient(
                        timeout=settings.ct_timeout,
                        headers={"User-Agent": "commerce-context/0.1"},
                        # Counts upstream requests per destination (metrics.py).
                        transport=MeteredTransport(
                            httpx.AsyncHTTPTransport(
                                limits=httpx.Limits(
                                    max_connections=100, max_keepalive_connections=20
                                )
                            ),
                            metrics,
                            destinations(settings),
                        ),
                    )
                )
            )
            commercetools = CommercetoolsClient(settings, client)
            store = _store(settings)
            stack.push_async_callback(store.close)
            breaker = CircuitBreaker(settings.breaker_threshold, settings.breaker_cooldown)
            reader = Reader(
                commercetools,
                policy,
                store,
                freshness=Freshness.from_settings(settings),
                breaker=breaker,
                namespace=settings.ct_project_key,
            )
            stack.push_async_callback(reader.close)
            # The job engine: its database (migrated here), queue and audit log; the workers run
            # in this process unless CC_WORKER_IN_PROCESS=false (then `commerce-context worker`).
            engine = await stack.enter_async_context(open_engine(settings))
            # Sidebar lookups are noted on the hot path and written in batches (audit.py).
            flusher = asyncio.create_task(engine.audit.flusher(), name="audit-flusher")
            stack.push_async_callback(_cancel, flusher)
            zendesk_keys = ZendeskKeys(settings, client)
            metrics.attach(
                reader=reader,
                breaker=breaker,
                commercetools=commercetools,
                zendesk_keys=zendesk_keys,
                queue=engine.queue,
            )
            await stack.enter_async_context(metrics.serving(settings.host))  # CC_METRICS_PORT
            if settings.messages_poll_interval > 0:
                poller = MessagesPoller(
                    commercetools,
                    reader,
                    StateFile(settings.state_path),
                    interval=settings.messages_poll_interval,
                    overlap=settings.messages_overlap,
                    queue=engine.queue,  # the outbound sync's jobs (zendesk_sync)
                    settings=settings,
                )
                task = asyncio.create_task(poller.run(), name="messages-poller")
                stack.push_async_callback(_cancel, task)
            if settings.worker_in_process:
                services = Services.of(settings, commercetools, reader, client, engine)
                worker = Worker.from_settings(settings, engine, HANDLERS, services)
                worker_task = asyncio.create_task(worker.run(), name="worker")
                stack.push_async_callback(_stop_worker, worker, worker_task)
            _freeze_startup_heap()
            yield {
                "settings": settings,
                "commercetools": commercetools,
                "reader": reader,
                "store": store,
                "quota": Quota(
                    store,
                    per_session=settings.lookups_per_session,
                    per_agent=settings.lookups_per_agent,
                ),
                "rendered": Rendered(),
                "sessions": VerifiedSessions(),
                "zendesk_keys": zendesk_keys,
                "policy": policy,
                "templates": templates,
                "demo": demo,
                "database": engine.database,
                "queue": engine.queue,
                "audit": engine.audit,
                "zendesk": _zendesk(settings, client),
                "tidio": tidio.Tidio.create(settings, client, engine.database),
            }

    routes = [
        # The router tries routes in order: the hottest one (every ticket view) first.
        Route("/zendesk/panels", sidebar.panels, methods=["POST"], name="panels"),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Route("/healthz/upstream", health.upstream),
        Route("/zendesk/sidebar", sidebar.sidebar_get, methods=["GET"]),
        Route("/zendesk/sidebar", sidebar.sidebar_post, methods=["POST"], name="sidebar"),
        Route("/zendesk/webhooks", webhooks.receive, methods=["POST"], name="webhooks"),
        Route("/zendesk/actions", actions.submit, methods=["POST"], name="actions"),
        Route("/zendesk/actions/{job_id}", actions.status, methods=["GET"]),
        Route("/zendesk/activity", actions.activity, methods=["GET"], name="activity"),
        Route("/commercetools/events", events.receive, methods=["POST"]),
        Route("/tidio/identify", tidio.identify, methods=["POST", "OPTIONS"]),
        Route("/tidio/panel", tidio.panel, methods=["GET"], name="tidio_panel"),
        Route("/links/order", tidio.panel, methods=["GET"], name="order_link"),
        Route("/links/order", tidio.create_order_link, methods=["POST"], name="order_links"),
        Route("/tidio/webhooks", tidio.receive_webhook, methods=["POST"]),
        Route("/tidio/lyro/order-status", tidio.lyro_order_status, methods=["POST"]),
        Route("/tidio/cart", tidio_sync.cart_notification, methods=["POST", "OPTIONS"]),
        *admin_routes(),
        Route("/demo/zendesk/webhook", webhooks.demo_sign, methods=["POST"]),
        Route("/demo/zendesk/jobs", webhooks.demo_jobs),
        Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
    ]
    if settings.metrics_token is not None:
        routes.append(Route("/metrics", metrics.endpoint, methods=["GET"]))
    if demo is not None:
        # Demo only, and built on the emulator/ stand-ins: never imported by a production app.
        from . import demo_sync, storefront

        # The demo's own pages exist only in demo mode (`make run`, `commerce-context demo`).
        routes += [
            Route("/", demo_pages.index),
            Route("/demo/zendesk", demo_pages.zendesk_ticket),
            Route("/demo/zendesk/token", demo_pages.zendesk_token),
            *storefront.routes(),
            *demo_sync.routes(),
        ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors),
            Middleware(CorrelationMiddleware),
            Middleware(RequestObserver, metrics=metrics, routes=routes),  # inside: has the id
            Middleware(
                BodyLimit,
                max_bytes=settings.max_body_bytes,
                timeout=settings.body_timeout,
                paths={
                    "/zendesk/sidebar": sidebar.MAX_FORM_BYTES,
                    "/zendesk/panels": sidebar.MAX_JSON_BYTES,
                    "/commercetools/events": events.MAX_BODY_BYTES,
                    "/tidio/webhooks": tidio.MAX_WEBHOOK_BYTES,
                    "/tidio/identify": tidio.MAX_JSON_BYTES,
                    "/tidio/lyro/order-status": tidio.MAX_JSON_BYTES,
                    "/tidio/cart": tidio_sync.MAX_MESSAGE_BYTES,
                    "/links/order": tidio.MAX_JSON_BYTES,
                },
            ),
        ],
        exception_handlers=errors.handlers(templates, settings.frame_ancestors),
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    return app


_frozen = False


def _freeze_startup_heap() -> None:
    """Once per process: move what import and start-up made (about 100,000 objects that live
    as long as the process) out of the collector's sight. A full collection then walks only
    what requests made since, rather than pausing the server for tens of milliseconds."""
    global _frozen
    if not _frozen:
        gc.collect()  # what is garbage now is not frozen with the rest
        gc.freeze()
        _frozen = True


async def _stop_worker(worker: Worker, task: asyncio.Task[None]) -> None:
    await worker.stop()  # graceful: running jobs finish or go back to the queue
    await task


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _zendesk(settings: Settings, http: httpx.AsyncClient) -> ZendeskClient | None:
    return ZendeskClient(settings, http) if settings.zendesk_api_enabled else None


def _store(settings: Settings) -> Store:
    if settings.cache_backend == "redis":
        return RedisStore.from_url(settings.redis_url)
    return MemoryStore(settings.cache_max_bytes)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("commerce_context", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    panels.install_filters(env)
    return env
