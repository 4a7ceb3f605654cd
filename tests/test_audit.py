"""The audit log (audit.py) on SQLite and PostgreSQL: rows, queries, masking, retention; and
the operator's commands `commerce-context audit` and `commerce-context jobs`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from commerce_context.audit import Audit, scrub
from commerce_context.cli import main
from commerce_context.database import Database
from commerce_context.exceptions import BadRequest, CommerceContextError
from tests.engine import Clock, Location, clock, database, location, queue_on

__all__ = ["clock", "database", "location"]


async def _trail(audit: Audit, clock: Clock) -> None:
    await audit.record(
        action="sidebar:lookup",
        source="sidebar",
        target="commercetools:customer",
        outcome="found",
        correlation_id="cc-lookup-0001",
        ticket_id=101,
        customer_id="cust-1",
        order_id="ord-1",
        order_number="DE-1001",
        agent_id=7,
        detail={"path": "email", "orders_shown": ["ord-1", "ord-2"], "email": "anna@example.com"},
    )
    clock.advance(1)
    await audit.record(
        action="writeback:supportStatus",
        source="zendesk:webhook",
        target="commercetools:order",
        outcome="applied",
        correlation_id="cc-hook-0002",
        ticket_id="101",
        order_id="ord-1",
        detail={"value": "waiting", "internal_note": "Customer Anna Schmidt called"},
    )
    clock.advance(1)
    await audit.record(
        action="action:cancel",
        source="sidebar",
        target="commercetools:order",
        outcome="refused",
        ticket_id=202,
        order_number="DE-2002",
        customer_id="cust-2",
    )


async def test_queries_by_ticket_order_customer_and_correlation(
    database: Database, clock: Clock
) -> None:
    audit = Audit(database, clock=clock)
    await _trail(audit, clock)
    by_ticket = await audit.query(ticket=101)
    assert [e.action for e in by_ticket] == ["sidebar:lookup", "writeback:supportStatus"]
    assert by_ticket[0].agent_id == "7"
    assert by_ticket[1].at - by_ticket[0].at == pytest.approx(1, abs=1e-3)
    # An order is found by its id or its number.
    assert [e.action for e in await audit.query(order="ord-1")] == [
        "sidebar:lookup",
        "writeback:supportStatus",
    ]
    assert [e.action for e in await audit.query(order="DE-2002")] == ["action:cancel"]
    assert [e.ticket_id for e in await audit.query(customer="cust-2")] == ["202"]
    [hook] = await audit.query(correlation_id="cc-hook-0002")
    assert (hook.source, hook.outcome) == ("zendesk:webhook", "applied")
    assert [e.action for e in await audit.query(ticket=101, order="ord-1", limit=1)] == [
        "writeback:supportStatus"
    ]
    assert await audit.query(ticket=999) == []
    with pytest.raises(BadRequest):
        await audit.query()


async def test_personal_data_is_masked_before_it_is_stored(
    database: Database, clock: Clock
) -> None:
    audit = Audit(database, clock=clock)
    await _trail(audit, clock)
    lookup, writeback = await audit.query(ticket=101)
    assert lookup.detail == {
        "path": "email",
        "orders_shown": ["ord-1", "ord-2"],
        "email": "a***@e***.com",
    }
    assert writeback.detail["internal_note"] == "C•••"
    assert writeback.detail["value"] == "waiting"
    stored = json.dumps([e.to_dict() for e in await audit.recent()])
    assert "anna@example.com" not in stored and "Schmidt" not in stored
    assert scrub({"customerPhone": "+49 30 1234567", "n": 3, "x": object()}) == {
        "customerPhone": "+49 ••• ••67",
        "n": 3,
        "x": "object",
    }
    assert len(scrub({"why": "x" * 1000})["why"]) == 201


async def test_retention_purges_old_rows(database: Database, clock: Clock) -> None:
    audit = Audit(database, clock=clock)
    await _trail(audit, clock)
    clock.advance(10 * 86400)
    await audit.record(action="late", source="s", target="t", outcome="ok", ticket_id=101)
    assert await audit.purge(retention_days=5) == 3
    assert [e.action for e in await audit.query(ticket=101)] == ["late"]


def test_the_audit_and_jobs_commands(
    location: Location,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    clean_environment: None,
    tmp_path: Path,
) -> None:
    for name, value in {
        "CC_CT_PROJECT_KEY": "p",
        "CC_CT_CLIENT_ID": "c",
        "CC_CT_CLIENT_SECRET": "s",
        "CC_CT_REGION": "europe-west1.gcp",
        **location.env(),
    }.items():
        monkeypatch.setenv(name, value)

    async def seed() -> str:
        db = Database.from_url(location.url, schema=location.schema)
        await db.open()
        try:
            clock = Clock()
            await _trail(Audit(db, clock=clock), clock)
            queue = queue_on(db, clock)
            job = await queue.enqueue(
                "writeback", {"ticket_id": 101, "value": "x"}, key="k", destination="ct"
            )
            [claimed] = await queue.claim(1, worker="w", lease=10)
            await queue.kill(claimed, "order ord-1 does not exist")
            return job.id
        finally:
            await db.close()

    job_id = asyncio.run(seed())
    assert main(["audit", "--ticket", "101"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert "sidebar:lookup" in lines[0] and "a***@e***.com" in lines[0]
    assert "cc-hook-0002" in lines[1]
    assert main(["audit", "--order", "DE-2002", "--json"]) == 0
    [row] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["action"], row["customer_id"]) == ("action:cancel", "cust-2")
    assert main(["audit", "--customer", "nobody"]) == 0
    assert capsys.readouterr().out.strip() == "no audit entries"

    assert main(["jobs", "list", "--state", "dead"]) == 0
    out = capsys.readouterr().out
    assert job_id in out and "order ord-1 does not exist" in out
    assert main(["jobs", "show", job_id]) == 0
    shown = capsys.readouterr().out
    assert '"payload"' in shown and '"state": "dead"' in shown
    assert main(["jobs", "retry", job_id]) == 0
    assert "queued" in capsys.readouterr().out
    assert main(["jobs", "cancel", job_id]) == 0
    assert "cancelled" in capsys.readouterr().out
    assert main(["jobs", "cancel", job_id]) == 1  # already cancelled: a readable refusal
    assert "only queued or dead jobs can be cancelled" in capsys.readouterr().err
    assert main(["jobs", "show", "nope"]) == 1
    assert "no job nope" in capsys.readouterr().err


async def test_noted_rows_are_written_by_the_next_flush_and_kept_when_it_fails(
    database: Database, clock: Clock
) -> None:
    audit = Audit(database, clock=clock)
    for n in range(3):
        audit.note(
            action="lookup",
            source="sidebar",
            target="commercetools",
            outcome="shown",
            ticket_id=900,
            customer_id=f"c-{n}",
            detail={"email": "anna@example.com"},
        )
    assert await audit.query(ticket=900) == []  # noted, not written yet
    assert await audit.flush() == 3
    rows = await audit.query(ticket=900)
    assert [r.customer_id for r in rows] == ["c-0", "c-1", "c-2"]
    assert all(r.detail["email"] != "anna@example.com" for r in rows)  # scrubbed like record()
    assert await audit.flush() == 0
    audit.note(action="lookup", source="sidebar", target="commercetools", outcome="shown")
    await database.close()  # the database goes away: the row waits for the next flush
    with pytest.raises(CommerceContextError):
        await audit.flush()
    assert len(audit._noted) == 1
