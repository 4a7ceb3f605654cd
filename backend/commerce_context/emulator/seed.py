"""Seed a realistic demo project through the commercetools HTTP API (normally the emulator).

:func:`seed_demo_project` creates, in this order:

* three stores (``berlin`` EUR/de-DE, ``london`` GBP/en-GB, ``newyork`` USD/en-US);
* the order custom type ``commerce-context-order`` (supportStatus, internalNote, rmaStatus,
  warehouse, marketplaceSource);
* two customer groups, one tax category, one zone and one shipping method per store;
* a product type, a product discount and six products. The emulator resolves line items by
  SKU, so both imported orders and carts need real products;
* five customers. Two of them share one email address in two different stores; James Taylor's
  account holds his address as he typed it at sign-up (``James.Taylor@Example.com``) while his
  orders carry it in lower case, as many shops store it;
* eleven orders imported with ``POST /orders/import``: registered and guest orders, discounts,
  deliveries with tracked parcels, payments with Authorization/Charge/Refund transactions,
  returns, and one purchase-order number;
* active carts for three customers, each with the customer's email.

What an agent sees must add up: every order's line items, custom lines (the voucher and the
sale discount), shipping and discounts sum to its ``totalPrice`` as commercetools answers it
(tests/test_panels_render.py checks each one through the panels).

Dates tell a story over four months before the moment of seeding: the dates in ``ORDER_SPECS``
are written relative to ``STORY_NOW`` and shifted so that ``STORY_NOW`` is when the seed runs.
Orders are placed on their date, shipped a day later, returned and refunded on the return's
date; customers signed up three weeks before their first order.

Every request body comes from a pure builder function, and :func:`drafts` lists them all (with
placeholder ids). A test can then check each payload against the official OpenAPI schema
without a server. The data is fixed: the same emails, names, amounts and order numbers every
run. Only server-generated ids and timestamps differ.

Emulator quirks handled here (``@labdigital/commercetools-mock`` 4.4.0). Each is worked
around so that the payloads stay valid for the real API:

* Customer emails are unique per *project*, even for store-scoped customers. The real API
  allows the same email once per store. See :func:`_create_customer`.
* ``customerGroup`` in a CustomerDraft, and ``customer``/``interfaceId`` in a PaymentDraft,
  are dropped on create. We re-apply them with update actions when the response lacks them.
* ``shipmentState`` in an OrderImportDraft is dropped, so we set it with ``changeShipmentState``.
* ``completedAt`` in an OrderImportDraft is dropped, and ``createdAt`` (of orders, customers,
  deliveries, parcels and return items) can never be set by a client, so every one of them
  would be the second the seed ran, while payments and returns carry the story's dates: an
  agent would see a payment months before its order. The emulator launcher (``server.mjs``)
  therefore has one harness route, ``POST /_harness/{project}/{type}/{id}/timestamps``, which
  the seed uses after each write to set those server-kept timestamps to the story's (see
  :func:`_set_timestamps`; ``backdate=False`` skips it, e.g. against a real project, where the
  orders keep their import time and ``completedAt`` holds the story's date). ``version`` and
  ``lastModifiedAt`` stay as the server set them. Orders are still imported oldest first, so
  ``createdAt`` order matches the story even without the harness route.
* LineItemImportDraft has no ``discountedPricePerQuantity`` (not in the API either), and the
  emulator ignores ``price.discounted`` when it computes a line item's ``totalPrice``: a line
  bought in the sale would show its list price as its total while the order total is the
  discounted one. So the sale is imported the way the emulator can hold it: the line at its
  list price and a negative custom line item "Autumn sale -20 %" for what it took off, next
  to the voucher's negative custom line item. See :func:`order_import_draft`.
* ``purchaseOrderNumber`` in an OrderImportDraft is dropped; ``setPurchaseOrderNumber`` sets it.
* Return items always get ``paymentState: "Initial"`` and ``setReturnPaymentState`` is not
  implemented. The refund is visible as a ``Refund`` transaction and the ``rmaStatus`` field.

Quirks that are left alone (do not build tests on them):

* ``addDelivery``'s ``deliveryKey`` is stored as ``deliveryKey`` on the delivery, not as ``key``.
* Customer bodies include ``password`` as base64 of the plain text (the real API returns a
  hash). The demo passwords are ``demo-{customer key}``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, Literal

import httpx

__all__ = [
    "CART_SPECS",
    "CUSTOMER_SPECS",
    "CUSTOM_TYPE_KEY",
    "GUEST_EMAIL",
    "ORDER_SPECS",
    "PRODUCT_SPECS",
    "SHARED_EMAIL",
    "STORE_SPECS",
    "CustomerInfo",
    "DemoData",
    "OrderInfo",
    "SeedError",
    "SeedRequest",
    "StoreInfo",
    "drafts",
    "seed_demo_project",
]

Json = dict[str, Any]
HttpMethod = Literal["POST"]

CUSTOM_TYPE_KEY: Final = "commerce-context-order"
SHARED_EMAIL: Final = "alex.morgan@example.com"
GUEST_EMAIL: Final = "sam.lee@example.org"
TAX_CATEGORY_KEY: Final = "standard"
PRODUCT_TYPE_KEY: Final = "apparel"
PRODUCT_DISCOUNT_KEY: Final = "autumn-sale"
PRODUCT_DISCOUNT_PERMYRIAD: Final = 2000  # 20 % off
SEED_CLIENT_ID: Final = "commerce-context-seed"
SEED_CLIENT_SECRET: Final = "seed-secret"  # noqa: S105 - the emulator accepts any secret

LOCALES: Final = ("de-DE", "en-GB", "en-US")
# The dates below are written as if the seed ran at this moment; the seed shifts them all so
# that it is the moment it runs (see the module docstring).
STORY_NOW: Final = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)
NO_SHIFT: Final = dt.timedelta(0)
SHIPPED_AFTER: Final = dt.timedelta(days=1)
SIGNED_UP_BEFORE: Final = dt.timedelta(days=21)


def story_shift(now: dt.datetime | None = None) -> dt.timedelta:
    """How far the story's dates move so that ``STORY_NOW`` is ``now`` (default: this moment),
    rounded to whole minutes so the dates stay readable."""
    now = now or dt.datetime.now(dt.UTC)
    return dt.timedelta(minutes=round((now - STORY_NOW).total_seconds() / 60))


def _at(iso: str, shift: dt.timedelta, plus: dt.timedelta = NO_SHIFT) -> str:
    """A story timestamp (``2026-08-03T09:12:00.000Z``) moved by ``shift`` (+ ``plus``)."""
    moment = dt.datetime.fromisoformat(iso) + shift + plus
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


# =============================================================================================
# Static catalogue
# =============================================================================================


@dataclass(frozen=True)
class StoreSpec:
    key: str
    name: str
    locale: str
    country: str
    currency: str
    tax_rate: float
    tax_name: str
    carrier: str
    tracking_provider: str
    shipping_method_key: str
    shipping_method_name: str
    shipping_cents: int
    free_above_cents: int
    warehouse: str


STORE_SPECS: Final = (
    StoreSpec(
        "berlin", "Berlin", "de-DE", "DE", "EUR", 0.19, "MwSt. 19 %",
        "DHL", "dhl.de", "dhl-paket", "DHL Paket", 495, 5000, "BER-1",
    ),
    StoreSpec(
        "london", "London", "en-GB", "GB", "GBP", 0.20, "VAT 20 %",
        "DPD", "dpd.co.uk", "dpd-next-day", "DPD Next Day", 499, 6000, "LON-1",
    ),
    StoreSpec(
        "newyork", "New York", "en-US", "US", "USD", 0.08875, "NY sales tax",
        "UPS", "ups.com", "ups-ground", "UPS Ground", 795, 10000, "NYC-1",
    ),
)  # fmt: skip
_STORES: Final = {s.key: s for s in STORE_SPECS}


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    name_en: str
    name_de: str
    prices: Mapping[str, int]  # currency -> cents (tax included)
    weight_g: int


PRODUCT_SPECS: Final = (
    ProductSpec("TSHIRT-ORG-M", "Organic Cotton T-Shirt (M)", "Bio-Baumwoll-T-Shirt (M)",
                {"EUR": 2995, "GBP": 2495, "USD": 3200}, 180),
    ProductSpec("HOODIE-GRY-L", "Grey Hoodie (L)", "Grauer Kapuzenpullover (L)",
                {"EUR": 7995, "GBP": 6995, "USD": 8900}, 650),
    ProductSpec("SNEAKER-WHT-42", "White Leather Sneakers (42)", "Weiße Leder-Sneaker (42)",
                {"EUR": 11900, "GBP": 9900, "USD": 12900}, 1100),
    ProductSpec("SOCKS-3PK", "Merino Socks, 3-pack", "Merino-Socken, 3er-Pack",
                {"EUR": 1295, "GBP": 1095, "USD": 1400}, 150),
    ProductSpec("CAP-NAVY", "Navy Baseball Cap", "Marineblaue Baseballkappe",
                {"EUR": 2495, "GBP": 1995, "USD": 2800}, 120),
    ProductSpec("BACKPACK-20L", "Everyday Backpack 20 L", "Alltagsrucksack 20 L",
                {"EUR": 8900, "GBP": 7500, "USD": 9500}, 900),
)  # fmt: skip
_PRODUCTS: Final = {p.sku: p for p in PRODUCT_SPECS}


@dataclass(frozen=True)
class CustomerSpec:
    key: str
    email: str
    first_name: str
    last_name: str
    store: str
    group: str
    customer_number: str
    locale: str
    street: str
    number: str
    postal_code: str
    city: str
    phone: str
    state: str | None = None
    # The address as stored on the account, when it differs (in case only) from `email`, which
    # is what the orders carry.
    account_email: str | None = None


CUSTOMER_SPECS: Final = (
    CustomerSpec("anna-schmidt", "anna.schmidt@example.com", "Anna", "Schmidt", "berlin", "vip",
                 "C-10001", "de-DE", "Torstraße", "12", "10119", "Berlin", "+49 30 5550 1234"),
    CustomerSpec("james-taylor", "james.taylor@example.com", "James", "Taylor", "london",
                 "regular", "C-20001", "en-GB", "Camden Road", "14", "NW1 9DP", "London",
                 "+44 20 7946 0958", account_email="James.Taylor@Example.com"),
    CustomerSpec("emily-johnson", "emily.johnson@example.com", "Emily", "Johnson", "newyork",
                 "vip", "C-30001", "en-US", "Fifth Avenue", "350", "10118", "New York",
                 "+1 212 555 0142", state="NY"),
    # The same person (same email) registered separately in two stores: store-scoped customers.
    CustomerSpec("alex-morgan-berlin", SHARED_EMAIL, "Alex", "Morgan", "berlin", "regular",
                 "C-10002", "en-GB", "Kastanienallee", "7", "10435", "Berlin",
                 "+49 30 5550 7788"),
    CustomerSpec("alex-morgan-london", SHARED_EMAIL, "Alex", "Morgan", "london", "regular",
                 "C-20002", "en-GB", "Deansgate", "8", "M3 2BW", "Manchester",
                 "+44 161 496 0123"),
)  # fmt: skip
_CUSTOMERS: Final = {c.key: c for c in CUSTOMER_SPECS}

GUEST: Final = CustomerSpec(
    "guest", GUEST_EMAIL, "Sam", "Lee", "", "", "", "en-GB", "", "", "", "", "+49 170 5550 999"
)
_GUEST_ADDRESSES: Final = {
    "berlin": ("Oranienstraße", "45", "10969", "Berlin", None),
    "newyork": ("Bedford Avenue", "120", "11211", "Brooklyn", "NY"),
}


@dataclass(frozen=True)
class LineSpec:
    sku: str
    quantity: int = 1
    discounted: bool = False  # bought while the product discount applied


@dataclass(frozen=True)
class ParcelSpec:
    tracking_id: str
    skus: tuple[str, ...]  # which line items travel in this parcel (whole quantities)


@dataclass(frozen=True)
class PaymentSpec:
    interface: str  # PSP name, paymentMethodInfo.paymentInterface
    method: str
    method_name: str
    psp_reference: str  # interfaceId
    charged: bool = True  # Charge transaction after the Authorization
    authorization_state: Literal["Success", "Failure", "Pending"] = "Success"
    refund_cents: int = 0  # a Refund transaction when > 0


@dataclass(frozen=True)
class ReturnSpec:
    sku: str
    quantity: int
    shipment_state: Literal["Advised", "Returned", "BackInStock", "Unusable"]
    comment: str
    tracking_id: str
    date: str


@dataclass(frozen=True)
class OrderSpec:
    number: str
    store: str
    customer: str | None  # customer key; None = guest order
    placed_at: str
    lines: tuple[LineSpec, ...]
    order_state: Literal["Open", "Confirmed", "Complete", "Cancelled"]
    payment_state: Literal["BalanceDue", "Failed", "Pending", "CreditOwed", "Paid"]
    shipment_state: Literal["Shipped", "Delivered", "Ready", "Pending", "Delayed", "Canceled"]
    payment: PaymentSpec
    parcels: tuple[ParcelSpec, ...] = ()
    returned: ReturnSpec | None = None
    voucher_cents: int = 0  # order-level discount, imported as a negative custom line item
    support_status: Literal["open", "pending", "resolved"] | None = None
    rma_status: Literal["none", "requested", "approved", "received", "refunded"] = "none"
    internal_note: str | None = None
    marketplace_source: str | None = None
    purchase_order: str | None = None  # the shopper's own order reference (B2B)

    @property
    def email(self) -> str:
        return _CUSTOMERS[self.customer].email if self.customer else GUEST_EMAIL


def _card(ref: str, **kw: Any) -> PaymentSpec:
    return PaymentSpec("adyen", "CREDIT_CARD", "Credit card", ref, **kw)


def _paypal(ref: str, **kw: Any) -> PaymentSpec:
    return PaymentSpec("paypal", "PAYPAL", "PayPal", ref, **kw)


# Oldest first: the import order defines createdAt (see module docstring).
ORDER_SPECS: Final = (
    OrderSpec("DE-1001", "berlin", "anna-schmidt", "2026-08-03T09:12:00.000Z",
              (LineSpec("TSHIRT-ORG-M", 2), LineSpec("SOCKS-3PK")),
              "Complete", "Paid", "Delivered", _card("8816178952380001"),
              parcels=(ParcelSpec("00340434161094042557", ("TSHIRT-ORG-M", "SOCKS-3PK")),),
              voucher_cents=1000, support_status="resolved",
              internal_note="Welcome voucher WELCOME10 applied."),
    OrderSpec("US-3001", "newyork", "emily-johnson", "2026-08-19T15:40:00.000Z",
              (LineSpec("SNEAKER-WHT-42"), LineSpec("CAP-NAVY")),
              "Complete", "Paid", "Delivered", _card("8816178952380002"),
              parcels=(ParcelSpec("1Z999AA10123456784", ("SNEAKER-WHT-42", "CAP-NAVY")),),
              returned=ReturnSpec("CAP-NAVY", 1, "Advised", "Stitching came loose.",
                                  "1Z999AA10123456999", "2026-09-01T10:00:00.000Z"),
              support_status="pending", rma_status="approved",
              internal_note="Cap arrived damaged. RMA approved, waiting for the parcel."),
    OrderSpec("UK-2001", "london", "james-taylor", "2026-09-02T11:05:00.000Z",
              (LineSpec("HOODIE-GRY-L", discounted=True), LineSpec("SOCKS-3PK", 2)),
              "Complete", "Paid", "Delivered", _paypal("PAYID-NB7Q2001"),
              parcels=(ParcelSpec("15505123452001", ("HOODIE-GRY-L", "SOCKS-3PK")),)),
    OrderSpec("DE-1002", "berlin", "anna-schmidt", "2026-09-14T18:22:00.000Z",
              (LineSpec("SNEAKER-WHT-42"), LineSpec("HOODIE-GRY-L", discounted=True)),
              "Complete", "Paid", "Delivered", _card("8816178952380003", refund_cents=11900),
              parcels=(ParcelSpec("00340434161094043001", ("SNEAKER-WHT-42",)),
                       ParcelSpec("00340434161094043002", ("HOODIE-GRY-L",))),
              returned=ReturnSpec("SNEAKER-WHT-42", 1, "Returned", "Too small.",
                                  "00340434169900001002", "2026-09-25T08:30:00.000Z"),
              support_status="resolved", rma_status="refunded",
              internal_note="Sneakers returned (too small), refunded in full."),
    OrderSpec("DE-1003", "berlin", "alex-morgan-berlin", "2026-09-28T07:55:00.000Z",
              (LineSpec("BACKPACK-20L", discounted=True),),
              "Confirmed", "Paid", "Shipped", _card("8816178952380004"),
              parcels=(ParcelSpec("00340434161094044003", ("BACKPACK-20L",)),),
              support_status="open",
              internal_note="Asked where the parcel is; DHL shows a delay at the hub."),
    OrderSpec("UK-2002", "london", "alex-morgan-london", "2026-10-06T13:30:00.000Z",
              (LineSpec("TSHIRT-ORG-M", 3),),
              "Complete", "Paid", "Delivered", _paypal("PAYID-NB7Q2002"),
              parcels=(ParcelSpec("15505123452002", ("TSHIRT-ORG-M",)),)),
    OrderSpec("DE-1004", "berlin", None, "2026-10-15T20:10:00.000Z",
              (LineSpec("CAP-NAVY"), LineSpec("SOCKS-3PK")),
              "Confirmed", "Paid", "Shipped",
              PaymentSpec("klarna", "INVOICE", "Klarna Pay Later", "KLN-5B21-1004"),
              parcels=(ParcelSpec("00340434161094045004", ("CAP-NAVY", "SOCKS-3PK")),),
              marketplace_source="zalando"),
    OrderSpec("US-3002", "newyork", "emily-johnson", "2026-10-27T16:45:00.000Z",
              (LineSpec("BACKPACK-20L"), LineSpec("TSHIRT-ORG-M", 2)),
              "Confirmed", "Paid", "Shipped", _card("8816178952380005"),
              parcels=(ParcelSpec("1Z999AA10123457001", ("BACKPACK-20L",)),
                       ParcelSpec("1Z999AA10123457002", ("TSHIRT-ORG-M",))),
              purchase_order="PO-4500012345"),
    OrderSpec("UK-2003", "london", "james-taylor", "2026-11-04T10:20:00.000Z",
              (LineSpec("SNEAKER-WHT-42"),),
              "Open", "Pending", "Pending", _paypal("PAYID-NB7Q2003", charged=False),
              support_status="open",
              internal_note="Wants size 43 instead of 42 before dispatch."),
    OrderSpec("US-3003", "newyork", None, "2026-11-10T22:05:00.000Z",
              (LineSpec("HOODIE-GRY-L"),),
              "Cancelled", "Failed", "Canceled",
              _card("8816178952380006", charged=False, authorization_state="Failure"),
              support_status="open", marketplace_source="amazon",
              internal_note="Card declined; order cancelled automatically."),
    OrderSpec("DE-1005", "berlin", "anna-schmidt", "2026-11-18T08:02:00.000Z",
              (LineSpec("TSHIRT-ORG-M"), LineSpec("CAP-NAVY")),
              "Open", "Paid", "Ready", _card("8816178952380007")),
)  # fmt: skip


@dataclass(frozen=True)
class CartSpec:
    customer: str
    lines: tuple[LineSpec, ...]


CART_SPECS: Final = (
    CartSpec("anna-schmidt", (LineSpec("SNEAKER-WHT-42"), LineSpec("SOCKS-3PK", 2))),
    CartSpec("emily-johnson", (LineSpec("CAP-NAVY", 2),)),
    CartSpec("james-taylor", (LineSpec("BACKPACK-20L"),)),
)


# =============================================================================================
# Result
# =============================================================================================


@dataclass(frozen=True)
class StoreInfo:
    key: str
    name: str
    currency: str
    locale: str
    country: str
    carrier: str


@dataclass(frozen=True)
class CustomerInfo:
    key: str
    id: str
    email: str
    store_key: str
    first_name: str
    last_name: str
    customer_group_key: str


@dataclass(frozen=True)
class OrderInfo:
    order_number: str
    id: str
    store_key: str
    email: str
    customer_key: str | None  # None for guest orders
    created_at: str
    payment_ids: tuple[str, ...]
    tracking_ids: tuple[str, ...]
    has_return: bool
    custom_fields: Mapping[str, str]

    @property
    def is_guest(self) -> bool:
        return self.customer_key is None


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class DemoData:
    """Everything tests and the demo page need to find the seeded entities again."""

    project_key: str
    custom_type_key: str
    shared_email: str  # used by two store-scoped customers
    guest_email: str  # used only by guest orders (no customerId)
    stores: Mapping[str, StoreInfo]  # store key -> info
    customers: Mapping[str, CustomerInfo]  # customer key -> info
    orders: Mapping[str, OrderInfo]  # orderNumber -> info, oldest first (= createdAt order)
    carts: Mapping[str, str]  # customer key -> active cart id
    customer_group_ids: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    shipping_method_ids: Mapping[str, str] = field(default_factory=lambda: _frozen({}))
    product_ids: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # sku -> id

    @property
    def store_keys(self) -> tuple[str, ...]:
        return tuple(self.stores)

    @property
    def shared_email_customer_keys(self) -> tuple[str, ...]:
        return tuple(k for k, c in self.customers.items() if c.email == self.shared_email)

    @property
    def guest_order_numbers(self) -> tuple[str, ...]:
        return tuple(n for n, o in self.orders.items() if o.is_guest)

    @property
    def cart_ids(self) -> tuple[str, ...]:
        return tuple(self.carts.values())

    def order_id(self, order_number: str) -> str:
        return self.orders[order_number].id

    def orders_of(self, customer_key: str) -> list[OrderInfo]:
        """The customer's orders, newest first (what a "recent orders" panel shows)."""
        return [o for o in list(self.orders.values())[::-1] if o.customer_key == customer_key]


