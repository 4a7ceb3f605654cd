"""The Zendesk outbound sync end to end: commercetools emulator -> job queue and worker (SQLite)
-> fake Zendesk over real HTTP. Customers to users (batching, de-duplication rules, failures),
order state to ticket fields (coalescing, skipping, solved tickets)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.audit import Audit
from commerce_context.database import Database
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.emulator.zendesk import FakeZendesk, serve_fake_zendesk
from commerce_context.events import Event
from commerce_context.jobs import Job, Queue
from commerce_context.queries import compose, order_by_id
from commerce_context.settings import Settings
from commerce_context.worker import Services
from commerce_context.zendesk_sync import (
    CUSTOMERS_KIND,
    HANDLERS,
    SYNC_CUSTOMER,
    SYNC_ORDER,
    TICKET_KIND,
    enqueue_customer,
    enqueue_customers,
    enqueue_for_events,
    enqueue_order,
)
from tests.fakes import run_until_idle, sync_services, zendesk_environment
from tests.schema import assert_valid_document

pytestmark = pytest.mark.emulator

EMAIL, TOKEN = "sync@example.com", "fake-token-for-tests"
ORDER_FIELD = 360000001
STATE_FIELD, SHIPMENT_FIELD, STORE_FIELD = 501, 502, 503
CONFIG = f"""
[zendesk_sync]
customers = true
orders = true
other_ids_field = "cc_other_ids"
job_poll_interval = 0.02
batch_window = 0

[zendesk_sync.user_fields]
cc_store = "store"
cc_group = "customer_group"
cc_locale = "locale"
cc_orders = "order_count"
cc_spent = "total_spent"

