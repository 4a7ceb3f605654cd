"""Every read the client offers, through the GraphQL endpoint, against the seeded emulator."""

from __future__ import annotations

import pytest

from commerce_context import queries, views
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.emulator.harness import Harness
from commerce_context.exceptions import ConcurrentModification
from tests.conftest import Recorder

pytestmark = pytest.mark.emulator

ORDER_VIEWS = [
    views.ORDER_SUMMARY,
    views.ORDER_DETAIL,
    views.SHIPMENTS,
    views.PAYMENTS,
    views.RETURNS,
    views.order_custom_fields(("supportStatus", "internalNote", "rmaStatus")),
]


async def test_order_by_number_with_every_order_view(
    ct: CommercetoolsClient, harness: Harness, recorder: Recorder
) -> None:
    info = harness.demo.orders["DE-1002"]
    found = await ct.fetch(queries.compose([queries.order_by_number("DE-1002", ORDER_VIEWS)]))
    order = found["order"]
    assert order["id"] == info.id and order["orderNumber"] == "DE-1002"
    assert order["storeRef"]["key"] == "berlin"
    assert order["totalPrice"]["currencyCode"] == "EUR"
    assert {"centAmount", "fractionDigits"} <= set(order["totalPrice"])
    assert len(order["lineItems"]) == 2
    assert all(item["variant"]["sku"] for item in order["lineItems"])
    # The demo's sale is a negative custom line (the emulator ignores price.discounted in a
    # line's total; see emulator/seed.py), so lines, custom lines and shipping add up.
    assert [c["totalPrice"]["centAmount"] < 0 for c in order["customLineItems"]] == [True]
    amounts = [i["totalPrice"]["centAmount"] for i in order["lineItems"]]
    amounts += [c["totalPrice"]["centAmount"] for c in order["customLineItems"]]
    amounts.append(order["shippingInfo"]["price"]["centAmount"])
    assert sum(amounts) == order["totalPrice"]["centAmount"]
    parcels = [p for d in order["shippingInfo"]["deliveries"] for p in d["parcels"]]
    assert {p["trackingData"]["trackingId"] for p in parcels} == set(info.tracking_ids)
    transactions = [t for p in order["paymentInfo"]["payments"] for t in p["transactions"]]
    assert {"Authorization", "Charge", "Refund"} <= {t["type"] for t in transactions}
    assert order["returnInfo"] and order["returnInfo"][0]["items"][0]["shipmentState"] == "Returned"
    custom = {f["name"]: f["value"] for f in order["custom"]["customFieldsRaw"]}
    assert custom["supportStatus"] == "resolved" and custom["rmaStatus"] == "refunded"
    # One document, one upstream request.
    assert len(recorder.api_calls()) == 1


async def test_order_by_id_and_unknown_order(ct: CommercetoolsClient, harness: Harness) -> None:
    info = harness.demo.orders["UK-2001"]
    found = await ct.fetch(
        queries.compose(
            [
                queries.order_by_id(info.id, [views.ORDER_SUMMARY], key="known"),
                queries.order_by_number("NO-SUCH-ORDER", [views.ORDER_SUMMARY], key="unknown"),
            ]
        )
    )
    assert found["known"]["orderNumber"] == "UK-2001"
    assert found["unknown"] is None


async def test_orders_by_ids_returns_versions(ct: CommercetoolsClient, harness: Harness) -> None:
    ids = [harness.demo.orders[n].id for n in ("DE-1001", "US-3001")]
    found = await ct.fetch(queries.compose([queries.orders_by_ids(ids, [views.VERSION])]))
    assert {o["id"] for o in found["orders"]} == set(ids)
    assert all(isinstance(o["version"], int) and o["lastModifiedAt"] for o in found["orders"])


async def test_customer_by_id(ct: CommercetoolsClient, harness: Harness) -> None:
    info = harness.demo.customers["anna-schmidt"]
    found = await ct.fetch(queries.compose([queries.customer_by_id(info.id, [views.CUSTOMER])]))
    customer = found["customer"]
    assert customer["id"] == info.id
    assert customer["firstName"] == info.first_name
    assert customer["email"].lower() == info.email.lower()
    assert [s["key"] for s in customer["storesRef"]] == [info.store_key]
    assert customer["customerGroup"]["key"] == info.customer_group_key


async def test_customers_by_email_finds_both_store_scoped_customers(
    ct: CommercetoolsClient, harness: Harness
) -> None:
    shared = harness.demo.shared_email
    found = await ct.fetch(
        queries.compose([queries.customers_by_email(shared.upper(), [views.CUSTOMER])])
    )
    assert {c["id"] for c in found["customers"]} == {
        harness.demo.customers[k].id for k in harness.demo.shared_email_customer_keys
    }
    stores = {s["key"] for c in found["customers"] for s in c["storesRef"]}
    assert len(stores) == 2