# =============================================================================================
# Requests and pure payload builders
# =============================================================================================


@dataclass(frozen=True)
class SeedRequest:
    """One API call: ``method`` ``{api_url}/{projectKey}{path}`` with JSON ``payload``.

    ``component`` names the payload's schema in the official OpenAPI spec
    (``#/components/schemas/{component}``).
    """

    component: str
    method: HttpMethod
    path: str
    payload: Json


def _ref(type_id: str, *, key: str | None = None, id: str | None = None) -> Json:
    if (key is None) == (id is None):
        raise ValueError("exactly one of key/id")
    return {"typeId": type_id, "key": key} if key is not None else {"typeId": type_id, "id": id}


def _money(currency: str, cents: int) -> Json:
    return {"currencyCode": currency, "centAmount": cents}


def _localized(en: str, de: str | None = None) -> Json:
    return {"de-DE": de or en, "en-GB": en, "en-US": en}


def _tax_rate(store: StoreSpec) -> Json:
    # Tax-inclusive prices in every store keep "total = what the shopper paid" in all three
    # currencies. US shops usually add sales tax at checkout, but the sidebar shows totals.
    return {
        "name": store.tax_name,
        "amount": store.tax_rate,
        "includedInPrice": True,
        "country": store.country,
    }


def _update(version: int, actions: Sequence[Json]) -> Json:
    return {"version": version, "actions": list(actions)}


