"""Card numbers and payment secrets planted in commercetools never leave it; custom fields are
shown only when the mapping file lists them.

A customer, a product, a payment, an order (delivery, return) and a cart are created in the
emulator through its REST API (every payload checked against the OpenAPI description), with a
Luhn-valid card number (spaced, dashed or plain) and a PSP token or secret in every free-text
field the views read. Then the ticket views run, and neither the panel HTML, nor any entry the
cache writes (memory store, and the raw bytes in Redis), nor any log line (every logger, at
DEBUG, through the filters the service installs on its handlers), nor an error page carries
any of them. On the previous main, the payment method name reached the panel and the cache in
clear.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import io
import json
import logging
import re
import socket
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from bs4 import BeautifulSoup
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from commerce_context import logs
from commerce_context.app import create_app
from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings, serve
from commerce_context.emulator.seed import CUSTOM_TYPE_KEY, PRODUCT_TYPE_KEY, TAX_CATEGORY_KEY
from commerce_context.policy import Policy
from commerce_context.resolution import TicketContext, resolve
from commerce_context.settings import Settings
from commerce_context.stores import MemoryStore, RedisStore
from tests.asgi import app_client
from tests.openapi import assert_valid

pytestmark = pytest.mark.emulator

REDIS_URL = "redis://127.0.0.1:6379/15"
BERLIN = 1001

# Luhn-valid test card numbers of several schemes, written the ways people and PSPs write them.
CARDS = (
    "4111 1111 1111 1111",
    "5555-5555-5555-4444",
    "378282246310005",
    "4012 8888 8888 1881",
    "6011111111111117",
    "5105-1051-0510-5100",
    "4242424242424242",
    "2223 0031 2200 3222",
    "3714 496353 98431",
    "6011-0009-9013-9424",
)
# The secret part of each: what must never be readable anywhere.
TOKENS = (
    ("tok_1LkTokAbcDEF123", "1LkTokAbcDEF123"),
    ("pm_1LkPm9XyzQRS45", "1LkPm9XyzQRS45"),
    ("sk_live_51LkSecretKeyZZ9", "51LkSecretKeyZZ9"),
    ("pi_3LkIntent42xyzW", "3LkIntent42xyzW"),
    ("ch_3LkCharge77abcV", "3LkCharge77abcV"),
    ("psp_ref LKREF88120Q", "LKREF88120Q"),
    ("sk_test_LkTestKey0042", "LkTestKey0042"),
    ("card_1LkCard5555Hh", "1LkCard5555Hh"),
)


@dataclass
class Planted:
    """Hands out a different card and token for every field, and remembers them."""

    cards: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)

    def __call__(self, label: str) -> str:
        n = len(self.cards)
        card = CARDS[n % len(CARDS)]
        token, secret = TOKENS[n % len(TOKENS)]
        self.cards.append(card)
        self.secrets.append(secret)
        return f"{label} {card} {token}"

    def localized(self, label: str) -> dict[str, str]:
        value = self(label)
        return {"de-DE": value, "en-GB": value, "en-US": value}

    def leaks(self, text: str) -> list[str]:
        """Every planted card number or secret readable in `text` (any spacing)."""
        found = [s for s in self.secrets if s in text]
        squeezed = re.sub(r"[\s\-\u00a0\u202f]", "", text)
        for card in set(self.cards):
            digits = re.sub(r"\D", "", card)
            if card in text or digits in squeezed or digits[:-4] in squeezed:
                found.append(card)
        return found


@dataclass
class Shopper:
    email: str
    customer_id: str
    order_number: str
    order_id: str


# -- creating the data through the REST API -----------------------------------------------------


class Api:
    def __init__(self, http: httpx.AsyncClient, settings: Settings, token: str) -> None:
        self.http = http
        self.base = f"{settings.api_url}/{settings.ct_project_key}"
        self.headers = {"Authorization": f"Bearer {token}"}

    async def post(self, component: str, path: str, payload: Mapping[str, Any]) -> Any:
        assert_valid(component, payload)
        response = await self.http.post(self.base + path, json=payload, headers=self.headers)
        assert response.status_code in (200, 201), response.text
        return response.json()


def _money(cents: int) -> dict[str, Any]:
    return {"currencyCode": "EUR", "centAmount": cents}


TAX = {"name": "MwSt. 19 %", "amount": 0.19, "includedInPrice": True, "country": "DE"}


def _address(plant: Planted) -> dict[str, Any]:
    return {
        "firstName": plant("First"),
        "lastName": plant("Last"),
        "company": plant("Company"),
        "department": plant("Department"),
        "streetName": plant("Street"),
        "streetNumber": "12",
        "additionalStreetInfo": plant("Street info"),
        "additionalAddressInfo": plant("Leave at door, code"),
        "building": plant("Building"),
        "apartment": plant("Apartment"),
        "postalCode": "10115",
        "city": plant("Berlin"),
        "region": plant("Region"),
        "country": "DE",
        "phone": "+49 30 1234567",
    }


async def create_shopper(api: Api, plant: Planted) -> Shopper:
    tag = uuid.uuid4().hex[:8]
    sku = f"LEAK-{tag}".upper()
    product = await api.post(
        "ProductDraft",
        "/products",
        {
            "key": f"leak-{tag}",
            "productType": {"typeId": "product-type", "key": PRODUCT_TYPE_KEY},
            "name": plant.localized("Shirt"),
            "slug": {"de-DE": f"leak-{tag}", "en-GB": f"leak-{tag}", "en-US": f"leak-{tag}"},
            "taxCategory": {"typeId": "tax-category", "key": TAX_CATEGORY_KEY},
            "masterVariant": {
                "sku": sku,
                "prices": [{"value": _money(2990), "country": "DE"}],
            },
            "publish": True,
        },
    )
    assert product["id"]

    email = f"leak-{tag}@example.com"
    created = await api.post(
        "CustomerDraft",
        "/customers",
        {
            "key": f"leak-{tag}",
            "customerNumber": plant("Number"),
            "externalId": plant("CRM"),
            "email": email,
            "password": "not-a-secret-here",
            "title": plant("Title"),
            "firstName": plant("Anna"),
            "middleName": plant("Maria"),
            "lastName": plant("Schmidt"),
            "companyName": plant("Company"),
            "vatId": plant("VAT"),
            "addresses": [_address(plant)],
            "defaultShippingAddress": 0,
            "stores": [{"typeId": "store", "key": "berlin"}],
        },
    )
    customer = created.get("customer", created)

    payment = await api.post(
        "PaymentDraft",
        "/payments",
        {
            "key": f"leak-payment-{tag}",
            "amountPlanned": _money(3485),
            "paymentMethodInfo": {
                "paymentInterface": plant("PSP"),
                "method": plant("Visa"),
                "name": plant.localized("Card"),
            },
            "paymentStatus": {
                "interfaceCode": plant("Code"),
                "interfaceText": plant("Authorised card"),
            },
            "transactions": [
                {
                    "type": "Charge",
                    "amount": _money(3485),
                    "timestamp": "2026-11-20T10:00:00.000Z",
                    "state": "Success",
                }
            ],
            "customer": {"typeId": "customer", "id": customer["id"]},
        },
    )

    order_number = f"LK-{tag}"
    address = _address(plant)
    order = await api.post(
        "OrderImportDraft",
        "/orders/import",
        {
            "orderNumber": order_number,
            "customerId": customer["id"],
            "customerEmail": email,
            "store": {"typeId": "store", "key": "berlin"},
            "country": "DE",
            "lineItems": [
                {
                    "name": plant.localized("Line"),
                    "variant": {"sku": sku},
                    "price": {"value": _money(2990), "country": "DE"},
                    "quantity": 1,
                    "taxRate": TAX,
                }
            ],
            "customLineItems": [
                {
                    "name": plant.localized("Gift wrap"),
                    "slug": f"gift-{tag}",
                    "quantity": 1,
                    "money": _money(0),
                    "taxRate": TAX,
                    "priceMode": "Standard",
                }
            ],
            "totalPrice": _money(3485),
            "shippingAddress": address,
            "billingAddress": address,
            "shippingInfo": {
                "shippingMethodName": plant("DHL Paket"),
                "price": _money(495),
                "shippingRate": {"price": _money(495), "freeAbove": _money(5000)},
                "taxRate": TAX,
                "taxCategory": {"typeId": "tax-category", "key": TAX_CATEGORY_KEY},
                "shippingMethod": {"typeId": "shipping-method", "key": "dhl-paket"},
                "shippingMethodState": "MatchesCart",
            },
            "orderState": "Open",
            "paymentState": "Paid",
            "origin": "Customer",
            "completedAt": "2026-11-20T10:00:00.000Z",
            "purchaseOrderNumber": plant("PO"),
            "custom": {
                "type": {"typeId": "type", "key": CUSTOM_TYPE_KEY},
                "fields": {
                    "supportStatus": "open",
                    "internalNote": plant("Called, gave card"),
                    "warehouse": plant("Warehouse"),
                    "marketplaceSource": plant("Marketplace"),
                },
            },
        },
    )
    line_id = order["lineItems"][0]["id"]
    await api.post(
        "OrderUpdate",
        f"/orders/{order['id']}",
        {
            "version": order["version"],
            "actions": [
                {
                    "action": "addDelivery",
                    "deliveryKey": f"leak-delivery-{tag}",
                    "items": [{"id": line_id, "quantity": 1}],
                    "parcels": [
                        {
                            "key": f"leak-parcel-{tag}",
                            "trackingData": {
                                "trackingId": plant("Tracking"),
                                "carrier": plant("DHL"),
                                "provider": plant("dhl.de"),
                                "isReturn": False,
                            },
                            "items": [{"id": line_id, "quantity": 1}],
                        }
                    ],
                },
                {"action": "addPayment", "payment": {"typeId": "payment", "id": payment["id"]}},
                {
                    "action": "addReturnInfo",
                    "returnTrackingId": plant("Return tracking"),
                    "returnDate": "2026-11-25T10:00:00.000Z",
                    "items": [
                        {
                            "lineItemId": line_id,
                            "quantity": 1,
                            "shipmentState": "Returned",
                            "comment": plant("Too small, refund to"),
                        }
                    ],
                },
            ],
        },
    )
    await api.post(
        "CartDraft",
        "/carts",
        {
            "key": f"leak-cart-{tag}",
            "currency": "EUR",
            "customerId": customer["id"],
            "customerEmail": email,
            "store": {"typeId": "store", "key": "berlin"},
            "country": "DE",
            "origin": "Customer",
            "lineItems": [{"sku": sku, "quantity": 2}],
            "customLineItems": [
                {
                    "name": plant.localized("Cart gift wrap"),
                    "slug": f"cart-gift-{tag}",
                    "quantity": 1,
                    "money": _money(0),
                    "taxCategory": {"typeId": "tax-category", "key": TAX_CATEGORY_KEY},
                }
            ],
            "shippingAddress": _address(plant),
        },
    )
    return Shopper(email, customer["id"], order_number, order["id"])


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest.fixture(scope="module")
def leak_settings(harness: Harness, zendesk: DemoZendesk) -> Settings:
    return demo_settings(harness, zendesk, ct_backoff_base=0.01, ct_backoff_max=0.1)


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def planted(leak_settings: Settings) -> tuple[Planted, Shopper]:
    plant = Planted()
    async with httpx.AsyncClient(timeout=30) as http:
        token = await CommercetoolsClient(leak_settings, http).access_token()
        shopper = await create_shopper(Api(http, leak_settings, token), plant)
    return plant, shopper


def _production_handler_filters() -> list[logging.Filter]:
    """The filters logs.log_config() puts on the service's handlers, built the same way."""
    config = logs.log_config("debug")
    built = []
    for name in config["handlers"]["stderr"]["filters"]:
        module, _, attribute = config["filters"][name]["()"].rpartition(".")
        built.append(getattr(importlib.import_module(module), attribute)())
    return built


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every logger at DEBUG, through the filters the service's handlers run."""
    filters = _production_handler_filters()
    for f in filters:
        caplog.handler.addFilter(f)
    caplog.set_level(logging.DEBUG)
    yield caplog
    for f in filters:
        caplog.handler.removeFilter(f)


