"""The Zendesk outbound sync wired into the service: commercetools events (the subscription
endpoint and the Messages poller) and Zendesk's ticket-created webhook reach the fake Zendesk
through the real app, its job database and its in-process worker; the backfill command.

Everything real: the commercetools emulator (writes through its bridge, whose Messages log
makes the events), the app over ASGI with its lifespan and worker, SQLite, and the fake
Zendesk served over HTTP on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.app import create_app
from commerce_context.emulator.harness import Harness
from commerce_context.emulator.messages import platform_payload
from commerce_context.emulator.zendesk import FakeZendesk, serve_fake_zendesk
from commerce_context.settings import Settings
from commerce_context.webhooks import expected_signature
from commerce_context.worker import open_engine
from tests.asgi import app_client
from tests.fakes import zendesk_environment
from tests.orders import Api
from tests.writepath import write_settings

pytestmark = pytest.mark.emulator

SECRET = "events-secret-for-the-zendesk-wiring-tests-0123"
WEBHOOK_SECRET = "webhook-secret-for-the-zendesk-wiring-tests"
EMAIL, TOKEN = "sync@example.com", "fake-token-for-wiring-tests"
ORDER_FIELD = 360000001
STATE, SHIPMENT, PAYMENT = 601, 602, 603
STORE, CHANNEL, CURRENCY, LOCALE, MARKET = 611, 612, 613, 614, 615
CONFIG = f"""
[stores.berlin]
locale = "de-DE"
currency = "EUR"
zendesk_brands = [1001]

[stores.london]
locale = "en-GB"
currency = "GBP"
zendesk_brands = [1002]

[zendesk_sync]
customers = true
orders = true
other_ids_field = "cc_other_ids"
job_poll_interval = 0.02
batch_window = 0

[zendesk_sync.ticket_fields]
order_number = {ORDER_FIELD}
order_state = {STATE}
shipment_state = {SHIPMENT}
payment_state = {PAYMENT}
store = {STORE}
channel = {CHANNEL}
currency = {CURRENCY}
locale = {LOCALE}
market = {MARKET}
"""


@dataclass
class Wired:
    client: httpx.AsyncClient  # the app, over ASGI
    settings: Settings
    fake: FakeZendesk
    api: Api  # commercetools REST through the bridge (its writes make Messages)
    harness: Harness

    async def post_events(self, *payloads: dict[str, Any]) -> httpx.Response:
        return await self.client.post(
            "/commercetools/events",
            json=list(payloads),
            headers={"Authorization": f"Bearer {SECRET}"},
        )

    def messages(self, resource_id: str, type_: str) -> list[dict[str, Any]]:
        """The subscription payloads commercetools would deliver for that resource's Messages."""
        return [
            platform_payload(m, self.harness.project_key)
            for m in self.harness.messages
            if m["resource"]["id"] == resource_id and m["type"] == type_
        ]

    async def customer(self, email: str, **draft: Any) -> dict[str, Any]:
        body = {"email": email, "firstName": "Wired", "lastName": "Shopper", **draft}
        created: dict[str, Any] = (await self.api.post("CustomerDraft", "/customers", body))[
            "customer"
        ]
        return created

    async def audit(self, **query: Any) -> list[Any]:
        """Audit rows, read through an engine of its own on the app's job database."""
        async with open_engine(self.settings) as engine:
            return list(await engine.audit.query(**query))


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """A bounded wait for the worker (not a timing assertion)."""
    for _ in range(1500):
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{what} did not happen")