def store_draft(store: StoreSpec) -> SeedRequest:
    payload = {
        "key": store.key,
        "name": {store.locale: store.name, "en-GB": store.name},
        "languages": [store.locale] if store.locale == "en-GB" else [store.locale, "en-GB"],
        "countries": [{"code": store.country}],
    }
    return SeedRequest("StoreDraft", "POST", "/stores", payload)


def order_type_draft() -> SeedRequest:
    def enum(name: str, label: str, values: Sequence[tuple[str, str]]) -> Json:
        return {
            "name": name,
            "label": {"en-GB": label, "de-DE": label},
            "required": False,
            "type": {"name": "Enum", "values": [{"key": k, "label": v} for k, v in values]},
        }

    def text(name: str, label: str, hint: str = "SingleLine") -> Json:
        return {
            "name": name,
            "label": {"en-GB": label, "de-DE": label},
            "required": False,
            "type": {"name": "String"},
            "inputHint": hint,
        }

    payload = {
        "key": CUSTOM_TYPE_KEY,
        "name": {"en-GB": "Commerce context (support)", "de-DE": "Commerce Context (Support)"},
        "description": {"en-GB": "Support fields written back from Zendesk and Tidio."},
        "resourceTypeIds": ["order"],
        "fieldDefinitions": [
            enum(
                "supportStatus",
                "Support status",
                [("open", "Open"), ("pending", "Pending"), ("resolved", "Resolved")],
            ),
            text("internalNote", "Internal note", "MultiLine"),
            enum(
                "rmaStatus",
                "RMA status",
                [
                    ("none", "None"),
                    ("requested", "Requested"),
                    ("approved", "Approved"),
                    ("received", "Received"),
                    ("refunded", "Refunded"),
                ],
            ),
            text("warehouse", "Warehouse"),
            text("marketplaceSource", "Marketplace source"),
        ],
    }
    return SeedRequest("TypeDraft", "POST", "/types", payload)


