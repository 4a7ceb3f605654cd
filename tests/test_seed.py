"""The demo seed: payloads match the official OpenAPI spec, and the seeded data can be read back.

(a) every payload the seed sends validates against its ``#/components/schemas/...`` component;
(b) the validator rejects wrong payloads, so (a) means something;
(c) against the emulator: seed, then read everything back over REST.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import pytest_asyncio

from commerce_context.emulator.process import EmulatorError, EmulatorProcess
from commerce_context.emulator.seed import (
    CUSTOM_TYPE_KEY,
    CUSTOMER_SPECS,
    GUEST_EMAIL,
    ORDER_SPECS,
    SHARED_EMAIL,
    DemoData,
    SeedRequest,
    drafts,
    order_total_cents,
    seed_demo_project,
)
from tests.openapi import assert_valid, validation_errors

PROJECT_KEY = "seed-test"

# ---------------------------------------------------------------------------------------------
# (a) every payload is valid
# ---------------------------------------------------------------------------------------------

DRAFTS = drafts()


@pytest.mark.parametrize(
    "request_",
    DRAFTS,
    ids=[f"{i:02d}-{r.component}-{r.path.split('/')[1]}" for i, r in enumerate(DRAFTS)],
)
def test_seed_payload_matches_openapi(request_: SeedRequest) -> None:
    assert_valid(request_.component, request_.payload)


def test_drafts_cover_every_kind_of_request() -> None:
    components = {r.component for r in DRAFTS}
    assert components >= {
        "StoreDraft",
        "TypeDraft",
        "CustomerGroupDraft",
        "TaxCategoryDraft",
        "ZoneDraft",
        "ShippingMethodDraft",
        "ProductTypeDraft",
        "ProductDiscountDraft",
        "ProductDraft",
        "CustomerDraft",
        "CustomerUpdate",
        "OrderImportDraft",
        "PaymentDraft",
        "PaymentUpdate",
        "OrderUpdate",
        "CartDraft",
    }
    actions = {
        a["action"] for r in DRAFTS if r.component == "OrderUpdate" for a in r.payload["actions"]
    }
    assert actions >= {"changeShipmentState", "addDelivery", "addPayment", "addReturnInfo"}


# ---------------------------------------------------------------------------------------------
# (b) the validator is not vacuous
# ---------------------------------------------------------------------------------------------


def _first(component: str) -> dict[str, Any]:
    return copy.deepcopy(next(r.payload for r in DRAFTS if r.component == component))


@pytest.mark.parametrize(
    ("component", "payload", "expected"),
    [
        pytest.param(
            "OrderUpdateAction",
            {"action": "setCustomField"},
            "'name' is a required property",
            id="setCustomField-without-name",
        ),
        pytest.param(
            "OrderUpdateAction",
            {"action": "frobnicate", "name": "x"},
            "'frobnicate' is not one of",
            id="unknown-action",
        ),
        pytest.param(
            "OrderUpdateAction", {"name": "x"}, "'action' is a required property", id="no-action"
        ),
        pytest.param(
            "OrderUpdate",
            {"version": 1, "actions": [{"action": "changeShipmentState", "shipmentState": "Lost"}]},
            "'Lost' is not one of",
            id="bad-enum-inside-actions",
        ),
        pytest.param(
            "OrderUpdate",
            {"version": 1, "actions": [{"action": "addPayment", "payment": {"typeId": "order"}}]},
            "'order' is not one of ['payment']",
            id="wrong-reference-typeId",
        ),
        pytest.param(
            "OrderSetCustomFieldAction",
            {"action": "addPayment", "name": "x"},
            "'addPayment' is not one of ['setCustomField']",
            id="subtype-with-foreign-action",
        ),
        pytest.param(
            "TypeDraft",
            {"key": "k", "name": {"en_GB": "x"}, "resourceTypeIds": ["order"]},
            "key 'en_GB' does not match",
            id="bad-localized-string-key",
        ),
        pytest.param(
            "TransactionDraft",
            {"type": "Capture", "amount": {"currencyCode": "EUR", "centAmount": 1}},
            "'Capture' is not one of",
            id="unknown-transaction-type",
        ),
        pytest.param(
            "FieldDefinition",
            {"name": "a", "label": {"en": "A"}, "required": False, "type": {"name": "Enum"}},
            "'values' is a required property",
            id="enum-field-without-values",
        ),
    ],
)
def test_validator_rejects_wrong_payloads(component: str, payload: object, expected: str) -> None:
    with pytest.raises(AssertionError) as excinfo:
        assert_valid(component, payload)
    assert expected in str(excinfo.value)


def test_validator_rejects_broken_seed_payloads() -> None:
    order = _first("OrderImportDraft")
    del order["totalPrice"]
    assert any(
        "'totalPrice' is a required" in e for e in validation_errors("OrderImportDraft", order)
    )

    order = _first("OrderImportDraft")
    order["lineItems"][0]["price"]["value"]["centAmount"] = "29.95"
    order["orderState"] = "Shipped"
    errors = validation_errors("OrderImportDraft", order)
    assert len(errors) == 2, errors

    customer = _first("CustomerDraft")
    customer["stores"] = [{"typeId": "channel", "key": "berlin"}]
    assert validation_errors("CustomerDraft", customer)

    payment = _first("PaymentDraft")
    payment["transactions"][0]["state"] = "Done"
    assert validation_errors("PaymentDraft", payment)


def test_validator_reports_every_error_readably() -> None:
    with pytest.raises(AssertionError) as excinfo:
        assert_valid("Money", {"centAmount": "12"})
    message = str(excinfo.value)
    assert message.startswith("payload is not a valid Money (2 error(s))")
    assert "'currencyCode' is a required property" in message
    assert "payload['centAmount']: '12' is not of type 'integer'" in message


def test_unknown_component_is_an_error() -> None:
    with pytest.raises(KeyError):
        assert_valid("NoSuchSchema", {})


# ---------------------------------------------------------------------------------------------
# EmulatorProcess failure modes (no node needed)
# ---------------------------------------------------------------------------------------------


def test_missing_node_is_a_clear_error() -> None:
    process = EmulatorProcess(PROJECT_KEY, node="no-such-node-binary")
    with pytest.raises(EmulatorError, match="make install"):
        process.start()
    assert not process.running


def test_missing_npm_package_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "server.mjs").write_text("// never run\n")
    process = EmulatorProcess(PROJECT_KEY, emulator_dir=tmp_path)
    with pytest.raises(EmulatorError, match=r"commercetools-mock.*make install"):
        process.start()


def test_url_needs_a_started_emulator() -> None:
    with pytest.raises(EmulatorError, match="not running"):
        _ = EmulatorProcess(PROJECT_KEY).url


# ---------------------------------------------------------------------------------------------
# (c) integration: seed the emulator and read everything back
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(PROJECT_KEY) as process:
        yield process


class Recorder:
    """Keeps every JSON request the seed sends, to validate the real payloads too."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    async def __call__(self, request: httpx.Request) -> None:
        if request.headers.get("content-type", "").startswith("application/json"):
            self.requests.append((request.method, request.url.path, json.loads(request.content)))


