"""Upgrading: the current code opens a database left by the previous release (schema version 1,
the sync engine's first tables, with queued jobs, ledger entries and audit rows in it) on SQLite
and on PostgreSQL, applies the later migrations once, keeps every row, and works on it."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

import psycopg

from commerce_context.audit import Audit
from commerce_context.database import MIGRATIONS
from commerce_context.jobs import Ledger, Queue
from tests.engine import PG_URL, Location, location

__all__ = ["location"]  # the fixture: one run on SQLite, one on PostgreSQL

# The previous release's column types, as that release wrote them.
TYPES = {
    "sqlite": {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "real": "DOUBLE PRECISION",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}
PREVIOUS_VERSION = 1


def previous_release_statements(dialect: str) -> list[str]:
    statements = [
        "CREATE TABLE schema_migrations "
        f"(version INTEGER PRIMARY KEY, applied_at {TYPES[dialect]['real']} NOT NULL)"
    ]
    for version, script in MIGRATIONS:
        if version <= PREVIOUS_VERSION:
            sql = script.format(**TYPES[dialect])
            statements += [s for s in sql.split(";") if s.strip()]
    return statements


def rows(now: float, job_id: str) -> list[tuple[str, tuple[object, ...]]]:
    """What a running previous release had written: a queued job, a ledger entry, audit rows."""
    job = (
        "INSERT INTO jobs (id, kind, destination, payload, key, coalesce_key, state, attempts, "
        "run_at, correlation_id, source, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, NULL, 'queued', 0, ?, ?, ?, ?, ?)",
        (
            job_id,
            "writeback",
            "commercetools",
            json.dumps({"ticket_id": "7", "order_id": "o-1"}),
            f"key-{job_id}",
            now,
            "cc-upgrade-test",
            "zendesk",
            now,
            now,
        ),
    )
    key = (
        "INSERT INTO job_keys (key, job_id, created_at) VALUES (?, ?, ?)",
        (f"key-{job_id}", job_id, now),
    )
    ledger = (
        "INSERT INTO ledger (key, result, at) VALUES (?, ?, ?)",
        ("effect-1", '{"ok": true}', now),
    )
    audit = (
        "INSERT INTO audit (at, correlation_id, source, target, action, outcome, ticket_id, "
        "order_id, job_id, detail) VALUES (?, ?, 'zendesk', 'commercetools', 'writeback', "
        "'queued', '7', 'o-1', ?, '{}')",
        (now, "cc-upgrade-test", job_id),
    )
    version = (
        "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
        (PREVIOUS_VERSION, now),
    )
    return [job, key, ledger, audit, version]


def create_previous_release(where: Location, job_id: str) -> None:
    now = time.time()
    if where.backend == "sqlite":
        connection = sqlite3.connect(where.url.removeprefix("sqlite:///"))
        with connection:
            for statement in previous_release_statements("sqlite"):
                connection.execute(statement)
            for sql, params in rows(now, job_id):
                connection.execute(sql, params)
        connection.close()
        return
    assert where.schema is not None
    with psycopg.connect(PG_URL, autocommit=False) as connection:
        connection.execute(f'CREATE SCHEMA "{where.schema}"')
        connection.execute(f'SET search_path TO "{where.schema}"')
        for statement in previous_release_statements("postgresql"):
            connection.execute(statement)  # type: ignore[arg-type]
        for sql, params in rows(now, job_id):
            connection.execute(sql.replace("?", "%s"), params)  # type: ignore[arg-type]
        connection.commit()


async def test_the_previous_releases_database_is_migrated_and_kept(location: Location) -> None:
    job_id = f"job-{uuid.uuid4().hex[:12]}"
    create_previous_release(location, job_id)

    db = await location.open()  # migrates
    applied = await db.fetchall("SELECT version FROM schema_migrations ORDER BY version")
    assert [r["version"] for r in applied] == [version for version, _ in MIGRATIONS]
    # The tables of the later migrations exist, empty.
    for table in ("revoked_links", "tidio_contacts"):
        assert (await db.fetchone(f"SELECT COUNT(*) AS n FROM {table}"))["n"] == 0
    # Every row of the previous release is still there and usable by the current code.
    queue = Queue(db)
    job = await queue.get(job_id)
    assert job is not None and job.state == "queued" and job.kind == "writeback"
    assert job.payload == {"ticket_id": "7", "order_id": "o-1"}
    again = await queue.enqueue(
        "writeback", {"x": 1}, key=f"key-{job_id}", destination="commercetools"
    )
    assert again.id == job_id  # its idempotency key still holds
    claimed = await queue.claim(5, worker="upgrade-test", lease=30)
    assert [j.id for j in claimed] == [job_id]
    assert await queue.complete(claimed[0], {"done": True})
    assert await Ledger(db).done("effect-1") == {"ok": True}
    trail = await Audit(db).query(correlation_id="cc-upgrade-test")
    assert [(e.action, e.job_id) for e in trail] == [("writeback", job_id)]

    # A second instance starting on the upgraded database applies nothing again.
    other = await location.open()
    applied_again = await other.fetchall("SELECT version, applied_at FROM schema_migrations")
    assert len(applied_again) == len(MIGRATIONS)
    first = {r["version"]: r["applied_at"] for r in applied_again}
    assert first == {
        r["version"]: r["applied_at"]
        for r in await db.fetchall("SELECT version, applied_at FROM schema_migrations")
    }
