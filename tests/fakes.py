"""What the tests of the SaaS clients and syncs (Zendesk, Tidio) share: settings pointed at no
commercetools, the environment of a command, a recorder of sent requests, the services a sync's
jobs run with, and a bounded run of a worker until the queue is idle."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import pytest

from commerce_context.audit import Audit
from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.database import Database
from commerce_context.emulator.harness import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, Harness
from commerce_context.jobs import Job, Ledger, Queue
from commerce_context.policy import Policy
from commerce_context.settings import Settings, load_settings
from commerce_context.stores import MemoryStore
from commerce_context.worker import Handler, JobContext, Services, Worker


def offline_settings(**values: Any) -> Settings:
    """Settings whose commercetools is nowhere (a client test that must not reach it)."""
    nowhere = "http://127.0.0.1:9"
    return load_settings(
        **{
            "ct_project_key": "p",
            "ct_client_id": "c",
            "ct_client_secret": "s",
            "ct_api_url": nowhere,
            "ct_auth_url": nowhere,
            **values,
        }
    )


def zendesk_environment(
    monkeypatch: pytest.MonkeyPatch,
    harness: Harness,
    *,
    config: str,
    database_url: str,
    zendesk_url: str,
    email: str,
    token: str,
) -> None:
    """The CC_* environment of a command run against the emulator and a fake Zendesk."""
    environment = {
        "CC_CT_PROJECT_KEY": harness.project_key,
        "CC_CT_CLIENT_ID": DEMO_CLIENT_ID,
        "CC_CT_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "CC_CT_API_URL": harness.api_url,
        "CC_CT_AUTH_URL": harness.api_url,
        "CC_CONFIG_FILE": config,
        "CC_DATABASE_URL": database_url,
        "CC_ZENDESK_API_URL": zendesk_url,
        "CC_ZENDESK_API_EMAIL": email,
        "CC_ZENDESK_API_TOKEN": token,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


class Sent:
    """Records the requests the shared httpx client sends (an event hook, not a patch)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)


def sync_services(
    settings: Settings, db: Database, http: httpx.AsyncClient, queue: Queue
) -> Services:
    """The long-lived clients a sync's jobs use: real commercetools client, in-memory cache."""
    commercetools = CommercetoolsClient(settings, http)
    reader = Reader(
        commercetools, Policy(), MemoryStore(settings.cache_max_bytes), freshness=Freshness()
    )
    return Services(settings, commercetools, reader, Audit(db), http, Ledger(db), queue)


async def run_until_idle(
    queue: Queue,
    handlers: Mapping[str, Handler],
    context: Callable[[Job], JobContext],
    *,
    rounds: int = 1000,
) -> None:
    """Run a worker until no job is running or queued and due within 10 s (a job delayed by a
    minute does not count); a bounded wait of `rounds` polls 20 ms apart."""
    worker = Worker(
        queue, handlers, context, poll_interval=0.02, concurrency=1,
        backoff_base=0.01, backoff_max=0.05, jitter=lambda: 0.0,
    )  # fmt: skip
    task = asyncio.create_task(worker.run())
    try:
        for _ in range(rounds):
            await asyncio.sleep(0.02)
            if not await _pending(queue):
                break
        else:
            raise AssertionError(f"jobs still pending: {await queue.counts()}")
    finally:
        await worker.stop()
        await task


async def _pending(queue: Queue) -> bool:
    soon = time.time() + 10
    return any(
        job.state == "running" or (job.state == "queued" and job.run_at <= soon)
        for job in await queue.list(limit=1000)
    )