def _log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts += [record.getMessage(), record.exc_text or "", record.stack_info or ""]
        parts += [str(v) for v in record.__dict__.values() if isinstance(v, str)]
    return "\n".join(parts)


class Session:
    def __init__(self, client: httpx.AsyncClient, zendesk: DemoZendesk) -> None:
        self.client = client
        self.zendesk = zendesk
        self.bearer = ""

    async def open(self) -> None:
        page = await self.client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc-123",
            data={"token": self.zendesk.token()},
            headers={"Accept": "text/html"},
        )
        assert page.status_code == 200, page.text
        found = re.search(r'data-session="([^"]+)"', page.text)
        assert found is not None
        self.bearer = found.group(1)

    async def panels(self, **context: Any) -> httpx.Response:
        return await self.client.post(
            "/zendesk/panels", json=context, headers={"Authorization": f"Bearer {self.bearer}"}
        )


# -- the panels -----------------------------------------------------------------------------------


async def test_nothing_planted_reaches_a_panel_or_a_log_line(
    leak_settings: Settings,
    zendesk: DemoZendesk,
    planted: tuple[Planted, Shopper],
    all_logs: pytest.LogCaptureFixture,
) -> None:
    plant, shopper = planted
    async with (
        httpx.AsyncClient() as http,
        app_client(create_app(leak_settings, http=http)) as client,
    ):
        session = Session(client, zendesk)
        await session.open()
        views: list[dict[str, Any]] = [
            {"emails": [shopper.email], "brand_id": BERLIN},
            {"order_number": shopper.order_number, "brand_id": BERLIN},
            {"order_id": shopper.order_id, "brand_id": BERLIN, "ui_locale": "de"},
            {"external_id": shopper.customer_id, "brand_id": BERLIN},
            {"emails": [shopper.email]},  # no brand: no store scope
        ]
        pages = []
        for context in views:
            for _ in range(2):  # cold, then from the cache
                response = await session.panels(**context)
                assert response.status_code == 200, response.text
                pages.append(response.text)

    html = "\n".join(pages)
    # The views did show the shopper: the fields are there, masked.
    assert shopper.order_number in html
    assert "•••• 1111" in html  # the payment method and names: masked to the last four
    assert "tok_•••" in html or "pm_•••" in html or "sk_live_•••" in html
    assert plant.leaks(html) == []
    assert plant.leaks(_log_text(all_logs)) == []


