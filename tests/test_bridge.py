"""The GraphQL bridge in front of the commercetools emulator, over real loopback HTTP.

The emulator (Node) and the bridge (uvicorn, with its own lifespan-managed client) run for the
whole module. Seed data is written through the bridge's REST proxy, then every read that
`queries.py` composes is executed through the bridge's GraphQL endpoint.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from commerce_context import queries, views
from commerce_context.emulator.bridge import create_bridge_app
from commerce_context.emulator.process import EmulatorProcess

pytestmark = pytest.mark.emulator

PROJECT = "bridge-test"
ALL_ORDER_VIEWS = [
    views.VERSION,
    views.ORDER_SUMMARY,
    views.ORDER_DETAIL,
    views.SHIPMENTS,
    views.PAYMENTS,
    views.RETURNS,
    views.order_custom_fields(("supportStatus", "internalNote")),
]


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorProcess]:
    with EmulatorProcess(PROJECT) as process:
        yield process


@pytest.fixture(scope="module")
def bridge_url(emulator: EmulatorProcess) -> Iterator[str]:
    app = create_bridge_app(emulator.url)
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="bridge-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("bridge did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def http(bridge_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bridge_url, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def token(http: httpx.Client) -> str:
    answer = http.post(
        "/oauth/token", auth=("support-app", "secret"), data={"grant_type": "client_credentials"}
    )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


@pytest.fixture(scope="module")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Rest:
    """Seeding through the bridge's REST proxy."""

    def __init__(self, http: httpx.Client, auth: dict[str, str]) -> None:
        self.http, self.auth = http, auth

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.http.post(f"/{PROJECT}{path}", json=body, headers=self.auth)
        assert answer.status_code in (200, 201), (path, answer.text)
        result: dict[str, Any] = answer.json()
        return result

    def update(self, collection: str, resource: dict[str, Any], *actions: Any) -> dict[str, Any]:
        body = {"version": resource["version"], "actions": list(actions)}
        return self.post(f"/{collection}/{resource['id']}", body)


def _money(cents: int) -> dict[str, Any]:
    return {"currencyCode": "EUR", "centAmount": cents}


def _ref(type_id: str, **ident: str) -> dict[str, str]:
    return {"typeId": type_id, **ident}


