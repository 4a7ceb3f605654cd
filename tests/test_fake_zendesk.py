"""The fake Zendesk against Zendesk's DOCUMENTED contract (not against our client).

Each fixture below quotes an example from Zendesk's API reference (or a Zendesk developer
advocate's answer, where the reference is silent); the tests send plain HTTP requests to the
fake, served by uvicorn on loopback, and check that its answers have the documented shape and
behaviour.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from commerce_context.emulator.zendesk import FakeZendesk, serve_fake_zendesk

# -- documented examples (quoted) ----------------------------------------------------------------

# Show Job Status, Ticketing API reference (job_statuses): the JSON format's properties.
DOCUMENTED_JOB_STATUS = {
    "job_status": {
        "id": "8b726e606741012ffc2d782bcb7848fe",
        "job_type": "example_job_type",
        "message": "Message from the job worker, if any",
        "progress": 5,
        "results": {"success": True},
        "status": "working",
        "total": 10,
        "url": "https://example.zendesk.com/api/v2/job_statuses/8b726e606741012ffc2d782bcb7848fe",
    }
}
DOCUMENTED_JOB_STATES = {"queued", "working", "failed", "completed"}

# Create or Update Many Users: results of a 3-user request, in request order (community post
# 4408861015066; the developer advocate confirms the order and the only three statuses).
DOCUMENTED_BULK_RESULTS = [
    {"id": 1900233268488, "status": "Created", "email": "success_created@example.com"},
    {"id": 902860577023, "status": "Updated", "email": "success_modified@example.com"},
    {
        "id": 2,
        "error": "UserUpdateError",
        "details": "Name: Email: error@example.com_ is not properly formatted",
        "status": "Failed",
    },
]

# Create Or Update Many Users request body (the reference's request schema).
DOCUMENTED_BULK_REQUEST = {
    "users": [
        {
            "name": "Roger Wilco",
            "email": "roge@example.org",
            "external_id": "ct-customer-1",
            "role": "end-user",
            "organization": {"name": "Wilco Ltd"},
        },
        {"name": "Woger Rilco", "email": "woge@example.org", "role": "end-user"},
    ]
}

# List Identities, example response (user identities reference).
DOCUMENTED_IDENTITY = {
    "id": 35436,
    "url": "https://company.zendesk.com/api/v2/users/135/identities/35436.json",
    "user_id": 135,
    "type": "email",
    "value": "someone@example.com",
    "verified": True,
    "primary": True,
    "updated_at": "2011-07-20T22:55:29Z",
    "created_at": "2011-07-20T22:55:29Z",
}

# Create Or Update Organization, 201 example response.
DOCUMENTED_ORGANIZATION = {
    "organization": {
        "created_at": "2020-09-30T01:50:12Z",
        "details": None,
        "domain_names": [],
        "external_id": None,
        "group_id": None,
        "id": 23409462,
        "name": "My Organization",
        "notes": None,
        "organization_fields": None,
        "shared_comments": False,
        "shared_tickets": False,
        "tags": [],
        "updated_at": "2020-09-30T01:50:12Z",
        "url": "https://example.zendesk.com/api/v2/organizations/23409462.json",
    }
}

# List Search Results, example response.
DOCUMENTED_SEARCH = {
    "count": 1234,
    "facets": None,
    "next_page": "https://foo.zendesk.com/api/v2/search.json?query=...&page=2",
    "previous_page": None,
    "results": [
        {
            "created_at": "2009-05-13T00:07:08Z",
            "id": 211,
            "name": "Hello DJs",
            "result_type": "group",
            "updated_at": "2011-07-22T00:11:12Z",
            "url": "https://foo.zendesk.com/api/v2/groups/211.json",
        }
    ],
}

# Search Users, example response: {"users": [...]}.
DOCUMENTED_SEARCH_USERS = {"users": [{"id": 35436, "name": "Robert Jones", "notes": "sigil issue"}]}

# Rate limits: headers on list endpoints such as Search Users ("Best practices for avoiding rate
# limiting"): x-rate-limit, ratelimit-limit, x-rate-limit-remaining, ratelimit-remaining,
# ratelimit-reset.
DOCUMENTED_RATE_HEADERS = (
    "x-rate-limit",
    "ratelimit-limit",
    "x-rate-limit-remaining",
    "ratelimit-remaining",
    "ratelimit-reset",
)

# Error bodies: the Search reference's error format, and the ticket 409 of a safe update.
DOCUMENTED_ERROR_KEYS = {"error", "description"}
DOCUMENTED_CONFLICT_ERROR = "UpdateConflict"

EMAIL, TOKEN = "sync@example.com", "fake-api-token"


def _basic(email: str, token: str) -> str:
    return "Basic " + base64.b64encode(f"{email}/token:{token}".encode()).decode()


@pytest_asyncio.fixture
async def zendesk() -> AsyncIterator[tuple[FakeZendesk, httpx.AsyncClient]]:
    async with serve_fake_zendesk(FakeZendesk(email=EMAIL, api_token=TOKEN)) as (fake, url):
        headers = {"Authorization": _basic(EMAIL, TOKEN), "Accept": "application/json"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=10) as http:
            yield fake, http


async def _finished(http: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        response = await http.get(f"/api/v2/job_statuses/{job_id}.json")
        job: dict[str, Any] = response.json()["job_status"]
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("job never finished")


# -- authentication ------------------------------------------------------------------------------


async def test_api_token_and_bearer_are_accepted_anything_else_is_401(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    fake.add_ticket()
    assert (await http.get("/api/v2/search?query=type:ticket")).status_code == 200
    bearer = {"Authorization": "Bearer fake-oauth-token"}
    assert (await http.get("/api/v2/search?query=type:ticket", headers=bearer)).status_code == 200
    for bad in (
        _basic(EMAIL, "wrong"),
        _basic("other@example.com", TOKEN),
        "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode(),  # no "/token"
        "Bearer nope",
        "",
    ):
        response = await http.get("/api/v2/search?query=x", headers={"Authorization": bad})
        assert response.status_code == 401
        assert isinstance(response.json()["error"], str)


# -- create_or_update_many and job statuses ------------------------------------------------------


async def test_bulk_upsert_returns_a_job_status_with_the_documented_fields(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    _, http = zendesk
    response = await http.post("/api/v2/users/create_or_update_many", json=DOCUMENTED_BULK_REQUEST)
    assert response.status_code == 200
    job = response.json()["job_status"]
    assert set(job) == set(DOCUMENTED_JOB_STATUS["job_status"])
    assert job["status"] in DOCUMENTED_JOB_STATES
    assert job["total"] == 2
    assert job["url"].endswith(f"/api/v2/job_statuses/{job['id']}.json")
    done = await _finished(http, job["id"])
    assert set(done) == set(DOCUMENTED_JOB_STATUS["job_status"])
    assert done["status"] == "completed" and done["progress"] == 2


async def test_job_moves_from_queued_to_completed_asynchronously(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    fake.job_delay = 0.2
    response = await http.post("/api/v2/users/create_or_update_many", json=DOCUMENTED_BULK_REQUEST)
    job = response.json()["job_status"]
    assert job["status"] == "queued" and job["results"] is None
    seen = {job["status"]}
    for _ in range(500):
        current = (await http.get(f"/api/v2/job_statuses/{job['id']}")).json()["job_status"]
        seen.add(current["status"])
        if current["status"] == "completed":
            break
        await asyncio.sleep(0.01)
    assert seen == {"queued", "working", "completed"}


async def test_results_come_back_in_request_order_with_the_documented_shapes(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    existing = fake.add_user("Modified", "success_modified@example.com")
    request = {
        "users": [
            {"name": "Created", "email": "success_created@example.com"},
            {"name": "Modified again", "email": "success_modified@example.com"},
            {"name": "Broken", "email": "error@example.com_"},
        ]
    }
    job = (await http.post("/api/v2/users/create_or_update_many", json=request)).json()
    results = (await _finished(http, job["job_status"]["id"]))["results"]
    assert [r["status"] for r in results] == [r["status"] for r in DOCUMENTED_BULK_RESULTS]
    for ours, documented in zip(results, DOCUMENTED_BULK_RESULTS, strict=True):
        assert set(documented) - {"id"} <= set(ours)
    assert results[0]["email"] == "success_created@example.com"
    assert results[1]["id"] == existing["id"]
    assert fake.users[existing["id"]]["name"] == "Modified again"


async def test_more_than_100_users_are_refused(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    _, http = zendesk
    users = [{"name": f"U{i}", "email": f"u{i}@example.com"} for i in range(101)]
    response = await http.post("/api/v2/users/create_or_update_many", json={"users": users})
    assert response.status_code == 422
    assert response.json()["error"] == "RecordInvalid"


async def test_existing_user_is_matched_by_email_or_external_id_case_insensitively(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    by_email = fake.add_user("No External Id", "Jane@Example.com")
    by_external = fake.add_user("Known", "known@example.com", external_id="ABC-1")
    request = {
        "users": [
            {"name": "Jane", "email": "jane@example.com", "external_id": "ct-1"},
            {"name": "Known Renamed", "external_id": "abc-1"},
        ]
    }
    job = (await http.post("/api/v2/users/create_or_update_many", json=request)).json()
    results = (await _finished(http, job["job_status"]["id"]))["results"]
    assert [(r["status"], r["id"]) for r in results] == [
        ("Updated", by_email["id"]),
        ("Updated", by_external["id"]),
    ]
    assert fake.users[by_email["id"]]["external_id"] == "ct-1"  # linked, not duplicated
    assert fake.users[by_external["id"]]["external_id"] == "abc-1"  # the stored case follows
    assert len(fake.users) == 2


async def test_a_new_email_on_update_is_added_as_a_secondary_identity(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    # Users reference: "email ... Writeable on create only. On update, a secondary email is added."
    fake, http = zendesk
    user = fake.add_user("Jane", "old@example.com", external_id="ct-9")
    request = {"users": [{"name": "Jane", "email": "new@example.com", "external_id": "ct-9"}]}
    job = (await http.post("/api/v2/users/create_or_update_many", json=request)).json()
    await _finished(http, job["job_status"]["id"])
    identities = (await http.get(f"/api/v2/users/{user['id']}/identities")).json()["identities"]
    assert {(i["value"], i["primary"]) for i in identities} == {
        ("old@example.com", True),
        ("new@example.com", False),
    }
    assert len(fake.users) == 1


async def test_injected_job_failures_are_reported_per_user(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    fake.fail_emails.add("b@example.com")
    users = [{"name": n, "email": f"{n}@example.com"} for n in ("a", "b", "c")]
    job = (await http.post("/api/v2/users/create_or_update_many", json={"users": users})).json()
    results = (await _finished(http, job["job_status"]["id"]))["results"]
    assert [r["status"] for r in results] == ["Created", "Failed", "Created"]
    assert {"error", "details"} <= set(results[1])


async def test_unknown_job_is_404_with_the_documented_error_shape(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    _, http = zendesk
    response = await http.get("/api/v2/job_statuses/doesnotexist")
    assert response.status_code == 404
    assert set(response.json()) == DOCUMENTED_ERROR_KEYS


# -- users, identities, organizations ------------------------------------------------------------


async def test_identities_have_the_documented_fields(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    user = fake.add_user("Someone", "someone@example.com")
    body = (await http.get(f"/api/v2/users/{user['id']}/identities.json")).json()
    (identity,) = body["identities"]
    assert set(DOCUMENTED_IDENTITY) <= set(identity)
    assert (identity["type"], identity["value"], identity["primary"]) == (
        "email",
        "someone@example.com",
        True,
    )
    assert (await http.get("/api/v2/users/999999/identities")).status_code == 404


async def test_make_primary_switches_the_primary_email(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    user = fake.add_user(
        "Jane", "old@example.com", identities=[{"type": "email", "value": "n@e.io"}]
    )
    identities = (await http.get(f"/api/v2/users/{user['id']}/identities")).json()["identities"]
    new = next(i for i in identities if i["value"] == "n@e.io")
    response = await http.put(f"/api/v2/users/{user['id']}/identities/{new['id']}/make_primary")
    assert response.status_code == 200
    assert {i["value"]: i["primary"] for i in response.json()["identities"]} == {
        "old@example.com": False,
        "n@e.io": True,
    }
    assert fake.users[user["id"]]["email"] == "n@e.io"


async def test_show_many_and_search_users(zendesk: tuple[FakeZendesk, httpx.AsyncClient]) -> None:
    fake, http = zendesk
    a = fake.add_user("Robert Jones", "rj@example.com", external_id="ct-a")
    b = fake.add_user("Terry Gilliam", "tg@example.com")
    body = (await http.get(f"/api/v2/users/show_many?ids={a['id']},{b['id']},1")).json()
    assert [u["id"] for u in body["users"]] == [a["id"], b["id"]]
    body = (await http.get("/api/v2/users/show_many?external_ids=CT-A&include=identities")).json()
    assert [u["id"] for u in body["users"]] == [a["id"]]
    assert [i["value"] for i in body["identities"]] == ["rj@example.com"]
    found = (await http.get("/api/v2/users/search?external_id=ct-a")).json()
    assert set(DOCUMENTED_SEARCH_USERS) <= set(found)
    assert [u["id"] for u in found["users"]] == [a["id"]]
    found = (
        await http.get("/api/v2/users/search", params={"query": "email:tg@example.com"})
    ).json()
    assert [u["id"] for u in found["users"]] == [b["id"]]


async def test_organization_create_or_update_by_external_id(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    _, http = zendesk
    url = "/api/v2/organizations/create_or_update"
    created = await http.post(url, json={"organization": {"name": "Acme", "external_id": "bu-1"}})
    assert created.status_code == 201
    assert set(created.json()["organization"]) == set(DOCUMENTED_ORGANIZATION["organization"])
    updated = await http.post(
        url, json={"organization": {"name": "Acme AG", "external_id": "BU-1"}}
    )
    assert updated.status_code == 200
    org = updated.json()["organization"]
    assert (org["id"], org["name"]) == (created.json()["organization"]["id"], "Acme AG")
    # Name is not a matching criterion: a second org with the same name is a duplicate.
    clash = await http.post(url, json={"organization": {"name": "Acme AG", "external_id": "bu-2"}})
    assert clash.status_code == 422


# -- tickets and search --------------------------------------------------------------------------


async def test_ticket_update_merges_custom_fields_and_safe_update_detects_changes(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    ticket = fake.add_ticket(custom_fields={1: "a", 2: "b"})
    stamp = (await http.get(f"/api/v2/tickets/{ticket['id']}")).json()["ticket"]["updated_at"]
    fake.touch_ticket(ticket["id"], subject="agent edited")
    stale = {
        "ticket": {
            "custom_fields": [{"id": 2, "value": "x"}],
            "safe_update": True,
            "updated_stamp": stamp,
        }
    }
    response = await http.put(f"/api/v2/tickets/{ticket['id']}", json=stale)
    assert response.status_code == 409
    assert set(response.json()) == DOCUMENTED_ERROR_KEYS
    assert response.json()["error"] == DOCUMENTED_CONFLICT_ERROR
    assert fake.field_value(ticket["id"], 2) == "b"
    fresh = (await http.get(f"/api/v2/tickets/{ticket['id']}")).json()["ticket"]["updated_at"]
    ok = {
        "ticket": {
            "custom_fields": [{"id": 2, "value": "x"}],
            "safe_update": "true",
            "updated_stamp": fresh,
        }
    }
    response = await http.put(f"/api/v2/tickets/{ticket['id']}.json", json=ok)
    assert response.status_code == 200
    assert response.json()["ticket"]["custom_fields"] == [
        {"id": 1, "value": "a"},
        {"id": 2, "value": "x"},
    ]
    assert response.json()["ticket"]["updated_at"] != fresh


async def test_closed_tickets_cannot_be_updated(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    ticket = fake.add_ticket(status="closed")
    body = {"ticket": {"custom_fields": [{"id": 1, "value": "x"}]}}
    response = await http.put(f"/api/v2/tickets/{ticket['id']}", json=body)
    assert response.status_code == 422
    assert (await http.put("/api/v2/tickets/424242", json=body)).status_code == 404


async def test_search_has_the_documented_shape_filters_and_pages(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    for _ in range(3):
        fake.add_ticket(custom_fields={77: "10042"})
    fake.add_ticket(custom_fields={77: "10042"}, status="solved")
    fake.add_ticket(custom_fields={77: "99999"})
    params = {"query": "type:ticket custom_field_77:10042 status<solved", "per_page": "2"}
    first = await http.get("/api/v2/search.json", params=params)
    body = first.json()
    assert set(body) == set(DOCUMENTED_SEARCH)
    assert body["count"] == 3 and len(body["results"]) == 2
    assert {r["result_type"] for r in body["results"]} == {"ticket"}
    second = (await http.get(body["next_page"])).json()
    assert len(second["results"]) == 1 and second["next_page"] is None
    by_value = await http.get("/api/v2/search", params={"query": "type:ticket fieldvalue:99999"})
    assert by_value.json()["count"] == 1
    unsupported = await http.get("/api/v2/search", params={"query": "type:ticket tags:vip"})
    assert unsupported.status_code == 400
    assert set(unsupported.json()) == DOCUMENTED_ERROR_KEYS


# -- rate limits and faults ----------------------------------------------------------------------


async def test_rate_limit_headers_and_429_with_retry_after(
    zendesk: tuple[FakeZendesk, httpx.AsyncClient],
) -> None:
    fake, http = zendesk
    fake.limit_per_minute = 3
    remaining = []
    for _ in range(3):
        response = await http.get("/api/v2/users/search?external_id=x")
        assert response.status_code == 200
        assert all(h in response.headers for h in DOCUMENTED_RATE_HEADERS)
        remaining.append(int(response.headers["ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    limited = await http.get("/api/v2/users/search?external_id=x")
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert fake.throttled == 1


async def test_window_resets(zendesk: tuple[FakeZendesk, httpx.AsyncClient]) -> None:
    fake, http = zendesk
    fake.limit_per_minute, fake.window = 1, 0.3
    assert (await http.get("/api/v2/users/search?external_id=x")).status_code == 200
    assert (await http.get("/api/v2/users/search?external_id=x")).status_code == 429
    for _ in range(100):  # bounded wait for the window to roll over
        await asyncio.sleep(0.05)
        response = await http.get("/api/v2/users/search?external_id=x")
        if response.status_code == 200:
            break
    assert response.status_code == 200


async def test_injected_faults(zendesk: tuple[FakeZendesk, httpx.AsyncClient]) -> None:
    fake, http = zendesk
    fake.inject("429", seconds=7)
    fake.inject("429-no-retry-after")
    fake.inject("429-bare")
    fake.inject("503", count=2)
    fake.inject("latency", seconds=0.05)
    url = "/api/v2/users/search?external_id=x"
    first = await http.get(url)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    second = await http.get(url)
    assert second.status_code == 429 and "Retry-After" not in second.headers
    assert "ratelimit-reset" in second.headers
    third = await http.get(url)
    assert third.status_code == 429
    assert "Retry-After" not in third.headers and "ratelimit-reset" not in third.headers
    assert [(await http.get(url)).status_code for _ in range(2)] == [503, 503]
    assert (await http.get(url)).status_code == 200  # delayed, then answered
    assert (await http.get(url)).status_code == 200