def customer_group_drafts() -> list[SeedRequest]:
    return [
        SeedRequest("CustomerGroupDraft", "POST", "/customer-groups", {"key": k, "groupName": n})
        for k, n in (("vip", "VIP"), ("regular", "Regular"))
    ]


def tax_category_draft() -> SeedRequest:
    payload = {
        "key": TAX_CATEGORY_KEY,
        "name": "Standard rate",
        "rates": [{**_tax_rate(s), "key": f"standard-{s.country.lower()}"} for s in STORE_SPECS],
    }
    return SeedRequest("TaxCategoryDraft", "POST", "/tax-categories", payload)


def zone_draft(store: StoreSpec) -> SeedRequest:
    payload = {
        "key": f"zone-{store.country.lower()}",
        "name": f"{store.name} delivery area ({store.country})",
        "locations": [{"country": store.country}],
    }
    return SeedRequest("ZoneDraft", "POST", "/zones", payload)


def shipping_method_draft(store: StoreSpec) -> SeedRequest:
    payload = {
        "key": store.shipping_method_key,
        "name": store.shipping_method_name,
        "localizedName": _localized(store.shipping_method_name),
        "taxCategory": _ref("tax-category", key=TAX_CATEGORY_KEY),
        "zoneRates": [
            {
                "zone": _ref("zone", key=f"zone-{store.country.lower()}"),
                "shippingRates": [
                    {
                        "price": _money(store.currency, store.shipping_cents),
                        "freeAbove": _money(store.currency, store.free_above_cents),
                    }
                ],
            }
        ],
        "isDefault": False,
        "active": True,
        "stores": [_ref("store", key=store.key)],
    }
    return SeedRequest("ShippingMethodDraft", "POST", "/shipping-methods", payload)