@contextlib.asynccontextmanager
async def wired_app(
    harness: Harness, tmp_path: Path, config: str = CONFIG, **overrides: Any
) -> AsyncIterator[Wired]:
    path = tmp_path / f"mappings-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(config)
    async with serve_fake_zendesk(FakeZendesk(email=EMAIL, api_token=TOKEN)) as (fake, url):
        settings = write_settings(
            harness,
            tmp_path,
            config_file=str(path),
            events_secret=SECRET,
            zendesk_webhook_secret=WEBHOOK_SECRET,
            zendesk_api_url=url,
            zendesk_api_email=EMAIL,
            zendesk_api_token=TOKEN,
            zendesk_order_field_id=ORDER_FIELD,
            state_path=tmp_path / "state.sqlite3",
            **overrides,
        )
        async with (
            httpx.AsyncClient() as http,
            httpx.AsyncClient(timeout=10) as plain,
            app_client(create_app(settings, http=http), raise_errors=True) as client,
        ):
            yield Wired(client, settings, fake, Api(plain, harness), harness)


@pytest_asyncio.fixture(loop_scope="session")
async def wired(harness: Harness, tmp_path: Path) -> AsyncIterator[Wired]:
    async with wired_app(harness, tmp_path) as value:
        yield value


def _email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


# -- 1. commercetools events -> jobs -> fake Zendesk ---------------------------------------------


async def test_a_customer_event_on_the_endpoint_becomes_a_zendesk_user(wired: Wired) -> None:
    email = _email("pushed")
    customer = await wired.customer(email, locale="en-GB")
    (created,) = wired.messages(customer["id"], "CustomerCreated")
    response = await wired.post_events(created)
    assert response.status_code == 202, response.text
    await eventually(
        lambda: wired.fake.user_by_external_id(customer["id"]) is not None, "the Zendesk user"
    )
    user = wired.fake.user_by_external_id(customer["id"])
    assert user is not None
    assert (user["email"], user["name"]) == (email, "Wired Shopper")

    # A name change: the CustomerFirstNameSet event updates the same user, never a second one.
    updated = await wired.api.post(
        "CustomerUpdate",
        f"/customers/{customer['id']}",
        {"version": customer["version"],
         "actions": [{"action": "setFirstName", "firstName": "Renamed"}]},
    )  # fmt: skip
    assert updated["version"] > customer["version"]
    (renamed,) = wired.messages(customer["id"], "CustomerFirstNameSet")
    assert (await wired.post_events(renamed)).status_code == 202
    await eventually(lambda: user["name"] == "Renamed Shopper", "the renamed user")
    assert [u for u in wired.fake.users.values() if u["email"] == email] == [user]


async def test_an_order_shipped_updates_the_ticket_field_through_the_endpoint(
    wired: Wired,
) -> None:
    order = await wired.api.create_order(charged=False)
    ticket = wired.fake.add_ticket(
        "Where is it?", custom_fields={ORDER_FIELD: order["orderNumber"]}
    )
    shipped = await wired.api.post(
        "OrderUpdate",
        f"/orders/{order['id']}",
        {"version": order["version"], "actions": [
            {"action": "setShippingAddress", "address": {"country": "AT"}},
            {"action": "changeShipmentState", "shipmentState": "Shipped"},
        ]},
    )  # fmt: skip
    assert shipped["shipmentState"] == "Shipped"
    (event,) = wired.messages(order["id"], "OrderShipmentStateChanged")
    assert (await wired.post_events(event)).status_code == 202
    await eventually(
        lambda: wired.fake.field_value(ticket["id"], SHIPMENT) == "Shipped", "the shipment field"
    )
    assert wired.fake.field_value(ticket["id"], STATE) == "Open"
    assert wired.fake.field_value(ticket["id"], STORE) == "berlin"
    assert wired.fake.field_value(ticket["id"], CURRENCY) == "EUR"
    # The emulator keeps no order country: the market is the shipping address's country.
    assert wired.fake.field_value(ticket["id"], MARKET) == "AT"
    assert wired.fake.tickets[ticket["id"]]["status"] == "open"  # never changed by the sync


async def test_events_enqueue_nothing_when_the_zendesk_sync_is_off(
    harness: Harness, tmp_path: Path
) -> None:
    off = CONFIG.replace("customers = true", "customers = false").replace(
        "orders = true", "orders = false"
    )
    async with wired_app(harness, tmp_path, off) as wired:
        customer = await wired.customer(_email("off"))
        (created,) = wired.messages(customer["id"], "CustomerCreated")
        assert (await wired.post_events(created)).status_code == 202
        async with open_engine(wired.settings) as engine:
            jobs = await engine.queue.list(limit=100)
        assert [j for j in jobs if j.kind.startswith("zendesk.")] == []
        assert wired.fake.requests == []