@pytest.fixture(scope="module")
def seed(http: httpx.Client, auth: dict[str, str]) -> dict[str, Any]:
    rest = Rest(http, auth)
    for key, de in (("berlin", "Berlin (DE)"), ("hamburg", "Hamburg (DE)")):
        rest.post(
            "/stores",
            {
                "key": key,
                "name": {"en": key.title(), "de": de},
                "languages": ["de", "en"],
                "countries": [{"code": "DE"}],
            },
        )
    rest.post(
        "/types",
        {
            "key": "order-support",
            "name": {"en": "Support"},
            "resourceTypeIds": ["order"],
            "fieldDefinitions": [
                {"name": n, "type": {"name": "String"}, "label": {"en": n}, "required": False}
                for n in ("supportStatus", "internalNote")
            ],
        },
    )
    rest.post("/customer-groups", {"key": "vip", "groupName": "VIP"})
    jane = rest.post(
        "/customers",
        {
            "email": "Jane.Doe@Example.com",
            "firstName": "Jane",
            "lastName": "Doe",
            "key": "jane",
            "stores": [_ref("store", key="berlin")],
            "addresses": [{"country": "DE", "city": "Berlin", "phone": "+49 30 1234"}],
        },
    )["customer"]
    jane = rest.update(
        "customers",
        jane,
        {"action": "setCustomerGroup", "customerGroup": _ref("customer-group", key="vip")},
    )
    gina = rest.post("/customers", {"email": "gina.global@example.com", "firstName": "Gina"})
    hans = rest.post(
        "/customers",
        {
            "email": "hans@example.com",
            "firstName": "Hans",
            "stores": [_ref("store", key="hamburg")],
        },
    )
    # Shipping method, zone and tax category make the emulator keep deliveries on import.
    rest.post("/zones", {"key": "de", "name": "DE", "locations": [{"country": "DE"}]})
    rest.post(
        "/tax-categories",
        {
            "key": "std",
            "name": "std",
            "rates": [{"name": "19%", "amount": 0.19, "includedInPrice": True, "country": "DE"}],
        },
    )
    rest.post(
        "/shipping-methods",
        {
            "key": "dhl",
            "name": "DHL",
            "isDefault": False,
            "taxCategory": _ref("tax-category", key="std"),
            "zoneRates": [
                {"zone": _ref("zone", key="de"), "shippingRates": [{"price": _money(499)}]}
            ],
        },
    )
    rest.post("/product-types", {"key": "basic", "name": "basic", "description": "basic"})
    rest.post(
        "/products",
        {
            "key": "shirt",
            "productType": _ref("product-type", key="basic"),
            "name": {"en": "Shirt", "de": "Hemd"},
            "slug": {"en": "shirt"},
            "masterVariant": {"sku": "SKU-1", "prices": [{"value": _money(2500)}]},
        },
    )
    payment = rest.post(
        "/payments",
        {
            "amountPlanned": _money(2999),
            "paymentMethodInfo": {
                "paymentInterface": "psp",
                "method": "card",
                "name": {"en": "Credit card", "de": "Kreditkarte"},
            },
            "transactions": [
                {
                    "type": "Authorization",
                    "amount": _money(2999),
                    "state": "Success",
                    "timestamp": "2024-03-01T10:00:00.000Z",
                },
                {
                    "type": "Charge",
                    "amount": _money(2999),
                    "state": "Pending",
                    "timestamp": "2024-03-01T10:05:00.000Z",
                },
            ],
        },
    )

    def order(number: str, **draft: Any) -> dict[str, Any]:
        time.sleep(0.005)  # distinct createdAt milliseconds, so sorting is observable
        body = {"orderNumber": number, "totalPrice": _money(2999), "lineItems": [], **draft}
        return rest.post("/orders/import", body)

    jane_order = {"customerId": jane["id"], "customerEmail": "Jane.Doe@Example.com"}
    de1001 = order("DE-1001", **jane_order, store=_ref("store", key="berlin"))
    hh2001 = order("HH-2001", **jane_order, store=_ref("store", key="hamburg"))
    de1002 = order(
        "DE-1002",
        **jane_order,
        store=_ref("store", key="berlin"),
        locale="de",
        orderState="Confirmed",
        paymentState="Paid",
        taxedPrice={"totalNet": _money(2520), "totalGross": _money(2999), "taxPortions": []},
        shippingAddress={
            "country": "DE",
            "city": "Berlin",
            "firstName": "Jane",
            "lastName": "Doe",
            "streetName": "Unter den Linden",
            "postalCode": "10117",
        },
        lineItems=[
            {
                "name": {"en": "Shirt", "de": "Hemd"},
                "variant": {"sku": "SKU-1"},
                "price": {"value": _money(2500)},
                "quantity": 1,
            }
        ],
        shippingInfo={
            "shippingMethodName": "DHL",
            "price": _money(499),
            "shippingRate": {"price": _money(499)},
            "shippingMethod": _ref("shipping-method", key="dhl"),
            "deliveries": [
                {
                    "key": "d1",
                    "items": [],
                    "parcels": [
                        {
                            "key": "p1",
                            "items": [],
                            "trackingData": {
                                "trackingId": "TRACK-1",
                                "carrier": "DHL",
                                "provider": "dhl-de",
                                "isReturn": False,
                            },
                        }
                    ],
                }
            ],
        },
        custom={
            "type": _ref("type", key="order-support"),
            "fields": {"supportStatus": "open", "internalNote": "called twice"},
        },
    )
    de1002 = rest.update(
        "orders",
        de1002,
        {"action": "changeShipmentState", "shipmentState": "Shipped"},
        {
            "action": "addDelivery",
            "deliveryKey": "d2",
            "items": [],
            "parcels": [{"key": "p2", "trackingData": {"trackingId": "TRACK-2"}}],
        },
        {"action": "addPayment", "payment": _ref("payment", id=payment["id"])},
        {
            "action": "addReturnInfo",
            "returnTrackingId": "RET-1",
            "returnDate": "2024-03-10T00:00:00.000Z",
            "items": [
                {
                    "quantity": 1,
                    "lineItemId": de1002["lineItems"][0]["id"],
                    "shipmentState": "Advised",
                    "comment": "too small",
                }
            ],
        },
    )
    de1001 = rest.update(
        "orders", de1001, {"action": "addPayment", "payment": _ref("payment", id=payment["id"])}
    )
    g1 = order("G-1", customerEmail="Guest.Person@Example.com")
    g2 = order("G-2", customerEmail="guest.person@example.com")
    order("G-3", customerEmail="guest.person@example.com", customerId=gina["customer"]["id"])

    def cart(store: str, **draft: Any) -> dict[str, Any]:
        time.sleep(0.005)
        return rest.post(
            "/carts",
            {
                "currency": "EUR",
                "customerId": jane["id"],
                "store": _ref("store", key=store),
                **draft,
            },
        )

    cart_hh = cart("hamburg")
    cart_a = cart("berlin", lineItems=[{"sku": "SKU-1", "quantity": 2}], country="DE", locale="en")
    cart_b = cart("berlin")
    time.sleep(0.005)
    cart_a = rest.update("carts", cart_a, {"action": "setLocale", "locale": "de"})
    return {
        "jane": jane,
        "gina": gina["customer"],
        "hans": hans["customer"],
        "payment": payment,
        "de1001": de1001,
        "hh2001": hh2001,
        "de1002": de1002,
        "g1": g1,
        "g2": g2,
        "cart_hh": cart_hh,
        "cart_a": cart_a,
        "cart_b": cart_b,
    }


