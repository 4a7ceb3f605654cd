"""Push invalidation: commercetools subscription payloads (Platform and CloudEvents) forwarded
by a queue bridge to POST /commercetools/events."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.events import parse_payload
from commerce_context.exceptions import BadRequest
from tests.asgi import app_client
from tests.conftest import Recorder
from tests.openapi import assert_valid
from tests.test_sidebar import Sidebar

pytestmark = pytest.mark.emulator

SECRET = "events-secret-for-tests-only-0123456789"


def message(
    resource_id: str, version: int, type_: str = "OrderStateChanged", type_id: str = "order"
) -> dict[str, Any]:
    payload = {
        "notificationType": "Message",
        "projectKey": "test-project",
        "id": str(uuid.uuid4()),
        "version": 1,
        "sequenceNumber": version,
        "resource": {"typeId": type_id, "id": resource_id},
        "resourceVersion": version,
        "type": type_,
        "createdAt": "2026-11-24T10:00:00.000Z",
        "lastModifiedAt": "2026-11-24T10:00:00.000Z",
        "orderState": "Confirmed",
        "oldOrderState": "Open",
    }
    assert_valid("MessageDeliveryPayload", payload)
    return payload


def resource_updated(resource_id: str, version: int) -> dict[str, Any]:
    payload = {
        "notificationType": "ResourceUpdated",
        "projectKey": "test-project",
        "resource": {"typeId": "order", "id": resource_id},
        "version": version,
        "oldVersion": version - 1,
        "modifiedAt": "2026-11-24T10:00:00.000Z",
    }
    assert_valid("ResourceUpdatedDeliveryPayload", payload)
    return payload


def cloud_event(platform: dict[str, Any]) -> dict[str, Any]:
    payload = {
        "specversion": "1.0",
        "id": platform.get("id", str(uuid.uuid4())),
        "type": f"com.commercetools.order.message.{platform.get('type', 'ResourceUpdated')}",
        "source": "/test-project/orders",
        "subject": platform["resource"]["id"],
        "time": "2026-11-24T10:00:00.000Z",
        "sequence": "1",
        "sequencetype": "Integer",
        "data": platform,
    }
    assert_valid("CloudEventsPayload", payload)
    return payload


@pytest_asyncio.fixture(loop_scope="session")
async def service(harness: Harness) -> AsyncIterator[tuple[Sidebar, httpx.AsyncClient]]:
    zendesk = DemoZendesk.generate()
    settings = demo_settings(harness, zendesk, events_secret=SECRET)
    recorder = Recorder()
    async with (
        httpx.AsyncClient(event_hooks={"request": [recorder]}) as http,
        app_client(create_app(settings, http=http), raise_errors=True) as client,
    ):
        yield Sidebar(client, zendesk, recorder), client


async def post(client: httpx.AsyncClient, body: Any, secret: str = SECRET) -> httpx.Response:
    return await client.post(
        "/commercetools/events", json=body, headers={"Authorization": f"Bearer {secret}"}
    )


async def warm_order(sidebar: Sidebar, number: str) -> dict[str, Any]:
    await sidebar.page(order_number=number)
    page = await sidebar.page(order_number=number)
    assert sidebar.recorder.api_calls() == []  # warm
    return {"page": page}


async def test_newer_message_evicts_and_the_next_view_refetches(
    service: tuple[Sidebar, httpx.AsyncClient], harness: Harness
) -> None:
    sidebar, client = service
    order = harness.demo.orders["UK-2001"]
    await warm_order(sidebar, "UK-2001")
    response = await post(client, message(order.id, 10_000))
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "evicted": 1, "duplicates": 0, "ignored": 0}
    await sidebar.page(order_number="UK-2001")
    assert len(sidebar.recorder.api_calls()) == 2  # versions, then the evicted order


async def test_older_or_repeated_messages_change_nothing(
    service: tuple[Sidebar, httpx.AsyncClient], harness: Harness
) -> None:
    sidebar, client = service
    order = harness.demo.orders["UK-2002"]
    await warm_order(sidebar, "UK-2002")
    old = message(order.id, 1)
    assert (await post(client, old)).json()["evicted"] == 0
    assert (await post(client, old)).json()["duplicates"] == 1
    await sidebar.page(order_number="UK-2002")
    assert sidebar.recorder.api_calls() == []


async def test_change_payloads_and_cloudevents_are_understood(
    service: tuple[Sidebar, httpx.AsyncClient], harness: Harness
) -> None:
    sidebar, client = service
    order = harness.demo.orders["US-3002"]
    await warm_order(sidebar, "US-3002")
    batch = [cloud_event(resource_updated(order.id, 10_000)), resource_updated(order.id, 10_000)]
    body = (await post(client, batch)).json()
    assert body["accepted"] == 2 and body["evicted"] == 1  # the second finds nothing left


async def test_payment_events_evict_the_order_holding_the_payment(
    service: tuple[Sidebar, httpx.AsyncClient], harness: Harness
) -> None:
    sidebar, client = service
    order = harness.demo.orders["DE-1001"]
    await warm_order(sidebar, "DE-1001")
    payment_id = order.payment_ids[0]
    body = (await post(client, message(payment_id, 5, "PaymentTransactionAdded", "payment"))).json()
    assert body["evicted"] == 1
    await sidebar.page(order_number="DE-1001")
    assert len(sidebar.recorder.api_calls()) == 2


async def test_order_created_expires_cached_lists(
    service: tuple[Sidebar, httpx.AsyncClient], harness: Harness
) -> None:
    sidebar, client = service
    anna = harness.demo.customers["anna-schmidt"]
    await sidebar.page(emails=[anna.email])
    await sidebar.page(emails=[anna.email])
    assert sidebar.recorder.api_calls() == []
    body = (await post(client, message(str(uuid.uuid4()), 1, "OrderCreated"))).json()
    assert body["accepted"] == 1
    await sidebar.page(emails=[anna.email])
    assert len(sidebar.recorder.api_calls()) == 1  # lists re-read; entities still cached


async def test_other_resource_types_are_accepted_and_ignored(
    service: tuple[Sidebar, httpx.AsyncClient],
) -> None:
    _, client = service
    body = (await post(client, message(str(uuid.uuid4()), 3, "ProductPublished", "product"))).json()
    assert body == {"accepted": 1, "evicted": 0, "duplicates": 0, "ignored": 1}


@pytest.mark.parametrize("secret", ["", "wrong-secret-wrong-secret-wrong"])
async def test_wrong_secret_is_401(service: tuple[Sidebar, httpx.AsyncClient], secret: str) -> None:
    _, client = service
    response = await post(client, message(str(uuid.uuid4()), 1), secret=secret)
    assert response.status_code == 401
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"notificationType": "Message"}, "resource.typeId"),
        ({"notificationType": "Nope", "resource": {"typeId": "order", "id": "x"}}, "Nope"),
        ({"specversion": "0.3", "data": {}}, "specversion"),
        ({"specversion": "1.0", "data": "x"}, "data"),
        (["not an object"], "JSON object"),
        (
            {"notificationType": "Message", "resource": {"typeId": "order", "id": "x"}},
            "id and type",
        ),
    ],
)
async def test_malformed_payloads_are_400(
    service: tuple[Sidebar, httpx.AsyncClient], body: Any, expected: str
) -> None:
    _, client = service
    response = await post(client, body)
    assert response.status_code == 400
    assert expected in response.json()["error"]["message"]


async def test_invalid_json_is_400(service: tuple[Sidebar, httpx.AsyncClient]) -> None:
    _, client = service
    response = await client.post(
        "/commercetools/events", content=b"{", headers={"Authorization": f"Bearer {SECRET}"}
    )
    assert response.status_code == 400


async def test_endpoint_is_off_without_a_secret(harness: Harness) -> None:
    async with app_client(create_app(demo_settings(harness))) as client:
        response = await client.post("/commercetools/events", json={})
    assert response.status_code == 404


def test_parse_payload_extracts_versions() -> None:
    event = parse_payload(cloud_event(message("o-1", 7)))
    assert (event.kind, event.resource_id, event.version) == ("order", "o-1", 7)
    with pytest.raises(BadRequest):
        parse_payload(42)


class Switch(httpx.AsyncHTTPTransport):
    """The real network to the emulator until switched off (an outage of reads)."""

    down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down and request.url.path != "/oauth/token":
            raise httpx.ConnectError("commercetools switched off", request=request)
        return await super().handle_async_request(request)


@pytest_asyncio.fixture(loop_scope="session")
async def switched(
    harness: Harness,
) -> AsyncIterator[tuple[Sidebar, httpx.AsyncClient, Switch]]:
    zendesk = DemoZendesk.generate()
    settings = demo_settings(
        harness,
        zendesk,
        events_secret=SECRET,
        ct_max_retries=0,
        breaker_threshold=100,  # every request really goes out, and fails
        cache_ttl_lists=0,
        cache_ttl_order=0,
        cache_ttl_customer=0,
    )
    switch = Switch()
    async with (
        httpx.AsyncClient(transport=switch) as http,
        app_client(create_app(settings, http=http), raise_errors=True) as client,
    ):
        yield Sidebar(client, zendesk, Recorder()), client, switch


async def test_an_event_that_failed_to_apply_is_applied_on_redelivery(
    switched: tuple[Sidebar, httpx.AsyncClient, Switch], harness: Harness
) -> None:
    sidebar, client, switch = switched
    order = harness.demo.orders["DE-1002"]
    await sidebar.page(order_number="DE-1002")
    event = message(order.payment_ids[0], 7, "PaymentTransactionAdded", "payment")
    switch.down = True  # the payment's orders cannot be asked for
    failed = await post(client, event)
    assert failed.status_code == 503
    assert int(failed.headers["retry-after"]) >= 1
    switch.down = False
    redelivered = (await post(client, event)).json()
    assert redelivered["duplicates"] == 0 and redelivered["evicted"] == 1
    assert (await post(client, event)).json()["duplicates"] == 1  # applied: now it is seen


async def test_a_list_event_during_an_outage_keeps_the_stale_panels(
    switched: tuple[Sidebar, httpx.AsyncClient, Switch], harness: Harness
) -> None:
    sidebar, client, switch = switched
    anna = harness.demo.customers["anna-schmidt"]
    live = await sidebar.page(emails=[anna.email])
    assert live.select_one('[data-testid="stale"]') is None
    switch.down = True
    try:
        created = await post(client, message(str(uuid.uuid4()), 1, "OrderCreated"))
        assert created.status_code == 202
        stale = await sidebar.panels(emails=[anna.email])
    finally:
        switch.down = False
    assert stale.status_code == 200, stale.text  # not "nothing cached"
    assert 'data-testid="stale"' in stale.text and f'data-customer-id="{anna.id}"' in stale.text


@pytest.mark.parametrize(
    "payload",
    [
        {**message("o-1", 1), "id": "m" * 300},
        {**message("o-1", 1), "resource": {"typeId": "order", "id": "o" * 300}},
        {**message("o-1", 1), "type": "T" * 300},
        {**message("o-1", 1), "resource": {"typeId": "order", "id": {"nested": "object"}}},
    ],
)
async def test_client_supplied_ids_are_bounded(
    service: tuple[Sidebar, httpx.AsyncClient], payload: dict[str, Any]
) -> None:
    _, client = service
    response = await post(client, payload)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"


async def test_a_request_holds_a_bounded_number_of_events(
    service: tuple[Sidebar, httpx.AsyncClient],
) -> None:
    _, client = service
    one = message(str(uuid.uuid4()), 1, "ProductPublished", "product")
    response = await post(client, [one] * 1001)
    assert response.status_code == 400