async def test_the_messages_poller_enqueues_the_sync(harness: Harness, tmp_path: Path) -> None:
    # The app's own poller (a lifespan task), with the job queue it was given.
    async with wired_app(harness, tmp_path, messages_poll_interval=0.1) as wired:
        email = _email("polled")
        customer = await wired.customer(email)
        await eventually(
            lambda: wired.fake.user_by_external_id(customer["id"]) is not None,
            "the polled customer's Zendesk user",
        )
        user = wired.fake.user_by_external_id(customer["id"])
        assert user is not None and user["email"] == email


# -- 3. routing attributes at ticket creation (the ticket-created webhook) -----------------------


async def post_ticket_created(wired: Wired, ticket: dict[str, Any]) -> httpx.Response:
    """The recommended trigger body of docs/sync.md, signed as Zendesk signs it."""
    body = json.dumps({"event": "ticket.created", "ticket": ticket}).encode()
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return await wired.client.post(
        "/zendesk/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": expected_signature(WEBHOOK_SECRET, stamp, body),
        },
    )


async def test_a_created_ticket_gets_its_routing_fields_from_the_order_it_names(
    wired: Wired,
) -> None:
    order = await wired.api.create_order(charged=False, shipment_state="Ready")
    ticket = wired.fake.add_ticket("Parcel?", custom_fields={ORDER_FIELD: order["orderNumber"]})
    response = await post_ticket_created(
        wired,
        {"id": str(ticket["id"]), "requester_email": "", "brand_id": "1001",
         "fields": {str(ORDER_FIELD): order["orderNumber"]}},
    )  # fmt: skip
    assert response.status_code == 202, response.text
    await eventually(lambda: wired.fake.field_value(ticket["id"], STORE) is not None, "routing")
    fields = (STORE, CHANNEL, CURRENCY, LOCALE, MARKET, STATE, SHIPMENT)
    values = {f: wired.fake.field_value(ticket["id"], f) for f in fields}
    assert values == {
        STORE: "berlin", CHANNEL: "Customer", CURRENCY: "EUR", LOCALE: None, MARKET: None,
        STATE: "Open", SHIPMENT: "Ready",
    }  # fmt: skip
    # The routing write links the ticket to the order: a later change reaches it without search.
    # (The job's audit row is written when the job settles, just after the field appears.)

    async def linked() -> bool:
        rows = await wired.audit(ticket=ticket["id"])
        return any(r.order_id == order["id"] and r.outcome == "updated" for r in rows)

    await eventually(linked, "the ticket-to-order row in the audit log")


async def test_a_created_ticket_without_order_number_uses_the_requesters_newest_order(
    wired: Wired,
) -> None:
    email = _email("requester")
    older = await wired.api.create_order(charged=False, email=email)
    newer = await wired.api.create_order(charged=False, email=email, shipment_state="Shipped")
    assert newer["createdAt"] >= older["createdAt"]
    ticket = wired.fake.add_ticket("Hello")
    response = await post_ticket_created(
        wired, {"id": str(ticket["id"]), "requester_email": email, "brand_id": "1001"}
    )
    assert response.status_code == 202, response.text
    await eventually(lambda: wired.fake.field_value(ticket["id"], STORE) is not None, "routing")
    assert wired.fake.field_value(ticket["id"], ORDER_FIELD) == newer["orderNumber"]
    assert wired.fake.field_value(ticket["id"], SHIPMENT) == "Shipped"
    # The requester's orders are in the berlin store: a London brand's ticket sees none of
    # them, and gets its own store's values instead.
    london = wired.fake.add_ticket("Hello from London")
    response = await post_ticket_created(
        wired, {"id": str(london["id"]), "requester_email": email, "brand_id": "1002"}
    )
    assert response.status_code == 202
    await eventually(lambda: wired.fake.field_value(london["id"], STORE) is not None, "routing")
    assert wired.fake.field_value(london["id"], STORE) == "london"
    assert wired.fake.field_value(london["id"], CURRENCY) == "GBP"
    assert wired.fake.field_value(london["id"], LOCALE) == "en-GB"
    assert wired.fake.field_value(london["id"], ORDER_FIELD) is None
    assert wired.fake.field_value(london["id"], SHIPMENT) is None


