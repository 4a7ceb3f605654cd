"""Resolution against the emulator: every order of a customer found by email whatever the case
of the addresses (read by customer id as well), the spellings guest orders are found by, and the
active cart joined to the ticket view's first request and cached like every other entity.

Upstream requests are counted at the HTTP layer. Each test writes its own shoppers (unique
addresses), so the seeded demo data other tests rely on is never changed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bs4 import BeautifulSoup

from commerce_context.app import create_app
from commerce_context.cache import Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.policy import Policy
from commerce_context.resolution import Resolution, TicketContext, resolve
from commerce_context.settings import Settings
from commerce_context.stores import MemoryStore
from tests.asgi import app_client
from tests.conftest import Recorder, rest_get

pytestmark = pytest.mark.emulator

FIELDS = ("supportStatus", "internalNote")


class Rest:
    """Writes test data through the emulator's REST API (the bridge proxies it)."""

    def __init__(self, http: httpx.AsyncClient, base: str, token: str) -> None:
        self.http, self.base, self.headers = http, base, {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post(self.base + path, json=body, headers=self.headers)
        assert response.status_code in (200, 201), response.text
        result: dict[str, Any] = response.json()
        return result

    async def customer(self, email: str, **draft: Any) -> dict[str, Any]:
        created = await self.post("/customers", {"email": email, "firstName": "Test", **draft})
        customer: dict[str, Any] = created["customer"]
        return customer

    async def order(self, number: str, email: str, customer_id: str | None, store: str) -> None:
        await asyncio.sleep(0.005)  # distinct createdAt milliseconds: "newest first" is defined
        draft: dict[str, Any] = {
            "orderNumber": number,
            "customerEmail": email,
            "totalPrice": {"currencyCode": "EUR", "centAmount": 1999},
            "lineItems": [],
            "store": {"typeId": "store", "key": store},
        }
        if customer_id is not None:
            draft["customerId"] = customer_id
        await self.post("/orders/import", draft)


class FailingFollowUps(httpx.AsyncHTTPTransport):
    """Forwards everything but the follow-up requests, which fail as in an outage."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if b"TicketFollowUp" in request.content:
            raise httpx.ConnectError("follow-ups are down", request=request)
        return await super().handle_async_request(request)


class Views:
    """Ticket views through one cache, counting the requests that leave the process."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.recorder = Recorder()
        self.http = httpx.AsyncClient(event_hooks={"request": [self.recorder]}, transport=transport)
        client = CommercetoolsClient(settings, self.http)
        namespace = uuid.uuid4().hex
        self.reader = Reader(client, Policy(), MemoryStore(16 * 1024 * 1024), namespace=namespace)

    async def view(self, store: str | None = None, **context: Any) -> Resolution:
        self.recorder.requests.clear()
        return await resolve(
            TicketContext.parse(context),
            reader=self.reader,
            store=store,
            custom_fields=FIELDS,
            stores_configured=True,
        )

    @property
    def calls(self) -> int:
        return len(self.recorder.api_calls())


@pytest_asyncio.fixture(loop_scope="session")
async def rest(harness: Harness, ct_settings: Settings) -> AsyncIterator[Rest]:
    async with httpx.AsyncClient() as http:
        token = await CommercetoolsClient(ct_settings, http).access_token()
        yield Rest(http, f"{harness.api_url}/{harness.project_key}", token)


@pytest_asyncio.fixture(loop_scope="session")
async def views(ct_settings: Settings) -> AsyncIterator[Views]:
    made = Views(ct_settings)
    yield made
    await made.http.aclose()


def numbers(orders: list[dict[str, Any]]) -> list[str]:
    return [str(o["orderNumber"]) for o in orders]


async def test_a_customer_found_by_email_sees_all_orders_whatever_the_case(
    rest: Rest, views: Views
) -> None:
    tag = uuid.uuid4().hex[:8]
    stored = f"Mixed.Case.{tag}@Example.com"
    customer = await rest.customer(stored)
    # Orders keep the address as typed at checkout: here in two other letter cases.
    await rest.order(f"MC-{tag}-1", stored, customer["id"], "berlin")
    await rest.order(f"MC-{tag}-2", stored.upper(), customer["id"], "berlin")
    typed = f"mixed.CASE.{tag}@example.COM"  # the ticket has yet another spelling

    found = await views.view(store="berlin", emails=[typed], brand_id=1001)

    assert found.customer is not None and found.customer["id"] == customer["id"]
    assert found.matched_by == "email" and found.chosen_reason == "only_account"
    assert numbers(found.orders) == [f"MC-{tag}-2", f"MC-{tag}-1"]
    assert found.order is not None and found.order["orderNumber"] == f"MC-{tag}-2"
    assert found.order.get("lineItems") == []  # the detail views, not only the summary
    # The customer found by email: their orders read by customer id, in a follow-up.
    assert views.calls == 2
    warm = await views.view(store="berlin", emails=[typed], brand_id=1001)
    assert views.calls == 0
    assert numbers(warm.orders) == numbers(found.orders)


async def test_orders_under_a_third_spelling_show_beside_those_found_by_address(
    rest: Rest, views: Views
) -> None:
    tag = uuid.uuid4().hex[:8]
    stored = f"Third.Spelling.{tag}@Example.com"
    customer = await rest.customer(stored)
    typed = stored.lower()
    # One order under the ticket's spelling (found by address), one under another (by id only).
    await rest.order(f"TS-{tag}-1", typed, customer["id"], "berlin")
    await rest.order(f"TS-{tag}-2", stored.upper(), customer["id"], "berlin")
    await rest.order(f"TS-{tag}-3", typed, None, "berlin")  # a guest order, same address

    found = await views.view(store="berlin", emails=[typed], brand_id=1001)
    assert numbers(found.orders) == [f"TS-{tag}-3", f"TS-{tag}-2", f"TS-{tag}-1"]
    assert found.order is not None and found.order["orderNumber"] == f"TS-{tag}-3"
    assert views.calls == 2  # the first request, then the customer's orders by id
    # The addresses now name their customer: a view that reads again (Refresh, or entries past
    # their time) reads the orders by id in its one request.
    again = await views.view(store="berlin", emails=[typed], brand_id=1001, refresh=True)
    assert views.calls == 1
    assert numbers(again.orders) == numbers(found.orders)


async def test_a_stale_owner_hint_is_not_trusted(
    rest: Rest, views: Views, ct_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    address = f"moved.{tag}@example.com"
    key = ((address,), "berlin")
    # Store-scoped accounts: one address may have one in each store.
    made = await rest.post("/in-store/key=berlin/customers", {"email": address})
    first = made["customer"]
    await rest.order(f"SH-{tag}-1", address.upper(), first["id"], "berlin")
    await views.view(store="berlin", emails=[address], brand_id=1001)
    assert views.reader.owners.get(key) == first["id"]
    # Since then, a second account of this address has the more recent order: it is chosen.
    # (The emulator keeps emails unique project-wide: a placeholder, then the shared address.)
    made = await rest.post("/in-store/key=london/customers", {"email": "x" + address})
    second = await rest.post(
        f"/customers/{made['customer']['id']}",
        {
            "version": made["customer"]["version"],
            "actions": [{"action": "changeEmail", "email": address.upper()}],
        },
    )
    # Another cache (say, entries evicted) that still holds the old hint.
    fresh = Views(ct_settings)
    fresh.reader.owners.put(key, first["id"])
    try:
        await rest.order(f"SH-{tag}-2", address, second["id"], "berlin")
        found = await fresh.view(store="berlin", emails=[address], brand_id=1001)
        calls = [r.content for r in fresh.recorder.api_calls()]
    finally:
        await fresh.http.aclose()
    assert found.customer is not None and found.customer["id"] == second["id"]
    assert found.chosen_reason == "recent_order"
    # The first account's orders (read by id on the hint) are not shown as the second's.
    assert numbers(found.orders) == [f"SH-{tag}-2"]
    assert found.orders_elsewhere == 0
    # The hint's reads, then the chosen customer's by id.
    assert len(calls) == 2 and first["id"].encode() in calls[0]
    assert second["id"].encode() in calls[1] and b"TicketFollowUp" in calls[1]
    assert fresh.reader.owners.get(key) == second["id"]


async def test_a_failed_follow_up_shows_the_first_answer_and_says_so(
    rest: Rest, ct_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    stored = f"Follow.Up.{tag}@Example.com"
    customer = await rest.customer(stored)
    await rest.order(f"FU-{tag}-1", stored, customer["id"], "berlin")
    await rest.order(f"FU-{tag}-2", stored.lower(), None, "berlin")  # a guest order, same address
    settings = ct_settings.model_copy(update={"ct_max_retries": 0})
    views = Views(settings, FailingFollowUps())
    try:
        found = await views.view(store="berlin", emails=[stored.lower()], brand_id=1001)
    finally:
        await views.http.aclose()
    assert views.calls == 2  # the first request, then the follow-up that failed
    assert found.customer is not None and found.customer["id"] == customer["id"]
    assert numbers(found.orders) == [f"FU-{tag}-2"]  # what the first answer had
    assert [n.code for n in found.notes] == ["incomplete"]
    assert found.fingerprint is None  # this render is never reused


async def test_guest_orders_are_found_by_the_typed_and_the_lowercase_spelling(
    rest: Rest, views: Views
) -> None:
    tag = uuid.uuid4().hex[:8]
    lower = f"guest.{tag}@example.com"
    await rest.order(f"GL-{tag}", lower, None, "berlin")
    await rest.order(f"GM-{tag}", f"Guest.{tag}@Example.com", None, "berlin")
    await rest.order(f"GU-{tag}", lower.upper(), None, "berlin")

    shouted = await views.view(emails=[lower.upper()])
    assert views.calls == 1
    assert shouted.matched_by == "guest_email" and shouted.customer is None
    # As typed (upper case) and in lower case; the mixed-case spelling cannot be queried.
    assert sorted(numbers(shouted.orders)) == [f"GL-{tag}", f"GU-{tag}"]
    mixed = await views.view(emails=[f"Guest.{tag}@Example.com"])
    assert sorted(numbers(mixed.orders)) == [f"GL-{tag}", f"GM-{tag}"]


async def test_the_active_cart_joins_the_single_request(
    harness: Harness, views: Views, ct_settings: Settings
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    cart_id = harness.demo.carts["anna-schmidt"]
    # The cart as commercetools holds it now (the storefront's browser test may have added to
    # the demo shopper's cart earlier in the session).
    held = await rest_get(harness, ct_settings, f"/carts/{cart_id}")
    found = await views.view(store="berlin", emails=[anna.email.upper()], brand_id=1001)
    # The cart comes with the first request (the second reads her orders by customer id).
    first, follow_up = views.recorder.api_calls()
    assert b"ek_where" in first.content and b'"operationName":"TicketView"' in first.content
    assert b"TicketFollowUp" in follow_up.content
    assert found.cart is not None and found.cart["id"] == cart_id
    assert found.cart["totalLineItemQuantity"] == sum(li["quantity"] for li in held["lineItems"])
    assert found.cart["totalLineItemQuantity"] >= 3  # the seed's sneakers and two pairs of socks
    assert found.cart["storeRef"] == {"key": "berlin"}
    assert found.cart["totalPrice"] == {
        "centAmount": held["totalPrice"]["centAmount"],
        "currencyCode": "EUR",
        "fractionDigits": 2,  # the currency's, as the real API has it (the bridge corrects it)
    }
    skus = {li["variant"]["sku"]: li["quantity"] for li in found.cart["lineItems"]}
    assert skus == {li["variant"]["sku"]: li["quantity"] for li in held["lineItems"]}
    assert skus["SNEAKER-WHT-42"] >= 1 and skus["SOCKS-3PK"] >= 2
    assert found.cart["lastModifiedAt"]
    assert "customerEmail" not in found.cart or "***" in str(found.cart["customerEmail"])
    # Warm: from the cache, cart included.
    warm = await views.view(store="berlin", emails=[anna.email.upper()], brand_id=1001)
    assert views.calls == 0 and warm.cart == found.cart


async def test_the_cart_is_store_scoped(harness: Harness, views: Views) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    elsewhere = await views.view(store="london", emails=[anna.email], brand_id=1002)
    assert views.calls == 2  # her orders and cart by id too: none in this store either
    assert elsewhere.customer is not None and elsewhere.cart is None
    james = harness.demo.customers["james-taylor"]
    by_id = await views.view(store="london", external_id=james.id, brand_id=1002)
    assert views.calls == 1
    assert by_id.cart is not None and by_id.cart["id"] == harness.demo.carts["james-taylor"]
    unscoped = await views.view(store=None, external_id=james.id)
    assert unscoped.cart is not None and unscoped.cart["id"] == harness.demo.carts["james-taylor"]


async def test_a_changed_cart_is_refetched_by_the_delta_cache(
    rest: Rest, views: Views, ct_settings: Settings
) -> None:
    tag = uuid.uuid4().hex[:8]
    customer = await rest.customer(
        f"cart.{tag}@example.com", stores=[{"typeId": "store", "key": "berlin"}]
    )
    cart = await rest.post(
        "/carts",
        {
            "currency": "EUR",
            "customerId": customer["id"],
            "customerEmail": f"cart.{tag}@example.com",
            "store": {"typeId": "store", "key": "berlin"},
            "country": "DE",
            "locale": "de-DE",
            "origin": "Customer",
            "lineItems": [{"sku": "SOCKS-3PK", "quantity": 1}],
        },
    )
    first = await views.view(store="berlin", external_id=customer["id"], brand_id=1001)
    assert views.calls == 1
    assert first.cart is not None and first.cart["locale"] == "de-DE"
    await rest.post(
        f"/carts/{cart['id']}",
        {"version": cart["version"], "actions": [{"action": "setLocale", "locale": "en-GB"}]},
    )
    changed = await views.view(store="berlin", external_id=customer["id"], refresh=True)
    # The versions, then exactly the changed cart by id.
    assert views.calls == 2
    assert changed.cart is not None and changed.cart["locale"] == "en-GB"
    assert changed.cart["version"] > first.cart["version"]


# -- in the sidebar: the reveal of another store's order, an unmapped brand -----------------------


async def panels(harness: Harness, caplog: pytest.LogCaptureFixture, **context: Any) -> str:
    zendesk = DemoZendesk.generate()
    settings = demo_settings(harness, zendesk, ct_backoff_base=0.01, ct_backoff_max=0.1)
    caplog.set_level(logging.INFO, logger="commerce_context.sidebar")
    async with app_client(create_app(settings), raise_errors=True) as client:
        page = await client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc-123",
            data={"token": zendesk.token()},
        )
        app = BeautifulSoup(page.text, "html.parser").select_one("#app")
        assert app is not None
        response = await client.post(
            "/zendesk/panels",
            json=context,
            headers={"Authorization": f"Bearer {app['data-session']}"},
        )
    assert response.status_code == 200, response.text
    return response.text


async def test_revealing_another_stores_order_is_logged_with_the_agent(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    guest = harness.demo.guest_email
    hidden = harness.demo.orders["US-3003"]
    listed = await panels(harness, caplog, emails=[guest], brand_id=1001, ticket_id=42)
    assert f'data-order-id="{hidden.id}"' in listed  # offered to show, not listed
    assert "order revealed" not in caplog.text
    shown = await panels(
        harness, caplog, emails=[guest], brand_id=1001, ticket_id=42, order_id=hidden.id
    )
    assert 'data-order-number="US-3003"' in shown
    reveals = [r.getMessage() for r in caplog.records if "order revealed" in r.getMessage()]
    assert reveals == ["order revealed: agent demo-agent ticket 42 order US-3003 store newyork"]
    assert guest not in caplog.text
    # An order of the brand's own store chosen in the panel is no reveal.
    caplog.clear()
    own = harness.demo.orders["DE-1004"]
    await panels(harness, caplog, emails=[guest], brand_id=1001, ticket_id=42, order_id=own.id)
    assert "order revealed" not in caplog.text


async def test_an_unmapped_brand_sees_all_stores_with_a_note(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    page = await panels(harness, caplog, emails=[harness.demo.guest_email], brand_id=4242)
    assert "Zendesk brand 4242 is not mapped to a store" in page
    numbers = {
        str(a.get_text()) for a in BeautifulSoup(page, "html.parser").select("a[data-order-id]")
    }
    assert numbers == set(harness.demo.guest_order_numbers)


async def test_a_warm_resolution_is_reused_per_ticket_and_never_shared_mutably(
    harness: Harness, views: Views
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    await views.view(store="berlin", emails=[anna.email], brand_id=1001, ticket_id=6)  # cold
    warm = await views.view(store="berlin", emails=[anna.email], brand_id=1001, ticket_id=7)
    again = await views.view(store="berlin", emails=[anna.email], brand_id=1001, ticket_id=8)
    assert views.calls == 0
    assert (warm.context.ticket_id, again.context.ticket_id) == (7, 8)
    assert again.customer == warm.customer and again.orders == warm.orders
    again.note("incomplete")  # what one caller adds is not what the next one reads
    later = await views.view(store="berlin", emails=[anna.email], brand_id=1001, ticket_id=9)
    assert [n.code for n in later.notes] == [n.code for n in warm.notes]
    # Other keys resolve anew: an unmapped brand (no store) gets its note.
    unmapped = await views.view(store=None, emails=[anna.email], brand_id=4242, ticket_id=7)
    assert "no_store_mapping" in [n.code for n in unmapped.notes]
    assert "no_store_mapping" not in [n.code for n in warm.notes]
