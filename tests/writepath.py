"""The write path assembled for tests: the real engine (SQLite file, or PostgreSQL), a real
worker running the production handler registry, and a commercetools client talking HTTP to
the emulator (directly, or through a fault-injecting proxy)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.handlers import HANDLERS
from commerce_context.jobs import Job
from commerce_context.policy import Policy
from commerce_context.settings import Settings
from commerce_context.stores import MemoryStore
from commerce_context.worker import Engine, Services, Worker, open_engine
from tests.openapi import assert_valid
from tests.orders import Api

FINAL = ("done", "dead", "cancelled")


@dataclass
class WritePath:
    settings: Settings
    engine: Engine
    services: Services
    api: Api
    recorder: list[httpx.Request]

    @property
    def queue(self) -> Any:
        return self.engine.queue

    async def job(self, job_id: str) -> Job:
        found: Job | None = await self.queue.get(job_id)
        assert found is not None
        return found

    async def settled(self, job: Job, *, within: float = 30.0) -> Job:
        """The job once it is done, dead or cancelled (a bounded wait)."""
        deadline = asyncio.get_running_loop().time() + within
        while True:
            current = await self.queue.get(job.id)
            assert current is not None
            if current.state in FINAL:
                return current  # type: ignore[no-any-return]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"job {job.kind} still {current.state}: {current.last_error}")
            await asyncio.sleep(0.02)

    def writes(self) -> list[httpx.Request]:
        """The update requests sent to commercetools (POST to a resource, not GraphQL)."""
        return [
            r
            for r in self.recorder
            if r.method == "POST" and "/graphql" not in r.url.path and "/oauth" not in r.url.path
        ]

    def updates(self) -> list[dict[str, Any]]:
        """Every update sent, validated against the OpenAPI schema; returns their bodies."""
        bodies = []
        for request in self.writes():
            body = json.loads(request.content)
            component = "PaymentUpdate" if "/payments/" in request.url.path else "OrderUpdate"
            assert_valid(component, body)
            bodies.append(body)
        return bodies


def write_settings(harness: Harness, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ct_backoff_base": 0.01,
        "ct_backoff_max": 0.2,
        "ct_timeout": 2.0,
        "database_url": f"sqlite:///{tmp_path / 'jobs.sqlite3'}",
        "jobs_backoff_base": 0.05,
        "jobs_backoff_max": 0.5,
        "jobs_poll_interval": 0.05,
        "rate_limits": {"commercetools": "1000/s"},
    }
    values.update(overrides)
    return demo_settings(harness, **values)


@contextlib.asynccontextmanager
async def write_path(
    harness: Harness,
    settings: Settings,
    *,
    api_url: str | None = None,
    worker: bool = True,
) -> AsyncIterator[WritePath]:
    """`api_url`: where the client sends commercetools calls (a proxy); the test's own REST
    calls (`api`) always go straight to the emulator."""
    recorder: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        recorder.append(request)

    if api_url is not None:
        settings = settings.model_copy(update={"ct_api_url": api_url, "ct_auth_url": api_url})
    async with (
        open_engine(settings) as engine,
        httpx.AsyncClient(event_hooks={"request": [record]}) as http,
        httpx.AsyncClient(timeout=10) as plain,
    ):
        commercetools = CommercetoolsClient(settings, http)
        reader = Reader(
            commercetools,
            Policy.from_mappings(settings.mappings),
            MemoryStore(settings.cache_max_bytes),
            freshness=Freshness(),
            namespace=settings.ct_project_key,
        )
        services = Services(
            settings, commercetools, reader, engine.audit, http, engine.ledger, engine.queue
        )
        path = WritePath(settings, engine, services, Api(plain, harness), recorder)
        if not worker:
            yield path
            return
        runner = Worker.from_settings(settings, engine, HANDLERS, services)
        task = asyncio.create_task(runner.run())
        try:
            yield path
        finally:
            await runner.stop()
            await task