def gql(
    http: httpx.Client, auth: dict[str, str], query: str, variables: dict[str, Any] | None = None
) -> httpx.Response:
    return http.post(
        f"/{PROJECT}/graphql", json={"query": query, "variables": variables or {}}, headers=auth
    )


def run(http: httpx.Client, auth: dict[str, str], *reads: queries.Read) -> dict[str, Any]:
    """Execute composed reads; assert a clean 200 and return each read's extracted value."""
    document = queries.compose(reads)
    answer = http.post(f"/{PROJECT}/graphql", json=document.payload(), headers=auth)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body["errors"]
    return document.extract(queries.check_response(body))


# -- proxy and auth ----------------------------------------------------------------------------


def test_token_flow_and_rest_go_through_the_proxy(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    token = http.post(
        "/oauth/token", auth=("id", "secret"), data={"grant_type": "client_credentials"}
    )
    assert token.status_code == 200
    assert token.json()["token_type"] == "Bearer"
    assert token.json()["expires_in"] > 0

    by_number = http.get(f"/{PROJECT}/orders/order-number=DE-1002", headers=auth)
    assert by_number.status_code == 200
    assert by_number.json()["id"] == seed["de1002"]["id"]
    assert by_number.headers["content-type"].startswith("application/json")
    assert by_number.headers["x-correlation-id"]

    paged = http.get(
        f"/{PROJECT}/orders",
        headers=auth,
        params={"where": 'orderNumber in ("DE-1001", "G-1")', "limit": "1"},
    )
    assert paged.json()["count"] == 1

    missing = http.get(f"/{PROJECT}/orders/order-number=NOPE", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "ResourceNotFound"

    assert http.get(f"/{PROJECT}/orders").status_code == 401


def test_graphql_without_or_with_a_bad_token_is_401(http: httpx.Client) -> None:
    query = "{ orders { total } }"
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        answer = gql(http, headers, query)
        assert answer.status_code == 401
        body = answer.json()
        assert body["statusCode"] == 401
        assert body["errors"][0]["code"] == "invalid_token"


def test_documents_failing_validation_are_400(http: httpx.Client, auth: dict[str, str]) -> None:
    unknown_field = gql(http, auth, '{ order(orderNumber: "DE-1001") { noSuchField } }')
    assert unknown_field.status_code == 400
    error = unknown_field.json()["errors"][0]
    assert "noSuchField" in error["message"]
    assert error["locations"] == [{"line": 1, "column": 35}]
    assert error["extensions"]["code"] == "GraphQLError"
    assert "data" not in unknown_field.json()

    syntax = gql(http, auth, "{ order(orderNumber: ")
    assert syntax.status_code == 400
    assert syntax.json()["errors"][0]["extensions"]["code"] == "GraphQLError"

    bad_variable = gql(http, auth, "query($n: Int) { orders(limit: $n) { total } }", {"n": "x"})
    assert bad_variable.status_code == 400

    not_json = http.post(f"/{PROJECT}/graphql", content=b"{", headers=auth)
    assert not_json.status_code == 400
    assert not_json.json()["errors"][0]["code"] == "InvalidJsonInput"


def test_every_composed_read_in_one_document(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    jane = seed["jane"]["id"]
    got = run(
        http,
        auth,
        queries.order_by_number("DE-1002", ALL_ORDER_VIEWS, store="berlin"),
        queries.customers_by_email("jane.doe@example.com", [views.CUSTOMER]),
        queries.customer_orders(jane, [views.ORDER_SUMMARY]),
        queries.guest_orders("Guest.Person@Example.com", [views.ORDER_SUMMARY]),
        queries.active_cart(jane, [views.CART]),
        queries.stores([views.STORE]),
        queries.orders_by_ids([seed["de1001"]["id"]], [views.VERSION]),
    )
    assert got["order"]["orderNumber"] == "DE-1002"
    assert [c["id"] for c in got["customers"]] == [jane]
    assert len(got["customer_orders"]) == 3
    assert {o["orderNumber"] for o in got["guest_orders"]} == {"G-1", "G-2"}
    assert got["cart"]["id"] == seed["cart_a"]["id"]
    assert {s["key"] for s in got["stores"]} == {"berlin", "hamburg"}
    assert got["orders"] == [
        {
            "id": seed["de1001"]["id"],
            "version": seed["de1001"]["version"],
            "lastModifiedAt": seed["de1001"]["lastModifiedAt"],
        }
    ]


# -- orders ------------------------------------------------------------------------------------


def test_order_by_number_has_the_official_shapes(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    order = run(http, auth, queries.order_by_number("DE-1002", ALL_ORDER_VIEWS))["order"]
    assert order["id"] == seed["de1002"]["id"]
    assert order["version"] == seed["de1002"]["version"]
    assert order["customerEmail"] == "Jane.Doe@Example.com"
    assert (order["orderState"], order["shipmentState"], order["paymentState"]) == (
        "Confirmed",
        "Shipped",
        "Paid",
    )
    assert order["storeRef"] == {"key": "berlin"}
    assert order["totalPrice"] == {"centAmount": 2999, "currencyCode": "EUR", "fractionDigits": 2}

    (line,) = order["lineItems"]
    assert line["variant"] == {"sku": "SKU-1"}
    assert line["nameAllLocales"] == [
        {"locale": "en", "value": "Shirt"},
        {"locale": "de", "value": "Hemd"},
    ]
    assert line["price"]["value"] == {
        "type": "centPrecision",
        "centAmount": 2500,
        "currencyCode": "EUR",
        "fractionDigits": 2,
    }
    assert line["discountedPricePerQuantity"] == []
    assert order["shippingAddress"]["streetName"] == "Unter den Linden"

    delivery, added = order["shippingInfo"]["deliveries"]
    assert order["shippingInfo"]["shippingMethodName"] == "DHL"
    assert delivery["key"] == "d1"
    assert added["key"] == "d2"  # the emulator's addDelivery stores it as `deliveryKey`
    assert added["parcels"][0]["trackingData"] == {
        "trackingId": "TRACK-2",
        "carrier": None,
        "provider": None,
        "isReturn": False,  # the real API's default; the emulator omits it
    }
    (parcel,) = delivery["parcels"]
    assert parcel["key"] == "p1"
    assert parcel["trackingData"] == {
        "trackingId": "TRACK-1",
        "carrier": "DHL",
        "provider": "dhl-de",
        "isReturn": False,
    }

    (payment,) = order["paymentInfo"]["payments"]
    assert payment["id"] == seed["payment"]["id"]
    assert payment["amountPlanned"]["centAmount"] == 2999
    assert payment["paymentMethodInfo"]["method"] == "card"
    assert {"locale": "de", "value": "Kreditkarte"} in (
        payment["paymentMethodInfo"]["nameAllLocales"]
    )
    assert [(t["type"], t["state"]) for t in payment["transactions"]] == [
        ("Authorization", "Success"),
        ("Charge", "Pending"),
    ]
    assert payment["transactions"][0]["amount"]["currencyCode"] == "EUR"

    (ret,) = order["returnInfo"]
    assert ret["returnTrackingId"] == "RET-1"
    (item,) = ret["items"]
    assert (
        item["type"],
        item["quantity"],
        item["shipmentState"],
        item["paymentState"],
        item["comment"],
    ) == ("LineItemReturnItem", 1, "Advised", "Initial", "too small")

    assert order["custom"]["customFieldsRaw"] == [
        {"name": "supportStatus", "value": "open"},
        {"name": "internalNote", "value": "called twice"},
    ]


def test_custom_fields_and_references_follow_the_schema(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    query = """query($n: String) { order(orderNumber: $n) {
        custom { typeRef { typeId id } type { key }
                 only: customFieldsRaw(includeNames: ["supportStatus"]) { name value }
                 rest: customFieldsRaw(excludeNames: ["supportStatus"]) { name value } }
        customer { id email customerGroup { key name } }
        store { key name(locale: "de") nameAllLocales { locale value } }
        paymentInfo { paymentRefs { typeId id } }
        lineItems { name(acceptLanguage: ["fr", "de-AT"]) price { value { __typename type } } }
        inventoryMode discountCodes { state } shipping { shippingKey }
    } }"""
    answer = gql(http, auth, query, {"n": "DE-1002"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    order = body["data"]["order"]
    assert order["custom"]["typeRef"]["typeId"] == "type"
    assert order["custom"]["type"] == {"key": "order-support"}
    assert order["custom"]["only"] == [{"name": "supportStatus", "value": "open"}]
    assert order["custom"]["rest"] == [{"name": "internalNote", "value": "called twice"}]
    assert order["customer"]["id"] == seed["jane"]["id"]
    assert order["customer"]["email"].lower() == "jane.doe@example.com"  # the mock lowercases
    assert order["customer"]["customerGroup"] == {"key": "vip", "name": "VIP"}
    assert order["store"] == {
        "key": "berlin",
        "name": "Berlin (DE)",
        "nameAllLocales": [
            {"locale": "en", "value": "Berlin"},
            {"locale": "de", "value": "Berlin (DE)"},
        ],
    }
    assert order["paymentInfo"]["paymentRefs"] == [
        {"typeId": "payment", "id": seed["payment"]["id"]}
    ]
    assert order["lineItems"] == [
        {"name": "Hemd", "price": {"value": {"__typename": "Money", "type": "centPrecision"}}}
    ]
    assert order["inventoryMode"] == "None"
    assert order["discountCodes"] == []
    assert order["shipping"] == []


def test_order_by_id_and_unknown_orders(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    got = run(
        http,
        auth,
        queries.order_by_id(seed["hh2001"]["id"], [views.ORDER_SUMMARY], key="by_id"),
        queries.order_by_id(
            "00000000-0000-0000-0000-000000000000", [views.VERSION], key="unknown_id"
        ),
        queries.order_by_number("NOPE-1", [views.VERSION], key="unknown_number"),
    )
    assert got["by_id"]["orderNumber"] == "HH-2001"
    assert got["by_id"]["storeRef"] == {"key": "hamburg"}
    assert got["unknown_id"] is None
    assert got["unknown_number"] is None


def test_in_store_reads_hide_other_stores(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    jane = seed["jane"]["id"]
    got = run(
        http,
        auth,
        queries.order_by_number("DE-1001", [views.VERSION], store="berlin", key="own"),
        queries.order_by_number("DE-1001", [views.VERSION], store="hamburg", key="other"),
        queries.order_by_number("G-1", [views.VERSION], store="berlin", key="storeless"),
        queries.order_by_id(
            seed["de1001"]["id"], [views.VERSION], store="hamburg", key="other_by_id"
        ),
        queries.customer_orders(jane, [views.ORDER_SUMMARY], store="berlin", key="berlin"),
        queries.customer_orders(jane, [views.ORDER_SUMMARY], store="hamburg", key="hamburg"),
    )
    assert got["own"]["id"] == seed["de1001"]["id"]
    assert got["other"] is None
    assert got["storeless"] is None
    assert got["other_by_id"] is None
    assert [o["orderNumber"] for o in got["berlin"]] == ["DE-1002", "DE-1001"]
    assert [o["orderNumber"] for o in got["hamburg"]] == ["HH-2001"]


def test_customer_orders_are_sorted_then_paged(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    jane = seed["jane"]["id"]
    got = run(
        http,
        auth,
        queries.customer_orders(jane, [views.ORDER_SUMMARY], key="all"),
        queries.customer_orders(jane, [views.ORDER_SUMMARY], limit=2, key="first_two"),
    )
    # The emulator answers in insertion order; createdAt desc reverses it.
    assert [o["orderNumber"] for o in got["all"]] == ["DE-1002", "HH-2001", "DE-1001"]
    assert [o["orderNumber"] for o in got["first_two"]] == ["DE-1002", "HH-2001"]

    answer = gql(
        http,
        auth,
        """query($w: String) {
        asc: orders(where: $w, sort: ["orderNumber asc"], limit: 1, offset: 1) {
            offset count total exists results { orderNumber } }
        none: orders(where: "orderNumber = \\"NOPE\\"") { count total exists results { id } }
    }""",
        {"w": f'customerId = "{jane}"'},
    )
    data = answer.json()["data"]
    assert data["asc"] == {
        "offset": 1,
        "count": 1,
        "total": 3,
        "exists": True,
        "results": [{"orderNumber": "DE-1002"}],
    }
    assert data["none"] == {"count": 0, "total": 0, "exists": False, "results": []}


def test_guest_orders_match_either_spelling_and_skip_registered_customers(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    got = run(http, auth, queries.guest_orders("Guest.Person@Example.com", [views.ORDER_SUMMARY]))
    assert [o["orderNumber"] for o in got["guest_orders"]] == ["G-2", "G-1"]
    assert all(o["customerId"] is None for o in got["guest_orders"])


def test_orders_by_ids(http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]) -> None:
    ids = [seed["de1002"]["id"], seed["g1"]["id"], "00000000-0000-0000-0000-000000000000"]
    got = run(http, auth, queries.orders_by_ids(ids, [views.VERSION, views.ORDER_SUMMARY]))
    assert {o["id"] for o in got["orders"]} == set(ids[:2])
    assert all(o["version"] >= 1 and o["lastModifiedAt"] for o in got["orders"])


def test_invalid_paging_and_predicates_are_graphql_errors(
    http: httpx.Client, auth: dict[str, str]
) -> None:
    too_many = gql(http, auth, "{ orders(limit: 501) { total } }")
    assert too_many.status_code == 200
    assert too_many.json()["data"] is None
    assert too_many.json()["errors"][0]["extensions"]["code"] == "InvalidInput"
    assert too_many.json()["errors"][0]["path"] == ["orders"]

    bad_where = gql(http, auth, '{ orders(where: "orderNumber ===") { total } }')
    assert bad_where.json()["errors"][0]["extensions"]["code"] == "InvalidInput"

    not_emulated = gql(http, auth, '{ inStore(key: "berlin") { cartDiscounts { total } } }')
    assert not_emulated.json()["errors"][0]["path"] == ["inStore", "cartDiscounts"]


# -- customers, carts, stores --------------------------------------------------------------------


def test_customer_by_id(http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]) -> None:
    jane = seed["jane"]
    customer = run(http, auth, queries.customer_by_id(jane["id"], [views.CUSTOMER]))["customer"]
    assert customer["id"] == jane["id"]
    assert customer["version"] == jane["version"]
    assert customer["key"] == "jane"
    assert customer["email"].lower() == "jane.doe@example.com"
    assert (customer["firstName"], customer["lastName"]) == ("Jane", "Doe")
    assert customer["customerGroup"]["key"] == "vip"
    assert customer["storesRef"] == [{"key": "berlin"}]
    assert customer["addresses"][0]["phone"] == "+49 30 1234"
    assert customer["addresses"][0]["country"] == "DE"

    answer = gql(
        http,
        auth,
        '{ customer(key: "jane") { stores { key } } nobody: customer(id: "nope") { id } }',
    )
    assert answer.json()["data"] == {"customer": {"stores": [{"key": "berlin"}]}, "nobody": None}


def test_customers_by_email_ignore_case(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    for spelling in ("jane.doe@example.com", "JANE.DOE@Example.COM", " Jane.Doe@Example.com "):
        got = run(http, auth, queries.customers_by_email(spelling, [views.CUSTOMER]))
        assert [c["id"] for c in got["customers"]] == [seed["jane"]["id"]]
    got = run(http, auth, queries.customers_by_email("nobody@example.com", [views.CUSTOMER]))
    assert got["customers"] == []


def test_in_store_customers_include_global_ones(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    got = run(
        http,
        auth,
        queries.customers_by_email(
            "jane.doe@example.com", [views.VERSION], store="hamburg", key="jane_in_hamburg"
        ),
        queries.customers_by_email(
            "gina.global@example.com", [views.VERSION], store="hamburg", key="global"
        ),
        queries.customer_by_id(
            seed["hans"]["id"], [views.VERSION], store="berlin", key="hans_in_berlin"
        ),
        queries.customer_by_id(
            seed["hans"]["id"], [views.VERSION], store="hamburg", key="hans_in_hamburg"
        ),
    )
    assert got["jane_in_hamburg"] == []
    assert [c["id"] for c in got["global"]] == [seed["gina"]["id"]]
    assert got["hans_in_berlin"] is None
    assert got["hans_in_hamburg"]["id"] == seed["hans"]["id"]


def test_active_cart_is_the_most_recently_modified(
    http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]
) -> None:
    jane = seed["jane"]["id"]
    got = run(
        http,
        auth,
        queries.active_cart(jane, [views.CART], key="cart"),
        queries.active_cart(jane, [views.VERSION], store="hamburg", key="hamburg"),
        queries.active_cart(seed["gina"]["id"], [views.VERSION], key="none"),
    )
    cart = got["cart"]
    assert cart["id"] == seed["cart_a"]["id"]
    assert cart["version"] == seed["cart_a"]["version"]
    assert (cart["cartState"], cart["customerId"], cart["locale"]) == ("Active", jane, "de")
    assert cart["storeRef"] == {"key": "berlin"}
    assert cart["totalLineItemQuantity"] == 2
    assert cart["totalPrice"]["centAmount"] == 5000
    (line,) = cart["lineItems"]
    assert line["variant"]["sku"] == "SKU-1"
    assert line["nameAllLocales"][0] == {"locale": "en", "value": "Shirt"}
    assert got["hamburg"]["id"] == seed["cart_hh"]["id"]
    assert got["none"] is None


def test_stores(http: httpx.Client, auth: dict[str, str], seed: dict[str, Any]) -> None:
    got = run(http, auth, queries.stores([views.STORE]))
    berlin = next(s for s in got["stores"] if s["key"] == "berlin")
    assert berlin["version"] == 1
    assert berlin["nameAllLocales"] == [
        {"locale": "en", "value": "Berlin"},
        {"locale": "de", "value": "Berlin (DE)"},
    ]
    assert berlin["languages"] == ["de", "en"]
    assert berlin["countries"] == [{"code": "DE"}]


# -- loader cache and injected client --------------------------------------------------------


async def test_each_rest_resource_is_read_once_per_request(
    emulator: EmulatorProcess, token: str, seed: dict[str, Any]
) -> None:
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as upstream:
        app = create_bridge_app(emulator.url, client=upstream)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bridge") as client:
            ids = [seed["de1001"]["id"], seed["de1002"]["id"]]
            document = queries.compose(
                [
                    queries.orders_by_ids(ids, [views.PAYMENTS]),
                    queries.order_by_id(ids[0], [views.PAYMENTS]),
                ]
            )
            answer = await client.post(
                f"/{PROJECT}/graphql",
                json=document.payload(),
                headers={"Authorization": f"Bearer {token}"},
            )
    assert answer.status_code == 200, answer.text
    got = document.extract(queries.check_response(answer.json()))
    payment_ids = {p["id"] for o in got["orders"] for p in o["paymentInfo"]["payments"]}
    assert payment_ids == {seed["payment"]["id"]}
    assert got["order"]["paymentInfo"]["payments"][0]["id"] == seed["payment"]["id"]
    # Three order results reference the same payment: it is read once.
    assert seen.count(f"/{PROJECT}/payments/{seed['payment']['id']}") == 1
