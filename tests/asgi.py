"""Drive an app in-process, lifespan included, through httpx (no TestClient thread)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp


@asynccontextmanager
async def app_client(
    app: ASGIApp, base_url: str = "http://testserver", *, raise_errors: bool = False
) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=raise_errors)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client