def product_type_draft() -> SeedRequest:
    payload = {"key": PRODUCT_TYPE_KEY, "name": "Apparel", "description": "Clothing and bags"}
    return SeedRequest("ProductTypeDraft", "POST", "/product-types", payload)


def product_discount_draft(shift: dt.timedelta = NO_SHIFT) -> SeedRequest:
    payload = {
        "key": PRODUCT_DISCOUNT_KEY,
        "name": _localized("Autumn sale -20 %", "Herbst-Sale -20 %"),
        "value": {"type": "relative", "permyriad": PRODUCT_DISCOUNT_PERMYRIAD},
        "predicate": 'sku in ("HOODIE-GRY-L", "BACKPACK-20L")',
        "sortOrder": "0.8",
        "isActive": True,
        "validFrom": _at("2026-08-15T00:00:00.000Z", shift),
        "validUntil": _at("2026-10-31T23:59:59.000Z", shift),
    }
    return SeedRequest("ProductDiscountDraft", "POST", "/product-discounts", payload)


def product_draft(product: ProductSpec) -> SeedRequest:
    slug = product.sku.lower()
    payload = {
        "key": slug,
        "productType": _ref("product-type", key=PRODUCT_TYPE_KEY),
        "name": _localized(product.name_en, product.name_de),
        "slug": {locale: slug for locale in LOCALES},
        "taxCategory": _ref("tax-category", key=TAX_CATEGORY_KEY),
        "masterVariant": {
            "sku": product.sku,
            "key": slug,
            "prices": [
                {
                    "key": f"{slug}-{s.currency.lower()}",
                    "value": _money(s.currency, product.prices[s.currency]),
                    "country": s.country,
                }
                for s in STORE_SPECS
            ],
        },
        "publish": True,
    }
    return SeedRequest("ProductDraft", "POST", "/products", payload)


def _address(
    spec: CustomerSpec,
    country: str,
    street: tuple[str, str, str, str, str | None],
    *,
    key: str | None = None,
) -> Json:
    street_name, number, postal_code, city, state = street
    address: Json = {
        "firstName": spec.first_name,
        "lastName": spec.last_name,
        "streetName": street_name,
        "streetNumber": number,
        "postalCode": postal_code,
        "city": city,
        "country": country,
        "phone": spec.phone,
        "email": spec.email,
    }
    if key:
        address["key"] = key
    if state:
        address["state"] = state
    return address


def _customer_address(spec: CustomerSpec) -> Json:
    store = _STORES[spec.store]
    street = (spec.street, spec.number, spec.postal_code, spec.city, spec.state)
    return _address(spec, store.country, street, key=f"{spec.key}-home")


def _guest_address(store_key: str) -> Json:
    return _address(GUEST, _STORES[store_key].country, _GUEST_ADDRESSES[store_key])


def customer_draft(spec: CustomerSpec, *, email: str | None = None) -> SeedRequest:
    """``email`` overrides the spec's email (used for the duplicate-email workaround)."""
    payload = {
        "key": spec.key,
        "customerNumber": spec.customer_number,
        "email": email or spec.account_email or spec.email,
        "password": f"demo-{spec.key}",
        "firstName": spec.first_name,
        "lastName": spec.last_name,
        "locale": spec.locale,
        "isEmailVerified": True,
        "addresses": [_customer_address(spec)],
        "defaultShippingAddress": 0,
        "defaultBillingAddress": 0,
        "customerGroup": _ref("customer-group", key=spec.group),
        "stores": [_ref("store", key=spec.store)],
    }
    return SeedRequest("CustomerDraft", "POST", "/customers", payload)


def customer_update(customer_id: str, version: int, actions: Sequence[Json]) -> SeedRequest:
    return SeedRequest(
        "CustomerUpdate", "POST", f"/customers/{customer_id}", _update(version, actions)
    )


def _unit_cents(line: LineSpec, currency: str) -> tuple[int, int | None]:
    """(list price, discounted price or None) in cents for one unit."""
    price = _PRODUCTS[line.sku].prices[currency]
    if not line.discounted:
        return price, None
    return price, price - price * PRODUCT_DISCOUNT_PERMYRIAD // 10000


def order_totals(order: OrderSpec) -> tuple[int, int]:
    """(goods total after discounts, shipping price) in cents for ``order``."""
    currency = _STORES[order.store].currency
    goods = -order.voucher_cents
    for line in order.lines:
        price, discounted = _unit_cents(line, currency)
        goods += (discounted if discounted is not None else price) * line.quantity
    store = _STORES[order.store]
    shipping = 0 if goods >= store.free_above_cents else store.shipping_cents
    return goods, shipping


def order_total_cents(order: OrderSpec) -> int:
    goods, shipping = order_totals(order)
    return goods + shipping


def _custom_fields(order: OrderSpec) -> dict[str, str]:
    fields = {"rmaStatus": order.rma_status, "warehouse": _STORES[order.store].warehouse}
    if order.support_status:
        fields["supportStatus"] = order.support_status
    if order.internal_note:
        fields["internalNote"] = order.internal_note
    if order.marketplace_source:
        fields["marketplaceSource"] = order.marketplace_source
    return fields


def _sale_cents(order: OrderSpec) -> int:
    """What the product discount took off the order's lines, in cents."""
    currency = _STORES[order.store].currency
    saved = 0
    for line in order.lines:
        price, discounted = _unit_cents(line, currency)
        if discounted is not None:
            saved += (price - discounted) * line.quantity
    return saved


