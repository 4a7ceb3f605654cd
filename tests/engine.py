"""Fixtures and helpers for the sync engine's tests: every behaviour runs on SQLite (a file in
tmp_path) and on the real PostgreSQL at 127.0.0.1:5432 (database `test`, a unique schema per
test, dropped afterwards). `Location.open()` opens another instance on the same data: a second
connection (SQLite) or a second pool (PostgreSQL), as a second process would."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import pytest_asyncio

from commerce_context.audit import Audit
from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.database import Database
from commerce_context.jobs import Job, Ledger, Queue, Rate
from commerce_context.policy import Policy
from commerce_context.settings import Settings, load_settings
from commerce_context.stores import MemoryStore
from commerce_context.worker import Services

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


class Clock:
    """A hand-driven clock (epoch seconds)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Location:
    """Where one test's engine data lives; `open()` gives another instance on it."""

    backend: str
    url: str
    schema: str | None
    opened: list[Database] = field(default_factory=list)

    async def open(self) -> Database:
        db = Database.from_url(self.url, schema=self.schema, pool_size=4)
        await db.open()
        self.opened.append(db)
        return db

    def env(self) -> dict[str, str]:
        """Environment variables pointing a child process at the same data."""
        values = {"CC_DATABASE_URL": self.url}
        if self.schema:
            values["CC_DATABASE_SCHEMA"] = self.schema
        return values


def drop_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.asynccontextmanager
async def made(backend: str, tmp_path: Path) -> AsyncIterator[Location]:
    if backend == "sqlite":
        where = Location("sqlite", f"sqlite:///{tmp_path / 'engine.sqlite3'}", None)
    else:
        where = Location("postgresql", PG_URL, f"cc_test_{uuid.uuid4().hex[:16]}")
    try:
        yield where
    finally:
        for db in where.opened:
            await db.close()
        if where.schema:
            drop_schema(where.schema)


@pytest_asyncio.fixture(params=["sqlite", "postgresql"], loop_scope="session")
async def location(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Location]:
    async with made(request.param, tmp_path) as where:
        yield where


@pytest_asyncio.fixture(loop_scope="session")
async def sqlite_location(tmp_path: Path) -> AsyncIterator[Location]:
    async with made("sqlite", tmp_path) as where:
        yield where


@pytest_asyncio.fixture(loop_scope="session")
async def pg_location(tmp_path: Path) -> AsyncIterator[Location]:
    async with made("postgresql", tmp_path) as where:
        yield where


@pytest_asyncio.fixture(loop_scope="session")
async def database(location: Location) -> Database:
    return await location.open()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ct_project_key": "engine-test",
        "ct_client_id": "client",
        "ct_client_secret": "secret",
        "ct_api_url": "http://127.0.0.1:9",
        "ct_auth_url": "http://127.0.0.1:9",
    }
    return load_settings(**{**values, **overrides})


def services(queue: Queue, http: httpx.AsyncClient, **overrides: Any) -> Services:
    """Real long-lived clients (pointed nowhere: the engine's handlers do not call them)."""
    config = settings(**overrides)
    commercetools = CommercetoolsClient(config, http)
    reader = Reader(
        commercetools,
        Policy.from_mappings(config.mappings),
        MemoryStore(config.cache_max_bytes),
        freshness=Freshness(),
    )
    return Services(
        config,
        commercetools,
        reader,
        Audit(queue.db, clock=queue.clock),
        http,
        Ledger(queue.db, clock=queue.clock),
        queue,
    )


def queue_on(db: Database, clock: Clock, **limits: Rate) -> Queue:
    return Queue(db, limits=dict(limits), clock=clock, max_attempts=3)


async def eventually(
    check: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Polls `check` until it holds (a bounded wait, not a timing assertion)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s")
        await asyncio.sleep(0.01)


async def state_of(queue: Queue, job: Job) -> str:
    found = await queue.get(job.id)
    assert found is not None
    return found.state


async def reaches(queue: Queue, job: Job, state: str, *, within: float = 10.0) -> None:
    """Waits until the job is in `state` (a bounded wait, e.g. for an in-process worker)."""

    async def there() -> bool:
        return await state_of(queue, job) == state

    await eventually(there, within=within, what=f"job {job.kind} {state}")
