"""The field-level PII policy: masking functions, apply() on view-shaped entities, overrides,
coverage of every PII-like field the views select, and log redaction."""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from graphql import (
    FieldNode,
    GraphQLInterfaceType,
    GraphQLObjectType,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
)

from commerce_context import views
from commerce_context.exceptions import ConfigError
from commerce_context.policy import (
    ADDRESS_FIELDS,
    ADDRESS_PATHS,
    DEFAULT_POLICY,
    FILL,
    KINDS,
    KNOWN_FIELDS,
    Policy,
    RedactingFilter,
    mask,
    mask_email,
    mask_phone,
    mask_postal_code,
    mask_text,
    own_path,
    redact,
)
from commerce_context.scrub import Scrubber
from commerce_context.settings import Mappings
from tests.schema import schema

ENTITY_TYPES = {
    "customer": "Customer",
    "order": "Order",
    "cart": "Cart",
    "payment": "Payment",
    "store": "Store",
}
KIND_OF_TYPE = {type_name: kind for kind, type_name in ENTITY_TYPES.items()}

# Field names that carry (or may carry) personal data wherever they appear.
PII_NAMES = frozenset(
    {
        "email",
        "customerEmail",
        "phone",
        "mobile",
        "fax",
        "title",
        "salutation",
        "firstName",
        "middleName",
        "lastName",
        "companyName",
        "dateOfBirth",
        "vatId",
        "streetName",
        "streetNumber",
        "additionalStreetInfo",
        "building",
        "apartment",
        "pOBox",
        "postalCode",
        "additionalAddressInfo",
        "anonymousId",
        "externalUserId",
        "comment",
        "interfaceText",
    }
)


def all_views() -> list[views.View]:
    found = [value for value in vars(views).values() if isinstance(value, views.View)]
    found.append(views.order_custom_fields(("supportStatus", "internalNote")))
    return found


# -- masking functions --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("anna.schmidt@example.com", "a***@e***.com"),
        ("Anna.Schmidt@Example.COM", "A***@E***.COM"),
        ("  anna.schmidt@example.com\n", "a***@e***.com"),
        ("x.y@mail.example.co.uk", "x***@m***.uk"),
        ("user@localhost", "u***@l***"),
        ("a@example.com", "***@e***.com"),  # a one-character local part is not shown
        ("ab@x.de", "a***@***.de"),  # nor a one-character domain label
        ("@example.com", "***@e***.com"),
        ("anna@", "a***@***"),
        ("weird@@example.com", "w***@e***.com"),
        ("élodie@exämple.fr", "é***@e***.fr"),
        ("e\u0301lodie@example.fr", "é***@e***.fr"),  # NFC: the accent stays with its letter
        ("用户@例子.广告", "用***@例***.广告"),
        ("not-an-email", "***"),
        ("", ""),
        ("   ", ""),
    ],
)
def test_mask_email(value: str, expected: str) -> None:
    assert mask_email(value) == expected


def test_mask_email_none_and_fixed_width() -> None:
    assert mask_email(None) is None
    short, long = mask_email("ab@cd.com"), mask_email("abcdefghijklmno@cdefghijklmnop.com")
    assert short == long == "a***@c***.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+49 30 1234567", "+49 ••• ••67"),
        ("+4930123456789", "+49 ••• ••89"),
        ("+1 (555) 123-4567", "+1 ••• ••67"),
        ("+44 20 7946 0958", "+44 ••• ••58"),
        ("+353 1 234 5678", "+353 ••• ••78"),
        ("+7 495 123-45-67", "+7 ••• ••67"),
        ("030 1234567", "••• ••67"),
        ("0151-23456789", "••• ••89"),
        ("+٤٩ ٣٠ ١٢٣٤٥٦٧", "+49 ••• ••67"),  # Arabic-Indic digits
        ("+49 12345", "+49 •••"),  # too short to show any digit
        ("12345", "•••"),
        ("n/a", "•••"),
        ("+", "•••"),
        ("", ""),
    ],
)
def test_mask_phone(value: str, expected: str) -> None:
    assert mask_phone(value) == expected


def test_mask_phone_none_and_fixed_width() -> None:
    assert mask_phone(None) is None
    assert mask_phone("+49 30 123467") == mask_phone("+49 30 1234567890123467") == "+49 ••• ••67"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Hauptstraße", "H•••"),
        ("  Öztürkstraße ", "Ö•••"),
        ("12a", "1•••"),
        ("Ab", "A•••"),
        ("A", FILL),  # one character: showing it would show everything
        ("日本橋", "日•••"),
        ("", ""),
        ("  ", ""),
    ],
)
def test_mask_text(value: str, expected: str) -> None:
    assert mask_text(value) == expected


def test_mask_text_none_and_fixed_width() -> None:
    assert mask_text(None) is None
    assert mask_text("Ab") == mask_text("A" + "b" * 80) == "A•••"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10115", "10•••"),
        (" 75008 ", "75•••"),
        ("SW1A 1AA", "SW•••"),
        ("1010", "10•••"),
        ("123", FILL),
        ("1", FILL),
        ("", ""),
    ],
)
def test_mask_postal_code(value: str, expected: str) -> None:
    assert mask_postal_code(value) == expected
    assert mask_postal_code(None) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("Berlin", "B•••"),
        ("", ""),
        (42, FILL),
        (4.5, FILL),
        (True, FILL),
        (["a", "b"], FILL),
        ({"a": 1}, FILL),
    ],
)
def test_mask_generic(value: object, expected: str | None) -> None:
    assert mask(value) == expected


