"""The fake Tidio against Tidio's DOCUMENTED contract (not against our client).

Each constant below restates an example or rule from Tidio's developer documentation
(developers.tidio.com: "Authorization", "Versioning", "Rate Limiting", the contacts reference);
the tests send plain HTTP requests to the fake, served by uvicorn on loopback, and check that
its answers have the documented shape and behaviour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio

from commerce_context.emulator.tidio import FakeTidio, serve_fake_tidio

# -- documented examples -------------------------------------------------------------------------

# Authorization: "two headers with every API request", prefixed ci_ and cs_, plus the version.
CLIENT_ID, CLIENT_SECRET = "ci_0123456789abcdef", "cs_0123456789abcdef"
DOCUMENTED_HEADERS = {
    "X-Tidio-Openapi-Client-Id": CLIENT_ID,
    "X-Tidio-Openapi-Client-Secret": CLIENT_SECRET,
    "Accept": "application/json; version=1",
}
# Rate Limiting: the body of a 429 ("After the limit is exceeded, the following response will
# be returned") and the two headers.
DOCUMENTED_429 = {
    "errors": [
        {"code": "too_many_requests", "message": "You have reached the limit of allowed attempts"}
    ]
}
RATE_HEADERS = ("x-ratelimit-limit", "x-ratelimit-remaining")
# Get contacts: the fields of a contact and of the page's meta.
CONTACT_FIELDS = {
    "id", "distinct_id", "first_name", "last_name", "email", "phone", "language", "country",
    "city", "created_at", "email_consent", "properties",
}  # fmt: skip
# Update contact properties: limits (name <= 128, value <= 1000, distinct_id <= 55).
MAX_NAME, MAX_VALUE, MAX_DISTINCT_ID = 128, 1000, 55


@pytest_asyncio.fixture
async def tidio() -> AsyncIterator[tuple[FakeTidio, httpx.AsyncClient]]:
    fake = FakeTidio(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, limit_per_minute=1000)
    fake.define("cart_total", "number")
    fake.define("panel_url", "url")
    fake.define("store", "text")
    async with (
        serve_fake_tidio(fake) as (_, url),
        httpx.AsyncClient(base_url=url, headers=DOCUMENTED_HEADERS) as http,
    ):
        yield fake, http


def _errors(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert set(body) == {"errors"}
    assert all(set(e) == {"code", "message"} for e in body["errors"])
    return list(body["errors"])


async def test_both_credentials_are_required(tidio: tuple[FakeTidio, httpx.AsyncClient]) -> None:
    _, http = tidio
    assert (await http.get("/contact-properties")).status_code == 200
    for missing in ("X-Tidio-Openapi-Client-Id", "X-Tidio-Openapi-Client-Secret"):
        headers = {k: v for k, v in DOCUMENTED_HEADERS.items() if k != missing}
        response = await http.get("/contact-properties", headers=headers | {missing: ""})
        assert response.status_code == 401
        assert _errors(response)[0]["code"] == "unauthorized"
    wrong = await http.get(
        "/contact-properties", headers={"X-Tidio-Openapi-Client-Secret": "cs_wrong"}
    )
    assert wrong.status_code == 401


async def test_the_api_version_is_mandatory(tidio: tuple[FakeTidio, httpx.AsyncClient]) -> None:
    _, http = tidio
    response = await http.get("/contacts", headers={"Accept": "application/json"})
    assert response.status_code == 406
    assert _errors(response)[0]["code"] == "missing_api_version"


async def test_rate_limit_headers_and_the_documented_429() -> None:
    fake = FakeTidio(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, limit_per_minute=3)
    async with (
        serve_fake_tidio(fake) as (_, url),
        httpx.AsyncClient(base_url=url, headers=DOCUMENTED_HEADERS) as http,
    ):
        remaining = []
        for _ in range(3):
            response = await http.get("/contact-properties")
            assert response.status_code == 200
            assert response.headers["x-ratelimit-limit"] == "3"
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [2, 1, 0]
        refused = await http.get("/contact-properties")
        assert refused.status_code == 429
        assert refused.json() == DOCUMENTED_429
        assert all(name in refused.headers for name in RATE_HEADERS)


async def test_contacts_list_by_email_with_cursor(
    tidio: tuple[FakeTidio, httpx.AsyncClient],
) -> None:
    fake, http = tidio
    fake.page_size = 2
    ids = [fake.add_contact(email="jo@example.com", first_name=f"Jo {i}") for i in range(3)]
    fake.add_contact(email="other@example.com")
    first = (await http.get("/contacts", params={"email": "JO@example.com"})).json()
    assert set(first) == {"contacts", "meta"}
    assert set(first["meta"]) == {"cursor", "limit"}
    assert all(set(c) == CONTACT_FIELDS for c in first["contacts"])
    assert first["meta"]["cursor"] is not None
    second = (
        await http.get(
            "/contacts", params={"email": "jo@example.com", "cursor": first["meta"]["cursor"]}
        )
    ).json()
    assert second["meta"]["cursor"] is None  # null: the last page
    assert [c["id"] for c in first["contacts"] + second["contacts"]] == ids
    bad = await http.get("/contacts", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400


async def test_create_always_adds_a_contact(tidio: tuple[FakeTidio, httpx.AsyncClient]) -> None:
    fake, http = tidio
    before = len(fake.contacts)
    body = {"email": "jo@example.com", "distinct_id": "shop-1"}
    first = await http.post("/contacts", json=body)
    second = await http.post("/contacts", json=body)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]  # no de-duplication, as documented
    assert len(fake.contacts) == before + 2
    nothing = await http.post("/contacts", json={"distinct_id": "shop-2"})
    assert nothing.status_code == 422  # needs one of email, first_name, last_name, phone


async def test_patch_contact_rules(tidio: tuple[FakeTidio, httpx.AsyncClient]) -> None:
    fake, http = tidio
    cid = fake.add_contact(email="jo@example.com", properties={"store": "berlin"})
    ok = await http.patch(
        f"/contacts/{cid}",
        json={"properties": [{"name": "cart_total", "value": "59.90"}], "first_name": "Jo"},
    )
    assert ok.status_code == 204 and ok.content == b""
    contact = (await http.get(f"/contacts/{cid}")).json()
    assert contact["first_name"] == "Jo"
    assert contact["email"] == "jo@example.com"  # absent from the body: untouched
    assert {p["name"]: p["value"] for p in contact["properties"]} == {
        "store": "berlin",
        "cart_total": "59.90",
    }
    cleared = await http.patch(
        f"/contacts/{cid}", json={"properties": [{"name": "store", "value": None}]}
    )
    assert cleared.status_code == 204
    assert fake.property(cid, "store") is None  # null clears
    refusals = [
        {"properties": [{"name": "not_defined", "value": "x"}]},  # a non-existing property
        {"properties": [{"name": "cart_total", "value": "lots"}]},  # wrong type (number)
        {"properties": [{"name": "panel_url", "value": "javascript:alert(1)"}]},  # not a URL
        {"properties": [{"name": "store", "value": "x" * (MAX_VALUE + 1)}]},
        {"properties": [{"name": "n" * (MAX_NAME + 1), "value": "x"}]},
        {"distinct_id": "d" * (MAX_DISTINCT_ID + 1)},
    ]
    for body in refusals:
        response = await http.patch(f"/contacts/{cid}", json=body)
        assert response.status_code == 422, body
        assert _errors(response)[0]["code"] == "validation_error"
    assert fake.property(cid, "cart_total") == "59.90"  # nothing applied by a refusal
    missing = await http.patch(
        "/contacts/a1b4ca4c-1108-4432-b256-1e4cf2bf6f9e", json={"first_name": "X"}
    )
    assert missing.status_code == 404
    assert _errors(missing)[0]["code"] == "not_found"


async def test_batch_is_all_or_nothing_and_at_most_100(
    tidio: tuple[FakeTidio, httpx.AsyncClient],
) -> None:
    fake, http = tidio
    ids = [fake.add_contact(email=f"c{i}@example.com") for i in range(101)]

    def item(cid: str, value: str) -> dict[str, Any]:
        return {"id": cid, "properties": [{"name": "cart_total", "value": value}]}

    ok = await http.patch("/contacts/batch", json={"contacts": [item(c, "1") for c in ids[:100]]})
    assert ok.status_code == 204
    assert all(fake.property(c, "cart_total") == "1" for c in ids[:100])
    too_many = await http.patch("/contacts/batch", json={"contacts": [item(c, "2") for c in ids]})
    assert too_many.status_code == 422
    one_bad = [item(c, "3") for c in ids[:10]]
    one_bad[7] = item(ids[7], "three")
    refused = await http.patch("/contacts/batch", json={"contacts": one_bad})
    assert refused.status_code == 422
    assert all(fake.property(c, "cart_total") == "1" for c in ids[:10])  # nothing saved
    # The error does not point at the contact at fault.
    assert ids[7] not in refused.text and "[7]" not in refused.text
    empty = await http.patch("/contacts/batch", json={"contacts": []})
    assert empty.status_code == 422


async def test_widget_stand_in_contact_and_webhooks(
    tidio: tuple[FakeTidio, httpx.AsyncClient],
) -> None:
    """A visitor is one contact with one chat; identifying it later keeps the chat."""
    fake, http = tidio
    key = fake.public_key
    script = await http.get(f"/widget/{key}.js")
    assert script.status_code == 200 and "tidioChat-ready" in script.text
    guest = (await http.post(f"/widget/{key}/visitors", json={"visitor": "v1"})).json()
    known = (
        await http.post(
            f"/widget/{key}/visitors",
            json={"visitor": "v1", "identify": {"distinct_id": "cc_abc"}},
        )
    ).json()
    assert known == guest  # same contact, same conversation
    assert fake.contacts[guest["contact_id"]]["distinct_id"] == "cc_abc"
    assert [w["topic"] for w in fake.webhooks_sent] == ["contact.created", "contact.updated"]
    envelope = fake.webhooks_sent[-1]
    assert set(envelope) == {
        "created_at", "project_public_key", "topic", "version", "webhook_id", "content",
    }  # fmt: skip
    assert envelope["content"]["distinct_id"] == "cc_abc"
    await http.post(
        f"/widget/{key}/calls",
        json={"visitor": "v1", "method": "setContactProperties", "args": [{"store": "london"}]},
    )
    assert fake.property(guest["contact_id"], "store") == "london"
