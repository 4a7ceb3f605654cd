"""The operator's commands of the sync engine (wired into `commerce-context` by cli.py):

    commerce-context worker                       run workers (no web server) until SIGTERM
    commerce-context jobs list [--state dead] [--kind K] [--limit N]
    commerce-context jobs show JOB_ID             one job, with its payload and audit trail
    commerce-context jobs retry JOB_ID            a dead (or cancelled) job back to the queue
    commerce-context jobs cancel JOB_ID           a queued or dead job will not run
    commerce-context audit --ticket N | --order NUMBER_OR_ID | --customer ID
                           | --correlation-id ID  [--limit N] [--json]

They use the database that the settings name (CC_DATABASE_URL, else the SQLite file at
CC_STATE_PATH), exactly as the service does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from . import logs
from .audit import AuditEntry
from .cache import Freshness, Reader
from .commercetools import CommercetoolsClient
from .exceptions import NotFound
from .jobs import STATES, Job
from .policy import Policy
from .settings import Settings, load_settings
from .stores import MemoryStore, RedisStore, Store
from .worker import Handler, Services, Worker, open_engine

__all__ = ["COMMANDS", "add_commands", "run"]

COMMANDS = ("worker", "jobs", "audit")


def add_commands(commands: Any) -> None:
    """Adds the subcommands to cli.py's argparse subparsers."""
    commands.add_parser("worker", help="run job workers (no web server)")
    jobs = commands.add_parser("jobs", help="list, show, retry or cancel queued jobs")
    actions = jobs.add_subparsers(dest="jobs_command", required=True)
    listing = actions.add_parser("list", help="jobs, newest change first")
    listing.add_argument("--state", choices=STATES, help="only jobs in this state")
    listing.add_argument("--kind", help="only jobs of this kind")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    for name, help_text in (
        ("show", "one job with its payload and audit trail"),
        ("retry", "put a dead or cancelled job back in the queue"),
        ("cancel", "make a queued or dead job never run"),
    ):
        actions.add_parser(name, help=help_text).add_argument("job_id")
    audit = commands.add_parser("audit", help="the audit trail of a ticket, order or customer")
    which = audit.add_mutually_exclusive_group(required=True)
    which.add_argument("--ticket", help="Zendesk ticket id")
    which.add_argument("--order", help="order number or order id")
    which.add_argument("--customer", help="commercetools customer id")
    which.add_argument("--correlation-id", help="a request's correlation id")
    audit.add_argument("--limit", type=int, default=200, help="at most this many rows")
    audit.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.command == "worker":
        logs.configure(settings.log_level, settings.log_format)  # JSON lines by default
        return asyncio.run(run_worker(settings))
    if args.command == "jobs":
        return asyncio.run(_jobs(settings, args))
    return asyncio.run(_audit(settings, args))


# -- worker -------------------------------------------------------------------------------------


async def run_worker(settings: Settings, handlers: Mapping[str, Handler] | None = None) -> int:
    """Workers with the same handlers and clients as `serve`, until SIGTERM/SIGINT (graceful:
    running jobs finish within the grace period or go back to the queue)."""
    from .handlers import HANDLERS

    registry = HANDLERS if handlers is None else handlers

    async with (
        open_engine(settings) as engine,
        httpx.AsyncClient(
            timeout=settings.ct_timeout, headers={"User-Agent": "commerce-context/0.1"}
        ) as http,
    ):
        commercetools = CommercetoolsClient(settings, http)
        store = _store(settings)
        reader = Reader(
            commercetools,
            Policy.from_mappings(settings.mappings),
            store,
            freshness=Freshness.from_settings(settings),
            namespace=settings.ct_project_key,
        )
        services = Services.of(settings, commercetools, reader, http, engine)
        worker = Worker.from_settings(settings, engine, registry, services)
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(worker.run())
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, lambda: asyncio.ensure_future(worker.stop()))
        print(f"worker {worker.name} running ({settings.worker_concurrency} at once)", flush=True)
        try:
            await task
        finally:
            await reader.close()
            await store.close()
    return 0


def _store(settings: Settings) -> Store:
    if settings.cache_backend == "redis":
        return RedisStore.from_url(settings.redis_url)
    return MemoryStore(settings.cache_max_bytes)


# -- jobs ---------------------------------------------------------------------------------------


async def _jobs(settings: Settings, args: argparse.Namespace) -> int:
    async with open_engine(settings) as engine:
        queue = engine.queue
        if args.jobs_command == "list":
            jobs = await queue.list(state=args.state, kind=args.kind, limit=args.limit)
            if not jobs:
                print("no jobs")
            for job in jobs:
                print(_line(job))
            return 0
        if args.jobs_command == "show":
            found = await queue.get(args.job_id)
            if found is None:
                raise NotFound(f"no job {args.job_id}")
            print(json.dumps(_shown(found), indent=2, sort_keys=True))
            for entry in await engine.audit.query(job_id=found.id):
                print(_audit_line(entry))
            return 0
        operate = queue.retry if args.jobs_command == "retry" else queue.cancel
        job = await operate(args.job_id)
        print(_line(job))
        return 0


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _line(job: Job) -> str:
    error = f"  {job.last_error}" if job.last_error else ""
    return (
        f"{job.id}  {job.state:<9} {job.kind:<24} {job.destination:<16} "
        f"attempts={job.attempts}  updated {_when(job.updated_at)}{error}"
    )


def _shown(job: Job) -> dict[str, Any]:
    shown = job.summary()
    shown["payload"] = job.payload  # the operator's own host: the job as it will run
    shown["key"] = job.key
    shown["result"] = job.result
    for name in ("run_at", "lease_until", "created_at", "updated_at"):
        shown[name] = _when(shown[name])
    return shown


# -- audit --------------------------------------------------------------------------------------


async def _audit(settings: Settings, args: argparse.Namespace) -> int:
    async with open_engine(settings) as engine:
        entries = await engine.audit.query(
            ticket=args.ticket,
            order=args.order,
            customer=args.customer,
            correlation_id=args.correlation_id,
            limit=args.limit,
        )
    if not entries and not args.json:
        print("no audit entries")
    for entry in entries:
        print(json.dumps(entry.to_dict(), sort_keys=True) if args.json else _audit_line(entry))
    return 0


def _audit_line(entry: AuditEntry) -> str:
    refs = " ".join(
        f"{name}={value}"
        for name, value in (
            ("ticket", entry.ticket_id),
            ("order", entry.order_number or entry.order_id),
            ("customer", entry.customer_id),
            ("agent", entry.agent_id),
            ("job", entry.job_id),
        )
        if value
    )
    detail = json.dumps(entry.detail, sort_keys=True) if entry.detail else ""
    return (
        f"{entry.when}  {entry.action:<24} {entry.outcome:<10} {entry.source} -> {entry.target}"
        f"  {refs}  {detail}  [{entry.correlation_id or '-'}]"
    ).rstrip()