# -- the default policy -------------------------------------------------------------------------


def test_default_policy_matches_the_brief() -> None:
    expected = {
        "customer.email": "mask",
        "customer.firstName": "show",
        "customer.lastName": "show",
        "customer.externalId": "show",
        "customer.dateOfBirth": "exclude",
        "customer.addresses.phone": "mask",
        "customer.addresses.mobile": "mask",
        "customer.addresses.city": "show",
        "customer.addresses.country": "show",
        "order.customerEmail": "mask",
        "order.shippingAddress.firstName": "show",
        "order.shippingAddress.lastName": "show",
        "order.shippingAddress.streetName": "mask",
        "order.shippingAddress.streetNumber": "mask",
        "order.shippingAddress.postalCode": "mask",
        "order.shippingAddress.city": "show",
        "order.shippingAddress.region": "show",
        "order.shippingAddress.country": "show",
        "order.shippingAddress.phone": "mask",
        "order.shippingAddress.email": "mask",
        "order.returnInfo.items.comment": "show",
        "cart.anonymousId": "mask",
        "payment.paymentStatus.interfaceText": "show",
    }
    assert {path: DEFAULT_POLICY[path] for path in expected} == expected


def test_known_fields_are_the_default_policy() -> None:
    assert frozenset(DEFAULT_POLICY) == KNOWN_FIELDS
    assert set(DEFAULT_POLICY.values()) <= {"show", "mask", "exclude"}
    assert {path.split(".")[0] for path in KNOWN_FIELDS} <= set(KINDS)
    for group in ADDRESS_PATHS:
        for name, treatment in ADDRESS_FIELDS.items():
            assert DEFAULT_POLICY[f"{group}.{name}"] == treatment


@pytest.mark.parametrize("path", sorted(KNOWN_FIELDS))
def test_every_known_path_exists_in_the_schema(path: str) -> None:
    kind, *segments = path.split(".")
    current = schema().type_map[ENTITY_TYPES[kind]]
    for segment in segments:
        assert isinstance(current, GraphQLObjectType | GraphQLInterfaceType), f"{path}: no fields"
        assert segment in current.fields, f"{path}: {current.name} has no field {segment}"
        current = get_named_type(current.fields[segment].type)


def _selected_paths(selection: SelectionSetNode, prefix: str) -> Iterator[str]:
    for node in selection.selections:
        if isinstance(node, FieldNode):
            path = f"{prefix}.{node.name.value}"
            yield path
            if node.selection_set:
                yield from _selected_paths(node.selection_set, path)
        elif isinstance(node, InlineFragmentNode):  # fields of a subtype sit at the same path
            yield from _selected_paths(node.selection_set, prefix)


@pytest.mark.parametrize("view", all_views(), ids=lambda view: view.name)
def test_every_pii_like_field_of_a_view_is_governed(view: views.View) -> None:
    kinds = list(KINDS) if view.on == "*" else [KIND_OF_TYPE[view.on]]
    # By name: each PII-like name the view uses is governed somewhere under its kind.
    for name in sorted(view.field_names() & PII_NAMES):
        governed = [
            path
            for path in KNOWN_FIELDS
            if path.endswith("." + name) and path.split(".")[0] in {*kinds, "payment"}
        ]
        assert governed, f"view {view.name} selects {name!r}, which the policy does not govern"
    # By path: the exact place the view selects it is a known path.
    for kind in kinds:
        for path in _selected_paths(view.selection, kind):
            if path.rsplit(".", 1)[-1] in PII_NAMES:
                assert own_path(path) in KNOWN_FIELDS, f"{view.name}: {path} is ungoverned"


def test_views_select_some_pii_so_the_coverage_test_bites() -> None:
    names = set().union(*(view.field_names() for view in all_views()))
    assert {"email", "customerEmail", "phone", "postalCode", "anonymousId"} <= names


def test_policy_never_governs_a_forbidden_field() -> None:
    for path in KNOWN_FIELDS:
        assert not set(path.split(".")) & views.FORBIDDEN_FIELDS, path


# -- realistic entities, shaped like the views' results -----------------------------------------


def money(cents: int, currency: str = "EUR") -> dict[str, Any]:
    return {"centAmount": cents, "currencyCode": currency, "fractionDigits": 2}


def customer_entity() -> dict[str, Any]:  # views.VERSION + views.CUSTOMER
    return {
        "id": "5f0c7a2e-8d1b-4c4e-9a63-0f3c1d2e4b5a",
        "version": 7,
        "createdAt": "2026-01-10T08:00:00.000Z",
        "lastModifiedAt": "2026-08-01T10:30:00.000Z",
        "key": "anna",
        "customerNumber": "C-10042",
        "externalId": "crm-884211",
        "email": "anna.schmidt@example.com",
        "firstName": "Anna",
        "lastName": "Schmidt",
        "locale": "de-DE",
        "customerGroup": {"id": "g1", "key": "vip", "name": "VIP"},
        "storesRef": [{"key": "berlin"}],
        "addresses": [
            {
                "id": "a1",
                "phone": "+49 30 1234567",
                "mobile": "+49 151 23456789",
                "city": "Berlin",
                "country": "DE",
            },
            {
                "id": "a2",
                "phone": None,
                "mobile": "0170 9876543",
                "city": "Hamburg",
                "country": "DE",
            },
        ],
    }