def order_import_draft(
    order: OrderSpec, *, customer_id: str | None, shift: dt.timedelta = NO_SHIFT
) -> SeedRequest:
    """The OrderImportDraft for ``order``.

    Discounts: LineItemImportDraft has no ``discountedPricePerQuantity`` (the API computes it
    only for carts), and the emulator computes a line's ``totalPrice`` from ``price.value``
    alone. So lines are imported at their list price, and each discount is a negative custom
    line item: the sale (what the product discount took off the lines bought in it) and the
    voucher. Lines, custom lines and shipping then add up to ``totalPrice`` on the emulator as
    on the real API.
    """
    store = _STORES[order.store]
    currency = store.currency
    spec = _CUSTOMERS[order.customer] if order.customer else None
    address = _customer_address(spec) if spec else _guest_address(order.store)
    address.pop("key", None)

    line_items: list[Json] = []
    for line in order.lines:
        product = _PRODUCTS[line.sku]
        price, _discounted = _unit_cents(line, currency)
        price_draft: Json = {"value": _money(currency, price), "country": store.country}
        line_items.append(
            {
                "key": line.sku.lower(),
                "name": _localized(product.name_en, product.name_de),
                "variant": {"sku": line.sku},
                "price": price_draft,
                "quantity": line.quantity,
                "taxRate": _tax_rate(store),
            }
        )
    custom_line_items: list[Json] = []
    sale = _sale_cents(order)
    if sale:
        custom_line_items.append(
            {
                "key": "autumn-sale",
                "name": _localized("Autumn sale -20 %", "Herbst-Sale -20 %"),
                "slug": "autumn-sale",
                "quantity": 1,
                "money": _money(currency, -sale),
                "taxRate": _tax_rate(store),
                "priceMode": "Standard",
            }
        )
    if order.voucher_cents:
        custom_line_items.append(
            {
                "key": "voucher",
                "name": _localized("Voucher WELCOME10", "Gutschein WELCOME10"),
                "slug": "voucher-welcome10",
                "quantity": 1,
                "money": _money(currency, -order.voucher_cents),
                "taxRate": _tax_rate(store),
                "priceMode": "Standard",
            }
        )

    _goods, shipping = order_totals(order)
    payload: Json = {
        "orderNumber": order.number,
        "customerEmail": order.email,
        "store": _ref("store", key=order.store),
        "country": store.country,
        "lineItems": line_items,
        "totalPrice": _money(currency, order_total_cents(order)),
        "shippingAddress": address,
        "billingAddress": address,
        "shippingInfo": {
            "shippingMethodName": store.shipping_method_name,
            "price": _money(currency, shipping),
            "shippingRate": {
                "price": _money(currency, store.shipping_cents),
                "freeAbove": _money(currency, store.free_above_cents),
            },
            "taxRate": _tax_rate(store),
            "taxCategory": _ref("tax-category", key=TAX_CATEGORY_KEY),
            "shippingMethod": _ref("shipping-method", key=store.shipping_method_key),
            "shippingMethodState": "MatchesCart",
        },
        "orderState": order.order_state,
        "paymentState": order.payment_state,
        # Sent for the real API; the emulator drops it, see order_followup_update().
        "shipmentState": order.shipment_state,
        "origin": "Customer",
        "completedAt": _at(order.placed_at, shift),
        "custom": {"type": _ref("type", key=CUSTOM_TYPE_KEY), "fields": _custom_fields(order)},
    }
    if custom_line_items:
        payload["customLineItems"] = custom_line_items
    if order.purchase_order:
        # Sent for the real API; the emulator drops it, see order_followup_update().
        payload["purchaseOrderNumber"] = order.purchase_order
    if customer_id is not None:
        payload["customerId"] = customer_id
        assert spec is not None
        payload["customerGroup"] = _ref("customer-group", key=spec.group)
    return SeedRequest("OrderImportDraft", "POST", "/orders/import", payload)


def _transaction(
    kind: str, currency: str, cents: int, timestamp: str, interaction: str, state: str
) -> Json:
    return {
        "type": kind,
        "amount": _money(currency, cents),
        "timestamp": timestamp,
        "interactionId": interaction,
        "state": state,
    }


def payment_draft(
    order: OrderSpec, *, customer_id: str | None, shift: dt.timedelta = NO_SHIFT
) -> SeedRequest:
    """Authorization and (usually) Charge; a Refund is added later, after the return."""
    currency = _STORES[order.store].currency
    total = order_total_cents(order)
    pay = order.payment
    ref = pay.psp_reference
    placed = _at(order.placed_at, shift)
    transactions = [
        _transaction("Authorization", currency, total, placed, f"{ref}-A", pay.authorization_state)
    ]
    if pay.charged:
        transactions.append(_transaction("Charge", currency, total, placed, f"{ref}-C", "Success"))
    payload: Json = {
        "key": f"payment-{order.number.lower()}",
        "interfaceId": ref,
        "amountPlanned": _money(currency, total),
        "paymentMethodInfo": {
            "paymentInterface": pay.interface,
            "method": pay.method,
            "name": _localized(pay.method_name),
        },
        "paymentStatus": {
            "interfaceCode": "Refused" if pay.authorization_state == "Failure" else "Authorised",
            "interfaceText": "Card declined" if pay.authorization_state == "Failure" else "OK",
        },
        "transactions": transactions,
    }
    if customer_id is not None:
        payload["customer"] = _ref("customer", id=customer_id)
    return SeedRequest("PaymentDraft", "POST", "/payments", payload)


def payment_refund_update(
    order: OrderSpec, payment_id: str, version: int, shift: dt.timedelta = NO_SHIFT
) -> SeedRequest | None:
    """The Refund transaction, added once the return arrived (None if there is none)."""
    if not order.payment.refund_cents or order.returned is None:
        return None
    currency = _STORES[order.store].currency
    refund = _transaction(
        "Refund",
        currency,
        order.payment.refund_cents,
        _at(order.returned.date, shift),
        f"{order.payment.psp_reference}-R",
        "Success",
    )
    body = _update(version, [{"action": "addTransaction", "transaction": refund}])
    return SeedRequest("PaymentUpdate", "POST", f"/payments/{payment_id}", body)


def payment_update(payment_id: str, version: int, actions: Sequence[Json]) -> SeedRequest:
    return SeedRequest(
        "PaymentUpdate", "POST", f"/payments/{payment_id}", _update(version, actions)
    )


def _parcel_weight(skus: Iterable[str]) -> int:
    return sum(_PRODUCTS[s].weight_g for s in skus) + 250  # plus packaging


def order_followup_update(
    order: OrderSpec,
    *,
    order_id: str,
    version: int,
    line_item_ids: Mapping[str, str],
    payment_id: str,
    shift: dt.timedelta = NO_SHIFT,
) -> SeedRequest:
    """Everything that happens after the import: shipment state, delivery, payment, return,
    and the purchase-order number the import dropped.

    ``line_item_ids`` maps SKU -> line item id of the imported order.
    """
    store = _STORES[order.store]
    quantities = {line.sku: line.quantity for line in order.lines}
    actions: list[Json] = [{"action": "changeShipmentState", "shipmentState": order.shipment_state}]
    if order.purchase_order:
        actions.append(
            {"action": "setPurchaseOrderNumber", "purchaseOrderNumber": order.purchase_order}
        )
    if order.parcels:
        parcels = [
            {
                "key": f"{order.number.lower()}-parcel-{i}",
                "measurements": {"weightInGram": _parcel_weight(p.skus)},
                "trackingData": {
                    "trackingId": p.tracking_id,
                    "carrier": store.carrier,
                    "provider": store.tracking_provider,
                    "isReturn": False,
                },
                "items": [{"id": line_item_ids[s], "quantity": quantities[s]} for s in p.skus],
            }
            for i, p in enumerate(order.parcels, start=1)
        ]
        actions.append(
            {
                "action": "addDelivery",
                "deliveryKey": f"{order.number.lower()}-delivery-1",
                "items": [{"id": line_item_ids[s], "quantity": q} for s, q in quantities.items()],
                "parcels": parcels,
            }
        )
    actions.append({"action": "addPayment", "payment": _ref("payment", id=payment_id)})
    if order.returned is not None:
        r = order.returned
        actions.append(
            {
                "action": "addReturnInfo",
                "returnTrackingId": r.tracking_id,
                "returnDate": _at(r.date, shift),
                "items": [
                    {
                        "key": f"{order.number.lower()}-return-1",
                        "lineItemId": line_item_ids[r.sku],
                        "quantity": r.quantity,
                        "shipmentState": r.shipment_state,
                        "comment": r.comment,
                    }
                ],
            }
        )
    return SeedRequest("OrderUpdate", "POST", f"/orders/{order_id}", _update(version, actions))


