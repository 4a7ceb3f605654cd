"""Messages emulated by the bridge (``emulator/messages.py``): a harness extension of ours.

The emulator has no Messages API. The bridge turns successful writes into Messages shaped like
the official ``…Message`` components and serves ``GET /{projectKey}/messages``. These tests run
one emulator + bridge for the module (seeded with the demo project *through* the bridge, so the
seed's creates and updates are Messages too) and check:

* the seed's writes and new update actions become the right Messages, with the right
  ``resourceVersion`` (one per version-bumping action, ending at the response's version) and
  per-resource ``sequenceNumber``;
* a poller's query (``createdAt > cursor``, ``sort=createdAt asc``, ``withTotal=false``) pages
  them in order, late-arriving Messages are caught by an overlap window, unsupported predicates
  are 400 ``InvalidInput``;
* every Message validates against its OpenAPI component, and the Subscription payload builders
  against ``MessageDeliveryPayload``, ``Resource{Created,Updated,Deleted}DeliveryPayload`` and
  ``CloudEventsPayload``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from commerce_context.emulator.bridge import create_bridge_app
from commerce_context.emulator.harness import serve
from commerce_context.emulator.messages import (
    ACTION_MESSAGES,
    InvalidQuery,
    MessageLog,
    Write,
    cloudevents_payload,
    format_datetime,
    match_write,
    parse_where,
    platform_payload,
    resource_created_payload,
    resource_deleted_payload,
    resource_updated_payload,
)
from commerce_context.emulator.process import EmulatorProcess
from commerce_context.emulator.seed import SEED_CLIENT_ID, DemoData, seed_demo_project
from tests.openapi import assert_valid, load_spec, validation_errors
from tests.schema import assert_valid_document

pytestmark = pytest.mark.emulator

PROJECT = "messages-test"
CLIENT_ID = "messages-test-client"
Json = dict[str, Any]


@dataclass(frozen=True)
class Env:
    app: Starlette
    url: str
    demo: DemoData

    @property
    def log(self) -> MessageLog:
        log: MessageLog = self.app.state.messages.project(PROJECT)
        return log


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def env() -> AsyncIterator[Env]:
    emulator = await asyncio.to_thread(EmulatorProcess(PROJECT).start)
    try:
        app = create_bridge_app(emulator.url)
        async with serve(app) as url, httpx.AsyncClient(timeout=30) as http:
            demo = await seed_demo_project(http, api_url=url, auth_url=url, project_key=PROJECT)
            yield Env(app, url, demo)
    finally:
        await asyncio.to_thread(emulator.stop)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(env: Env) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=env.url, timeout=30) as client:
        token = await client.post(
            "/oauth/token", auth=(CLIENT_ID, "secret"), data={"grant_type": "client_credentials"}
        )
        assert token.status_code == 200, token.text
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


# -- helpers -----------------------------------------------------------------------------------


async def get(http: httpx.AsyncClient, path: str, **params: Any) -> Json:
    answer = await http.get(f"/{PROJECT}{path}", params=params)
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    return body


async def update(
    http: httpx.AsyncClient, collection: str, resource_id: str, *actions: Json
) -> Json:
    current = await get(http, f"/{collection}/{resource_id}")
    answer = await http.post(
        f"/{PROJECT}/{collection}/{resource_id}",
        json={"version": current["version"], "actions": list(actions)},
    )
    assert answer.status_code == 200, answer.text
    body: Json = answer.json()
    return body


async def all_messages(http: httpx.AsyncClient, **params: Any) -> list[Json]:
    results: list[Json] = []
    while True:
        page = await get(http, "/messages", limit=500, offset=len(results), **params)
        results.extend(page["results"])
        if page["count"] < 500:
            return results


def since(cursor: str, type_id: str | None = None) -> str:
    where = f'createdAt > "{cursor}"'
    return f'resource(typeId="{type_id}") and {where}' if type_id else where


def now() -> str:
    return format_datetime(datetime.now(UTC))


async def tick() -> None:
    await asyncio.sleep(0.005)  # createdAt has millisecond precision


def assert_message_valid(message: Json) -> None:
    assert_valid(f"{message['type']}Message", message)
    assert_valid("Message", message)  # the common fields (the union itself does not dispatch)


def delivery_errors(component: str, payload: object) -> list[str]:
    return validation_errors(component, payload)


def assert_valid_delivery(component: str, payload: object) -> None:
    assert_valid(component, payload)


# -- the seed's writes ---------------------------------------------------------------------------


async def test_seed_writes_become_valid_messages(env: Env, http: httpx.AsyncClient) -> None:
    messages = await all_messages(http)
    counts: dict[str, int] = defaultdict(int)
    for message in messages:
        counts[message["type"]] += 1
        assert_message_valid(message)
    orders, customers = env.demo.orders, env.demo.customers
    assert counts["OrderImported"] == len(orders)
    assert counts["OrderShipmentStateChanged"] >= len(orders)
    assert counts["OrderPaymentAdded"] == len(orders)
    assert counts["CustomerCreated"] == len(customers)
    assert counts["PaymentCreated"] == len(orders)
    assert counts["DeliveryAdded"] == sum(1 for o in orders.values() if o.tracking_ids)
    assert counts["ReturnInfoAdded"] == sum(1 for o in orders.values() if o.has_return)
    assert counts["CustomerEmailChanged"] >= 1  # the seed's duplicate-email repair
    assert counts["CustomerGroupSet"] >= 1
    assert "CartCreated" not in counts  # no such Message; cart creates produce none

    # Per resource: sequence numbers 1..n, resource versions ascending, the last one current.
    by_resource: dict[tuple[str, str], list[Json]] = defaultdict(list)
    for message in messages:
        by_resource[(message["resource"]["typeId"], message["resource"]["id"])].append(message)
    for (type_id, resource_id), trail in by_resource.items():
        trail.sort(key=lambda m: m["sequenceNumber"])
        assert [m["sequenceNumber"] for m in trail] == list(range(1, len(trail) + 1))
        versions = [m["resourceVersion"] for m in trail]
        assert versions == sorted(versions)
        if type_id == "order":
            order = await get(http, f"/orders/{resource_id}")
            assert versions[-1] == order["version"]
            assert all(
                m["resourceUserProvidedIdentifiers"] == {"orderNumber": order["orderNumber"]}
                for m in trail
            )
            assert trail[0]["createdBy"]["clientId"] == SEED_CLIENT_ID


async def test_seed_followup_update_gets_one_version_per_action(
    env: Env, http: httpx.AsyncClient
) -> None:
    # The seed's follow-up for a returned order: changeShipmentState, addDelivery, addPayment,
    # addReturnInfo in one request, on the imported order (version 1).
    number = next(n for n, o in env.demo.orders.items() if o.has_return and o.tracking_ids)
    order_id = env.demo.orders[number].id
    trail = await all_messages(http, where='resource(typeId="order")')
    trail = [m for m in trail if m["resource"]["id"] == order_id][:5]
    assert [(m["type"], m["resourceVersion"], m["sequenceNumber"]) for m in trail] == [
        ("OrderImported", 1, 1),
        ("OrderShipmentStateChanged", 2, 2),
        ("DeliveryAdded", 3, 3),
        ("OrderPaymentAdded", 4, 4),
        ("ReturnInfoAdded", 5, 5),
    ]
    imported, shipped, delivered, paid, returned = trail
    assert imported["order"]["orderNumber"] == number
    assert "oldShipmentState" not in shipped  # the emulator dropped it on import
    assert delivered["delivery"]["key"] == f"{number.lower()}-delivery-1"
    assert "deliveryKey" not in delivered["delivery"]
    assert paid["paymentRef"] == {"typeId": "payment", "id": env.demo.orders[number].payment_ids[0]}
    assert returned["returnInfo"]["items"][0]["shipmentState"]
    assert len({m["createdAt"] for m in trail[1:]}) == 1  # one write, one timestamp


# -- update actions through the bridge ---------------------------------------------------------


async def test_custom_field_and_state_actions(env: Env, http: httpx.AsyncClient) -> None:
    order_id = env.demo.orders["DE-1001"].id
    before = await get(http, f"/orders/{order_id}")
    old_status = before["custom"]["fields"]["supportStatus"]
    assert "marketplaceSource" not in before["custom"]["fields"]
    seq = await all_messages(http, where='resource(typeId="order")')
    last_seq = max(m["sequenceNumber"] for m in seq if m["resource"]["id"] == order_id)
    cursor = now()
    await tick()

    after = await update(
        http,
        "orders",
        order_id,
        {"action": "setCustomField", "name": "supportStatus", "value": "open"},
        {"action": "setCustomField", "name": "supportStatus", "value": "open"},  # no-op
        {"action": "setCustomField", "name": "marketplaceSource", "value": "ebay"},
        {"action": "changeOrderState", "orderState": "Cancelled"},
        {"action": "setCustomField", "name": "marketplaceSource"},  # removes it
    )
    assert after["version"] == before["version"] + 4  # the emulator skips the no-op too

    page = await get(
        http, "/messages", where=since(cursor, "order"), sort="createdAt asc", withTotal="false"
    )
    assert "total" not in page
    got = [m for m in page["results"] if m["resource"]["id"] == order_id]
    assert [(m["type"], m["resourceVersion"], m["sequenceNumber"]) for m in got] == [
        ("OrderCustomFieldChanged", before["version"] + 1, last_seq + 1),
        ("OrderCustomFieldAdded", before["version"] + 2, last_seq + 2),
        ("OrderStateChanged", before["version"] + 3, last_seq + 3),
        ("OrderCustomFieldRemoved", before["version"] + 4, last_seq + 4),
    ]
    changed, added, state, removed = got
    assert (changed["name"], changed["value"], changed["previousValue"]) == (
        "supportStatus",
        "open",
        old_status,
    )
    assert (added["name"], added["value"]) == ("marketplaceSource", "ebay")
    assert (state["orderState"], state["oldOrderState"]) == ("Cancelled", before["orderState"])
    assert removed["name"] == "marketplaceSource" and "value" not in removed
    for message in got:
        assert_message_valid(message)
        assert message["version"] == 1
        assert message["resource"] == {"typeId": "order", "id": order_id}
        assert message["resourceUserProvidedIdentifiers"] == {"orderNumber": "DE-1001"}
        assert message["createdBy"]["clientId"] == CLIENT_ID  # recognise our own writebacks
        assert message["createdAt"] == message["lastModifiedAt"]
        assert await get(http, f"/messages/{message['id']}") == message


async def test_shipping_return_and_payment_actions(env: Env, http: httpx.AsyncClient) -> None:
    number = next(n for n, o in env.demo.orders.items() if o.tracking_ids and not o.has_return)
    info = env.demo.orders[number]
    order = await get(http, f"/orders/{info.id}")
    delivery = order["shippingInfo"]["deliveries"][0]
    line_item = order["lineItems"][0]
    cursor = now()
    await tick()
    await update(
        http,
        "orders",
        info.id,
        {"action": "changeShipmentState", "shipmentState": "Delayed"},
        {
            "action": "addParcelToDelivery",
            "deliveryId": delivery["id"],
            "trackingData": {"trackingId": "TRACK-2", "carrier": "DHL", "isReturn": False},
        },
        {
            "action": "addReturnInfo",
            "items": [{"lineItemId": line_item["id"], "quantity": 1, "shipmentState": "Advised"}],
        },
    )
    payment_id = info.payment_ids[0]
    payment = await update(
        http,
        "payments",
        payment_id,
        {
            "action": "addTransaction",
            "transaction": {
                "type": "Refund",
                "amount": {"currencyCode": order["totalPrice"]["currencyCode"], "centAmount": 100},
                "state": "Pending",
            },
        },
    )
    refund = payment["transactions"][-1]
    await update(
        http,
        "payments",
        payment_id,
        {"action": "changeTransactionState", "transactionId": refund["id"], "state": "Success"},
    )
    got = await all_messages(http, where=since(cursor), sort="createdAt asc")
    assert [m["type"] for m in got] == [
        "OrderShipmentStateChanged",
        "ParcelAddedToDelivery",
        "ReturnInfoAdded",
        "PaymentTransactionAdded",
        "PaymentTransactionStateChanged",
    ]
    shipped, parcel, returned, added, changed = got
    assert (shipped["shipmentState"], shipped["oldShipmentState"]) == (
        "Delayed",
        order["shipmentState"],
    )
    assert parcel["delivery"]["id"] == delivery["id"]
    assert parcel["parcel"]["trackingData"]["trackingId"] == "TRACK-2"
    assert parcel["parcel"] in parcel["delivery"]["parcels"]
    assert returned["returnInfo"]["items"][0]["lineItemId"] == line_item["id"]
    assert added["transaction"]["id"] == refund["id"]
    assert added["resourceUserProvidedIdentifiers"] == {"key": payment["key"]}
    assert (changed["transactionId"], changed["state"]) == (refund["id"], "Success")
    assert [m["resourceVersion"] for m in got[3:]] == [payment["version"], payment["version"] + 1]
    for message in got:
        assert_message_valid(message)


async def test_customer_create_change_delete(env: Env, http: httpx.AsyncClient) -> None:
    cursor = now()
    await tick()
    created = await http.post(
        f"/{PROJECT}/customers",
        json={"email": "messages.test@example.com", "firstName": "Mia", "key": "mia"},
    )
    assert created.status_code == 201, created.text
    customer = created.json()["customer"]
    changed = await update(
        http,
        "customers",
        customer["id"],
        {"action": "changeEmail", "email": "mia.new@example.com"},
        {"action": "setFirstName", "firstName": "Maria"},
        {"action": "addAddress", "address": {"key": "home", "country": "DE", "city": "Berlin"}},
    )
    deleted = await http.delete(
        f"/{PROJECT}/customers/{customer['id']}", params={"version": changed["version"]}
    )
    assert deleted.status_code == 200, deleted.text
    got = [
        m
        for m in await all_messages(http, where=since(cursor, "customer"))
        if m["resource"]["id"] == customer["id"]
    ]
    assert [(m["type"], m["sequenceNumber"]) for m in got] == [
        ("CustomerCreated", 1),
        ("CustomerEmailChanged", 2),
        ("CustomerFirstNameSet", 3),
        ("CustomerAddressAdded", 4),
        ("CustomerDeleted", 5),
    ]
    created_msg, email, name, address, gone = got
    assert created_msg["customer"]["id"] == customer["id"]
    assert created_msg["resourceVersion"] == customer["version"]
    assert (email["email"], email["oldEmail"]) == ("mia.new@example.com", customer["email"])
    assert name["firstName"] == "Maria"
    assert address["address"]["key"] == "home" and address["address"]["id"]
    assert gone["email"] == "mia.new@example.com"
    assert all(m["resourceUserProvidedIdentifiers"] == {"key": "mia"} for m in got)
    for message in got:
        assert_message_valid(message)


async def test_failed_and_non_resource_writes_produce_nothing(
    env: Env, http: httpx.AsyncClient
) -> None:
    order_id = env.demo.orders["DE-1002"].id
    count = len(env.log)
    stale = await http.post(
        f"/{PROJECT}/orders/{order_id}",
        json={"version": 1, "actions": [{"action": "changeOrderState", "orderState": "Open"}]},
    )
    assert stale.status_code == 409
    unknown = await http.post(
        f"/{PROJECT}/orders/{order_id}",
        json={"version": 1, "actions": [{"action": "noSuchAction"}]},
    )
    assert unknown.status_code == 400
    search = await http.post(f"/{PROJECT}/orders/search", json={"query": {}})
    assert search.status_code < 500
    assert len(env.log) == count


# -- polling -----------------------------------------------------------------------------------


async def test_poller_cursor_paging_and_late_messages(env: Env, http: httpx.AsyncClient) -> None:
    order_id = env.demo.orders["DE-1003"].id
    cursor = now()
    await tick()
    for note in ("first", "second", "third"):
        await update(
            http,
            "orders",
            order_id,
            {"action": "setCustomField", "name": "internalNote", "value": note},
        )
        await tick()
    params = {"where": since(cursor, "order"), "sort": "createdAt asc", "withTotal": "false"}
    page = await get(http, "/messages", limit=500, **params)
    assert [m["value"] for m in page["results"]] == ["first", "second", "third"]
    assert (page["limit"], page["offset"], page["count"]) == (500, 0, 3)
    assert "total" not in page
    assert_valid("MessagePagedQueryResponse", page)
    first, second, third = page["results"]
    assert first["createdAt"] < second["createdAt"] < third["createdAt"]

    # Paging, totals, descending order.
    paged = await get(http, "/messages", where=since(cursor), limit=1, offset=1)
    assert paged["total"] == 3 and [m["id"] for m in paged["results"]] == [second["id"]]
    newest = await get(http, "/messages", where=since(cursor), sort="createdAt desc", limit=1)
    assert newest["results"][0]["id"] == third["id"]

    # The cursor moves to the newest createdAt seen; a strict `>` poll finds nothing new.
    cursor = third["createdAt"]
    assert (await get(http, "/messages", where=since(cursor)))["results"] == []

    # A Message that becomes visible late, with a createdAt before the cursor.
    late_at = datetime.fromisoformat(second["createdAt"]) + timedelta(milliseconds=1)
    late = env.log.record(
        "OrderCustomFieldChanged",
        {"typeId": "order", "id": order_id},
        third["resourceVersion"] + 1,
        {"name": "internalNote", "value": "late", "previousValue": "third"},
        created_at=late_at,
        resource_user_provided_identifiers={"orderNumber": "DE-1003"},
    )
    assert_message_valid(late)
    assert late["sequenceNumber"] == third["sequenceNumber"] + 1
    assert (await get(http, "/messages", where=since(cursor)))["results"] == []  # missed
    # The overlap window reaches back to before the first Message of this test.
    overlap = format_datetime(
        datetime.fromisoformat(first["createdAt"]) - timedelta(milliseconds=1)
    )
    seen = {first["id"], second["id"], third["id"]}
    window = await get(http, "/messages", where=since(overlap, "order"), sort="createdAt asc")
    fresh = [m for m in window["results"] if m["id"] not in seen]
    assert [m["id"] for m in fresh] == [late["id"]]
    ids = [m["id"] for m in window["results"]]
    assert ids.index(second["id"]) < ids.index(late["id"]) < ids.index(third["id"])
    assert await get(http, f"/messages/{late['id']}") == late

    # type filters, as a poller may add them.
    typed = await get(
        http, "/messages", where=[since(overlap), 'type in ("OrderCustomFieldChanged")']
    )
    assert {m["type"] for m in typed["results"]} == {"OrderCustomFieldChanged"}
    none = await get(http, "/messages", where=[since(overlap), 'type = "OrderCreated"'])
    assert none["results"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"where": 'orderNumber = "DE-1001"'},
        {"where": 'createdAt > "2026-01-01T00:00:00.000Z" or id = "x"'},
        {"where": 'createdAt > "yesterday"'},
        {"where": 'resource(id="x")'},
        {"where": "createdAt > :cursor", "var.cursor": "2026-01-01T00:00:00.000Z"},
        {"sort": "resource asc"},
        {"sort": "createdAt sideways"},
        {"limit": "501"},
        {"offset": "10001"},
        {"limit": "many"},
        {"withTotal": "maybe"},
    ],
)
async def test_unsupported_queries_are_400(http: httpx.AsyncClient, params: dict[str, str]) -> None:
    answer = await http.get(f"/{PROJECT}/messages", params=params)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["statusCode"] == 400
    assert body["errors"][0]["code"] == "InvalidInput"
    assert body["message"] == body["errors"][0]["message"]
    assert_valid("ErrorResponse", body)


async def test_messages_need_a_token_and_unknown_ids_are_404(
    env: Env, http: httpx.AsyncClient
) -> None:
    some = next(iter(env.log))
    async with httpx.AsyncClient(base_url=env.url) as anonymous:
        for path in ("/messages", f"/messages/{some['id']}"):
            answer = await anonymous.get(f"/{PROJECT}{path}")
            assert answer.status_code == 401, answer.text
        bad = await anonymous.get(
            f"/{PROJECT}/messages", headers={"Authorization": "Bearer not-a-token"}
        )
        assert bad.status_code == 401
    missing = await http.get(f"/{PROJECT}/messages/no-such-message")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "ResourceNotFound"
    assert missing.headers["x-correlation-id"]
    other = await get(http, "/messages", withTotal="true", where='resource(typeId="cart")')
    assert other["total"] == 0  # cart creates produce no Messages


async def test_graphql_messages(env: Env, http: httpx.AsyncClient) -> None:
    query = """
        query Messages($where: String) {
          messages(where: $where, sort: ["createdAt desc"], limit: 3) {
            total count exists
            results {
              id type sequenceNumber resourceVersion createdAt
              resourceRef { typeId id }
              userProvidedIdentifiers { orderNumber }
              createdBy { clientId }
              payload {
                type
                ... on OrderCustomFieldChanged { name value previousValue }
                ... on OrderStateChanged { orderState oldOrderState }
              }
            }
          }
        }
    """
    assert_valid_document(query)
    where = 'resource(typeId="order") and createdAt > "2000-01-01T00:00:00.000Z"'
    answer = await http.post(
        f"/{PROJECT}/graphql", json={"query": query, "variables": {"where": where}}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    result = body["data"]["messages"]
    rest = await get(http, "/messages", where=where, sort="createdAt desc", limit=3)
    assert result["total"] == rest["total"] and result["exists"] is True
    assert [m["id"] for m in result["results"]] == [m["id"] for m in rest["results"]]
    for got, want in zip(result["results"], rest["results"], strict=True):
        assert got["payload"]["type"] == got["type"] == want["type"]
        assert got["resourceRef"] == want["resource"]
        assert (
            got["userProvidedIdentifiers"]["orderNumber"]
            == (want["resourceUserProvidedIdentifiers"]["orderNumber"])
        )

    one = await http.post(
        f"/{PROJECT}/graphql",
        json={"query": f'{{ message(id: "{rest["results"][0]["id"]}") {{ id resourceVersion }} }}'},
    )
    assert one.json()["data"]["message"]["id"] == rest["results"][0]["id"]
    bad = await http.post(
        f"/{PROJECT}/graphql",
        json={"query": '{ messages(where: "orderNumber = \\"1\\"") { total } }'},
    )
    assert bad.json()["errors"][0]["extensions"]["code"] == "InvalidInput"


# -- Subscription payloads -------------------------------------------------------------------


async def test_subscription_payloads_validate(env: Env, http: httpx.AsyncClient) -> None:
    messages = await all_messages(http)
    by_type = {m["type"]: m for m in messages}
    for message in by_type.values():
        platform = platform_payload(message, PROJECT)
        assert_valid_delivery("MessageDeliveryPayload", platform)
        assert platform["notificationType"] == "Message"
        assert {
            k: v for k, v in platform.items() if k not in ("notificationType", "projectKey")
        } == {k: v for k, v in message.items() if k not in ("createdBy", "lastModifiedBy")}
        event = cloudevents_payload(platform)
        assert_valid_delivery("CloudEventsPayload", event)
        assert cloudevents_payload(message, PROJECT) == event
        type_id = message["resource"]["typeId"]
        assert event["specversion"] == "1.0"
        assert event["id"] == message["id"]
        assert event["type"] == f"com.commercetools.{type_id}.message.{message['type']}"
        assert event["source"] == f"/{PROJECT}/{type_id}s"
        assert event["subject"] == message["resource"]["id"]
        assert event["time"] == message["createdAt"]
        assert event["sequence"] == str(message["sequenceNumber"])
        assert event["sequencetype"] == "Integer"
        assert event["data"] == platform
        assert await get(http, event["dataref"].removeprefix(f"/{PROJECT}")) == message

    trimmed = platform_payload(by_type["OrderImported"], PROJECT, payload_not_included=True)
    assert_valid_delivery("MessageDeliveryPayload", trimmed)
    assert trimmed["payloadNotIncluded"] == {
        "reason": "Payload too large",
        "payloadType": "OrderImported",
    }
    assert "order" not in trimmed
    event = cloudevents_payload(trimmed)
    assert event["type"] == "com.commercetools.order.message.OrderImported"

    order = await get(http, f"/orders/{env.demo.orders['DE-1001'].id}")
    changes = {
        "ResourceCreatedDeliveryPayload": resource_created_payload(PROJECT, "order", order),
        "ResourceUpdatedDeliveryPayload": resource_updated_payload(PROJECT, "order", order),
        "ResourceDeletedDeliveryPayload": resource_deleted_payload(PROJECT, "order", order),
    }
    for component, payload in changes.items():
        assert_valid_delivery(component, payload)
        assert payload["resourceUserProvidedIdentifiers"] == {"orderNumber": "DE-1001"}
        event = cloudevents_payload(payload)
        assert_valid_delivery("CloudEventsPayload", event)
        change = payload["notificationType"]
        assert event["type"] == f"com.commercetools.order.change.{change}"
        assert "sequence" not in event and "dataref" not in event
    updated = changes["ResourceUpdatedDeliveryPayload"]
    assert (updated["version"], updated["oldVersion"]) == (order["version"], order["version"] - 1)
    assert updated["modifiedAt"] == order["lastModifiedAt"]
    explicit = resource_updated_payload(PROJECT, "order", order, old_version=1)
    assert explicit["oldVersion"] == 1


def test_delivery_validation_is_not_vacuous() -> None:
    message = {
        "id": "m",
        "version": 1,
        "sequenceNumber": 1,
        "resource": {"typeId": "order", "id": "o"},
        "resourceVersion": 2,
        "type": "OrderStateChanged",
        "orderState": "Open",
        "createdAt": "2026-01-01T00:00:00.000Z",
        "lastModifiedAt": "2026-01-01T00:00:00.000Z",
    }
    assert_message_valid(message)
    platform = platform_payload(message, PROJECT)
    assert_valid_delivery("MessageDeliveryPayload", platform)
    assert validation_errors("MessageDeliveryPayload", platform) == []
    broken = {**platform, "sequenceNumber": "1"}
    del broken["resourceVersion"]
    assert len(delivery_errors("MessageDeliveryPayload", broken)) == 2
    event = {**cloudevents_payload(platform), "sequence": 1}
    assert delivery_errors("CloudEventsPayload", event)
    assert validation_errors("OrderStateChangedMessage", {**message, "orderState": "Gone"})


# -- units -------------------------------------------------------------------------------------


def test_every_mapped_message_type_exists_in_the_spec() -> None:
    schemas = load_spec()["components"]["schemas"]
    assert set(ACTION_MESSAGES) == {"order", "customer", "payment", "cart"}
    assert "setCustomField" in ACTION_MESSAGES["order"]
    produced = {
        "OrderImported",
        "OrderCreated",
        "OrderDeleted",
        "CustomerCreated",
        "CustomerDeleted",
        "PaymentCreated",
        "OrderCustomFieldAdded",
        "OrderCustomFieldChanged",
        "OrderCustomFieldRemoved",
        "OrderCustomTypeSet",
        "OrderCustomTypeRemoved",
        "OrderStateChanged",
        "OrderShipmentStateChanged",
        "OrderPaymentStateChanged",
        "OrderStateTransition",
        "OrderCustomerEmailSet",
        "OrderShippingAddressSet",
        "OrderBillingAddressSet",
        "OrderPurchaseOrderNumberSet",
        "DeliveryAdded",
        "DeliveryRemoved",
        "ParcelAddedToDelivery",
        "ParcelTrackingDataUpdated",
        "ReturnInfoAdded",
        "OrderReturnShipmentStateChanged",
        "OrderPaymentAdded",
        "OrderPaymentRemoved",
        "CustomerEmailChanged",
        "CustomerFirstNameSet",
        "CustomerLastNameSet",
        "CustomerTitleSet",
        "CustomerCompanyNameSet",
        "CustomerDateOfBirthSet",
        "CustomerExternalIdSet",
        "CustomerGroupSet",
        "CustomerAddressAdded",
        "CustomerAddressChanged",
        "CustomerAddressRemoved",
        "CustomerDefaultShippingAddressSet",
        "CustomerDefaultBillingAddressSet",
        "CustomerCustomFieldAdded",
        "CustomerCustomFieldChanged",
        "CustomerCustomFieldRemoved",
        "CustomerCustomTypeSet",
        "CustomerCustomTypeRemoved",
        "PaymentTransactionAdded",
        "PaymentTransactionStateChanged",
        "PaymentInterfaceIdSet",
        "PaymentStatusStateTransition",
        "PaymentStatusInterfaceCodeSet",
        "PaymentInteractionAdded",
        "CartFrozen",
        "CartUnfrozen",
        "CartLocked",
        "CartUnlocked",
        "CartPurchaseOrderNumberSet",
    }
    # Each is a `{type}Message` component derived from Message (order ones via OrderMessage).
    bases = {"#/components/schemas/Message", "#/components/schemas/OrderMessage"}
    for message_type in produced:
        component = schemas[f"{message_type}Message"]
        assert component["allOf"][0]["$ref"] in bases, message_type


def test_match_write() -> None:
    body = b'{"version": 1, "actions": []}'
    assert match_write("POST", "/p/orders/abc", body) == Write(
        "p", "orders", "update", {"version": 1, "actions": []}
    )
    assert match_write("POST", "/p/orders/import", b"{}") == Write("p", "orders", "import", {})
    assert match_write("POST", "/p/customers", b"{}") == Write("p", "customers", "create", {})
    assert match_write("POST", "/p/in-store/key=b/orders/abc", body) is not None
    assert match_write("DELETE", "/p/orders/abc") == Write("p", "orders", "delete")
    for method, path, payload in [
        ("GET", "/p/orders/abc", None),
        ("POST", "/p/orders/search", b'{"query": {}}'),
        ("POST", "/p/orders/abc", b'{"version": 1}'),
        ("POST", "/p/orders/abc", b"not json"),
        ("POST", "/p/customers/password", b'{"id": "x", "version": 1}'),
        ("POST", "/p/types/abc", body),
        ("POST", "/oauth/token", b""),
        ("DELETE", "/p/orders", None),
    ]:
        assert match_write(method, path, payload) is None, (method, path)


def test_parse_where() -> None:
    wanted = parse_where(
        ['resource(typeId="order") and createdAt > "2026-01-01T00:00:00.000Z"', 'type = "A"']
    )
    assert wanted.resource_type_id == "order"
    assert wanted.created_after == datetime(2026, 1, 1, tzinfo=UTC)
    assert not wanted.inclusive and wanted.types == frozenset({"A"})
    assert parse_where(['createdAt >= "2026-01-01T00:00:00Z"']).inclusive
    assert parse_where([]).created_after is None
    with pytest.raises(InvalidQuery):
        parse_where(['createdAt < "2026-01-01T00:00:00Z"'])


def test_record_without_before_and_in_memory_query() -> None:
    log = MessageLog("unit")
    write = Write(
        "unit",
        "customers",
        "update",
        {
            "version": 1,
            "actions": [
                {"action": "changeEmail", "email": "b@example.com"},
                {"action": "setLastName", "lastName": "Doe"},
            ],
        },
    )
    after = {"id": "c1", "version": 3, "key": "c1-key", "lastModifiedBy": {"clientId": "x"}}
    got = log.record_write(write, after)  # no `before`: no oldEmail, so no CustomerEmailChanged
    assert [(m["type"], m["resourceVersion"]) for m in got] == [("CustomerLastNameSet", 3)]
    assert got[0]["createdBy"] == {"clientId": "x"}
    assert_message_valid(got[0])
    page = log.query(None, limit=10, offset=0, with_total=False)
    assert page["count"] == 1 and "total" not in page
    assert log.query(got[0]["createdAt"], limit=10, offset=0)["total"] == 0
    assert log.query(got[0]["createdAt"], 10, 0, inclusive=True)["total"] == 1