def order_entity() -> dict[
    str, Any
]:  # ORDER_SUMMARY + ORDER_DETAIL + SHIPMENTS + PAYMENTS + RETURNS
    return {
        "id": "0e3f5c6a-4b1d-4d2a-8f7e-3a9b2c1d0e5f",
        "version": 12,
        "createdAt": "2026-08-03T09:12:00.000Z",
        "lastModifiedAt": "2026-08-04T07:00:00.000Z",
        "orderNumber": "10001234",
        "customerId": "5f0c7a2e-8d1b-4c4e-9a63-0f3c1d2e4b5a",
        "customerEmail": "anna.schmidt@example.com",
        "locale": "de-DE",
        "orderState": "Confirmed",
        "shipmentState": "Shipped",
        "paymentState": "Paid",
        "storeRef": {"key": "berlin"},
        "totalPrice": money(12990),
        "lineItems": [
            {
                "id": "li-1",
                "quantity": 2,
                "variant": {"sku": "TSHIRT-M"},
                "nameAllLocales": [
                    {"locale": "de-DE", "value": "T-Shirt"},
                    {"locale": "en", "value": "T-shirt"},
                ],
                "price": {"value": money(4995)},
                "totalPrice": money(9990),
                "discountedPricePerQuantity": [
                    {
                        "quantity": 2,
                        "discountedPrice": {
                            "value": money(4495),
                            "includedDiscounts": [
                                {"discountRef": {"id": "d1"}, "discountedAmount": money(500)}
                            ],
                        },
                    }
                ],
            }
        ],
        "discountOnTotalPrice": None,
        "taxedPrice": {"totalNet": money(10916), "totalGross": money(12990)},
        "shippingAddress": {
            "firstName": "Anna",
            "lastName": "Schmidt",
            "streetName": "Hauptstraße",
            "streetNumber": "12a",
            "postalCode": "10115",
            "city": "Berlin",
            "region": "Berlin",
            "country": "DE",
            "phone": "+49 30 1234567",
            "email": "anna.schmidt@example.com",
        },
        "shippingInfo": {
            "shippingMethodName": "DHL Express",
            "deliveries": [
                {
                    "id": "del-1",
                    "key": None,
                    "createdAt": "2026-08-03T15:00:00.000Z",
                    "parcels": [
                        {
                            "id": "par-1",
                            "key": None,
                            "createdAt": "2026-08-03T15:00:00.000Z",
                            "trackingData": {
                                "trackingId": "00340434161094042557",
                                "carrier": "DHL",
                                "provider": "dhl",
                                "isReturn": False,
                            },
                        }
                    ],
                }
            ],
        },
        "paymentInfo": {
            "payments": [
                {
                    "id": "pay-1",
                    "version": 3,
                    "createdAt": "2026-08-03T09:12:05.000Z",
                    "amountPlanned": money(12990),
                    "paymentMethodInfo": {
                        "paymentInterface": "adyen",
                        "method": "creditcard",
                        "nameAllLocales": [{"locale": "en", "value": "Credit card"}],
                    },
                    "paymentStatus": {"interfaceCode": "Authorised", "interfaceText": "OK 3DS"},
                    "transactions": [
                        {
                            "id": "tx-1",
                            "timestamp": "2026-08-03T09:12:06.000Z",
                            "type": "Charge",
                            "state": "Success",
                            "amount": money(12990),
                        }
                    ],
                }
            ]
        },
        "returnInfo": [
            {
                "returnTrackingId": "RT-1",
                "returnDate": "2026-08-10T12:00:00.000Z",
                "items": [
                    {
                        "id": "ri-1",
                        "quantity": 1,
                        "type": "LineItemReturnItem",
                        "comment": "Too small",
                        "lineItemId": "li-1",
                        "shipmentState": "Returned",
                        "paymentState": "Refunded",
                        "createdAt": "2026-08-10T12:00:00.000Z",
                    }
                ],
            }
        ],
    }


def cart_entity() -> dict[str, Any]:  # views.CART
    return {
        "id": "cart-1",
        "version": 4,
        "createdAt": "2026-08-05T10:00:00.000Z",
        "lastModifiedAt": "2026-08-05T10:05:00.000Z",
        "cartState": "Active",
        "customerId": None,
        "anonymousId": "anon-7c1e9f52",
        "locale": "en-GB",
        "country": "GB",
        "storeRef": {"key": "london"},
        "totalLineItemQuantity": 1,
        "totalPrice": money(2500, "GBP"),
        "lineItems": [
            {
                "id": "li-9",
                "quantity": 1,
                "variant": {"sku": "MUG"},
                "nameAllLocales": [{"locale": "en", "value": "Mug"}],
                "totalPrice": money(2500, "GBP"),
            }
        ],
    }


def store_entity() -> dict[str, Any]:  # views.STORE
    return {
        "id": "store-1",
        "version": 1,
        "key": "berlin",
        "nameAllLocales": [{"locale": "de", "value": "Berlin"}],
        "languages": ["de-DE"],
        "countries": [{"code": "DE"}],
    }