# -- the cache: memory and Redis ------------------------------------------------------------------


class RecordingMemoryStore(MemoryStore):
    """A memory store that also keeps every value written to it, as written."""

    def __init__(self) -> None:
        super().__init__(64 << 20)
        self.written: dict[str, bytes] = {}

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        self.written.update(items)
        await super().set_many(items, ttl)


def _readable(raw: bytes | str | None) -> str:
    """A stored value as text: decompressed when compressed, JSON escapes undone."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        raw = raw.encode()
    with contextlib.suppress(zlib.error):
        raw = zlib.decompress(raw)
    text = raw.decode("utf-8", "replace")
    try:
        return text + "\n" + json.dumps(json.loads(text), ensure_ascii=False)
    except ValueError:
        return text


async def _resolve_all(reader: Reader, settings: Settings, shopper: Shopper) -> None:
    contexts = [
        {"emails": [shopper.email]},
        {"order_number": shopper.order_number},
        {"external_id": shopper.customer_id},
    ]
    for body in contexts:
        for store in ("berlin", None):
            resolution = await resolve(
                TicketContext.parse(body),
                reader=reader,
                store=store,
                custom_fields=settings.mappings.order_custom_fields,
            )
            assert not resolution.empty


async def test_no_cache_entry_holds_anything_planted(
    leak_settings: Settings, planted: tuple[Planted, Shopper]
) -> None:
    plant, shopper = planted
    policy = Policy.from_mappings(leak_settings.mappings)
    prefix = f"test-leaks-{uuid.uuid4().hex[:8]}:"
    memory = RecordingMemoryStore()
    redis_store = RedisStore.from_url(REDIS_URL, prefix=prefix)
    raw_redis = Redis.from_url(REDIS_URL)
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            client = CommercetoolsClient(leak_settings, http)
            for store in (memory, redis_store):
                reader = Reader(client, policy, store, freshness=Freshness(), namespace="leaks")
                await _resolve_all(reader, leak_settings, shopper)

        memory_values = [_readable(v) for v in memory.written.values()]
        assert len(memory_values) >= 4  # customer, order, cart, read results
        memory_text = "\n".join(memory_values)
        assert shopper.order_number in memory_text and "•••• " in memory_text
        assert plant.leaks(memory_text) == []

        redis_values = []
        async for key in raw_redis.scan_iter(match=f"{prefix}*", count=500):
            kind = _readable(await raw_redis.type(key))
            if kind == "string":
                redis_values.append(_readable(await raw_redis.get(key)))
            elif kind == "hash":
                redis_values += [_readable(v) for v in (await raw_redis.hgetall(key)).values()]
            else:
                redis_values.append(_readable(await raw_redis.dump(key)))
        assert len(redis_values) >= 4
        redis_text = "\n".join(redis_values)
        assert shopper.order_number in redis_text and "•••• " in redis_text
        assert plant.leaks(redis_text) == []
    finally:
        keys = [key async for key in raw_redis.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await raw_redis.delete(*keys)
        await raw_redis.aclose()
        await redis_store.close()


# -- error pages ----------------------------------------------------------------------------------


def _failing_upstream(plant: Planted) -> Starlette:
    """A commercetools stand-in whose errors quote card numbers and tokens back."""
    leaked = plant("Invalid payment for card")

    async def token(request: Request) -> Response:
        return JSONResponse(
            {"access_token": "t", "token_type": "Bearer", "expires_in": 3600, "scope": "x"}
        )

    async def graphql(request: Request) -> Response:
        if "bad-request" in (await request.body()).decode():
            return JSONResponse(
                {"statusCode": 400, "message": leaked, "errors": [{"message": leaked}]},
                status_code=400,
            )
        return PlainTextResponse(f"upstream exploded: {leaked}", status_code=500)

    return Starlette(
        routes=[
            Route("/oauth/token", token, methods=["POST"]),
            Route("/{project}/graphql", graphql, methods=["POST"]),
        ]
    )


async def test_error_pages_and_their_logs_carry_nothing_planted(
    harness: Harness, zendesk: DemoZendesk, all_logs: pytest.LogCaptureFixture
) -> None:
    plant = Planted()
    async with serve(_failing_upstream(plant)) as url:
        settings = demo_settings(
            harness,
            zendesk,
            ct_api_url=url,
            ct_auth_url=url,
            ct_max_retries=0,
            ct_backoff_base=0.01,
            ct_backoff_max=0.02,
        )
        async with (
            httpx.AsyncClient() as http,
            app_client(create_app(settings, http=http)) as client,
        ):
            session = Session(client, zendesk)
            await session.open()
            answers = [
                await session.panels(emails=["someone@example.com"], brand_id=BERLIN),
                await session.panels(order_number="bad-request", brand_id=BERLIN),
            ]
            # Bad input that itself carries a card number or a token is not echoed either.
            card_input = plant("order")
            answers += [
                await session.panels(order_number=card_input, brand_id=BERLIN),
                await session.panels(order_number=["not", "a", "string", plant("x")]),
                await client.post(
                    "/zendesk/panels",
                    content=b'{"order_number": "' + plant("y").encode() + b'"',
                    headers={"Authorization": f"Bearer {session.bearer}"},
                ),
                await client.post(
                    "/zendesk/panels",
                    json={"order_number": "DE-1"},
                    headers={"Authorization": "Bearer " + plant("sk")},
                ),
                await client.post(
                    "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc",
                    data={"token": plant("token")},
                    headers={"Accept": "text/html"},
                ),
                await client.get("/zendesk/" + plant("path").replace(" ", "%20")),
            ]
    assert [a.status_code >= 400 for a in answers] == [True] * len(answers)
    assert answers[0].status_code >= 500 and answers[1].status_code >= 400
    for answer in answers:
        assert plant.leaks(answer.text) == [], answer.text
        assert plant.leaks(json.dumps(dict(answer.headers))) == []
    text = _log_text(all_logs)
    assert plant.leaks(text) == [], [line for line in text.splitlines() if plant.leaks(line)]


# -- the access log ------------------------------------------------------------------------------


async def test_the_access_log_never_writes_secret_query_values(
    all_logs: pytest.LogCaptureFixture,
) -> None:
    """uvicorn's access log, configured as logs.log_config() configures it, over real HTTP."""
    config = logs.log_config("info")
    access = config["loggers"]["uvicorn.access"]
    logger = logging.getLogger("uvicorn.access")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for f in _production_handler_filters():
        handler.addFilter(f)
    logger_filters = []
    for name in access["filters"]:
        module, _, attribute = config["filters"][name]["()"].rpartition(".")
        logger_filters.append(getattr(importlib.import_module(module), attribute)())
    for f in logger_filters:
        logger.addFilter(f)
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)

    async def ok(request: Request) -> Response:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{path:path}", ok)])
    secrets = {
        "token": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl",
        "jwt": "abc.def.ghi-secret1",
        "session": "sess-secret-2",
        "client_secret": "cs-secret-3",
        "access_token": "at-secret-4",
        "api_key": "ak-secret-5",
        "signature": "sig-secret-6",
        "t": "t-secret-7",
        "code": "oauth-code-secret-8",
        "X-Amz-Signature": "amz-secret-9",
        "password": "pw-secret-10",
    }
    try:
        server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=True))
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                assert not task.done()
                await asyncio.sleep(0.01)
            query = "&".join(f"{k}={v}" for k, v in secrets.items())
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for path in (
                    f"/zendesk/sidebar?origin=https://x.zendesk.com&{query}&order=DE-1003",
                    f"/callback?{query}",
                    "/plain?order=DE-1003&page=2",
                ):
                    assert (await http.get(path)).status_code == 200
        finally:
            server.should_exit = True
            await task
            sock.close()
    finally:
        logger.removeHandler(handler)
        for f in logger_filters:
            logger.removeFilter(f)
        logger.setLevel(old_level)

    written = stream.getvalue()
    assert written.count("GET ") == 3, written
    for value in secrets.values():
        assert value not in written and value not in _log_text(all_logs)
    assert "token=•••" in written and "client_secret=•••" in written and "t=•••" in written
    assert "order=DE-1003" in written and "page=2" in written  # ordinary parameters stay
    assert "origin=https://x.zendesk.com" in written


