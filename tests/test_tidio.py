"""Tidio inbound (tidio.py) on the whole service against the emulator: token introspection in
the harness's bridge, visitor identity (API key or introspected shopper token; never an id the
browser sends), the signed contact panel and order links (binding, expiry, tampering,
revocation, rotation, audit), Tidio webhooks (signatures with several `s`, stale timestamps,
duplicates, out-of-order delivery) and the Lyro order-status action (indistinguishable
answers, rate limits)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from bs4 import BeautifulSoup

from commerce_context import queries
from commerce_context.app import create_app
from commerce_context.database import Database
from commerce_context.emulator.harness import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    Harness,
    demo_settings,
)
from commerce_context.exceptions import Unauthorized
from commerce_context.links import Binding, LinkKeys, Revocations, parse_keys
from commerce_context.settings import Settings
from commerce_context.tidio import (
    NOT_FOUND_ANSWER,
    PANEL_PROPERTY,
    Contacts,
    Shopper,
    Visitors,
    bound_cart_read,
    distinct_id,
    panel_url_for,
    sign_webhook,
    verify_webhook,
)
from tests.asgi import app_client
from tests.engine import database, location
from tests.orders import Api
from tests.schema import assert_valid_document

__all__ = ["database", "location"]

KEY_NEW = "k2026:" + "n" * 40
KEY_OLD = "k2025:" + "o" * 40
IDENTITY = "i" * 40
API_KEY = "storefront-api-key-" + "a" * 24
LYRO = "lyro-action-token-" + "l" * 24
HOOK_OLD = "tidio-webhook-secret-old"
HOOK_NEW = "tidio-webhook-secret-new"
ORIGIN = "https://shop.example.com"


@dataclass
class App:
    client: httpx.AsyncClient
    settings: Settings
    harness: Harness

    async def identify(self, body: dict[str, Any], **headers: str) -> httpx.Response:
        return await self.client.post("/tidio/identify", json=body, headers=headers)

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """A second connection to the service's job database (as an operator's would be)."""
        db = Database.from_url(self.settings.database_location)
        await db.open()
        try:
            return [dict(r) for r in await db.fetchall(sql, params)]
        finally:
            await db.close()

    async def audit(self, action: str) -> list[dict[str, Any]]:
        return await self.query("SELECT * FROM audit WHERE action = ? ORDER BY id", (action,))


def tidio_settings(harness: Harness, tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "state_path": tmp_path / "state.sqlite3",
        "link_keys": KEY_NEW,
        "tidio_identity_secret": IDENTITY,
        "tidio_storefront_api_key": API_KEY,
        "tidio_allowed_origins": (ORIGIN,),
        "tidio_webhook_secrets": f"{HOOK_NEW},{HOOK_OLD}",
        "tidio_lyro_token": LYRO,
        "tidio_lyro_per_ip": 1000,
        "public_url": "https://cc.example.com",
        "jobs_poll_interval": 0.05,
    }
    values.update(overrides)
    return demo_settings(harness, **values)


@contextlib.asynccontextmanager
async def running(settings: Settings, harness: Harness) -> AsyncIterator[App]:
    async with app_client(create_app(settings), raise_errors=True) as client:
        yield App(client, settings, harness)


@pytest_asyncio.fixture(loop_scope="session")
async def service(harness: Harness, tmp_path: Path) -> AsyncIterator[App]:
    settings = tidio_settings(harness, tmp_path)
    async with running(settings, harness) as app:
        yield app


# -- the harness: token introspection --------------------------------------------------------------


async def customer_token(harness: Harness, key: str) -> str:
    customer = harness.demo.customers[key]
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{harness.auth_url}/oauth/{harness.project_key}/customers/token",
            data={"grant_type": "password", "username": customer.email, "password": f"demo-{key}"},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        )
    answer.raise_for_status()
    return str(answer.json()["access_token"])


async def anonymous_token(harness: Harness) -> tuple[str, str]:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{harness.auth_url}/oauth/{harness.project_key}/anonymous/token",
            data={"grant_type": "client_credentials"},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        )
    answer.raise_for_status()
    body = answer.json()
    anonymous = body["scope"].split("anonymous_id:")[1].split()[0]
    return str(body["access_token"]), anonymous


async def introspect(harness: Harness, token: str | None, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(
            f"{harness.auth_url}/oauth/introspect",
            params={"token": token} if token is not None else None,
            **({"auth": (DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)} | kwargs),
        )


async def test_introspection_answers_for_issued_tokens_only(harness: Harness) -> None:
    token = await customer_token(harness, "anna-schmidt")
    answer = await introspect(harness, token)
    assert answer.status_code == 200
    body = answer.json()
    assert body["active"] is True
    assert body["client_id"] == DEMO_CLIENT_ID
    assert body["scope"].split() == [f"customer_id:{harness.demo.customers['anna-schmidt'].id}"]
    assert body["exp"] > time.time() * 1000  # epoch milliseconds, in the future
    anonymous, anonymous_id = await anonymous_token(harness)
    assert (await introspect(harness, anonymous)).json()["scope"] == f"anonymous_id:{anonymous_id}"
    # Unknown: inactive and nothing else (RFC 7662).
    assert (await introspect(harness, "not-a-token")).json() == {"active": False}
    assert harness.tokens is not None
    harness.tokens.expire(token)
    assert (await introspect(harness, token)).json() == {"active": False}


async def test_introspection_needs_client_credentials_and_a_token(harness: Harness) -> None:
    missing = await introspect(harness, "x", auth=None)
    assert missing.status_code == 401
    assert missing.json()["error"] == "invalid_client"
    none = await introspect(harness, None)
    assert none.status_code == 400
    assert none.json()["error"] == "invalid_request"
    # The form field works too (RFC 7662 sends the token in the body).
    token = await customer_token(harness, "james-taylor")
    async with httpx.AsyncClient() as http:
        form = await http.post(
            f"{harness.auth_url}/oauth/introspect",
            data={"token": token},
            auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
        )
    assert form.json()["active"] is True


# -- visitor identity ---------------------------------------------------------------------------


def test_distinct_id_is_opaque_short_and_stable() -> None:
    customer = "6a1b1f0e-2d3c-4b5a-8f9e-0a1b2c3d4e5f"
    one = distinct_id(IDENTITY, Shopper(customer_id=customer))
    assert one == distinct_id(IDENTITY, Shopper(customer_id=customer, anonymous_id="anything"))
    assert len(one) <= 55
    assert customer not in one and customer.replace("-", "") not in one
    assert one != distinct_id(IDENTITY, Shopper(anonymous_id=customer))  # a guest is another
    assert one != distinct_id("j" * 40, Shopper(customer_id=customer))  # keyed


async def test_storefront_server_identifies_with_its_api_key(service: App) -> None:
    anna = service.harness.demo.customers["anna-schmidt"]
    answer = await service.identify(
        {"customer_id": anna.id, "anonymous_id": "anon-anna-1", "store": "berlin"},
        **{"X-Api-Key": API_KEY},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["shopper"] == "customer"
    assert body["distinct_id"] == distinct_id(IDENTITY, Shopper(customer_id=anna.id))
    text = answer.text
    assert anna.id not in text.replace(body["visitor_token"], "").replace(body["panel_url"], "")
    assert anna.email not in text
    keys = LinkKeys(parse_keys(KEY_NEW))
    visitor = keys.verify(body["visitor_token"], kind="visitor")
    assert visitor.binding == Binding(
        "visitor", customer_id=anna.id, anonymous_id="anon-anna-1", store="berlin"
    )
    assert body["panel_url"].startswith("https://cc.example.com/tidio/panel?t=")
    assert answer.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"X-Api-Key": "wrong-" + "x" * 30}, {"customer_id": "c-1"}, 401),
        ({}, {"customer_id": "c-1"}, 401),  # a browser naming a customer: refused
        ({"X-Api-Key": API_KEY}, {}, 400),
        ({"X-Api-Key": API_KEY}, {"customer_id": 'x" or 1'}, 400),
        ({"X-Api-Key": API_KEY}, {"customer_id": "c-1", "store": "atlantis"}, 400),
        ({"Authorization": "Basic abc"}, {"customer_id": "c-1"}, 401),
    ],
)
async def test_identify_refuses_what_it_cannot_trust(
    service: App, headers: dict[str, str], body: dict[str, Any], status: int
) -> None:
    answer = await service.identify(body, **headers)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()


async def test_shopper_token_decides_who_the_visitor_is_not_the_body(service: App) -> None:
    demo = service.harness.demo
    token = await customer_token(service.harness, "james-taylor")
    # The browser claims to be Anna; the token is James's: James it is.
    answer = await service.identify(
        {"customer_id": demo.customers["anna-schmidt"].id, "cart_id": demo.carts["anna-schmidt"]},
        Authorization=f"Bearer {token}",
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    james = demo.customers["james-taylor"].id
    assert body["distinct_id"] == distinct_id(IDENTITY, Shopper(customer_id=james))
    link = LinkKeys(parse_keys(KEY_NEW)).verify(body["visitor_token"], kind="visitor")
    assert link.binding.customer_id == james
    assert link.binding.cart_id is None  # a cart id from the browser is never bound
    # The browser never gets the agent's view; the server makes the panel link for Tidio.
    assert "panel_url" not in body
    db = Database.from_url(service.settings.database_location)
    await db.open()
    try:
        url = await panel_url_for(service.settings, db, body["distinct_id"])
        assert await panel_url_for(service.settings, db, "cc_never_identified") is None
    finally:
        await db.close()
    assert url is not None and url.startswith("https://cc.example.com/tidio/panel?t=k2026.")
    page = await service.client.get(url.removeprefix("https://cc.example.com"))
    html = BeautifulSoup(page.text, "html.parser")
    customer = html.select_one("[data-testid=customer]")
    assert customer is not None and customer["data-customer-id"] == james
    cart = html.select_one("[data-testid=cart]")
    assert cart is not None and cart["data-cart-id"] == demo.carts["james-taylor"]


async def test_inactive_and_shopperless_tokens_are_refused(service: App) -> None:
    token = await customer_token(service.harness, "emily-johnson")
    assert service.harness.tokens is not None
    service.harness.tokens.expire(token)
    expired = await service.identify({}, Authorization=f"Bearer {token}")
    assert expired.status_code == 401
    assert "not active" in expired.json()["error"]["message"]
    unknown = await service.identify({}, Authorization="Bearer forged-token")
    assert unknown.status_code == 401
    api = Api(httpx.AsyncClient(), service.harness)
    try:
        client_token = (await api.headers())["Authorization"].removeprefix("Bearer ")
    finally:
        await api.http.aclose()
    shopperless = await service.identify({}, Authorization=f"Bearer {client_token}")
    assert shopperless.status_code == 401
    assert "no shopper" in shopperless.json()["error"]["message"]


async def test_guest_token_identifies_the_anonymous_session(service: App) -> None:
    token, anonymous_id = await anonymous_token(service.harness)
    answer = await service.identify(
        {"anonymous_id": "someone-else"}, Authorization=f"Bearer {token}"
    )
    body = answer.json()
    assert body["shopper"] == "guest"
    assert body["distinct_id"] == distinct_id(IDENTITY, Shopper(anonymous_id=anonymous_id))


async def test_storefront_pages_may_call_from_their_origin_only(service: App) -> None:
    preflight = await service.client.options(
        "/tidio/identify",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    other = await service.client.options(
        "/tidio/identify", headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_identity_is_off_until_configured(harness: Harness, tmp_path: Path) -> None:
    settings = tidio_settings(
        harness, tmp_path, link_keys=None, tidio_webhook_secrets=None, tidio_lyro_token=None
    )
    async with running(settings, harness) as app:
        assert (await app.identify({}, **{"X-Api-Key": API_KEY})).status_code == 404
        page = await app.client.get("/tidio/panel?t=x")
        assert page.status_code == 404
        assert (await app.client.post("/tidio/webhooks", content=b"{}")).status_code == 404
        assert (await app.client.post("/tidio/lyro/order-status", json={})).status_code == 404


# -- the contact panel and order links ---------------------------------------------------------


def sign(binding: Binding, *, ttl: float = 600, key: str = KEY_NEW, **clock: float) -> str:
    keys = LinkKeys(parse_keys(key), clock=(lambda: clock["at"]) if clock else time.time)
    return keys.sign(binding, ttl=ttl)


async def test_panel_shows_the_bound_shopper_and_ignores_other_parameters(service: App) -> None:
    demo = service.harness.demo
    anna = demo.customers["anna-schmidt"]
    james = demo.customers["james-taylor"]
    token = sign(Binding("panel", customer_id=anna.id, store="berlin"))
    page = await service.client.get(
        "/tidio/panel",
        params={
            "t": token,
            "customer_id": james.id,
            "external_id": james.id,
            "email": james.email,
            "order_id": demo.orders["UK-2001"].id,
        },
    )
    assert page.status_code == 200, page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    html = BeautifulSoup(page.text, "html.parser")
    customer = html.select_one("[data-testid=customer]")
    assert customer is not None and customer["data-customer-id"] == anna.id
    assert "DE-1001" in page.text and "UK-2001" not in page.text
    assert james.id not in page.text
    cart = html.select_one("[data-testid=cart]")
    assert cart is not None and cart["data-cart-id"] == demo.carts["anna-schmidt"]
    assert html.select("[data-testid=actions]") == []  # read-only: no agent actions
    rows = await service.audit("panel.view")
    mine = [r for r in rows if json.loads(r["detail"])["kid"] == "k2026"]
    assert mine and mine[-1]["customer_id"] == anna.id
    assert json.loads(mine[-1]["detail"])["link_id"]


async def test_order_link_shows_that_order(service: App) -> None:
    order = service.harness.demo.orders["UK-2001"]
    token = sign(Binding("order", order_id=order.id))
    page = await service.client.get(f"/links/order?t={token}")
    assert page.status_code == 200
    html = BeautifulSoup(page.text, "html.parser")
    assert html.select_one("[data-link-kind=order]") is not None
    assert "UK-2001" in page.text
    assert (await service.audit("order.view"))[-1]["order_id"] == order.id
    # A panel link is not an order link, and an order link is not a panel link.
    panel = sign(Binding("panel", order_id=order.id))
    assert (await service.client.get(f"/links/order?t={panel}")).status_code == 401
    assert (await service.client.get(f"/tidio/panel?t={token}")).status_code == 401


async def test_bad_links_get_a_clear_page_and_no_data(service: App) -> None:
    anna = service.harness.demo.customers["anna-schmidt"]
    good = sign(Binding("panel", customer_id=anna.id))
    expired = sign(Binding("panel", customer_id=anna.id), ttl=60, at=time.time() - 120)
    tampered = good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB")
    foreign = sign(Binding("panel", customer_id=anna.id), key="other:" + "z" * 40)
    for token, status in (
        (expired, 410),
        (tampered, 401),
        (foreign, 401),
        ("", 401),
        ("%%%", 401),
        ("a" * 3000, 401),
    ):
        page = await service.client.get("/tidio/panel", params={"t": token})
        assert page.status_code == status, token
        html = BeautifulSoup(page.text, "html.parser")
        assert html.select_one("[data-testid=link-error]") is not None
        assert anna.email not in page.text and anna.id not in page.text
        assert "DE-1001" not in page.text
        assert page.headers["referrer-policy"] == "no-referrer"


async def test_revoked_links_are_gone(service: App) -> None:
    anna = service.harness.demo.customers["anna-schmidt"]
    token = sign(Binding("panel", customer_id=anna.id))
    assert (await service.client.get(f"/tidio/panel?t={token}")).status_code == 200
    # An operator revokes it (as `commerce-context links revoke` does), on the same database.
    db = Database.from_url(service.settings.database_location)
    await db.open()
    try:
        link = LinkKeys(parse_keys(KEY_NEW)).verify(token, kind="panel")
        await Revocations(db).revoke(link)
    finally:
        await db.close()
    page = await service.client.get(f"/tidio/panel?t={token}")
    assert page.status_code == 410
    assert "revoked" in page.text
    assert "DE-1001" not in page.text


async def test_links_survive_key_rotation(harness: Harness, tmp_path: Path) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    old_link = sign(Binding("panel", customer_id=anna.id), key=KEY_OLD)
    rotated = tidio_settings(harness, tmp_path, link_keys=f"{KEY_NEW},{KEY_OLD}")
    async with running(rotated, harness) as app:
        assert (await app.client.get(f"/tidio/panel?t={old_link}")).status_code == 200
        fresh = (await app.identify({"customer_id": anna.id}, **{"X-Api-Key": API_KEY})).json()
        assert parse_qs(urlsplit(fresh["panel_url"]).query)["t"][0].startswith("k2026.")
    retired = tidio_settings(harness, tmp_path, link_keys=KEY_NEW)
    async with running(retired, harness) as app:
        assert (await app.client.get(f"/tidio/panel?t={old_link}")).status_code == 401
        new_link = parse_qs(urlsplit(fresh["panel_url"]).query)["t"][0]
        assert (await app.client.get(f"/tidio/panel?t={new_link}")).status_code == 200


async def new_anonymous_cart(harness: Harness, anonymous_id: str) -> str:
    async with httpx.AsyncClient() as http:
        api = Api(http, harness)
        cart = await api.post(
            "CartDraft",
            "/carts",
            {
                "currency": "EUR",
                "anonymousId": anonymous_id,
                "country": "DE",
                "store": {"typeId": "store", "key": "berlin"},
                "lineItems": [{"sku": "CAP-NAVY", "quantity": 2}],
            },
        )
    return str(cart["id"])


async def test_guest_panel_shows_the_sessions_cart_only(service: App) -> None:
    anonymous_id = f"anon-{uuid.uuid4().hex[:12]}"
    cart_id = await new_anonymous_cart(service.harness, anonymous_id)
    token = sign(Binding("panel", anonymous_id=anonymous_id))
    html = BeautifulSoup((await service.client.get(f"/tidio/panel?t={token}")).text, "html.parser")
    cart = html.select_one("[data-testid=cart]")
    assert cart is not None and cart["data-cart-id"] == cart_id
    assert html.select_one("[data-testid=customer]") is None
    # Another session sees no cart; a binding naming this cart with another owner neither.
    other = sign(Binding("panel", anonymous_id="anon-someone-else"))
    page = await service.client.get(f"/tidio/panel?t={other}")
    assert cart_id not in page.text
    anna = service.harness.demo.customers["anna-schmidt"]
    stolen = sign(Binding("panel", customer_id=anna.id, cart_id=cart_id))
    page = await service.client.get(f"/tidio/panel?t={stolen}")
    assert cart_id not in page.text
    assert service.harness.demo.carts["anna-schmidt"] in page.text  # her own active cart


def test_the_bound_cart_queries_are_valid_graphql() -> None:
    for binding in (
        Binding("panel", anonymous_id="anon-1"),
        Binding("panel", anonymous_id="anon-1", cart_id="cart-1", store="berlin"),
        Binding("panel", customer_id="cust-1", cart_id="cart-1"),
    ):
        read = bound_cart_read(binding)
        assert read is not None
        assert_valid_document(queries.compose([read]).query)
    assert bound_cart_read(Binding("panel", customer_id="cust-1")) is None


# -- webhooks --------------------------------------------------------------------------------------


def envelope(
    topic: str,
    contact_id: str,
    distinct: str | None,
    *,
    created_at: int,
    webhook_id: str | None = None,
) -> bytes:
    body = {
        "created_at": created_at,
        "project_public_key": "demo-public-key",
        "topic": topic,
        "version": 1,
        "webhook_id": webhook_id or str(uuid.uuid4()),
        "content": {
            "id": contact_id,
            "email": "x@example.com",
            "distinct_id": distinct,
            "properties": [],
        },
    }
    return json.dumps(body).encode()


def signed(body: bytes, *secrets: str, t: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if t is None else t
    parts = [f"t={stamp}"] + [f"s={sign_webhook(s, body, stamp)}" for s in secrets]
    return {"x-tidio-signature": ",".join(parts), "content-type": "application/json"}


def test_signature_recipe_is_hex_hmac_of_body_underscore_timestamp() -> None:
    import hashlib
    import hmac

    body = b'{"topic":"contact.created"}'
    wanted = hmac.new(b"secret", body + b"_1700000000", hashlib.sha256).hexdigest()
    assert sign_webhook("secret", body, 1700000000) == wanted
    header = f"t=1700000000,s={'0' * 64},s={wanted}"
    assert (
        verify_webhook(["other", "secret"], header, body, tolerance=60, now=1700000030)
        == 1700000000
    )
    with pytest.raises(Unauthorized, match="too old"):
        verify_webhook(["secret"], header, body, tolerance=60, now=1700000061)
    with pytest.raises(Unauthorized, match="does not match"):
        verify_webhook(["secret"], header, body + b" ", tolerance=60, now=1700000000)


async def contact_of(app: App, distinct: str, *, expect: str | None = None) -> str | None:
    db = Database.from_url(app.settings.database_location)
    await db.open()
    try:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            found = await Contacts(db).contact_id(distinct)
            if expect is None or found == expect or asyncio.get_running_loop().time() > deadline:
                return found
            await asyncio.sleep(0.05)
    finally:
        await db.close()


async def jobs_for(app: App, webhook_id: str) -> list[dict[str, Any]]:
    return await app.query(
        "SELECT id, state FROM jobs WHERE key = ?", (f"tidio:webhook:{webhook_id}",)
    )


async def test_contact_webhook_maps_distinct_id_to_contact(service: App) -> None:
    distinct = f"cc_{uuid.uuid4().hex}"
    contact = str(uuid.uuid4())
    hook = str(uuid.uuid4())
    body = envelope(
        "contact.created", contact, distinct, created_at=int(time.time()), webhook_id=hook
    )
    # One signature per active secret (Tidio rotates this way): the old one still matches.
    answer = await service.client.post(
        "/tidio/webhooks", content=body, headers=signed(body, "retired-secret", HOOK_OLD)
    )
    assert answer.status_code == 202, answer.text
    assert await contact_of(service, distinct, expect=contact) == contact
    again = await service.client.post(
        "/tidio/webhooks", content=body, headers=signed(body, HOOK_NEW)
    )
    assert again.status_code == 202
    assert again.json()["job"] == answer.json()["job"]
    assert len(await jobs_for(service, hook)) == 1


async def test_out_of_order_deliveries_end_in_the_newest_state(service: App) -> None:
    distinct = f"cc_{uuid.uuid4().hex}"
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    now = int(time.time())
    newer = envelope("contact.updated", second, distinct, created_at=now)
    older = envelope("contact.created", first, distinct, created_at=now - 30)
    r1 = await service.client.post(
        "/tidio/webhooks", content=newer, headers=signed(newer, HOOK_NEW)
    )
    assert r1.status_code == 202
    assert await contact_of(service, distinct, expect=second) == second
    r2 = await service.client.post(
        "/tidio/webhooks", content=older, headers=signed(older, HOOK_NEW)
    )
    assert r2.status_code == 202
    hook = json.loads(older)["webhook_id"]
    deadline = asyncio.get_running_loop().time() + 10
    while (await jobs_for(service, hook))[0]["state"] != "done":
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    assert await contact_of(service, distinct) == second


@pytest.mark.parametrize(
    "case", ["wrong_secret", "stale", "future", "no_header", "no_s", "bad_t", "changed_body"]
)
async def test_unsigned_or_stale_webhooks_are_refused(service: App, case: str) -> None:
    body = envelope("contact.created", str(uuid.uuid4()), "cc_x", created_at=int(time.time()))
    headers = signed(body, HOOK_NEW)
    if case == "wrong_secret":
        headers = signed(body, "not-our-secret")
    elif case == "stale":
        headers = signed(body, HOOK_NEW, t=int(time.time()) - 3600)
    elif case == "future":
        headers = signed(body, HOOK_NEW, t=int(time.time()) + 3600)
    elif case == "no_header":
        headers = {"content-type": "application/json"}
    elif case == "no_s":
        headers["x-tidio-signature"] = f"t={int(time.time())}"
    elif case == "bad_t":
        headers["x-tidio-signature"] = headers["x-tidio-signature"].replace("t=", "t=x")
    else:
        body = body.replace(b"cc_x", b"cc_y")
    answer = await service.client.post("/tidio/webhooks", content=body, headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b"[]", 400),
        (json.dumps({"webhook_id": "w", "topic": "contact.created"}).encode(), 400),
        (
            json.dumps(
                {
                    "webhook_id": "w",
                    "topic": "contact.created",
                    "created_at": 1,
                    "content": {"id": "bad id!"},
                }
            ).encode(),
            400,
        ),
    ],
)
async def test_malformed_webhooks_are_400(service: App, body: bytes, status: int) -> None:
    answer = await service.client.post(
        "/tidio/webhooks", content=body, headers=signed(body, HOOK_NEW)
    )
    assert answer.status_code == status


async def test_other_topics_and_anonymous_contacts_are_acknowledged(service: App) -> None:
    solved = json.dumps(
        {
            "webhook_id": str(uuid.uuid4()),
            "topic": "conversation.solved_by_operator",
            "created_at": int(time.time()),
            "content": {},
        }
    ).encode()
    answer = await service.client.post(
        "/tidio/webhooks", content=solved, headers=signed(solved, HOOK_NEW)
    )
    assert (
        answer.status_code == 202 and answer.json()["ignored"] == "conversation.solved_by_operator"
    )
    anonymous = envelope("contact.created", str(uuid.uuid4()), None, created_at=int(time.time()))
    answer = await service.client.post(
        "/tidio/webhooks", content=anonymous, headers=signed(anonymous, HOOK_NEW)
    )
    assert answer.status_code == 202 and answer.json()["ignored"] == "no distinct_id"


# -- Lyro ------------------------------------------------------------------------------------------


async def lyro(app: App, body: dict[str, Any], token: str = LYRO) -> httpx.Response:
    return await app.client.post(
        "/tidio/lyro/order-status", json=body, headers={"Authorization": f"Bearer {token}"}
    )


async def test_lyro_answers_state_shipment_and_tracking_when_both_match(service: App) -> None:
    order = service.harness.demo.orders["DE-1002"]
    answer = await lyro(
        service,
        {"order_number": "#DE-1002", "email": order.email.upper(), "visitor": "visitor-match"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["found"] is True
    assert body["order_number"] == "DE-1002"
    assert body["state"] and body["shipment_state"]
    assert {t["tracking_id"] for t in body["tracking"]} == set(order.tracking_ids)
    assert all(t["url"].startswith("https://www.dhl.de/") for t in body["tracking"])
    assert order.tracking_ids[0] in body["answer"]
    # Masked: nothing about the shopper beyond the order's progress.
    assert order.email not in answer.text.lower() and "Schmidt" not in answer.text
    rows = await service.audit("lyro.order_status")
    assert rows[-1]["outcome"] == "answered" and rows[-1]["order_id"] == order.id


async def test_wrong_email_and_unknown_number_are_indistinguishable(service: App) -> None:
    order = service.harness.demo.orders["UK-2001"]
    wrong_email = await lyro(
        service, {"order_number": "UK-2001", "email": "someone@example.com", "visitor": "visitor-a"}
    )
    unknown = await lyro(
        service, {"order_number": "UK-9999", "email": order.email, "visitor": "visitor-b"}
    )
    assert wrong_email.status_code == unknown.status_code == 200
    assert wrong_email.content == unknown.content
    assert wrong_email.json() == {"found": False, "answer": NOT_FOUND_ANSWER}
    assert set(wrong_email.headers) - {"x-correlation-id"} == set(unknown.headers) - {
        "x-correlation-id"
    }
    rows = await service.audit("lyro.order_status")
    assert [r["outcome"] for r in rows[-2:]] == ["not_matched", "not_matched"]
    assert rows[-2]["order_id"] is None  # the wrong email learns (and logs) no order id


async def test_lyro_is_rate_limited_per_visitor_and_per_order(service: App) -> None:
    limit = service.settings.tidio_lyro_per_visitor
    visitor = f"visitor-{uuid.uuid4().hex[:8]}"
    numbers = [f"XX-{i}" for i in range(limit + 1)]
    for number in numbers[:limit]:
        assert (
            await lyro(
                service, {"order_number": number, "email": "a@example.com", "visitor": visitor}
            )
        ).status_code == 200
    refused = await lyro(
        service, {"order_number": numbers[-1], "email": "a@example.com", "visitor": visitor}
    )
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    # Guessing emails for one order number is bounded too, whoever asks.
    for i in range(limit):
        await lyro(
            service,
            {
                "order_number": "DE-1004",
                "email": f"guess{i}@example.com",
                "visitor": f"v-{uuid.uuid4().hex}",
            },
        )
    guessed = await lyro(
        service,
        {
            "order_number": "DE-1004",
            "email": "sam.lee@example.org",
            "visitor": f"v-{uuid.uuid4().hex}",
        },
    )
    assert guessed.status_code == 429


async def test_lyro_is_rate_limited_per_client_address(harness: Harness, tmp_path: Path) -> None:
    settings = tidio_settings(harness, tmp_path, tidio_lyro_per_ip=2)
    async with running(settings, harness) as app:
        for i in range(2):
            ok = await lyro(
                app, {"order_number": f"IP-{i}", "email": "a@example.com", "visitor": f"v{i}"}
            )
            assert ok.status_code == 200
        limited = await lyro(
            app, {"order_number": "IP-3", "email": "a@example.com", "visitor": "v3"}
        )
        assert limited.status_code == 429


@pytest.mark.parametrize(
    ("body", "token", "status"),
    [
        ({"order_number": "DE-1001", "email": "anna.schmidt@example.com"}, "wrong-token", 401),
        ({"order_number": "DE 1001; drop", "email": "a@example.com"}, LYRO, 400),
        ({"order_number": "DE-1001", "email": "not-an-email"}, LYRO, 400),
        ({"order_number": "DE-1001"}, LYRO, 400),
        ({"order_number": "DE-1001", "email": "a@example.com", "visitor": "v" * 200}, LYRO, 400),
    ],
)
async def test_lyro_refuses_bad_requests(
    service: App, body: dict[str, Any], token: str, status: int
) -> None:
    answer = await lyro(service, body, token)
    assert answer.status_code == status
    assert "anna" not in answer.text.lower()


async def test_contact_mapping_keeps_the_newest_on_both_backends(database: Database) -> None:
    contacts = Contacts(database)
    assert await contacts.contact_id("cc_a") is None
    assert await contacts.remember("cc_a", "contact-2", at=200.0) is True
    assert await contacts.remember("cc_a", "contact-1", at=100.0) is False  # older: ignored
    assert await contacts.contact_id("cc_a") == "contact-2"
    assert await contacts.remember("cc_a", "contact-3", at=200.0) is True  # same time: applied
    assert await contacts.remember("cc_b", "contact-3", at=50.0) is True
    assert await contacts.contact_id("cc_a") == "contact-3"
    assert await contacts.contact_id("cc_b") == "contact-3"


def test_the_merchants_guide_names_the_property_and_every_tidio_setting() -> None:
    guide = (Path(__file__).resolve().parent.parent / "docs/tidio.md").read_text()
    assert f"`{PANEL_PROPERTY}`" in guide
    for name in _INBOUND_SETTINGS:
        assert name in Settings.model_fields
        assert f"CC_{name.upper()}" in guide, name
    for path in ("/tidio/identify", "/tidio/panel", "/tidio/webhooks", "/tidio/lyro/order-status"):
        assert path in guide


_INBOUND_SETTINGS = (
    "link_keys", "link_ttl", "public_url", "tidio_identity_secret", "tidio_storefront_api_key",
    "tidio_allowed_origins", "tidio_webhook_secrets", "tidio_webhook_tolerance",
    "tidio_lyro_token", "tidio_lyro_per_visitor", "tidio_lyro_per_ip", "tidio_lyro_window",
)  # fmt: skip


async def test_agents_mint_order_links_from_the_sidebar(harness: Harness, tmp_path: Path) -> None:
    from commerce_context.demo import DemoZendesk
    from tests.service import service as zendesk_service
    from tests.service import service_settings

    zendesk = DemoZendesk.generate()
    settings = service_settings(
        harness, tmp_path, zendesk, link_keys=KEY_NEW, public_url="https://cc.example.com"
    )
    order = harness.demo.orders["US-3001"]
    async with zendesk_service(settings, harness, zendesk) as svc:
        made = await svc.client.post(
            "/links/order", json={"order_number": "US-3001", "ttl": 3600}, headers=svc.bearer()
        )
        assert made.status_code == 200, made.text
        url = made.json()["url"]
        assert url.startswith("https://cc.example.com/links/order?t=k2026.")
        page = await svc.client.get(url.removeprefix("https://cc.example.com"))
        assert page.status_code == 200 and "US-3001" in page.text
        assert order.id in page.text
        for body, headers, status in (
            ({"order_id": order.id}, {}, 401),  # no agent session
            ({"order_id": order.id}, {"Authorization": "Bearer forged"}, 401),
            ({}, svc.bearer(), 400),
            ({"order_id": order.id, "ttl": 10**9}, svc.bearer(), 400),
        ):
            refused = await svc.client.post("/links/order", json=body, headers=headers)
            assert refused.status_code == status, body
        db = Database.from_url(settings.database_location)
        await db.open()
        try:
            rows = await db.fetchall(
                "SELECT agent_id, order_number FROM audit WHERE action = 'order_link.create'"
            )
        finally:
            await db.close()
        assert [dict(r) for r in rows] == [{"agent_id": "9001", "order_number": "US-3001"}]


async def test_contact_webhook_writes_the_panel_link_into_tidio(
    harness: Harness, tmp_path: Path
) -> None:
    from commerce_context.emulator.tidio import serve_fake_tidio

    async with serve_fake_tidio() as (fake, fake_url):
        fake.define(PANEL_PROPERTY, "url")
        contact = fake.add_contact(first_name="Anna")
        settings = tidio_settings(
            harness,
            tmp_path,
            tidio_client_id=fake.client_id,
            tidio_client_secret=fake.client_secret,
            tidio_api_url=fake_url,
        )
        anna = harness.demo.customers["anna-schmidt"]
        async with running(settings, harness) as app:
            body = (await app.identify({"customer_id": anna.id}, **{"X-Api-Key": API_KEY})).json()
            hook = envelope(
                "contact.created", contact, body["distinct_id"], created_at=int(time.time())
            )
            answer = await app.client.post(
                "/tidio/webhooks", content=hook, headers=signed(hook, HOOK_NEW)
            )
            assert answer.status_code == 202
            deadline = asyncio.get_running_loop().time() + 15
            while fake.property(contact, PANEL_PROPERTY) is None:
                assert asyncio.get_running_loop().time() < deadline, "no panel link written"
                await asyncio.sleep(0.05)
            url = str(fake.property(contact, PANEL_PROPERTY))
            assert url.startswith("https://cc.example.com/tidio/panel?t=k2026.")
            page = await app.client.get(url.removeprefix("https://cc.example.com"))
            assert f'data-customer-id="{anna.id}"' in page.text
            # The shopper comes back: the link is renewed at most once a third of its lifetime.
            await app.identify({"customer_id": anna.id}, **{"X-Api-Key": API_KEY})
            jobs = await app.query("SELECT state FROM jobs WHERE kind = 'tidio.panel_link'")
            assert jobs == [{"state": "done"}]
            assert fake.count("PATCH", f"/contacts/{contact}") == 1


async def test_browser_identify_calls_are_limited_per_address(
    harness: Harness, tmp_path: Path
) -> None:
    settings = tidio_settings(harness, tmp_path, tidio_identify_per_ip=2)
    async with running(settings, harness) as app:
        for _ in range(2):
            answer = await app.identify({}, Authorization="Bearer not-active")
            assert answer.status_code == 401
        limited = await app.identify({}, Authorization="Bearer not-active")
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        # The storefront's server is not counted.
        anna = harness.demo.customers["anna-schmidt"]
        served = await app.identify({"customer_id": anna.id}, **{"X-Api-Key": API_KEY})
        assert served.status_code == 200


async def test_visitor_bindings_on_both_backends(database: Database) -> None:
    visitors = Visitors(database)
    assert await visitors.binding("cc_v") is None
    await visitors.remember("cc_v", Binding("panel", anonymous_id="anon-1", cart_id="cart-1"))
    await visitors.remember("cc_v", Binding("panel", customer_id="cust-1", store="berlin"))
    assert await visitors.binding("cc_v") == Binding(
        "panel", customer_id="cust-1", store="berlin"
    )  # the last identify wins, fields it did not name are cleared