def _assert_selected(value: Any, selection: dict[str, Any], where: str) -> None:
    if isinstance(value, list):
        for item in value:
            _assert_selected(item, selection, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert key in selection, f"{where}.{key} is not selected by the views"
            _assert_selected(item, selection[key], f"{where}.{key}")


def _selection_tree(*selected: views.View) -> dict[str, Any]:
    tree: dict[str, Any] = {}

    def merge(node: SelectionSetNode, into: dict[str, Any]) -> None:
        for field in node.selections:
            if isinstance(field, InlineFragmentNode):
                merge(field.selection_set, into)
                continue
            assert isinstance(field, FieldNode)
            child = into.setdefault(field.name.value, {})
            if field.selection_set:
                merge(field.selection_set, child)

    for view in selected:
        merge(view.selection, tree)
    return tree


@pytest.mark.parametrize(
    ("entity", "selected"),
    [
        (customer_entity(), (views.VERSION, views.CUSTOMER)),
        (
            order_entity(),
            (
                views.VERSION,
                views.ORDER_SUMMARY,
                views.ORDER_DETAIL,
                views.SHIPMENTS,
                views.PAYMENTS,
                views.RETURNS,
                views.ORDER_CUSTOMER,
            ),
        ),
        (cart_entity(), (views.VERSION, views.CART)),
        (store_entity(), (views.VERSION, views.STORE)),
    ],
    ids=["customer", "order", "cart", "store"],
)
def test_fixtures_are_shaped_like_the_views(
    entity: dict[str, Any], selected: tuple[views.View, ...]
) -> None:
    _assert_selected(entity, _selection_tree(*selected), "entity")


def _shares_containers(a: Any, b: Any) -> bool:
    if isinstance(a, dict | list) and a is b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return any(_shares_containers(a[key], b[key]) for key in a.keys() & b.keys())
    if isinstance(a, list) and isinstance(b, list):
        return any(_shares_containers(x, y) for x, y in zip(a, b, strict=False))
    return False


# -- apply() ------------------------------------------------------------------------------------


def test_apply_customer() -> None:
    entity = customer_entity()
    entity["dateOfBirth"] = "1990-05-17"  # not selected by the views, but excluded if present
    before = copy.deepcopy(entity)

    result = Policy().apply("customer", entity)

    assert entity == before, "the input was mutated"
    assert result is not None
    assert not _shares_containers(result, entity)
    assert result["email"] == "a***@e***.com"
    assert result["firstName"] == "Anna"
    assert result["lastName"] == "Schmidt"
    assert result["externalId"] == "crm-884211"
    assert "dateOfBirth" not in result
    assert result["addresses"] == [
        {
            "id": "a1",
            "phone": "+49 ••• ••67",
            "mobile": "+49 ••• ••89",
            "city": "Berlin",
            "country": "DE",
        },
        {"id": "a2", "phone": None, "mobile": "••• ••43", "city": "Hamburg", "country": "DE"},
    ]
    untouched = ("id", "version", "createdAt", "key", "customerNumber", "locale", "customerGroup")
    for key in (*untouched, "storesRef"):
        assert result[key] == entity[key]


def test_apply_order() -> None:
    entity = order_entity()
    before = copy.deepcopy(entity)

    result = Policy().apply("order", entity)

    assert entity == before
    assert result is not None
    assert not _shares_containers(result, entity)
    assert result["customerEmail"] == "a***@e***.com"
    assert result["shippingAddress"] == {
        "firstName": "Anna",
        "lastName": "Schmidt",
        "streetName": "H•••",
        "streetNumber": "1•••",
        "postalCode": "10•••",
        "city": "Berlin",
        "region": "Berlin",
        "country": "DE",
        "phone": "+49 ••• ••67",
        "email": "a***@e***.com",
    }
    assert result["returnInfo"][0]["items"][0]["comment"] == "Too small"
    payment = result["paymentInfo"]["payments"][0]
    assert payment["paymentStatus"]["interfaceText"] == "OK 3DS"
    # Everything that is not personal data is exactly as it came.
    for key in ("lineItems", "taxedPrice", "totalPrice", "shippingInfo", "storeRef", "orderNumber"):
        assert result[key] == entity[key]
    assert payment["transactions"] == entity["paymentInfo"]["payments"][0]["transactions"]
    assert result["discountOnTotalPrice"] is None


def test_apply_cart_and_store() -> None:
    policy = Policy()
    cart = policy.apply("cart", cart_entity())
    assert cart is not None
    assert cart["anonymousId"] == "a•••"
    assert cart["customerId"] is None
    assert cart["totalPrice"] == money(2500, "GBP")
    assert cart["lineItems"] == cart_entity()["lineItems"]

    store = store_entity()
    result = policy.apply("store", store)
    assert result == store
    assert result is not store
    assert not _shares_containers(result, store)


def test_apply_payment_standalone_and_nested_alike() -> None:
    payment = {
        "id": "pay-1",
        "anonymousId": "anon-123",
        "paymentStatus": {"interfaceCode": "Refused", "interfaceText": "Insufficient funds"},
        "createdBy": {"clientId": "cl-1", "anonymousId": "anon-123", "externalUserId": "clerk-7"},
    }
    policy = Policy({"payment.paymentStatus.interfaceText": "mask"})
    standalone = policy.apply("payment", payment)
    nested = policy.apply("order", {"paymentInfo": {"payments": [payment]}})
    cart = policy.apply("cart", {"paymentInfo": {"payments": [payment]}})
    assert nested is not None
    assert cart is not None
    assert standalone == nested["paymentInfo"]["payments"][0] == cart["paymentInfo"]["payments"][0]
    assert standalone == {
        "id": "pay-1",
        "anonymousId": "a•••",
        "paymentStatus": {"interfaceCode": "Refused", "interfaceText": "I•••"},
        "createdBy": {"clientId": "cl-1", "anonymousId": "a•••", "externalUserId": "c•••"},
    }


def test_apply_handles_missing_null_and_odd_values() -> None:
    policy = Policy()
    assert policy.apply("order", None) is None
    assert policy.apply("order", {}) == {}
    odd: dict[str, Any] = {
        "customerEmail": None,
        "shippingAddress": None,
        "billingAddress": {"phone": 4930123456, "email": ["a@b.de", None]},
        "returnInfo": [],
        "__typename": "Order",
    }
    assert policy.apply("order", odd) == {
        "customerEmail": None,
        "shippingAddress": None,
        "billingAddress": {"phone": FILL, "email": ["***@***.de", None]},
        "returnInfo": [],
        "__typename": "Order",
    }


def test_apply_many() -> None:
    results = Policy().apply_many("cart", [cart_entity(), None, {"anonymousId": "zz-9"}])
    assert [r["anonymousId"] if r else r for r in results] == ["a•••", None, "z•••"]
    assert Policy().apply_many("cart", []) == []


# -- scrubbing and custom fields ------------------------------------------------------------------

CARD = "4111 1111 1111 1111"
CARD_MASKED = "•••• 1111"


def _planted(value: Any, path: str = "") -> Iterator[str]:
    """Every string leaf of `value` (for "nothing survived" checks)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _planted(item)
    elif isinstance(value, list):
        for item in value:
            yield from _planted(item)


def test_apply_scrubs_every_string_whatever_its_field() -> None:
    secret = f"Visa {CARD} tok_1N3T00LkdIwHu7ixAbCd"
    entity = order_entity()
    entity["orderNumber"] = "DE-1003"
    entity["lineItems"][0]["nameAllLocales"] = [{"locale": "en", "value": secret}]
    entity["paymentInfo"]["payments"][0]["paymentMethodInfo"] = {
        "method": "4111-1111-1111-1111",
        "nameAllLocales": [{"locale": "de", "value": secret}],
    }
    entity["paymentInfo"]["payments"][0]["paymentStatus"] = {
        "interfaceCode": "sk_live_51HxYzAbCdEfGhIjKl",
        "interfaceText": secret,
    }
    entity["returnInfo"][0]["items"][0]["comment"] = f"refund to card {CARD} please"
    entity["shippingAddress"]["streetName"] = f"{CARD} Street"  # a masked field
    entity["shippingAddress"]["city"] = secret  # a shown field
    entity["shippingInfo"] = {
        "shippingMethodName": secret,
        "deliveries": [
            {
                "parcels": [
                    {"trackingData": {"trackingId": "00340434161094042557", "carrier": secret}}
                ]
            }
        ],
    }
    entity["custom"] = {
        "customFieldsRaw": [
            {"name": "internalNote", "value": secret},
            {"name": "tags", "value": [secret, {"key": "k", "label": {"en": secret}}]},
        ]
    }
    entity["unknownField"] = {"deep": [[{"x": secret}]]}

    result = Policy().apply("order", entity)

    assert result is not None
    leaves = list(_planted(result))
    joined = "\n".join(leaves)
    assert "4111" not in joined.replace(CARD_MASKED, "")
    assert "1N3T00" not in joined and "51HxYz" not in joined
    assert result["paymentInfo"]["payments"][0]["paymentMethodInfo"]["method"] == CARD_MASKED
    assert result["returnInfo"][0]["items"][0]["comment"] == f"refund to card {CARD_MASKED} please"
    assert result["custom"]["customFieldsRaw"][0]["value"] == f"Visa {CARD_MASKED} tok_•••"
    assert result["unknownField"]["deep"][0][0]["x"] == f"Visa {CARD_MASKED} tok_•••"
    # identifiers that only look long stay as they are
    assert result["orderNumber"] == "DE-1003"
    parcel = result["shippingInfo"]["deliveries"][0]["parcels"][0]
    assert parcel["trackingData"]["trackingId"] == "00340434161094042557"
    assert result["id"] == entity["id"] and result["createdAt"] == entity["createdAt"]


def test_apply_keeps_only_configured_custom_fields_with_their_treatment() -> None:
    policy = Policy(
        custom_fields={"supportStatus": "show", "internalNote": "mask", "rmaStatus": "exclude"}
    )
    entity = {
        "id": "o-1",
        "custom": {
            "customFieldsRaw": [
                {"name": "supportStatus", "value": {"key": "open", "label": "Open"}},
                {"name": "internalNote", "value": "Customer called about 4111111111111111"},
                {"name": "rmaStatus", "value": "refunded"},
                {"name": "pspToken", "value": "anything"},
            ],
            "fields": {"pspToken": "anything"},
        },
    }
    result = Policy.apply(policy, "order", entity)
    assert result == {
        "id": "o-1",
        "custom": {
            "customFieldsRaw": [
                {"name": "supportStatus", "value": {"key": "open", "label": "Open"}},
                {"name": "internalNote", "value": FILL},
            ]
        },
    }
    # without a table (tools, tests) every custom field is kept, scrubbed
    kept = Policy().apply("order", entity)
    assert kept is not None
    assert len(kept["custom"]["customFieldsRaw"]) == 4
    assert kept["custom"]["customFieldsRaw"][1]["value"] == "Customer called about •••• 1111"


def test_policy_from_mappings_and_its_fingerprint() -> None:
    mappings = Mappings.model_validate(
        {
            "field_policy": {"customer.email": "exclude"},
            "order_custom_fields": {
                "supportStatus": {"label": "Support", "treatment": "show"},
                "internalNote": {"label": {"en": "Note", "de": "Notiz"}, "treatment": "mask"},
            },
            "scrub": {"patterns": [r"ACME-\d{6}"]},
        }
    )
    policy = Policy.from_mappings(mappings)
    order = policy.apply(
        "order",
        {
            "customer": {"email": "a@b.de", "firstName": "ACME-123456"},
            "custom": {"customFieldsRaw": [{"name": "internalNote", "value": "x"}]},
        },
    )
    assert order == {
        "customer": {"firstName": FILL},
        "custom": {"customFieldsRaw": [{"name": "internalNote", "value": FILL}]},
    }
    # whatever changes what apply() returns changes the fingerprint (caches key by it)
    prints = {
        Policy.from_mappings(mappings).fingerprint,
        Policy.from_mappings(Mappings()).fingerprint,
        Policy(mappings.field_policy).fingerprint,
        Policy(custom_fields={"internalNote": "mask"}).fingerprint,
        Policy(custom_fields={"internalNote": "show"}).fingerprint,
        Policy(scrubber=Scrubber([r"ACME-\d{6}"])).fingerprint,
        Policy().fingerprint,
    }
    assert len(prints) == 7
    assert Policy.from_mappings(mappings).fingerprint == policy.fingerprint


def test_custom_field_treatment_must_be_known() -> None:
    with pytest.raises(ConfigError, match="'note'"):
        Policy(custom_fields={"note": "hide"})  # type: ignore[dict-item]


def test_apply_rejects_unknown_kinds_and_non_mappings() -> None:
    with pytest.raises(ValueError, match="'shoppingList'"):
        Policy().apply("shoppingList", {})
    with pytest.raises(ValueError, match="'orders'"):
        Policy().apply_many("orders", [])
    with pytest.raises(TypeError, match="list"):
        Policy().apply("order", [order_entity()])  # type: ignore[arg-type]


def test_masked_values_do_not_reveal_length() -> None:
    policy = Policy()
    short = policy.apply(
        "order", {"customerEmail": "ab@cd.de", "shippingAddress": {"streetName": "Ab"}}
    )
    long = policy.apply(
        "order",
        {"customerEmail": "abcdefghij@cdefghijk.de", "shippingAddress": {"streetName": "A" * 40}},
    )
    assert short == long


def test_apply_customer_read_through_an_order() -> None:
    entity = order_entity()
    entity["customer"] = customer_entity()
    result = Policy({"customer.email": "exclude"}).apply("order", entity)
    assert result is not None
    assert result["customer"] == Policy({"customer.email": "exclude"}).apply(
        "customer", customer_entity()
    )
    assert "email" not in result["customer"]
    assert result["customer"]["addresses"][0]["phone"] == "+49 ••• ••67"
    assert result["customerEmail"] == "a***@e***.com"  # the order's own field: its own rule


def test_own_path() -> None:
    assert own_path("order.customer.email") == "customer.email"
    assert own_path("cart.paymentInfo.payments.anonymousId") == "payment.anonymousId"
    assert own_path("order.paymentInfo.payments.customer.email") == "customer.email"
    assert own_path("order.customerEmail") == "order.customerEmail"


# -- overrides ----------------------------------------------------------------------------------


def test_override_show_exclude_and_mask() -> None:
    policy = Policy(
        {
            "customer.email": "show",
            "customer.addresses.phone": "show",
            "customer.addresses.city": "exclude",
            "customer.firstName": "mask",
            "customer.externalId": "exclude",
        }
    )
    result = policy.apply("customer", customer_entity())
    assert result is not None
    assert result["email"] == "anna.schmidt@example.com"
    assert [a["phone"] for a in result["addresses"]] == ["+49 30 1234567", None]
    assert all("city" not in a for a in result["addresses"])
    assert [a["mobile"] for a in result["addresses"]] == ["+49 ••• ••89", "••• ••43"]
    assert result["firstName"] == "A•••"
    assert "externalId" not in result
    assert result["lastName"] == "Schmidt"


def test_override_date_of_birth_mask_hides_it_entirely() -> None:
    result = Policy({"customer.dateOfBirth": "mask"}).apply(
        "customer", {"dateOfBirth": "1990-05-17"}
    )
    assert result == {"dateOfBirth": FILL}


def test_override_a_whole_address_group() -> None:
    excluded = Policy({"order.shippingAddress": "exclude"}).apply("order", order_entity())
    assert excluded is not None
    assert "shippingAddress" not in excluded
    assert excluded["customerEmail"] == "a***@e***.com"

    masked = Policy({"order.shippingAddress": "mask", "order.shippingAddress.email": "exclude"})
    result = masked.apply("order", order_entity())
    assert result is not None
    assert result["shippingAddress"] == {
        "firstName": "A•••",
        "lastName": "S•••",
        "streetName": "H•••",
        "streetNumber": "1•••",
        "postalCode": "10•••",
        "city": "B•••",
        "region": "B•••",
        "country": "D•••",
        "phone": "+49 ••• ••67",
    }
    # A group set to "show" leaves its fields to their own treatment.
    shown = Policy({"order.shippingAddress": "show"}).apply("order", order_entity())
    assert shown == Policy().apply("order", order_entity())


def test_overrides_from_the_mapping_file_model() -> None:
    mappings = Mappings.model_validate({"field_policy": {"order.customerEmail": "show"}})
    policy = Policy(mappings.field_policy)
    result = policy.apply("order", order_entity())
    assert result is not None
    assert result["customerEmail"] == "anna.schmidt@example.com"
    assert policy.overrides == {"order.customerEmail": "show"}
    assert "order.customerEmail" in repr(policy)


def test_unknown_override_is_a_config_error_with_suggestions() -> None:
    with pytest.raises(ConfigError) as caught:
        Policy({"customer.emial": "show"})
    assert "'customer.emial'" in caught.value.message
    assert "did you mean customer.email" in caught.value.message


def test_nested_payment_override_points_to_the_payment_path() -> None:
    with pytest.raises(ConfigError, match=r"did you mean payment\.anonymousId"):
        Policy({"order.paymentInfo.payments.anonymousId": "show"})


def test_nested_customer_override_points_to_the_customer_path() -> None:
    with pytest.raises(ConfigError, match=r"did you mean customer\.addresses\.phone"):
        Policy({"order.customer.addresses.phone": "show"})


def test_non_pii_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown field path 'order\.orderNumber'") as caught:
        Policy({"order.orderNumber": "mask"})
    assert "always shown" in caught.value.message


def test_case_mismatch_is_suggested() -> None:
    with pytest.raises(ConfigError, match=r"did you mean customer\.addresses\.postalCode"):
        Policy({"customer.addresses.postalcode": "show"})


def test_bad_treatment_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"'customer\.email' = 'hide'"):
        Policy({"customer.email": "hide"})  # type: ignore[dict-item]


def test_treatment() -> None:
    policy = Policy({"order.billingAddress": "exclude", "order.shippingAddress": "mask"})
    assert policy.treatment("customer.email") == "mask"
    assert policy.treatment("customer.dateOfBirth") == "exclude"
    assert policy.treatment("customer.firstName") == "show"
    assert policy.treatment("order.id") == "show"  # not governed: passes through
    assert policy.treatment("order.totalPrice.centAmount") == "show"
    assert policy.treatment("nonsense") == "show"
    assert policy.treatment("order.paymentInfo.payments.anonymousId") == "mask"
    assert policy.treatment("order.paymentInfo.payments.paymentStatus.interfaceText") == "show"
    assert policy.treatment("order.billingAddress") == "exclude"
    assert policy.treatment("order.billingAddress.city") == "exclude"
    assert policy.treatment("order.billingAddress.id") == "exclude"
    assert policy.treatment("order.shippingAddress") == "mask"
    assert policy.treatment("order.shippingAddress.city") == "mask"
    assert policy.treatment("order.shippingAddress.id") == "show"
    assert policy.treatment("cart.shippingAddress.city") == "show"
    assert policy.treatment("order.customer.email") == "mask"
    assert policy.treatment("order.customer.dateOfBirth") == "exclude"
    assert policy.treatment("cart.paymentInfo.payments.customer.addresses.phone") == "mask"


def test_default_policy_is_not_changed_by_overrides() -> None:
    before = dict(DEFAULT_POLICY)
    Policy({"customer.email": "show"})
    assert dict(DEFAULT_POLICY) == before
    assert Policy().treatment("customer.email") == "mask"


# -- logs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login anna.schmidt@example.com ok", "login a***@e***.com ok"),
        ("<Anna.Schmidt+tag@mail.example.de>", "<A***@m***.de>"),
        ("GET /customers?where=email%3D%22anna%40example.com%22", None),
        ("call +49 30 1234567 now", "call +49 ••• ••67 now"),
        ("call (030) 123-4567.", "call ••• ••67."),
        ("mobile 015123456789", "mobile ••• ••89"),
        ("order 10001234 paid", "order ••• ••34 paid"),  # 7+ digits look like a phone number
        # URL-encoded, form-encoded and differently separated phone numbers
        ("GET /x?phone=%2B49%2030%201234567&a=1", "GET /x?phone=+49 ••• ••67&a=1"),
        ("q=%2B49+30+1234567", "q=+49 ••• ••67"),
        ("tel=030%2F1234567", "tel=••• ••67"),
        ("tel 030.1234.567", "tel ••• ••67"),
        ("tel 030/1234567", "tel ••• ••67"),
        ("tel +49\u00a030\u00a01234567", "tel +49 ••• ••67"),
        ("tel +49\u202f30\u202f1234567", "tel +49 ••• ••67"),
        ("tel +49 (0)30 / 123 45 67", "tel +49 ••• ••67"),
        # card numbers and payment secrets
        ("paid with 4111 1111 1111 1111", "paid with •••• 1111"),
        ("token tok_1N3T00LkdIwHu7ixAbCd used", "token tok_••• used"),
        ("key sk_live_51HxYzAbCdEfGhIjKl", "key sk_live_•••"),
    ],
)
def test_redact(text: str, expected: str | None) -> None:
    result = redact(text)
    if expected is not None:
        assert result == expected
    assert "anna" not in result.lower()
    assert "1234567" not in result and "123 45 67" not in result
    assert "4111" not in result and "1N3T00" not in result and "51HxYz" not in result


@pytest.mark.parametrize(
    "text",
    [
        "id 0e3f5c6a-4b1d-4d2a-8f7e-3a9b2c1d0e5f",
        "id 12345678-1234-4bcd-8123-123456789abc",
        "correlation cc-5f0c7a2e-8d1b-4c4e-9a63-0f3c1d2e4b5a",
        "on 2026-08-03 at 09:12:00",
        "at 2026-08-03T09:12:00.000Z",
        "version 123456 took 12.5 ms",
        "from 192.168.100.200:8000",
        "amount 1234567.89",
        "sku ABC1234567",
        "already masked a***@e***.com and +49 ••• ••67",
        "on 29.11.2026 10:00:00",
        "on 2026/11/29",
        "took 1234.5678 ms",
        "GET /zendesk/panels HTTP/1.1 200",
    ],
)
def test_redact_leaves_non_pii_alone(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def redacting_logger(caplog: pytest.LogCaptureFixture) -> Iterator[logging.Logger]:
    logger = logging.getLogger("commerce_context.tests.redaction")
    redacting = RedactingFilter()
    logger.addFilter(redacting)
    caplog.set_level(logging.DEBUG, logger=logger.name)
    yield logger
    logger.removeFilter(redacting)


def test_filter_redacts_message_and_args(
    redacting_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    redacting_logger.info("customer %s rang from %s", "anna.schmidt@example.com", "+49 30 1234567")
    redacting_logger.warning("payload %r", {"email": "anna.schmidt@example.com", "n": 5})
    redacting_logger.info("version %d of %s", 5, "order")
    redacting_logger.error("mistake: anna.schmidt@example.com")

    assert caplog.messages == [
        "customer a***@e***.com rang from +49 ••• ••67",
        "payload {'email': 'a***@e***.com', 'n': 5}",
        "version 5 of order",
        "mistake: a***@e***.com",
    ]
    assert "anna" not in caplog.text
    assert "1234567" not in caplog.text
    for record in caplog.records:
        assert record.args == ()
        assert record.getMessage() == record.msg  # still usable by any formatter


def test_filter_redacts_tracebacks_and_extras(
    redacting_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        raise ValueError("no customer for anna.schmidt@example.com")
    except ValueError:
        redacting_logger.exception("lookup failed", extra={"shopper": "anna.schmidt@example.com"})
    (record,) = caplog.records
    assert record.exc_text is not None
    assert "ValueError: no customer for a***@e***.com" in record.exc_text
    assert record.__dict__["shopper"] == "a***@e***.com"
    assert "anna" not in caplog.text
    assert "a***@e***.com" in caplog.text


def test_filter_survives_a_broken_format_string(
    redacting_logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    redacting_logger.info("count %d", "anna.schmidt@example.com")
    assert caplog.messages == ["count %d a***@e***.com"]


def test_filter_on_a_handler_covers_child_loggers() -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    handler.addFilter(RedactingFilter())
    handler.addFilter(RedactingFilter())  # twice: redaction is idempotent
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    parent = logging.getLogger("commerce_context.tests.handler")
    parent.addHandler(handler)
    parent.setLevel(logging.INFO)
    try:
        logging.getLogger("commerce_context.tests.handler.child").info(
            "resolved %s", "anna.schmidt@example.com"
        )
    finally:
        parent.removeHandler(handler)
    assert [handler.format(r) for r in records] == ["INFO resolved a***@e***.com"]


# -- docs/privacy.md ----------------------------------------------------------------------------

PRIVACY_MD = Path(__file__).resolve().parent.parent / "docs/privacy.md"


def _documented_rows() -> Iterator[tuple[list[str], str]]:
    for line in PRIVACY_MD.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) >= 2 and cells[1] in ("show", "mask", "exclude"):
            yield re.findall(r"`([^`]+)`", cells[0]), cells[1]


def test_privacy_doc_tables_match_the_default_policy() -> None:
    documented: dict[str, str] = {}
    for names, treatment in _documented_rows():
        for name in names:
            if "." not in name:  # an address field, documented once for every address
                for group in ADDRESS_PATHS:
                    documented[f"{group}.{name}"] = treatment
            elif name.startswith("<kind>."):
                for kind in KINDS:
                    documented[name.replace("<kind>", kind)] = treatment
            else:
                documented[name] = treatment
    expected = {path: t for path, t in DEFAULT_POLICY.items() if path not in ADDRESS_PATHS}
    assert documented == expected


def test_privacy_doc_lists_every_address_group_and_forbidden_field() -> None:
    text = PRIVACY_MD.read_text(encoding="utf-8")
    words = set(text.split())
    assert set(ADDRESS_PATHS) <= words
    assert words >= views.FORBIDDEN_FIELDS