[zendesk_sync.ticket_fields]
order_state = {STATE_FIELD}
shipment_state = {SHIPMENT_FIELD}
store = {STORE_FIELD}
order_number = {ORDER_FIELD}
"""


@dataclass
class Sync:
    make_settings: Callable[[Path], Settings]
    settings: Settings
    fake: FakeZendesk
    queue: Queue
    audit: Audit
    services: Services
    rest: httpx.AsyncClient  # commercetools REST through the bridge, authenticated

    async def run_until_idle(self) -> None:
        """Run a worker until no job is queued or running (a bounded wait)."""
        await run_until_idle(self.queue, HANDLERS, self.services.context)
        await self.fake.idle()

    def reconfigure(self, config: str, path: Path) -> None:
        path.write_text(config)
        self.settings = self.make_settings(path)
        fields = ("commercetools", "reader", "audit", "http", "ledger", "queue")
        self.services = Services(self.settings, *[getattr(self.services, f) for f in fields])

    async def customer(self, email: str, **draft: Any) -> dict[str, Any]:
        body = {"email": email, "firstName": "Test", "lastName": "Shopper", **draft}
        response = await self.rest.post("/customers", json=body)
        assert response.status_code in (200, 201), response.text
        created: dict[str, Any] = response.json()["customer"]
        return created

    async def update_customer(self, customer: dict[str, Any], *actions: dict[str, Any]) -> None:
        body = {"version": customer["version"], "actions": list(actions)}
        response = await self.rest.post(f"/customers/{customer['id']}", json=body)
        assert response.status_code == 200, response.text

    async def outcomes(self, customer_id: str) -> list[str]:
        return [e.outcome for e in await self.audit.query(customer=customer_id)]

    async def jobs(self, kind: str, state: str) -> list[Job]:
        return await self.queue.list(state=state, kind=kind)


@pytest_asyncio.fixture(loop_scope="session")
async def sync(harness: Harness, ct_settings: Settings, tmp_path: Path) -> AsyncIterator[Sync]:
    config = tmp_path / "mappings.toml"
    config.write_text(CONFIG)
    async with serve_fake_zendesk(FakeZendesk(email=EMAIL, api_token=TOKEN)) as (fake, url):

        def make_settings(path: Path) -> Settings:
            return demo_settings(
                harness,
                config_file=str(path),
                zendesk_api_url=url,
                zendesk_api_email=EMAIL,
                zendesk_api_token=TOKEN,
                zendesk_order_field_id=ORDER_FIELD,
                ct_backoff_base=0.01,
                ct_backoff_max=0.1,
            )

        settings = make_settings(config)
        db = Database.from_url(f"sqlite:///{tmp_path / 'sync.sqlite3'}")
        await db.open()
        async with httpx.AsyncClient(timeout=10) as http:
            queue = Queue(db, max_attempts=5)
            services = sync_services(settings, db, http, queue)
            audit = services.audit
            token = await services.commercetools.access_token()
            async with httpx.AsyncClient(
                base_url=f"{harness.api_url}/{harness.project_key}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            ) as rest:
                yield Sync(make_settings, settings, fake, queue, audit, services, rest)
        await db.close()


def _unique_email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


# -- documents -----------------------------------------------------------------------------------


def test_the_sync_reads_are_valid_against_the_official_schema() -> None:
    from commerce_context.queries import by_ids

    assert_valid_document(
        compose([by_ids("customers", "Customer", ["a"], [SYNC_CUSTOMER], key="c")]).query
    )
    assert_valid_document(compose([order_by_id("o", [SYNC_ORDER])]).query)


# -- customers to users --------------------------------------------------------------------------


async def test_new_customers_become_users_with_external_id_and_fields(sync: Sync) -> None:
    email = _unique_email("new")
    customer = await sync.customer(email, stores=[{"typeId": "store", "key": "berlin"}])
    await sync.update_customer(customer, {"action": "setLocale", "locale": "de-DE"})
    await enqueue_customers(sync.queue, [customer["id"]], key=f"test:{customer['id']}")
    await sync.run_until_idle()
    user = sync.fake.user_by_external_id(customer["id"])
    assert user is not None
    assert user["email"] == email and user["name"] == "Test Shopper"
    assert user["user_fields"] == {
        "cc_store": "berlin", "cc_group": None, "cc_locale": "de-DE", "cc_other_ids": None,
        "cc_orders": 0, "cc_spent": None,
    }  # fmt: skip
    assert await sync.outcomes(customer["id"]) == ["created"]


async def test_an_existing_user_with_the_email_is_linked_not_duplicated(sync: Sync) -> None:
    email = _unique_email("linked")
    existing = sync.fake.add_user("Agent-created profile", email)
    customer = await sync.customer(email)
    await enqueue_customers(sync.queue, [customer["id"]], key=f"test:{customer['id']}")
    await sync.run_until_idle()
    assert len(sync.fake.users) == 1
    assert sync.fake.users[existing["id"]]["external_id"] == customer["id"]
    assert await sync.outcomes(customer["id"]) == ["updated"]


async def test_customers_of_several_stores_sharing_an_email_become_one_user(
    sync: Sync, harness: Harness
) -> None:
    keys = harness.demo.shared_email_customer_keys
    assert len(keys) >= 2
    ids = [harness.demo.customers[k].id for k in keys]
    created = {}
    for customer_id in ids:
        response = await sync.rest.get(f"/customers/{customer_id}")
        created[customer_id] = (response.json()["createdAt"], customer_id)
    oldest, *others = sorted(ids, key=lambda i: created[i])
    # Whichever customer syncs first, the user's external id is the oldest customer's.
    for customer_id in reversed(ids):
        await enqueue_customers(sync.queue, [customer_id], key=f"test:{customer_id}")
        await sync.run_until_idle()
    assert len(sync.fake.users) == 1
    (user,) = sync.fake.users.values()
    assert user["external_id"] == oldest
    assert user["user_fields"]["cc_other_ids"] == " ".join(others)
    assert set(user["user_fields"]["cc_store"].split()) == {
        harness.demo.customers[k].store_key for k in keys
    }
    for customer_id in ids:
        assert await sync.outcomes(customer_id) in (["created"], ["updated"])
    # Order count and total spent cover the orders of every customer behind the user.
    where = f"customerId in ({', '.join(repr(i).replace(chr(39), chr(34)) for i in ids)})"
    response = await sync.rest.get("/orders", params={"where": where, "limit": "500"})
    orders = [o for o in response.json()["results"] if o["orderState"] != "Cancelled"]
    assert orders, "the seeded shared-email customers have orders"
    assert user["user_fields"]["cc_orders"] == len(orders)
    cents: dict[str, int] = {}
    for order in orders:
        money = order["totalPrice"]
        cents[money["currencyCode"]] = cents.get(money["currencyCode"], 0) + money["centAmount"]
    expected = ", ".join(f"{c} {cents[c] / 100:.2f}" for c in sorted(cents))
    assert user["user_fields"]["cc_spent"] == expected


async def test_a_changed_email_updates_the_user_and_becomes_primary(sync: Sync) -> None:
    old, new = _unique_email("old"), _unique_email("new")
    customer = await sync.customer(old)
    await enqueue_customers(sync.queue, [customer["id"]], key=f"test:{customer['id']}:1")
    await sync.run_until_idle()
    await sync.update_customer(customer, {"action": "changeEmail", "email": new})
    await enqueue_customers(sync.queue, [customer["id"]], key=f"test:{customer['id']}:2")
    await sync.run_until_idle()
    assert len(sync.fake.users) == 1
    user = sync.fake.user_by_external_id(customer["id"])
    assert user is not None and user["email"] == new
    identities = {i["value"]: i["primary"] for i in sync.fake.identities.values()}
    assert identities == {old: False, new: True}
    assert await sync.outcomes(customer["id"]) == ["created", "updated"]


async def test_live_changes_are_batched_into_one_zendesk_call(sync: Sync) -> None:
    customers = [await sync.customer(_unique_email(f"burst{i}")) for i in range(5)]
    for customer in customers:
        await enqueue_customer(sync.queue, sync.settings, customer["id"], version=1)
    await sync.run_until_idle()
    assert sync.fake.count("POST", "/api/v2/users/create_or_update_many") == 1
    for customer in customers:
        assert sync.fake.user_by_external_id(customer["id"]) is not None
        assert await sync.outcomes(customer["id"]) == ["created"]
    assert len(await sync.jobs(CUSTOMERS_KIND, "cancelled")) == 4  # absorbed by the first


async def test_users_failed_in_the_zendesk_job_are_recorded_and_retried(sync: Sync) -> None:
    good, bad = _unique_email("good"), _unique_email("bad")
    sync.fake.fail_emails.add(bad)
    ok, failing = await sync.customer(good), await sync.customer(bad)
    await enqueue_customers(sync.queue, [ok["id"], failing["id"]], key="test:failing")
    await sync.run_until_idle()  # the retry job waits RETRY_FAILED_AFTER seconds: still queued
    assert await sync.outcomes(ok["id"]) == ["created"]
    assert await sync.outcomes(failing["id"]) == ["failed"]
    entry = (await sync.audit.query(customer=failing["id"]))[0]
    assert bad not in str(entry.detail) and entry.detail["error"] == "UserUpdateError"
    (retry,) = await sync.jobs(CUSTOMERS_KIND, "queued")
    assert retry.payload == {"customer_ids": [failing["id"]], "retry": 1}


async def test_customer_events_enqueue_sync_jobs(sync: Sync) -> None:
    events = [
        Event("m1", "CustomerCreated", "customer", "c-1", 1),
        Event("m2", "CustomerDeleted", "customer", "c-2", 3),
        Event("m3", "OrderShipmentStateChanged", "order", "o-1", 7),
        Event("m4", "CartCreated", "cart", "x", 1),
    ]
    assert await enqueue_for_events(sync.queue, sync.settings, events) == 2
    kinds = sorted(j.kind for j in await sync.queue.list(state="queued"))
    assert kinds == ["zendesk.order_to_tickets", "zendesk.sync_customers"]


# -- order state to ticket fields ----------------------------------------------------------------


async def _order(harness: Harness) -> tuple[str, str]:
    number, info = next(iter(harness.demo.orders.items()))
    return info.id, number


async def test_order_state_is_written_to_linked_open_tickets(sync: Sync, harness: Harness) -> None:
    order_id, number = await _order(harness)
    found = sync.fake.add_ticket("Where is it?", custom_fields={ORDER_FIELD: number})
    linked = sync.fake.add_ticket("Another")
    solved = sync.fake.add_ticket("Done", status="solved", custom_fields={ORDER_FIELD: number})
    await sync.audit.record(
        action="zendesk.ticket.linked", source="sidebar", target="commercetools:order",
        outcome="linked", ticket_id=linked["id"], order_id=order_id,
    )  # fmt: skip
    await enqueue_order(sync.queue, order_id, version=1)
    await sync.run_until_idle()
    read = compose([order_by_id(order_id, [SYNC_ORDER])])
    order = (await sync.services.commercetools.fetch(read))["order"]
    for ticket in (found, linked):
        assert sync.fake.field_value(ticket["id"], STATE_FIELD) == order["orderState"]
        assert sync.fake.field_value(ticket["id"], STORE_FIELD) == order["storeRef"]["key"]
        assert sync.fake.field_value(ticket["id"], ORDER_FIELD) == number
    assert sync.fake.field_value(solved["id"], STATE_FIELD) is None  # never touched
    assert sync.fake.tickets[solved["id"]]["status"] == "solved"
    updates = sync.fake.count("PUT", "/api/v2/tickets/")
    assert updates == 2

    # The same order version again: its ticket jobs already ran (same keys), nothing runs.
    await enqueue_order(sync.queue, order_id, version=2)
    await sync.run_until_idle()
    assert sync.fake.count("PUT", "/api/v2/tickets/") == updates
    # A ticket job for a change that leaves the mapped values as they are writes nothing.
    await sync.queue.enqueue(
        TICKET_KIND,
        {"ticket_id": found["id"], "order_id": order_id},
        key="test:unmapped-change",
        destination="zendesk:tickets",
    )
    await sync.run_until_idle()
    assert sync.fake.count("PUT", "/api/v2/tickets/") == updates
    outcomes = [e.outcome for e in await sync.audit.query(ticket=found["id"])]
    assert outcomes == ["updated", "skipped"]


async def test_ticket_jobs_are_coalesced_per_ticket(sync: Sync, harness: Harness) -> None:
    order_id, number = await _order(harness)
    ticket = sync.fake.add_ticket(custom_fields={ORDER_FIELD: number})
    for version in (1, 2, 3):
        await sync.queue.enqueue(
            TICKET_KIND,
            {"ticket_id": ticket["id"], "order_id": order_id},
            key=f"test:{ticket['id']}:{version}",
            destination="zendesk:tickets",
            coalesce=f"zendesk:ticket:{ticket['id']}",
        )
    assert len(await sync.jobs(TICKET_KIND, "queued")) == 1
    await sync.run_until_idle()
    assert sync.fake.count("PUT", f"/api/v2/tickets/{ticket['id']}") == 1


async def test_solved_tickets_are_updated_only_when_configured(
    sync: Sync, harness: Harness, tmp_path: Path
) -> None:
    order_id, number = await _order(harness)
    solved = sync.fake.add_ticket(status="solved", custom_fields={ORDER_FIELD: number})
    config = CONFIG.replace("batch_window = 0", "batch_window = 0\nupdate_solved = true")
    sync.reconfigure(config, tmp_path / "solved.toml")
    await enqueue_order(sync.queue, order_id, version=1)
    await sync.run_until_idle()
    assert sync.fake.field_value(solved["id"], STATE_FIELD) is not None
    assert sync.fake.tickets[solved["id"]]["status"] == "solved"  # not reopened


# -- faults --------------------------------------------------------------------------------------


async def test_a_429_storm_and_5xx_pause_the_destination_and_nothing_is_lost(sync: Sync) -> None:
    customers = [await sync.customer(_unique_email(f"storm{i}")) for i in range(3)]
    sync.fake.window = 1.0  # ratelimit-reset, used when Retry-After is missing, is short
    sync.fake.inject("429", count=2, seconds=1)
    sync.fake.inject("429-no-retry-after")
    sync.fake.inject("503")
    await enqueue_customers(sync.queue, [c["id"] for c in customers], key="test:storm")
    await sync.run_until_idle()
    for customer in customers:
        assert sync.fake.user_by_external_id(customer["id"]) is not None
        assert await sync.outcomes(customer["id"]) == ["created"]
    assert len(sync.fake.users) == 3
    assert sync.fake.throttled == 3


async def test_a_rerun_after_a_crash_polls_the_submitted_zendesk_job(sync: Sync) -> None:
    customer = await sync.customer(_unique_email("crash"))
    (job,) = await enqueue_customers(sync.queue, [customer["id"]], key="test:crash")
    context = sync.services.context(job)
    await HANDLERS[CUSTOMERS_KIND](context, job.payload)
    # The worker died before settling the job: it runs again with the same key.
    await HANDLERS[CUSTOMERS_KIND](context, job.payload)
    assert sync.fake.count("POST", "/api/v2/users/create_or_update_many") == 1
    assert len(sync.fake.users) == 1
    assert await sync.outcomes(customer["id"]) == ["created"]  # recorded once


# -- backfill ------------------------------------------------------------------------------------


async def test_backfill_pages_through_customers_and_resumes(sync: Sync) -> None:
    from datetime import UTC, datetime, timedelta

    from commerce_context.queries import Arg, Read
    from commerce_context.zendesk_sync import CUSTOMER_ID, backfill_customers

    since = datetime.now(UTC) - timedelta(days=3650)
    read = Read(
        "all", "customers", "Customer", (Arg("limit", "Int", 500),), (CUSTOMER_ID,), many=True
    )
    assert_valid_document(compose([read]).query)
    every = {c["id"] for c in (await sync.services.commercetools.fetch(compose([read])))["all"]}
    ledger, ct = sync.services.ledger, sync.services.commercetools
    first = await backfill_customers(ct, sync.queue, ledger, since=since, page_size=3)
    assert first["customers"] == len(every)
    jobs = await sync.queue.list(kind=CUSTOMERS_KIND, limit=1000)
    queued = [i for j in jobs for i in j.payload["customer_ids"]]
    assert sorted(queued) == sorted(every)  # every customer once
    assert all(len(j.payload["customer_ids"]) <= 3 for j in jobs)
    # Run again (as after a stop): recorded pages are not read again, nothing is enqueued twice.
    requests_before = len(jobs)
    second = await backfill_customers(ct, sync.queue, ledger, since=since, page_size=3)
    assert second == first
    assert len(await sync.queue.list(kind=CUSTOMERS_KIND, limit=1000)) == requests_before
    # Nothing modified in the future.
    later = await backfill_customers(
        ct, sync.queue, ledger, since=datetime.now(UTC) + timedelta(days=1), page_size=3
    )
    assert later == {"pages": 1, "customers": 0}


async def test_a_ticket_changed_between_read_and_write_is_reread_not_overwritten(
    sync: Sync, harness: Harness
) -> None:
    order_id, number = await _order(harness)
    ticket = sync.fake.add_ticket(custom_fields={ORDER_FIELD: number})
    sync.fake.edit_after_read[ticket["id"]] = 1  # an agent saves it just after our first read
    await sync.queue.enqueue(
        TICKET_KIND,
        {"ticket_id": ticket["id"], "order_id": order_id},
        key=f"test:conflict:{ticket['id']}",
        destination="zendesk:tickets",
    )
    await sync.run_until_idle()
    assert sync.fake.count("PUT", f"/api/v2/tickets/{ticket['id']}") == 2  # 409, then 200
    assert sync.fake.field_value(ticket["id"], STATE_FIELD) is not None
    (job,) = await sync.jobs(TICKET_KIND, "done")
    assert job.attempts == 2


# -- organizations -------------------------------------------------------------------------------


async def test_company_names_become_organizations(sync: Sync) -> None:
    tag = uuid.uuid4().hex[:8]
    company = await sync.customer(_unique_email("company"), companyName=f"Acme  {tag} GmbH")
    colleague = await sync.customer(_unique_email("colleague"), companyName=f"acme {tag} gmbh")
    taken = sync.fake.add_organization(f"Hand-made {tag}")  # a name already used in Zendesk
    clash = await sync.customer(_unique_email("clash"), companyName=taken["name"])
    ids = [company["id"], colleague["id"], clash["id"]]
    await enqueue_customers(sync.queue, ids, key=f"test:orgs:{tag}")
    await sync.run_until_idle()
    orgs = [o for o in sync.fake.organizations.values() if tag in o["name"]]
    acme = next(o for o in orgs if o["name"].lower() == f"acme {tag} gmbh")
    assert len(orgs) == 2  # one per name (spacing and case ignored) + the hand-made one
    assert acme["external_id"].startswith("org:")
    for customer in (company, colleague):
        user = sync.fake.user_by_external_id(customer["id"])
        assert user is not None and user["organization_id"] == acme["id"]
    # The hand-made organization is left alone; that user is still synced, without one.
    assert taken["external_id"] is None
    user = sync.fake.user_by_external_id(clash["id"])
    assert user is not None and user["organization_id"] is None
    assert await sync.outcomes(clash["id"]) == ["created"]
    # Organizations are upserted once: a second sync sends no organization request.
    before = sync.fake.count("POST", "/api/v2/organizations/create_or_update")
    await enqueue_customers(sync.queue, ids[:2], key=f"test:orgs:{tag}:again")
    await sync.run_until_idle()
    assert sync.fake.count("POST", "/api/v2/organizations/create_or_update") == before


async def test_backfill_command(
    sync: Sync,
    harness: Harness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from commerce_context.zendesk_sync import main

    config = tmp_path / "backfill.toml"
    config.write_text(CONFIG)
    database = tmp_path / "backfill.sqlite3"
    zendesk_environment(
        monkeypatch, harness, config=str(config), database_url=f"sqlite:///{database}",
        zendesk_url=str(sync.settings.zendesk_api_url), email=EMAIL, token=TOKEN,
    )  # fmt: skip
    # asyncio.run in a thread: this loop keeps serving the emulator's bridge meanwhile.
    code = await asyncio.to_thread(main, ["customers", "--since", "2001-01-01"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "customers enqueued" in out.out
    db = Database.from_url(f"sqlite:///{database}")
    await db.open()
    try:
        jobs = await Queue(db).list(kind=CUSTOMERS_KIND, limit=1000)
    finally:
        await db.close()
    assert jobs and all(len(j.payload["customer_ids"]) <= 100 for j in jobs)

    with pytest.raises(SystemExit) as bad_date:  # argparse: usage and exit 2
        main(["customers", "--since", "yesterday"])
    assert bad_date.value.code == 2
    assert "not a date such as 2024-01-31" in capsys.readouterr().err
    monkeypatch.setenv("CC_CONFIG_FILE", str(tmp_path / "off.toml"))
    (tmp_path / "off.toml").write_text("[zendesk_sync]\ncustomers = false\n")
    assert await asyncio.to_thread(main, ["customers", "--since", "2001-01-01"]) == 2
    assert "customers = true" in capsys.readouterr().err


async def test_jobs_do_nothing_when_the_sync_is_switched_off(
    sync: Sync, harness: Harness, tmp_path: Path
) -> None:
    order_id, number = await _order(harness)
    ticket = sync.fake.add_ticket(custom_fields={ORDER_FIELD: number})
    customer = await sync.customer(_unique_email("off"))
    off = CONFIG.replace("customers = true", "customers = false").replace(
        "orders = true", "orders = false"
    )
    sync.reconfigure(off, tmp_path / "off.toml")
    await enqueue_customers(sync.queue, [customer["id"]], key="test:off")
    await sync.queue.enqueue(
        TICKET_KIND,
        {"ticket_id": ticket["id"], "order_id": order_id},
        key="test:off:ticket",
        destination="zendesk:tickets",
    )
    await sync.run_until_idle()
    assert sync.fake.requests == []
    done = await sync.queue.list(state="done")
    assert {j.result["skipped"] for j in done if j.result} == {
        "customer sync is off ([zendesk_sync] customers)",
        "order sync is off ([zendesk_sync] orders)",
    }


# -- privacy -------------------------------------------------------------------------------------


async def test_card_numbers_and_tokens_in_names_and_companies_never_reach_zendesk(
    sync: Sync, tmp_path: Path
) -> None:
    import json

    card, token = "4111 1111 1111 1111", "tok_1a2b3c4d5e6f7g8h"
    config = CONFIG.replace(
        'cc_spent = "total_spent"', 'cc_spent = "total_spent"\ncc_company = "company"'
    )
    sync.reconfigure(config, tmp_path / "privacy.toml")
    email = _unique_email("planted")
    customer = await sync.customer(
        email,
        firstName=f"Card {card}",
        lastName=token,
        companyName=f"Acme {card.replace(' ', '')} GmbH",
    )
    await enqueue_customers(sync.queue, [customer["id"]], key=f"test:{customer['id']}")
    await sync.run_until_idle()
    user = sync.fake.user_by_external_id(customer["id"])
    assert user is not None
    assert user["name"] == "Card •••• 1111 tok_•••"
    assert user["email"] == email  # the identity is sent as it is
    assert user["user_fields"]["cc_company"] == "Acme •••• 1111 GmbH"
    organization = sync.fake.organizations[user["organization_id"]]
    assert organization["name"] == "Acme •••• 1111 GmbH"
    stored = json.dumps([sync.fake.users, sync.fake.organizations, sync.fake.identities])
    for secret in (card, card.replace(" ", ""), token):
        assert secret not in stored
