"""create_app(settings): the whole service wired on one screen."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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

from . import demo, errors, health
from .commercetools import CommercetoolsClient
from .correlation import CorrelationMiddleware
from .settings import Settings

__all__ = ["State", "create_app"]

PACKAGE_DIR = Path(__file__).parent


class State(TypedDict):
    settings: Settings
    commercetools: CommercetoolsClient
    templates: Jinja2Templates
    demo_emails: Sequence[str]


def create_app(
    settings: Settings,
    *,
    http: httpx.AsyncClient | None = None,
    demo_emails: Sequence[str] = (),
) -> Starlette:
    """`http` is injected by tests; in production the lifespan creates the one shared client."""
    templates = Jinja2Templates(env=_environment())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            client = (
                http
                if http is not None
                else await stack.enter_async_context(
                    httpx.AsyncClient(
                        timeout=settings.ct_timeout,
                        limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
                        headers={"User-Agent": "commerce-context/0.1"},
                    )
                )
            )
            yield {
                "settings": settings,
                "commercetools": CommercetoolsClient(settings, client),
                "templates": templates,
                "demo_emails": demo_emails,
            }

    routes = [
        Route("/", demo.index),
        Route("/healthz", health.healthz),
        Route("/readyz", health.readyz),
        Mount("/static", StaticFiles(directory=PACKAGE_DIR / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(CorrelationMiddleware)],
        exception_handlers=errors.handlers(templates),
        lifespan=lifespan,
    )


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("commerce_context", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env
