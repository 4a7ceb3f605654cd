"""The admin page and JSON API (admin.py) on SQLite and PostgreSQL: the credential, what is
shown (ids and states, never payload values), the retry button and its form token."""

from __future__ import annotations

import base64
import contextlib
import re

import httpx

from commerce_context.app import create_app
from commerce_context.audit import Audit
from commerce_context.jobs import Job
from tests.asgi import app_client
from tests.engine import Clock, Location, database, location, queue_on, settings

__all__ = ["database", "location"]

TOKEN = "admin-token-0123456789-abcdefghijkl"
NOTE = "Customer Anna Schmidt called about her refund"


def basic(password: str) -> dict[str, str]:
    value = base64.b64encode(f"ops:{password}".encode()).decode()
    return {"Authorization": f"Basic {value}"}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


async def seed(location: Location) -> tuple[Job, Job]:
    db = await location.open()
    clock = Clock()
    queue = queue_on(db, clock)
    dead = await queue.enqueue(
        "writeback",
        {"ticket_id": 7, "order_number": "DE-1001", "note": NOTE},
        key="a",
        destination="commercetools",
    )
    [claimed] = await queue.claim(1, worker="w", lease=10)
    await queue.kill(claimed, "order DE-1001 does not exist")
    waiting = await queue.enqueue("sync", {"ticket_id": 8}, key="b", destination="zendesk")
    audit = Audit(db, clock=clock)
    await audit.record(
        action="sidebar:lookup",
        source="sidebar",
        target="commercetools:order",
        outcome="found",
        ticket_id=7,
        order_number="DE-1001",
        detail={"email": "anna@example.com"},
    )
    return dead, waiting


def app_for(
    location: Location, **overrides: object
) -> contextlib.AbstractAsyncContextManager[httpx.AsyncClient]:
    config = settings(
        database_url=location.url,
        database_schema=location.schema,
        worker_in_process=False,
        **overrides,
    )
    return app_client(create_app(config))


async def test_without_a_token_the_admin_does_not_exist(location: Location) -> None:
    async with app_for(location) as client:
        for path in ("/admin", "/admin/api/jobs", "/admin/api/audit?ticket=1"):
            assert (await client.get(path, headers=BEARER)).status_code == 404
        assert (await client.post("/admin/jobs/x/retry", headers=BEARER)).status_code == 404


async def test_the_credential_is_required(location: Location) -> None:
    async with app_for(location, admin_token=TOKEN) as client:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": f"Bearer {TOKEN}x"},
            basic("wrong"),
            {"Authorization": "Basic !!!not-base64"},
            {"Authorization": f"Token {TOKEN}"},
        ):
            answer = await client.get("/admin/api/jobs", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.headers["www-authenticate"].startswith("Basic ")
            assert answer.json()["error"]["code"] == "unauthorized"
            assert TOKEN not in answer.text
        page = await client.get("/admin")
        assert page.status_code == 401
        assert (await client.post("/admin/jobs/x/retry")).status_code == 401


async def test_the_json_api_lists_jobs_and_the_audit_trail(location: Location) -> None:
    dead, waiting = await seed(location)
    async with app_for(location, admin_token=TOKEN) as client:
        answer = await client.get("/admin/api/jobs", headers=BEARER)
        assert answer.status_code == 200
        assert answer.headers["cache-control"] == "no-store"
        body = answer.json()
        assert body["counts"]["dead"] == 1 and body["counts"]["queued"] == 1
        assert {job["id"] for job in body["jobs"]} == {dead.id, waiting.id}
        assert NOTE not in answer.text and "Anna" not in answer.text  # no payload values
        [shown] = (await client.get("/admin/api/jobs?state=dead", headers=BEARER)).json()["jobs"]
        assert shown["refs"] == {"ticket_id": "7", "order_number": "DE-1001"}
        assert shown["last_error"] == "order DE-1001 does not exist"
        one = (await client.get(f"/admin/api/jobs/{dead.id}", headers=BEARER)).json()
        assert one["job"]["state"] == "dead"
        trail = (await client.get("/admin/api/audit?order=DE-1001", headers=BEARER)).json()
        assert [e["action"] for e in trail["entries"]] == ["sidebar:lookup"]
        assert trail["entries"][0]["detail"] == {"email": "a***@e***.com"}
        for path, status in (
            ("/admin/api/jobs/nope", 404),
            ("/admin/api/jobs?state=weird", 400),
            ("/admin/api/jobs?limit=0", 400),
            ("/admin/api/jobs?limit=abc", 400),
            ("/admin/api/audit", 400),
        ):
            bad = await client.get(path, headers=BEARER)
            assert bad.status_code == status, path
            assert bad.json()["error"]["status"] == status


async def test_the_page_retries_a_dead_job_with_its_form_token(location: Location) -> None:
    dead, waiting = await seed(location)
    async with app_for(location, admin_token=TOKEN) as client:
        page = await client.get("/admin?ticket=7", headers=basic(TOKEN))
        assert page.status_code == 200
        assert page.headers["x-frame-options"] == "DENY"
        html = page.text
        assert "order DE-1001 does not exist" in html
        assert "sidebar:lookup" in html and "a***@e***.com" in html
        assert NOTE not in html
        found = re.search(
            rf'action="/admin/jobs/{dead.id}/retry">\s*<input type="hidden" name="csrf" '
            r'value="([0-9a-f]{64})"',
            html,
        )
        assert found is not None
        # A cross-site post (the browser would add the Basic credential) lacks the token.
        forged = await client.post(
            f"/admin/jobs/{dead.id}/retry", data={"csrf": "0" * 64}, headers=basic(TOKEN)
        )
        assert forged.status_code == 403
        posted = await client.post(
            f"/admin/jobs/{dead.id}/retry", data={"csrf": found.group(1)}, headers=basic(TOKEN)
        )
        assert posted.status_code == 303
        assert posted.headers["location"] == "/admin?state=dead"
        after = (await client.get(f"/admin/api/jobs/{dead.id}", headers=BEARER)).json()
        assert after["job"]["state"] == "queued"
        assert [e["action"] for e in after["audit"]] == ["admin:retry"]
        # The API retries with the bearer credential alone; only dead jobs can be retried.
        refused = await client.post(f"/admin/jobs/{waiting.id}/retry", headers=BEARER)
        assert refused.status_code == 400
        assert "only dead or cancelled jobs can be retried" in refused.json()["error"]["message"]