def cart_draft(cart: CartSpec, *, customer_id: str) -> SeedRequest:
    spec = _CUSTOMERS[cart.customer]
    store = _STORES[spec.store]
    address = _customer_address(spec)
    address.pop("key", None)
    payload = {
        "key": f"cart-{cart.customer}",
        "currency": store.currency,
        "customerId": customer_id,
        "customerEmail": spec.email,
        "store": _ref("store", key=store.key),
        "country": store.country,
        "locale": spec.locale,
        "origin": "Customer",
        "lineItems": [{"sku": line.sku, "quantity": line.quantity} for line in cart.lines],
        "shippingAddress": address,
        "billingAddress": address,
    }
    return SeedRequest("CartDraft", "POST", "/carts", payload)


def _placeholder_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"commerce-context:{name}"))


def drafts() -> list[SeedRequest]:
    """Every request the seed sends, in order, with placeholder ids and versions.

    This includes the follow-up updates the seed sends only when the emulator drops a field.
    """
    pid = _placeholder_id
    requests: list[SeedRequest] = [store_draft(s) for s in STORE_SPECS]
    requests.append(order_type_draft())
    requests += customer_group_drafts()
    requests.append(tax_category_draft())
    requests += [zone_draft(s) for s in STORE_SPECS]
    requests += [shipping_method_draft(s) for s in STORE_SPECS]
    requests.append(product_type_draft())
    requests.append(product_discount_draft())
    requests += [product_draft(p) for p in PRODUCT_SPECS]
    for c in CUSTOMER_SPECS:
        requests.append(customer_draft(c))
        requests.append(customer_draft(c, email=_placeholder_email(c)))
        requests.append(customer_update(pid(c.key), 1, _customer_repairs(c, {})))
    for o in ORDER_SPECS:
        customer_id = pid(o.customer) if o.customer else None
        requests.append(order_import_draft(o, customer_id=customer_id))
        payment = payment_draft(o, customer_id=customer_id)
        requests.append(payment)
        repairs = _payment_repairs(payment.payload, {})
        if repairs:
            requests.append(payment_update(pid(f"payment-{o.number}"), 1, repairs))
        line_ids = {line.sku: pid(f"{o.number}/{line.sku}") for line in o.lines}
        requests.append(
            order_followup_update(
                o,
                order_id=pid(o.number),
                version=1,
                line_item_ids=line_ids,
                payment_id=pid(f"payment-{o.number}"),
            )
        )
        refund = payment_refund_update(o, pid(f"payment-{o.number}"), 2)
        if refund is not None:
            requests.append(refund)
    requests += [cart_draft(c, customer_id=pid(c.customer)) for c in CART_SPECS]
    return requests


# =============================================================================================
# Talking to the API
# =============================================================================================


class SeedError(RuntimeError):
    """An API call made while seeding failed."""


class _Api:
    def __init__(self, http: httpx.AsyncClient, api_url: str, project_key: str, token: str):
        self.http = http
        self.root = api_url.rstrip("/")
        self.project_key = project_key
        self.base = f"{self.root}/{project_key}"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def set_timestamps(self, type_id: str, resource_id: str, stamps: Json) -> Json:
        """Set server-kept timestamps through the emulator's harness route (server.mjs); no
        commercetools API can, see the module docstring."""
        path = f"{self.root}/_harness/{self.project_key}/{type_id}/{resource_id}/timestamps"
        response = await self.http.post(path, json=stamps, headers=self.headers)
        if response.status_code != 200:
            raise SeedError(
                f"setting the timestamps of {type_id} {resource_id} needs the emulator's harness "
                f"route (seed with backdate=False against a real project): "
                f"{response.status_code} {response.text[:300]}"
            )
        body: Json = response.json()
        return body

    async def send(self, request: SeedRequest) -> Json:
        response = await self.http.request(
            request.method, self.base + request.path, json=request.payload, headers=self.headers
        )
        if response.status_code not in (200, 201):
            raise SeedError(
                f"{request.method} {request.path} ({request.component}) -> "
                f"{response.status_code}: {response.text[:1000]}"
            )
        body = response.json()
        if not isinstance(body, dict):
            raise SeedError(f"{request.method} {request.path}: unexpected body {body!r:.200}")
        return body


async def _fetch_token(http: httpx.AsyncClient, auth_url: str, project_key: str) -> str:
    response = await http.post(
        f"{auth_url.rstrip('/')}/oauth/token",
        auth=(SEED_CLIENT_ID, SEED_CLIENT_SECRET),
        data={"grant_type": "client_credentials", "scope": f"manage_project:{project_key}"},
    )
    if response.status_code != 200:
        raise SeedError(f"token request failed: {response.status_code} {response.text[:300]}")
    token = response.json().get("access_token")
    if not isinstance(token, str) or not token:
        raise SeedError("token response has no access_token")
    return token


def _placeholder_email(spec: CustomerSpec) -> str:
    local, _, domain = spec.email.partition("@")
    return f"{local}+{spec.store}@{domain}"


def _is_duplicate_email(error: SeedError) -> bool:
    text = str(error)
    return "DuplicateField" in text and '"email"' in text


def _customer_repairs(spec: CustomerSpec, created: Json) -> list[Json]:
    """Update actions for draft fields the server did not store (the emulator drops some)."""
    actions: list[Json] = []
    wanted = spec.account_email or spec.email
    if created.get("email", "") != wanted:
        actions.append({"action": "changeEmail", "email": wanted})
    if not created.get("customerGroup"):
        actions.append(
            {"action": "setCustomerGroup", "customerGroup": _ref("customer-group", key=spec.group)}
        )
    return actions


def _payment_repairs(draft: Json, created: Json) -> list[Json]:
    actions: list[Json] = []
    if draft.get("interfaceId") and not created.get("interfaceId"):
        actions.append({"action": "setInterfaceId", "interfaceId": draft["interfaceId"]})
    if draft.get("customer") and not created.get("customer"):
        actions.append({"action": "setCustomer", "customer": draft["customer"]})
    return actions