@pytest_asyncio.fixture(scope="module")
async def seeded(emulator: EmulatorProcess) -> AsyncIterator[tuple[DemoData, Recorder]]:
    recorder = Recorder()
    async with httpx.AsyncClient(event_hooks={"request": [recorder]}, timeout=10) as http:
        data = await seed_demo_project(
            http, api_url=emulator.url, auth_url=emulator.url, project_key=PROJECT_KEY
        )
    yield data, recorder


@pytest.fixture(scope="module")
def data(seeded: tuple[DemoData, Recorder]) -> DemoData:
    return seeded[0]


@pytest_asyncio.fixture(scope="module")
async def ct(emulator: EmulatorProcess, data: DemoData) -> AsyncIterator[httpx.AsyncClient]:
    """A client for reading back, authenticated separately from the seed."""
    async with httpx.AsyncClient(base_url=f"{emulator.url}/{PROJECT_KEY}", timeout=10) as client:
        token = await client.post(
            f"{emulator.url}/oauth/token",
            auth=("reader", "secret"),
            data={"grant_type": "client_credentials"},
        )
        token.raise_for_status()
        client.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield client


async def _get(ct: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await ct.get(path, params=params)
    assert response.status_code == 200, f"GET {path} {params}: {response.text[:500]}"
    return response.json()


async def _order(ct: httpx.AsyncClient, number: str, expand: bool = False) -> Any:
    params = {"expand": "paymentInfo.payments[*]"} if expand else {}
    return await _get(ct, f"/orders/order-number={quote(number, safe='')}", **params)


_COMPONENT_BY_COLLECTION = {
    "stores": "Store",
    "types": "Type",
    "customer-groups": "CustomerGroup",
    "tax-categories": "TaxCategory",
    "zones": "Zone",
    "shipping-methods": "ShippingMethod",
    "product-types": "ProductType",
    "product-discounts": "ProductDiscount",
    "products": "Product",
    "customers": "Customer",
    "orders": "Order",
    "payments": "Payment",
    "carts": "Cart",
}


def _component_for(path: str) -> str:
    """Map a request path to its payload schema, independently of the seed's own labels."""
    match = re.fullmatch(rf"/{PROJECT_KEY}/([a-z-]+)(?:/(.+))?", path)
    assert match, path
    collection, rest = match.groups()
    if collection == "orders" and rest == "import":
        return "OrderImportDraft"
    base = _COMPONENT_BY_COLLECTION[collection]
    return f"{base}Update" if rest else f"{base}Draft"


@pytest.mark.emulator
async def test_requests_actually_sent_match_openapi(seeded: tuple[DemoData, Recorder]) -> None:
    _, recorder = seeded
    assert len(recorder.requests) > 50
    harness = re.compile(rf"/_harness/{PROJECT_KEY}/(order|payment|customer)/[0-9a-f-]+/timestamps")
    stamps = [r for r in recorder.requests if harness.fullmatch(r[1])]
    # one per customer, order and payment: the emulator's timestamps route (not the API)
    assert len(stamps) == len(CUSTOMER_SPECS) + 2 * len(ORDER_SPECS)
    for method, path, body in recorder.requests:
        assert method == "POST"
        if (method, path, body) not in stamps:
            assert_valid(_component_for(path), body)


@pytest.mark.emulator
async def test_stores_and_custom_type(ct: httpx.AsyncClient, data: DemoData) -> None:
    assert set(data.store_keys) == {"berlin", "london", "newyork"}
    assert len({s.currency for s in data.stores.values()}) == 3
    assert len({s.locale for s in data.stores.values()}) == 3
    for key, info in data.stores.items():
        store = await _get(ct, f"/stores/key={key}")
        assert info.locale in store["languages"]
        assert store["countries"] == [{"code": info.country}]
    custom_type = await _get(ct, f"/types/key={CUSTOM_TYPE_KEY}")
    assert custom_type["resourceTypeIds"] == ["order"]
    fields = {f["name"]: f["type"] for f in custom_type["fieldDefinitions"]}
    assert set(fields) == {
        "supportStatus",
        "internalNote",
        "rmaStatus",
        "warehouse",
        "marketplaceSource",
    }
    assert [v["key"] for v in fields["supportStatus"]["values"]] == ["open", "pending", "resolved"]
    assert [v["key"] for v in fields["rmaStatus"]["values"]] == [
        "none",
        "requested",
        "approved",
        "received",
        "refunded",
    ]


@pytest.mark.emulator
async def test_orders_by_number(ct: httpx.AsyncClient, data: DemoData) -> None:
    assert list(data.orders) == [o.number for o in ORDER_SPECS]
    custom_type = await _get(ct, f"/types/key={CUSTOM_TYPE_KEY}")
    for number, info in data.orders.items():
        order = await _order(ct, number)
        assert order["id"] == info.id
        assert order["orderNumber"] == number
        assert order["store"] == {"typeId": "store", "key": info.store_key}
        assert order["customerEmail"] == info.email
        assert order["lineItems"], number
        assert all(li["variant"]["sku"] and li["name"]["en-GB"] for li in order["lineItems"])
        assert order["shippingAddress"]["country"] == data.stores[info.store_key].country
        assert order["orderState"] in {"Open", "Confirmed", "Complete", "Cancelled"}
        assert order["paymentState"]
        assert order["shipmentState"], "shipmentState must be set after the import"
        # custom fields
        assert order["custom"]["type"]["id"] == custom_type["id"]
        assert order["custom"]["fields"] == dict(info.custom_fields)
        assert order["custom"]["fields"]["rmaStatus"] in {
            "none",
            "requested",
            "approved",
            "received",
            "refunded",
        }
    missing = await ct.get("/orders/order-number=XX-0000")
    assert missing.status_code == 404


@pytest.mark.emulator
async def test_orders_have_distinct_created_at_in_story_order(data: DemoData) -> None:
    created = [o.created_at for o in data.orders.values()]
    assert created == sorted(created)
    assert len(set(created)) == len(created)
    anna = data.orders_of("anna-schmidt")
    assert [o.order_number for o in anna] == ["DE-1005", "DE-1002", "DE-1001"]


@pytest.mark.emulator
async def test_shared_email_two_store_scoped_customers(
    ct: httpx.AsyncClient, data: DemoData
) -> None:
    assert data.shared_email == SHARED_EMAIL
    assert len(data.shared_email_customer_keys) == 2
    found = await _get(ct, "/customers", where=f'lowercaseEmail="{SHARED_EMAIL}"')
    assert found["count"] == 2
    by_id = {c["id"]: c for c in found["results"]}
    assert set(by_id) == {data.customers[k].id for k in data.shared_email_customer_keys}
    stores = {c["stores"][0]["key"] for c in found["results"]}
    assert stores == {"berlin", "london"}
    for customer in found["results"]:
        assert customer["email"].lower() == SHARED_EMAIL
        assert len(customer["stores"]) == 1
    # each of them has its own orders, in its own store
    for key in data.shared_email_customer_keys:
        info = data.customers[key]
        orders = await _get(ct, "/orders", where=f'customerId="{info.id}"')
        assert orders["count"] >= 1
        assert {o["store"]["key"] for o in orders["results"]} == {info.store_key}


@pytest.mark.emulator
async def test_customers_have_profile_group_and_store(
    ct: httpx.AsyncClient, data: DemoData
) -> None:
    groups = {v: k for k, v in data.customer_group_ids.items()}
    for key, info in data.customers.items():
        customer = await _get(ct, f"/customers/{info.id}")
        assert customer["key"] == key
        assert customer["firstName"] == info.first_name
        assert customer["lastName"] == info.last_name
        assert customer["email"].lower() == info.email.lower()
        assert customer["email"].lower().endswith(("@example.com", "@example.org"))
        assert customer["addresses"][0]["phone"].startswith("+")
        assert customer["stores"] == [{"typeId": "store", "key": info.store_key}]
        assert groups[customer["customerGroup"]["id"]] == info.customer_group_key


@pytest.mark.emulator
async def test_guest_orders(ct: httpx.AsyncClient, data: DemoData) -> None:
    assert data.guest_email == GUEST_EMAIL
    assert set(data.guest_order_numbers) == {"DE-1004", "US-3003"}
    found = await _get(ct, "/orders", where=f'customerEmail="{GUEST_EMAIL}"')
    assert {o["orderNumber"] for o in found["results"]} == set(data.guest_order_numbers)
    for order in found["results"]:
        assert "customerId" not in order or order["customerId"] is None
        assert order["store"]["key"] == data.orders[order["orderNumber"]].store_key
    assert len({data.orders[n].store_key for n in data.guest_order_numbers}) == 2
    # no registered customer has that email
    customers = await _get(ct, "/customers", where=f'lowercaseEmail="{GUEST_EMAIL}"')
    assert customers["count"] == 0


@pytest.mark.emulator
async def test_deliveries_with_tracking(ct: httpx.AsyncClient, data: DemoData) -> None:
    with_tracking = [o for o in data.orders.values() if o.tracking_ids]
    assert len(with_tracking) >= 5
    carriers = set()
    for info in with_tracking:
        order = await _order(ct, info.order_number)
        deliveries = order["shippingInfo"]["deliveries"]
        assert len(deliveries) == 1
        line_ids = {li["id"] for li in order["lineItems"]}
        assert {i["id"] for i in deliveries[0]["items"]} <= line_ids
        parcels = deliveries[0]["parcels"]
        assert tuple(p["trackingData"]["trackingId"] for p in parcels) == info.tracking_ids
        for parcel in parcels:
            assert parcel["trackingData"]["carrier"] == data.stores[info.store_key].carrier
            assert parcel["trackingData"]["isReturn"] is False
            carriers.add(parcel["trackingData"]["carrier"])
        assert order["shipmentState"] in {"Shipped", "Delivered"}
    assert carriers == {"DHL", "DPD", "UPS"}
    # a multi-parcel delivery
    assert len((await _order(ct, "US-3002"))["shippingInfo"]["deliveries"][0]["parcels"]) == 2


@pytest.mark.emulator
async def test_payments_with_all_transaction_types(ct: httpx.AsyncClient, data: DemoData) -> None:
    seen_types: set[str] = set()
    interfaces: set[str] = set()
    for number, info in data.orders.items():
        order = await _order(ct, number, expand=True)
        payments = order["paymentInfo"]["payments"]
        assert [p["id"] for p in payments] == list(info.payment_ids)
        payment = payments[0]["obj"]
        assert payment["interfaceId"]
        assert payment["paymentMethodInfo"]["method"]
        assert payment["amountPlanned"]["centAmount"] == order["totalPrice"]["centAmount"]
        assert payment["amountPlanned"]["currencyCode"] == order["totalPrice"]["currencyCode"]
        if info.customer_key:
            assert payment["customer"]["id"] == data.customers[info.customer_key].id
        interfaces.add(payment["paymentMethodInfo"]["paymentInterface"])
        seen_types.update(t["type"] for t in payment["transactions"])
    assert seen_types >= {"Authorization", "Charge", "Refund"}
    assert "adyen" in interfaces
    refunded = await _order(ct, "DE-1002", expand=True)
    transactions = refunded["paymentInfo"]["payments"][0]["obj"]["transactions"]
    assert [t["type"] for t in transactions] == ["Authorization", "Charge", "Refund"]
    assert all(t["state"] == "Success" for t in transactions)
    failed = await _order(ct, "US-3003", expand=True)
    failed_tx = failed["paymentInfo"]["payments"][0]["obj"]["transactions"]
    assert [(t["type"], t["state"]) for t in failed_tx] == [("Authorization", "Failure")]
    assert failed["paymentState"] == "Failed"


@pytest.mark.emulator
async def test_returns(ct: httpx.AsyncClient, data: DemoData) -> None:
    returned = [n for n, o in data.orders.items() if o.has_return]
    assert set(returned) == {"US-3001", "DE-1002"}
    for number in returned:
        order = await _order(ct, number)
        (info,) = order["returnInfo"]
        assert info["returnTrackingId"]
        (item,) = info["items"]
        assert item["lineItemId"] in {li["id"] for li in order["lineItems"]}
        assert item["quantity"] == 1
        assert item["shipmentState"] in {"Advised", "Returned"}
    de = await _order(ct, "DE-1002")
    assert de["custom"]["fields"]["rmaStatus"] == "refunded"
    assert de["returnInfo"][0]["items"][0]["shipmentState"] == "Returned"
    assert not (await _order(ct, "DE-1001")).get("returnInfo")


@pytest.mark.emulator
async def test_discounts_are_visible_on_orders(ct: httpx.AsyncClient, data: DemoData) -> None:
    # The sale: the hoodie at its list price, and a discount line for the 20 % it took off.
    order = await _order(ct, "DE-1002")
    hoodie = next(li for li in order["lineItems"] if li["variant"]["sku"] == "HOODIE-GRY-L")
    assert hoodie["totalPrice"]["centAmount"] == 7995
    (sale,) = order["customLineItems"]
    assert sale["name"]["en-GB"] == "Autumn sale -20 %"
    assert sale["totalPrice"]["centAmount"] == -(7995 * 2000 // 10000)
    voucher = await _order(ct, "DE-1001")
    assert voucher["customLineItems"][0]["money"]["centAmount"] < 0


@pytest.mark.emulator
async def test_every_orders_amounts_add_up_to_its_total(
    ct: httpx.AsyncClient, data: DemoData
) -> None:
    for number in data.orders:
        order = await _order(ct, number)
        lines = [li["totalPrice"]["centAmount"] for li in order["lineItems"]]
        lines += [c["totalPrice"]["centAmount"] for c in order.get("customLineItems") or []]
        shipping = order["shippingInfo"]["price"]["centAmount"]
        assert sum(lines) + shipping == order["totalPrice"]["centAmount"], number
        # and the payments planned (and charged) exactly that
        assert (
            order_total_cents(next(o for o in ORDER_SPECS if o.number == number))
            == (order["totalPrice"]["centAmount"])
        )


@pytest.mark.emulator
async def test_dates_tell_a_story(
    ct: httpx.AsyncClient, data: DemoData, emulator: EmulatorProcess
) -> None:
    orders = [await _order(ct, number, expand=True) for number in data.orders]
    created = [dt.datetime.fromisoformat(o["createdAt"]) for o in orders]
    # spread over months, oldest first, the newest some days before the seed ran
    assert created == sorted(created)
    assert created[-1] - created[0] > dt.timedelta(days=90)
    assert dt.datetime.now(dt.UTC) - created[-1] > dt.timedelta(days=7)
    for order, when in zip(orders, created, strict=True):
        spec = next(o for o in ORDER_SPECS if o.number == order["orderNumber"])
        assert order["completedAt"] == order["createdAt"]
        for delivery in order["shippingInfo"].get("deliveries") or []:
            shipped = dt.datetime.fromisoformat(delivery["createdAt"])
            assert shipped - when == dt.timedelta(days=1)
            assert all(p["createdAt"] == delivery["createdAt"] for p in delivery["parcels"])
        for info in order.get("returnInfo") or []:
            assert spec.returned is not None
            returned = dt.datetime.fromisoformat(info["returnDate"])
            assert returned > when + dt.timedelta(days=1)
            assert all(i["createdAt"] == info["returnDate"] for i in info["items"])
        payment = order["paymentInfo"]["payments"][0]["obj"]
        assert payment["createdAt"] == order["createdAt"]
        for transaction in payment["transactions"]:
            assert dt.datetime.fromisoformat(transaction["timestamp"]) >= when
    for key, info in data.customers.items():
        customer = await _get(ct, f"/customers/{info.id}")
        first = min(
            c for o, c in zip(orders, created, strict=True) if o.get("customerId") == info.id
        )
        assert first - dt.datetime.fromisoformat(customer["createdAt"]) == dt.timedelta(days=21), (
            key
        )
    # The harness route refuses what is not a timestamp.
    route = f"{emulator.url}/_harness/{PROJECT_KEY}/order/{orders[0]['id']}/timestamps"
    bad = await ct.post(route, json={"createdAt": "yesterday"})
    assert bad.status_code == 400


@pytest.mark.emulator
async def test_purchase_order_number_and_email_case(ct: httpx.AsyncClient, data: DemoData) -> None:
    order = await _order(ct, "US-3002")
    assert order["purchaseOrderNumber"] == "PO-4500012345"
    assert "purchaseOrderNumber" not in await _order(ct, "US-3001")
    # James's account holds his address as typed; his orders carry it in lower case.
    james = await _get(ct, f"/customers/{data.customers['james-taylor'].id}")
    assert james["email"] == "James.Taylor@Example.com"
    orders = await _get(ct, "/orders", where=f'customerId="{james["id"]}"')
    assert {o["customerEmail"] for o in orders["results"]} == {"james.taylor@example.com"}


@pytest.mark.emulator
async def test_active_carts(ct: httpx.AsyncClient, data: DemoData) -> None:
    assert len(data.carts) >= 2
    for customer_key, cart_id in data.carts.items():
        customer = data.customers[customer_key]
        found = await _get(ct, "/carts", where=f'customerId="{customer.id}" and cartState="Active"')
        assert [c["id"] for c in found["results"]] == [cart_id]
        cart = found["results"][0]
        assert cart["store"]["key"] == customer.store_key
        assert cart["totalPrice"]["currencyCode"] == data.stores[customer.store_key].currency
        assert cart["lineItems"] and all(li["variant"]["sku"] for li in cart["lineItems"])
        assert cart["totalPrice"]["centAmount"] > 0
        assert cart["customerEmail"].lower() == customer.email.lower()


@pytest.mark.emulator
def test_emulator_process_lifecycle() -> None:
    with EmulatorProcess("lifecycle-test") as process:
        assert process.running
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", process.url)
        response = httpx.get(f"{process.url}/lifecycle-test", timeout=5)
        assert response.status_code == 401  # auth is enforced
    assert not process.running
    process.stop()  # idempotent
