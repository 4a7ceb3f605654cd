"""Cart and order context to Tidio contact properties (tidio_sync.py): commercetools events ->
jobs -> the emulator read -> batched, coalesced PATCH /contacts/batch to the fake Tidio over real
HTTP; the engine's rate limit and pause; a refused batch split to isolate the bad contact."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio

from commerce_context.audit import Audit
from commerce_context.database import Database
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.emulator.tidio import FakeTidio, serve_fake_tidio
from commerce_context.events import Event
from commerce_context.handlers import HANDLERS
from commerce_context.jobs import Job, Queue, parse_rate
from commerce_context.queries import compose, order_by_id
from commerce_context.settings import Settings
from commerce_context.tidio import Contacts, Shopper, distinct_id
from commerce_context.tidio_sync import (
    CART_IDLE_KIND,
    CART_NOTIFICATIONS,
    PROPERTIES,
    PUSH_KIND,
    TIDIO_CART,
    TIDIO_ORDER,
    cart_idle,
    enqueue_for_events,
    enqueue_order,
)
from commerce_context.worker import Services
from tests.fakes import run_until_idle, sync_services
from tests.orders import Api
from tests.schema import assert_valid_document

pytestmark = pytest.mark.emulator

CLIENT_ID, CLIENT_SECRET = "ci_sync0test", "cs_sync0test0secret"
IDENTITY = "i" * 40
PUBLIC_URL = "https://cc.example.com"


@dataclass
class Sync:
    settings: Settings
    fake: FakeTidio
    queue: Queue
    audit: Audit
    services: Services
    contacts: Contacts
    api: Api

    async def run_until_idle(self) -> None:
        # Jobs due later than 10 s (the abandoned-cart checks wait much longer) do not count.
        await run_until_idle(self.queue, HANDLERS, self.services.context, rounds=1500)

    def distinct(self, customer_id: str) -> str:
        return distinct_id(IDENTITY, Shopper(customer_id=customer_id))

    async def contact_for(self, customer_id: str, *, mapped: bool = True, **fields: Any) -> str:
        """A Tidio contact for the customer, known to us through the contact webhook."""
        contact_id = self.fake.add_contact(
            distinct_id=self.distinct(customer_id) if mapped else None, **fields
        )
        if mapped:
            await self.contacts.remember(self.distinct(customer_id), contact_id, at=time.time())
        return contact_id

    async def jobs(self, kind: str, state: str) -> list[Job]:
        return await self.queue.list(state=state, kind=kind)

    async def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        where = quote(f'customerId = "{customer_id}"')
        body = await self.api.get(f"/orders?where={where}&limit=500")
        # Newest first (the emulator's REST API ignores sort; the bridge's GraphQL does not).
        return sorted(body["results"], key=lambda o: (o["createdAt"], o["id"]), reverse=True)


@pytest_asyncio.fixture(loop_scope="session")
async def sync(harness: Harness, tmp_path: Path) -> AsyncIterator[Sync]:
    fake = FakeTidio(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, limit_per_minute=1000)
    for name, kind in PROPERTIES.items():
        if name != "cc_cart_lines":  # one not created in Tidio: dropped, never an error
            fake.define(name, kind)
    async with serve_fake_tidio(fake) as (_, url):
        settings = demo_settings(
            harness,
            tidio_api_url=url,
            tidio_client_id=CLIENT_ID,
            tidio_client_secret=CLIENT_SECRET,
            tidio_identity_secret=IDENTITY,
            tidio_batch_window=0.2,
            tidio_fallback_backoff=0.3,
            tidio_cart_lines=True,
            link_keys="k1:" + "k" * 40,
            public_url=PUBLIC_URL,
        )
        db = Database.from_url(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
        await db.open()
        async with httpx.AsyncClient(timeout=10) as http:
            queue = Queue(db, max_attempts=5, limits={"tidio": parse_rate("600/min")})
            services = sync_services(settings, db, http, queue)
            yield Sync(
                settings, fake, queue, services.audit, services, Contacts(db), Api(http, harness)
            )
        await db.close()


def test_the_sync_reads_are_valid_against_the_official_schema() -> None:
    from commerce_context.queries import by_ids

    assert_valid_document(compose([order_by_id("o", [TIDIO_ORDER])]).query)
    assert_valid_document(compose([by_ids("carts", "Cart", ["c"], [TIDIO_CART], key="c")]).query)


async def test_order_events_become_the_contact_properties(sync: Sync, harness: Harness) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    contact = await sync.contact_for(anna.id)
    orders = await sync.orders_of(anna.id)
    newest = orders[0]
    events = [Event("m1", "OrderShipmentStateChanged", "order", newest["id"], newest["version"])]
    assert await enqueue_for_events(sync.queue, sync.settings, events) == 1
    await sync.run_until_idle()
    prop = lambda name: sync.fake.property(contact, name)  # noqa: E731
    assert prop("cc_last_order") == newest["orderNumber"]
    assert prop("cc_last_order_state") == newest["orderState"]
    counted = [o for o in orders if o["orderState"] != "Cancelled"]
    assert prop("cc_order_count") == str(len(counted))
    currency = newest["totalPrice"]["currencyCode"]
    spent = sum(
        o["totalPrice"]["centAmount"]
        for o in counted
        if o["totalPrice"]["currencyCode"] == currency
    )
    digits = newest["totalPrice"]["fractionDigits"]
    assert prop("cc_total_spent") == f"{spent / 10**digits:.{digits}f}"
    assert prop("cc_store") == newest["store"]["key"]
    assert prop("cc_currency") == currency
    assert prop("cc_locale") == sync.settings.mappings.stores[newest["store"]["key"]].locale
    assert (prop("cc_panel_url") or "").startswith(f"{PUBLIC_URL}/tidio/panel?t=")
    (entry,) = await sync.audit.query(customer=anna.id)
    assert entry.outcome == "updated" and entry.detail["contact_id"] == contact


async def test_the_tracking_link_of_the_newest_parcel(sync: Sync, harness: Harness) -> None:
    tracked = [o for o in harness.demo.orders.values() if o.tracking_ids and o.customer_key]
    order = tracked[-1]
    customer = harness.demo.customers[str(order.customer_key)]
    contact = await sync.contact_for(customer.id)
    newest = (await sync.orders_of(customer.id))[0]
    await enqueue_order(sync.queue, order.id, version=1)
    await sync.run_until_idle()
    parcels = [
        p
        for d in (newest.get("shippingInfo") or {}).get("deliveries") or []
        for p in d.get("parcels") or []
        if (p.get("trackingData") or {}).get("trackingId") and not p["trackingData"].get("isReturn")
    ]
    tracking = sync.fake.property(contact, "cc_last_order_tracking")
    if parcels:  # the newest order's parcel, through the configured carrier URL
        # The newest parcel (the later one on a tie).
        last = sorted(parcels, key=lambda p: p.get("createdAt") or "")[-1]
        assert tracking is not None and quote(last["trackingData"]["trackingId"]) in tracking
    else:
        assert tracking is None


async def test_a_burst_of_order_events_is_one_batch_with_the_latest_values(
    sync: Sync, harness: Harness
) -> None:
    registered = [o for o in harness.demo.orders.values() if o.customer_key]
    customers = {str(o.customer_key) for o in registered}
    contacts = {k: await sync.contact_for(harness.demo.customers[k].id) for k in sorted(customers)}
    events = [
        Event(f"m{i}-{n}", "OrderStateChanged", "order", o.id, 100 + n)
        for n in range(3)  # three changes of every order
        for i, o in enumerate(registered)
    ]
    assert await enqueue_for_events(sync.queue, sync.settings, events) == len(events)
    await sync.run_until_idle()
    assert sync.fake.count("PATCH", "/contacts/batch") == 1  # every contact in one request
    assert sync.fake.batch_sizes == [len(customers)]
    assert sync.fake.count("GET", "/contact-properties") == 1
    for key, contact in contacts.items():
        newest = (await sync.orders_of(harness.demo.customers[key].id))[0]
        assert sync.fake.property(contact, "cc_last_order") == newest["orderNumber"]
    # Coalesced: one order job per order ran, the queued duplicates took the newer payloads.
    done = await sync.jobs("tidio.order", "done")
    assert len(done) == len(registered)


async def test_a_refused_batch_is_split_until_the_bad_contact_is_alone(
    sync: Sync, harness: Harness
) -> None:
    registered = [o for o in harness.demo.orders.values() if o.customer_key]
    keys = sorted({str(o.customer_key) for o in registered})
    assert len(keys) >= 3
    good = {k: await sync.contact_for(harness.demo.customers[k].id) for k in keys[1:]}
    # The first customer's contact was deleted in Tidio after we learned its id.
    bad_customer = harness.demo.customers[keys[0]].id
    await sync.contacts.remember(
        sync.distinct(bad_customer), "a1b4ca4c-1108-4432-b256-1e4cf2bf6f9e", at=time.time()
    )
    for order in registered:
        await enqueue_order(sync.queue, order.id, version=1)
    await sync.run_until_idle()
    for contact in good.values():
        assert sync.fake.property(contact, "cc_last_order") is not None
    dead = await sync.jobs(PUSH_KIND, "dead")
    assert len(dead) == 1
    assert "422" in (dead[0].last_error or "")
    assert [c["contact_id"] for c in dead[0].payload["contacts"]] == [
        "a1b4ca4c-1108-4432-b256-1e4cf2bf6f9e"
    ]
    rejected = [e for e in await sync.audit.query(customer=bad_customer) if e.outcome == "rejected"]
    assert len(rejected) == 1 and rejected[0].detail["errors"] == ["validation_error"]
    # Halving: at most 2*log2(n)+1 batches for one bad contact among n.
    n = len(keys)
    assert sync.fake.count("PATCH", "/contacts/batch") <= 2 * n.bit_length() + 1


async def test_a_429_pauses_the_destination_and_nothing_is_lost(
    sync: Sync, harness: Harness
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    contact = await sync.contact_for(anna.id)
    sync.fake.inject("429", count=2)
    newest = (await sync.orders_of(anna.id))[0]
    await enqueue_order(sync.queue, newest["id"], version=1)
    await sync.run_until_idle()
    assert sync.fake.throttled == 2
    assert sync.fake.property(contact, "cc_last_order") == newest["orderNumber"]
    (push,) = await sync.jobs(PUSH_KIND, "done")
    assert push.attempts == 1  # throttling is not a failed attempt


async def test_a_contact_found_by_email_when_no_webhook_mapped_it(
    sync: Sync, harness: Harness
) -> None:
    james = harness.demo.customers["james-taylor"]
    newest = (await sync.orders_of(james.id))[0]
    contact = await sync.contact_for(james.id, mapped=False, email=newest["customerEmail"])
    await enqueue_order(sync.queue, newest["id"], version=1)
    await sync.run_until_idle()
    assert sync.fake.property(contact, "cc_last_order") == newest["orderNumber"]
    assert await sync.contacts.contact_id(sync.distinct(james.id)) == contact


async def test_cart_changes_and_the_abandoned_cart_signal(sync: Sync, harness: Harness) -> None:
    key, cart_id = next(iter(harness.demo.carts.items()))
    customer = harness.demo.customers[key]
    contact = await sync.contact_for(customer.id)
    cart = await sync.api.get(f"/carts/{cart_id}")
    await enqueue_for_events(
        sync.queue, sync.settings, [Event("c1", "LineItemAdded", "cart", cart_id, cart["version"])]
    )
    await sync.run_until_idle()
    quantity = sum(line["quantity"] for line in cart["lineItems"])
    assert sync.fake.property(contact, "cc_cart_items") == str(quantity)
    total = cart["totalPrice"]
    digits = 2  # EUR, GBP, USD (the emulator's REST carts say 0; GraphQL says the real 2)
    assert sync.fake.property(contact, "cc_cart_total") == (
        f"{total['centAmount'] / 10**digits:.{digits}f}"
    )
    assert sync.fake.property(contact, "cc_cart_status") == "active"
    assert sync.fake.property(contact, "cc_cart_lines") is None  # not defined in Tidio
    # The idle check waits CC_TIDIO_CART_IDLE; run it now, as its time had come.
    (check,) = await sync.jobs(CART_IDLE_KIND, "queued")
    assert check.run_at >= time.time() + sync.settings.tidio_cart_idle - 60
    assert await cart_idle(sync.services.context(check), check.payload) == {"abandoned": True}
    await sync.run_until_idle()
    assert sync.fake.property(contact, "cc_cart_status") == "abandoned"
    # A cart changed since is not abandoned.
    stale = dict(check.payload, version=int(check.payload["version"]) - 1)
    assert await cart_idle(sync.services.context(check), stale) == {"abandoned": False}


async def test_events_enqueue_nothing_when_the_tidio_sync_is_off(
    sync: Sync, harness: Harness
) -> None:
    off = demo_settings(harness)
    events = [
        Event("o1", "OrderCreated", "order", "o-1", 1),
        Event("c1", "CartCreated", "cart", "c", 1),
    ]
    assert await enqueue_for_events(sync.queue, off, events) == 0
    assert await enqueue_for_events(sync.queue, sync.settings, events) == 2
    ignored = [
        Event("c2", "CartDeleted", "cart", "c", 2),
        Event("x", "CustomerCreated", "customer", "u", 1),
    ]
    assert await enqueue_for_events(sync.queue, sync.settings, ignored) == 0


# -- on the whole service: the snippet's cart notification, commercetools events ---------------


async def test_the_snippets_cart_notification_and_events_on_the_service(
    harness: Harness, tmp_path: Path
) -> None:
    from commerce_context.app import create_app
    from tests.asgi import app_client

    api_key, secret = "storefront-api-key-" + "a" * 24, "events-secret-" + "e" * 24
    async with serve_fake_tidio(FakeTidio(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)) as (
        fake,
        url,
    ):
        settings = demo_settings(
            harness,
            state_path=tmp_path / "state.sqlite3",
            link_keys="k1:" + "k" * 40,
            tidio_identity_secret=IDENTITY,
            tidio_storefront_api_key=api_key,
            tidio_api_url=url,
            tidio_client_id=CLIENT_ID,
            tidio_client_secret=CLIENT_SECRET,
            tidio_batch_window=60,
            events_secret=secret,
            public_url=PUBLIC_URL,
            worker_in_process=False,
        )
        key, cart_id = next(iter(harness.demo.carts.items()))
        customer = harness.demo.customers[key]
        async with app_client(create_app(settings)) as client:
            identified = await client.post(
                "/tidio/identify",
                json={"customer_id": customer.id, "cart_id": cart_id},
                headers={"X-Api-Key": api_key},
            )
            token = identified.json()["visitor_token"]
            answer = await client.post("/tidio/cart", json={"visitor_token": token})
            assert answer.status_code == 200, answer.text
            properties = answer.json()["properties"]
            async with httpx.AsyncClient() as http:
                cart = await Api(http, harness).get(f"/carts/{cart_id}")
            assert properties["cc_cart_items"] == sum(i["quantity"] for i in cart["lineItems"])
            assert properties["cc_cart_status"] == "active"
            assert properties["cc_currency"] == cart["totalPrice"]["currencyCode"]
            tampered = await client.post("/tidio/cart", json={"visitor_token": token[:-2] + "xx"})
            assert tampered.status_code == 401
            assert "cc_cart" not in tampered.text
            malformed = await client.post("/tidio/cart", content=b"[1]")
            assert malformed.status_code == 400
            for _ in range(CART_NOTIFICATIONS - 1):  # the first one above counts too
                assert (
                    await client.post("/tidio/cart", json={"visitor_token": token})
                ).status_code == 200
            limited = await client.post("/tidio/cart", json={"visitor_token": token})
            assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
            pushed = await client.post(
                "/commercetools/events",
                json={
                    "notificationType": "Message",
                    "id": "msg-tidio-1",
                    "type": "OrderStateChanged",
                    "resource": {"typeId": "order", "id": "order-x"},
                    "resourceVersion": 3,
                },
                headers={"Authorization": f"Bearer {secret}"},
            )
            assert pushed.status_code == 202
        db = Database.from_url(settings.database_location)
        await db.open()
        try:
            kinds = sorted(
                r["kind"] for r in await db.fetchall("SELECT kind FROM jobs WHERE state = 'queued'")
            )
        finally:
            await db.close()
        assert kinds == ["tidio.cart", "tidio.order"]  # one per notification, one per event
        assert fake.requests == []  # nothing reached Tidio from the request path


async def test_the_messages_poller_enqueues_the_tidio_sync(sync: Sync, tmp_path: Path) -> None:
    from commerce_context.poller import MessagesPoller
    from commerce_context.state import StateFile

    email = f"polled-{uuid.uuid4().hex[:8]}@example.com"
    customer = (
        await sync.api.post(
            "CustomerDraft", "/customers", {"email": email, "firstName": "P", "lastName": "Q"}
        )
    )["customer"]
    contact = await sync.contact_for(customer["id"])
    number = f"P-{uuid.uuid4().hex[:8].upper()}"
    eur = {"type": "centPrecision", "currencyCode": "EUR", "centAmount": 2995, "fractionDigits": 2}
    await sync.api.post(
        "OrderImportDraft",
        "/orders/import",
        {
            "orderNumber": number,
            "customerId": customer["id"],
            "customerEmail": email,
            "store": {"typeId": "store", "key": "berlin"},
            "country": "DE",
            "lineItems": [
                {
                    "name": {"en-GB": "TSHIRT-ORG-M"},
                    "variant": {"sku": "TSHIRT-ORG-M"},
                    "price": {"value": eur, "country": "DE"},
                    "quantity": 1,
                }
            ],
            "totalPrice": eur,
            "orderState": "Open",
        },
    )
    poller = MessagesPoller(
        sync.services.commercetools,
        sync.services.reader,
        StateFile(tmp_path / "poller.sqlite3"),
        interval=1.0,
        overlap=600.0,
        queue=sync.queue,
        settings=sync.settings,
    )
    await poller.poll_once()
    queued = [j for j in await sync.jobs("tidio.order", "queued") if j.payload]
    assert any(j.payload.get("order_id") for j in queued)
    await sync.run_until_idle()
    assert sync.fake.property(contact, "cc_last_order") == number
    assert sync.fake.property(contact, "cc_order_count") == "1"
    assert sync.fake.property(contact, "cc_total_spent") == "29.95"