async def _create_customer(api: _Api, spec: CustomerSpec) -> Json:
    """Create one store-scoped customer, even when its email is already taken in another store.

    The real API keeps emails unique per store for customers that have ``stores``, so two
    customers in ``berlin`` and ``london`` may share an email. The emulator checks emails
    project-wide and answers 400 DuplicateField. In that case we create the customer with
    a placeholder address (``local+store@domain``) and switch it with ``changeEmail``, which
    the emulator does not check for duplicates. The result is the same data the real API
    would hold.
    """
    try:
        body = await api.send(customer_draft(spec))
    except SeedError as error:
        if not _is_duplicate_email(error):
            raise
        body = await api.send(customer_draft(spec, email=_placeholder_email(spec)))
    customer: Json = body.get("customer", body)  # the create response wraps it: {customer, cart}
    actions = _customer_repairs(spec, customer)
    if actions:
        customer = await api.send(customer_update(customer["id"], customer["version"], actions))
    return customer


async def _create_order(
    api: _Api, order: OrderSpec, *, customer_id: str | None, shift: dt.timedelta, backdate: bool
) -> tuple[Json, Json]:
    imported = await api.send(order_import_draft(order, customer_id=customer_id, shift=shift))
    payment_request = payment_draft(order, customer_id=customer_id, shift=shift)
    payment = await api.send(payment_request)
    repairs = _payment_repairs(payment_request.payload, payment)
    if repairs:
        payment = await api.send(payment_update(payment["id"], payment["version"], repairs))

    line_item_ids = {li["variant"]["sku"]: li["id"] for li in imported["lineItems"]}
    updated = await api.send(
        order_followup_update(
            order,
            order_id=imported["id"],
            version=imported["version"],
            line_item_ids=line_item_ids,
            payment_id=payment["id"],
            shift=shift,
        )
    )
    refund = payment_refund_update(order, payment["id"], payment["version"], shift)
    if refund is not None:
        payment = await api.send(refund)
    if backdate:
        updated = await api.set_timestamps("order", updated["id"], order_timestamps(order, shift))
        payment = await api.set_timestamps(
            "payment", payment["id"], {"createdAt": _at(order.placed_at, shift)}
        )
    return updated, payment


def order_timestamps(order: OrderSpec, shift: dt.timedelta) -> dict[str, str]:
    """The server-kept timestamps of an order in the story (see ``_Api.set_timestamps``)."""
    placed = _at(order.placed_at, shift)
    stamps = {"createdAt": placed, "completedAt": placed}
    if order.parcels:
        stamps["deliveriesCreatedAt"] = _at(order.placed_at, shift, SHIPPED_AFTER)
    if order.returned is not None:
        stamps["returnsCreatedAt"] = _at(order.returned.date, shift)
    return stamps


def customer_signed_up(spec: CustomerSpec, shift: dt.timedelta) -> str:
    """Three weeks before the customer's first order (or before the story's first order)."""
    placed = [o.placed_at for o in ORDER_SPECS if o.customer == spec.key] or [
        ORDER_SPECS[0].placed_at
    ]
    return _at(min(placed), shift, -SIGNED_UP_BEFORE)


async def seed_demo_project(
    http: httpx.AsyncClient,
    *,
    api_url: str,
    auth_url: str,
    project_key: str,
    now: dt.datetime | None = None,
    backdate: bool = True,
) -> DemoData:
    """Create the demo data set in ``project_key`` and return the ids needed to find it.

    Expects an empty project (keys and order numbers are fixed, so a second run fails with
    DuplicateField errors on a real API). The story's dates end at ``now`` (default: the
    moment it runs). ``backdate`` sets the server-kept timestamps through the emulator's
    harness route; pass False against anything but the emulator.
    """
    shift = story_shift(now)
    token = await _fetch_token(http, auth_url, project_key)
    api = _Api(http, api_url, project_key, token)

    for store in STORE_SPECS:
        await api.send(store_draft(store))
    await api.send(order_type_draft())
    group_ids = {}
    for request in customer_group_drafts():
        group = await api.send(request)
        group_ids[group["key"]] = group["id"]
    await api.send(tax_category_draft())
    for store in STORE_SPECS:
        await api.send(zone_draft(store))
    shipping_method_ids = {}
    for store in STORE_SPECS:
        method = await api.send(shipping_method_draft(store))
        shipping_method_ids[store.key] = method["id"]
    await api.send(product_type_draft())
    await api.send(product_discount_draft(shift))
    product_ids = {}
    for product in PRODUCT_SPECS:
        created = await api.send(product_draft(product))
        product_ids[product.sku] = created["id"]

    customers: dict[str, CustomerInfo] = {}
    for spec in CUSTOMER_SPECS:
        customer = await _create_customer(api, spec)
        if backdate:
            stamps = {"createdAt": customer_signed_up(spec, shift)}
            customer = await api.set_timestamps("customer", customer["id"], stamps)
        customers[spec.key] = CustomerInfo(
            key=spec.key,
            id=customer["id"],
            email=customer["email"],
            store_key=spec.store,
            first_name=spec.first_name,
            last_name=spec.last_name,
            customer_group_key=spec.group,
        )

    orders: dict[str, OrderInfo] = {}
    for spec_order in ORDER_SPECS:
        # createdAt has millisecond precision and cannot be set by clients. A short pause
        # keeps each order strictly newer than the one before, so "recent orders" is stable.
        await asyncio.sleep(0.002)
        customer_id = customers[spec_order.customer].id if spec_order.customer else None
        order, payment = await _create_order(
            api, spec_order, customer_id=customer_id, shift=shift, backdate=backdate
        )
        orders[spec_order.number] = OrderInfo(
            order_number=spec_order.number,
            id=order["id"],
            store_key=spec_order.store,
            email=spec_order.email,
            customer_key=spec_order.customer,
            created_at=order["createdAt"],
            payment_ids=(payment["id"],),
            tracking_ids=tuple(p.tracking_id for p in spec_order.parcels),
            has_return=spec_order.returned is not None,
            custom_fields=_frozen(_custom_fields(spec_order)),
        )

    carts: dict[str, str] = {}
    for cart_spec in CART_SPECS:
        cart = await api.send(cart_draft(cart_spec, customer_id=customers[cart_spec.customer].id))
        carts[cart_spec.customer] = cart["id"]

    return DemoData(
        project_key=project_key,
        custom_type_key=CUSTOM_TYPE_KEY,
        shared_email=SHARED_EMAIL,
        guest_email=GUEST_EMAIL,
        stores=_frozen(
            {
                s.key: StoreInfo(s.key, s.name, s.currency, s.locale, s.country, s.carrier)
                for s in STORE_SPECS
            }
        ),
        customers=_frozen(customers),
        orders=_frozen(orders),
        carts=_frozen(carts),
        customer_group_ids=_frozen(group_ids),
        shipping_method_ids=_frozen(shipping_method_ids),
        product_ids=_frozen(product_ids),
    )