# -- 2. commerce-context sync customers --since DATE ---------------------------------------------


async def test_the_sync_customers_command_enqueues_a_resumable_backfill(
    harness: Harness,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_environment: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from commerce_context import cli
    from commerce_context.zendesk_sync import CUSTOMERS_KIND

    config = tmp_path / "backfill.toml"
    config.write_text(CONFIG)
    database = f"sqlite:///{tmp_path / 'backfill.sqlite3'}"
    async with serve_fake_zendesk(FakeZendesk(email=EMAIL, api_token=TOKEN)) as (fake, url):
        zendesk_environment(
            monkeypatch, harness, config=str(config), database_url=database, zendesk_url=url,
            email=EMAIL, token=TOKEN,
        )  # fmt: skip
        command = ["sync", "customers", "--since", "2001-01-01"]
        # asyncio.run in a thread: this loop keeps serving the emulator's bridge meanwhile.
        assert await asyncio.to_thread(cli.main, command) == 0
        first = capsys.readouterr().out
        assert "customers enqueued" in first
        settings = write_settings(harness, tmp_path, config_file=str(config), database_url=database,
                                  zendesk_api_url=url, zendesk_api_email=EMAIL,
                                  zendesk_api_token=TOKEN)  # fmt: skip
        async with open_engine(settings) as engine:
            jobs = await engine.queue.list(kind=CUSTOMERS_KIND, limit=1000)
            ids = [i for job in jobs for i in job.payload["customer_ids"]]
            assert jobs and len(ids) == len(set(ids))
            # Run again, as after a stop: the recorded pages are skipped, nothing is doubled.
            assert await asyncio.to_thread(cli.main, command) == 0
            assert capsys.readouterr().out == first
            assert len(await engine.queue.list(kind=CUSTOMERS_KIND, limit=1000)) == len(jobs)
        # The service's workers then sync them: every customer becomes a Zendesk user.
        async with (
            httpx.AsyncClient() as http,
            app_client(create_app(settings, http=http)),
        ):
            await eventually(
                lambda: all(fake.user_by_external_id(i) or _shared(fake, i) for i in ids),
                "every backfilled customer in Zendesk",
            )
    monkeypatch.delenv("CC_ZENDESK_API_EMAIL")
    monkeypatch.delenv("CC_ZENDESK_API_TOKEN")
    assert await asyncio.to_thread(cli.main, command) == 2
    assert "CC_ZENDESK_API_EMAIL" in capsys.readouterr().err


def _shared(fake: FakeZendesk, customer_id: str) -> bool:
    """A customer sharing its email with an older one is kept in the other ids field."""
    others = (str(u["user_fields"].get("cc_other_ids") or "") for u in fake.users.values())
    return any(customer_id in ids.split() for ids in others)


# -- 6. faults: a real worker process killed mid-batch -------------------------------------------


class TicketWrites:
    """In front of the fake Zendesk: every ticket update, its custom fields and its answer,
    in the order the fake answered them (a stale write landing late shows up here)."""

    def __init__(self, fake: FakeZendesk) -> None:
        self.fake = fake
        self.log: list[tuple[int, dict[int, Any], int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "PUT" or "/tickets/" not in scope["path"]:
            await self.fake(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        fields = {
            f["id"]: f.get("value")
            for f in (json.loads(body).get("ticket") or {}).get("custom_fields") or []
        }
        ticket_id = int(scope["path"].rstrip("/").split("/")[-1].removesuffix(".json"))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.log.append((ticket_id, fields, int(message["status"])))
            await send(message)

        await self.fake(scope, replay, watch)

    def log_of(self, ticket_id: int) -> list[tuple[dict[int, Any], int]]:
        return [(fields, status) for tid, fields, status in self.log if tid == ticket_id]

    def applied(self, ticket_id: int, field_id: int) -> list[Any]:
        """The values of one field that the fake accepted, in order."""
        return [
            fields[field_id]
            for tid, fields, status in self.log
            if tid == ticket_id and status == 200 and field_id in fields
        ]


def worker_env(wired: Wired, tmp_path: Path, concurrency: int) -> dict[str, str]:
    import os

    from commerce_context.emulator.harness import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    settings = wired.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    env.update(
        CC_CT_PROJECT_KEY=wired.harness.project_key,
        CC_CT_CLIENT_ID=DEMO_CLIENT_ID,
        CC_CT_CLIENT_SECRET=DEMO_CLIENT_SECRET,
        CC_CT_API_URL=wired.harness.api_url,
        CC_CT_AUTH_URL=wired.harness.api_url,
        CC_CONFIG_FILE=str(settings.config_file),
        CC_DATABASE_URL=f"sqlite:///{tmp_path / 'jobs.sqlite3'}",  # as write_settings sets it
        CC_STATE_PATH=str(tmp_path / "worker-state.sqlite3"),
        CC_ZENDESK_API_URL=str(settings.zendesk_api_url),
        CC_ZENDESK_API_EMAIL=EMAIL,
        CC_ZENDESK_API_TOKEN=TOKEN,
        CC_ZENDESK_ORDER_FIELD_ID=str(ORDER_FIELD),
        CC_RATE_LIMITS='{"commercetools": "1000/s"}',
        CC_JOBS_LEASE="1",
        CC_JOBS_POLL_INTERVAL="0.05",
        CC_JOBS_BACKOFF_BASE="0.1",
        CC_JOBS_BACKOFF_MAX="0.5",
        CC_WORKER_CONCURRENCY=str(concurrency),
        CC_WORKER_IN_PROCESS="false",
        CC_LOG_LEVEL="warning",
    )
    return env


@contextlib.asynccontextmanager
async def worker_process(env: dict[str, str], log: Path) -> AsyncIterator[Any]:
    """`commerce-context worker`: the production worker command, in a process of its own."""
    import sys

    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commerce_context", "worker", env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


@pytest_asyncio.fixture(loop_scope="session")
async def offline(harness: Harness, tmp_path: Path) -> AsyncIterator[tuple[Wired, TicketWrites]]:
    """The app without its in-process worker (the worker processes run the jobs), and the fake
    Zendesk behind the ticket-write recorder."""
    from commerce_context.emulator.harness import serve

    fake = FakeZendesk(email=EMAIL, api_token=TOKEN)
    writes = TicketWrites(fake)
    path = tmp_path / "mappings.toml"
    path.write_text(CONFIG)
    async with serve(writes) as url:
        settings = write_settings(
            harness, tmp_path, config_file=str(path), zendesk_api_url=url,
            zendesk_api_email=EMAIL, zendesk_api_token=TOKEN,
            zendesk_order_field_id=ORDER_FIELD, worker_in_process=False,
        )  # fmt: skip
        async with httpx.AsyncClient(timeout=10) as plain:
            yield Wired(plain, settings, fake, Api(plain, harness), harness), writes
        await fake.idle()


async def test_a_worker_killed_mid_batch_leaves_every_user_right_and_created_once(
    offline: tuple[Wired, TicketWrites], tmp_path: Path
) -> None:
    import signal

    from commerce_context.zendesk_sync import CUSTOMERS_KIND, enqueue_customers

    wired, _ = offline
    customers = [await wired.customer(_email(f"killed{i}")) for i in range(5)]
    ids = [c["id"] for c in customers]
    wired.fake.job_delay = 1.5  # the Zendesk job is still running when the worker dies
    async with open_engine(wired.settings) as engine:
        (job,) = await enqueue_customers(engine.queue, ids, key="test:killed-batch")
        env = worker_env(wired, tmp_path, concurrency=4)
        async with worker_process(env, tmp_path / "first.log") as first:
            # Submitted, and the Zendesk job id recorded (the worker is now polling it).
            await eventually(
                lambda: _recorded(engine.queue, "zendesk:users-job:"), "the batch submitted"
            )
            assert wired.fake.count("POST", "/api/v2/users/create_or_update_many") == 1
            first.send_signal(signal.SIGKILL)  # mid-batch: Zendesk is still working on it
            assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
        held = await engine.queue.get(job.id)
        assert held is not None and held.state == "running"  # its lease will expire
        async with worker_process(env, tmp_path / "second.log"):
            await eventually(lambda: _done(engine.queue, job.id), "the re-run")
        done = await engine.queue.get(job.id)
        assert done is not None and done.attempts == 2 and done.result is not None
        assert done.result["created"] == 5
        # The re-run polled the Zendesk job the dead worker had submitted: no second batch.
        assert wired.fake.count("POST", "/api/v2/users/create_or_update_many") == 1
        assert len(wired.fake.users) == 5
        for customer in customers:
            user = wired.fake.user_by_external_id(customer["id"])
            assert user is not None and user["email"] == customer["email"]
            rows = await engine.audit.query(customer=customer["id"])
            assert [r.outcome for r in rows] == ["created"]  # recorded once
        assert await engine.queue.list(state="dead", kind=CUSTOMERS_KIND) == []


async def test_a_worker_killed_mid_write_never_leaves_a_stale_ticket_value(
    offline: tuple[Wired, TicketWrites], tmp_path: Path
) -> None:
    import signal

    from commerce_context.zendesk_sync import enqueue_order

    wired, writes = offline
    order = await wired.api.create_order(charged=False, shipment_state="Ready")
    number = order["orderNumber"]
    tickets = [wired.fake.add_ticket(f"T{i}", custom_fields={ORDER_FIELD: number}) for i in (1, 2)]
    # One job at a time: the search, ticket 1 read, ticket 1 write (held 6 s), ...
    wired.fake.inject("latency", count=2, seconds=0.0)
    wired.fake.inject("latency", count=1, seconds=6.0)
    async with open_engine(wired.settings) as engine:
        await enqueue_order(engine.queue, order["id"], version=order["version"])
        env = worker_env(wired, tmp_path, concurrency=1)
        async with worker_process(env, tmp_path / "first.log") as first:
            await eventually(
                lambda: wired.fake.count("PUT", "/api/v2/tickets/") == 1, "the first write sent"
            )
            first.send_signal(signal.SIGKILL)  # the write is in flight; its answer is lost
            assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
        # Meanwhile the order ships, and its event arrives.
        shipped = await wired.api.post(
            "OrderUpdate",
            f"/orders/{order['id']}",
            {"version": order["version"],
             "actions": [{"action": "changeShipmentState", "shipmentState": "Shipped"}]},
        )  # fmt: skip
        await enqueue_order(engine.queue, order["id"], version=shipped["version"])
        async with worker_process(env, tmp_path / "second.log"):
            await eventually(lambda: _settled(engine.queue), "every job settled")
            await eventually(
                lambda: all(
                    wired.fake.field_value(t["id"], SHIPMENT) == "Shipped" for t in tickets
                ),
                "both tickets shipped",
            )
        # The dead worker's write is answered too (it was held; it lands or is refused late).
        await eventually(
            lambda: len(writes.log) == wired.fake.count("PUT", "/api/v2/tickets/"),
            "every ticket write answered",
        )
        assert await engine.queue.list(state="dead") == []
    # The write in flight when the worker died (Ready) was either applied before the fresh one
    # (then overwritten) or, arriving after it, refused: its safe update carries the stamp of a
    # ticket that has changed since. Held 6 s, it normally arrives after.
    stale = [s for fields, s in writes.log_of(tickets[0]["id"]) if fields[SHIPMENT] == "Ready"]
    assert stale in ([409], [200])
    for ticket in tickets:
        assert wired.fake.field_value(ticket["id"], SHIPMENT) == "Shipped"
        applied = writes.applied(ticket["id"], SHIPMENT)
        # Never a stale value after the fresh one, and no value written twice.
        assert applied[-1] == "Shipped"
        assert "Ready" not in applied[applied.index("Shipped") :]
        assert len(applied) == len(set(applied))
        assert wired.fake.tickets[ticket["id"]]["status"] == "open"


async def _recorded(queue: Any, prefix: str) -> bool:
    rows = await queue.db.fetchall("SELECT key FROM ledger WHERE key LIKE ?", (prefix + "%",))
    return bool(rows)


async def _done(queue: Any, job_id: str) -> bool:
    job = await queue.get(job_id)
    return job is not None and job.state == "done"


async def _settled(queue: Any) -> bool:
    counts = await queue.counts()
    return counts["queued"] == 0 and counts["running"] == 0


# -- 7. the demo: the simulated Zendesk account ----------------------------------------------------


async def test_the_demo_syncs_its_customers_and_ships_an_order_into_the_fake_zendesk(
    harness: Harness, tmp_path: Path
) -> None:
    from dataclasses import replace

    from bs4 import BeautifulSoup

    from commerce_context.demo import DemoZendesk
    from commerce_context.demo_sync import demo_account
    from commerce_context.emulator.harness import build_demo, demo_settings, demo_tickets, serve

    shipment_field, store_field = 360000011, 360000013
    async with demo_account(harness, demo_tickets(harness.demo)) as (account, overrides):
        zendesk = DemoZendesk.generate()
        settings = demo_settings(
            harness, zendesk, state_path=tmp_path / "demo.sqlite3", jobs_poll_interval=0.05,
            **overrides,
        )  # fmt: skip
        await account.start(settings)  # as `make run` does before serving
        demo = replace(build_demo(harness, zendesk), zendesk_account=account)
        fake = account.fake
        async with (
            serve(create_app(settings, demo=demo)) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as browser,
            httpx.AsyncClient(timeout=10) as plain,
        ):
            # The backfill: every demo customer is a Zendesk user (or, sharing an email with
            # an older customer, in that user's other-ids field).
            customers = [c.id for c in harness.demo.customers.values()]
            await eventually(
                lambda: all(fake.user_by_external_id(i) or _shared(fake, i) for i in customers),
                "the demo customers as Zendesk users",
            )
            # Each demo ticket got its routing fields; the one naming DE-1003 from that order.
            (with_order,) = [i for i, t in account.tickets.items() if t["order_number"]]
            await eventually(
                lambda: fake.field_value(with_order, store_field) == "berlin", "routing fields"
            )
            # The ship control: an order of our own, so the seeded ones stay as they are.
            order = await Api(plain, harness).create_order(charged=False, shipment_state="Ready")
            ticket = fake.add_ticket(
                "Shipped yet?", custom_fields={ORDER_FIELD: order["orderNumber"]}
            )
            response = await browser.post(
                "/demo/zendesk/ship", data={"order_number": order["orderNumber"]}
            )
            assert response.status_code == 303, response.text
            await eventually(
                lambda: fake.field_value(ticket["id"], shipment_field) == "Shipped",
                "the shipped order's ticket field",
            )
            page = await browser.get("/demo/zendesk/account")
            assert page.status_code == 200
            soup = BeautifulSoup(page.text, "html.parser")
            row = soup.select_one(
                f'tr[data-ticket="{ticket["id"]}"] td[data-field="Shipment state"]'
            )
            assert row is not None and row.get_text(strip=True) == "Shipped"
            users = soup.select('[data-testid="users"] tr[data-external-id]')
            assert len(users) == len(fake.users)
            index = await browser.get("/")
            assert 'href="/demo/zendesk/account"' in index.text
            unknown = await browser.post("/demo/zendesk/ship", data={"order_number": "NO-SUCH"})
            assert unknown.status_code == 404