# -- custom fields: only the listed ones, with their label and treatment ---------------------------

CUSTOM_FIELDS_TOML = """
[order_custom_fields.supportStatus]
label = { en = "Ticket state", de = "Ticketstatus" }
treatment = "show"

[order_custom_fields.internalNote]
label = "Note"
treatment = "mask"

[order_custom_fields.rmaStatus]
label = "RMA"
treatment = "exclude"
"""


async def test_only_listed_custom_fields_are_requested_and_shown(
    harness: Harness, zendesk: DemoZendesk, tmp_path: Path
) -> None:
    from importlib.resources import files

    demo = (files("commerce_context") / "demo.toml").read_text(encoding="utf-8")
    kept = demo[: demo.index("[order_custom_fields.")]  # the demo's stores, its own fields gone
    config = tmp_path / "mappings.toml"
    config.write_text(kept + CUSTOM_FIELDS_TOML, encoding="utf-8")
    settings = demo_settings(harness, zendesk, config_file=str(config))
    assert settings.mappings.order_custom_fields == ("supportStatus", "internalNote")

    sent: list[bytes] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path.endswith("/graphql"):
            sent.append(request.content)

    info = harness.demo.orders["DE-1002"]
    assert {"supportStatus", "internalNote", "rmaStatus", "warehouse"} <= set(info.custom_fields)
    async with (
        httpx.AsyncClient(event_hooks={"request": [record]}) as http,
        app_client(create_app(settings, http=http)) as client,
    ):
        session = Session(client, zendesk)
        await session.open()
        pages = {}
        for locale in ("en", "de"):
            response = await session.panels(
                order_number="DE-1002", brand_id=BERLIN, ui_locale=locale
            )
            assert response.status_code == 200, response.text
            pages[locale] = BeautifulSoup(response.text, "html.parser")

    for locale, label in (("en", "Ticket state"), ("de", "Ticketstatus")):
        page = pages[locale]
        shown = {
            str(dd["data-custom"]): (dd.find_previous_sibling("dt").get_text(), dd.get_text())
            for dd in page.select("dd[data-custom]")
        }
        # an enum arrives as its key (or {key, label}): either way "resolved"
        assert shown == {
            "supportStatus": (label, shown["supportStatus"][1]),
            "internalNote": ("Note", "•••"),
        }
        assert shown["supportStatus"][1].lower() == "resolved"
    html = str(pages["en"]) + str(pages["de"])
    assert info.custom_fields["internalNote"] not in html
    assert "BER-1" not in html  # the warehouse: not listed, never shown
    # only the listed, not excluded, names are requested upstream
    documents = b"\n".join(sent).decode()
    assert '\\"supportStatus\\"' in documents and '\\"internalNote\\"' in documents
    assert "rmaStatus" not in documents and "warehouse" not in documents