async def test_store_scoped_reads(ct: CommercetoolsClient, harness: Harness) -> None:
    shared = harness.demo.shared_email
    berlin_order = harness.demo.orders["DE-1001"]
    found = await ct.fetch(
        queries.compose(
            [
                queries.customers_by_email(shared, [views.CUSTOMER], store="berlin", key="c"),
                queries.order_by_number("DE-1001", [views.ORDER_SUMMARY], store="berlin", key="a"),
                queries.order_by_number("DE-1001", [views.ORDER_SUMMARY], store="london", key="b"),
            ]
        )
    )
    assert [s["key"] for c in found["c"] for s in c["storesRef"]] == ["berlin"]
    assert found["a"]["id"] == berlin_order.id
    assert found["b"] is None  # another store's order is invisible in-store


async def test_customer_orders_newest_first(ct: CommercetoolsClient, harness: Harness) -> None:
    info = harness.demo.customers["anna-schmidt"]
    found = await ct.fetch(
        queries.compose([queries.customer_orders(info.id, [views.ORDER_SUMMARY], limit=2)])
    )
    expected = [o.order_number for o in harness.demo.orders_of("anna-schmidt")][:2]
    assert [o["orderNumber"] for o in found["customer_orders"]] == expected


async def test_guest_orders(ct: CommercetoolsClient, harness: Harness) -> None:
    found = await ct.fetch(
        queries.compose([queries.guest_orders(harness.demo.guest_email, [views.ORDER_SUMMARY])])
    )
    numbers = {o["orderNumber"] for o in found["guest_orders"]}
    assert numbers == set(harness.demo.guest_order_numbers)
    assert all(o["customerId"] is None for o in found["guest_orders"])


async def test_active_cart(ct: CommercetoolsClient, harness: Harness) -> None:
    key, cart_id = next(iter(harness.demo.carts.items()))
    customer_id = harness.demo.customers[key].id
    found = await ct.fetch(queries.compose([queries.active_cart(customer_id, [views.CART])]))
    cart = found["cart"]
    assert cart["id"] == cart_id and cart["cartState"] == "Active"
    assert cart["lineItems"] and cart["totalPrice"]["centAmount"] > 0


async def test_stores(ct: CommercetoolsClient, harness: Harness) -> None:
    found = await ct.fetch(queries.compose([queries.stores([views.STORE])]))
    assert {s["key"] for s in found["stores"]} >= set(harness.demo.store_keys)
    berlin = next(s for s in found["stores"] if s["key"] == "berlin")
    assert "de-DE" in berlin["languages"]


async def test_every_read_in_one_request(
    ct: CommercetoolsClient, harness: Harness, recorder: Recorder
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    document = queries.compose(
        [
            queries.order_by_number("DE-1001", ORDER_VIEWS, key="o"),
            queries.customer_by_id(anna.id, [views.CUSTOMER], key="c"),
            queries.customers_by_email(anna.email, [views.CUSTOMER], key="e"),
            queries.customer_orders(anna.id, [views.ORDER_SUMMARY], key="r"),
            queries.guest_orders(harness.demo.guest_email, [views.ORDER_SUMMARY], key="g"),
            queries.active_cart(anna.id, [views.CART], key="k"),
            queries.stores([views.STORE], key="s"),
        ]
    )
    found = await ct.fetch(document)
    assert found["o"]["orderNumber"] == "DE-1001"
    assert found["c"]["id"] == anna.id
    assert len(recorder.api_calls()) == 1


async def test_readiness_ping(ct: CommercetoolsClient) -> None:
    await ct.ping()


async def test_update_with_stale_version_retries_and_applies_once(
    ct: CommercetoolsClient, harness: Harness
) -> None:
    info = harness.demo.orders["UK-2003"]
    read = queries.order_by_id(
        info.id, [views.VERSION, views.order_custom_fields(("internalNote",))]
    )
    before = (await ct.fetch(queries.compose([read])))["order"]
    actions = [{"action": "setCustomField", "name": "internalNote", "value": "Called back."}]
    # Move the order on once, then write with the now-stale version.
    moved = await ct.update(
        "orders",
        info.id,
        before["version"],
        [{"action": "setCustomField", "name": "supportStatus", "value": "pending"}],
    )
    result = await ct.update("orders", info.id, before["version"], actions)
    assert result["version"] == moved["version"] + 1
    after = (await ct.fetch(queries.compose([read])))["order"]
    assert after["version"] == result["version"]
    assert after["custom"]["customFieldsRaw"] == [{"name": "internalNote", "value": "Called back."}]


async def test_non_idempotent_update_surfaces_the_conflict(
    ct: CommercetoolsClient, harness: Harness
) -> None:
    info = harness.demo.orders["DE-1005"]
    read = queries.order_by_id(info.id, [views.VERSION])
    version = (await ct.fetch(queries.compose([read])))["order"]["version"]
    await ct.update(
        "orders",
        info.id,
        version,
        [{"action": "setCustomField", "name": "supportStatus", "value": "open"}],
    )
    with pytest.raises(ConcurrentModification) as caught:
        await ct.update(
            "orders",
            info.id,
            version,
            [{"action": "changeOrderState", "orderState": "Confirmed"}],
            idempotent=False,
        )
    assert caught.value.current_version == version + 1
