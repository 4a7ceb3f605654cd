"""The demo's simulated storefront with the Tidio snippet (`make run`; never in production).

A small shop on the Berlin store of the seeded project: products, a cart, a consent banner,
"log in as Anna Schmidt". It plays the part of a merchant's storefront **server**: it keeps a
session (an anonymous id, later the logged-in customer), writes carts through commercetools'
REST API with its own API client, and asks commerce-context who the shopper is with
`POST /tidio/identify` and the storefront API key (`CC_TIDIO_STOREFRONT_API_KEY`), exactly as a
real storefront would. The page loads `tidio_widget/commerce-context-tidio.js` (the snippet) and,
in place of Tidio's script, the widget stand-in of the fake Tidio (`emulator/tidio.py`), whose
`/agent` page is the simulated Tidio agent view.

`demo_tidio()` serves the fake Tidio and gives the settings that point the service at it (the
OpenAPI client, the webhook secret the fake signs with, link and identity keys).
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .emulator.seed import PRODUCT_SPECS
from .emulator.tidio import FakeTidio, serve_fake_tidio
from .exceptions import BadRequest, NotFound, UpstreamUnavailable
from .limits import parse_json, read_body

__all__ = ["SNIPPET", "DemoShop", "demo_tidio", "routes"]

SNIPPET = Path(__file__).resolve().parents[2] / "tidio_widget" / "commerce-context-tidio.js"
STORE, CURRENCY, COUNTRY, LOCALE = "berlin", "EUR", "DE", "de-DE"
SHOPPER = "anna-schmidt"
COOKIE = "cc_demo_shop"


@dataclass
class DemoShop:
    """The storefront server's state and its commercetools API client."""

    http: httpx.AsyncClient
    api_url: str  # {api}/{projectKey}
    auth_url: str
    client_id: str
    client_secret: str = field(repr=False)
    customers: dict[str, str]  # customer key -> id
    names: dict[str, str]  # customer key -> display name
    tidio_url: str
    tidio_key: str
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _token: str | None = field(default=None, repr=False)

    async def _headers(self) -> dict[str, str]:
        if self._token is None:
            response = await self.http.post(
                f"{self.auth_url}/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(self.client_id, self.client_secret),
            )
            response.raise_for_status()
            self._token = str(response.json()["access_token"])
        return {"Authorization": f"Bearer {self._token}"}

    async def ct(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        response = await self.http.request(
            method, f"{self.api_url}{path}", json=body, headers=await self._headers()
        )
        if response.status_code >= 400:
            raise UpstreamUnavailable(f"commercetools answered {response.status_code}")
        return response.json()

    async def cart(self, session: dict[str, Any]) -> dict[str, Any] | None:
        customer = session.get("customer_key")
        if customer:
            where = f'customerId = "{self.customers[customer]}" and cartState = "Active"'
        else:
            where = f'anonymousId = "{session["anonymous_id"]}" and cartState = "Active"'
        query = str(httpx.QueryParams({"where": where, "limit": 20}))
        found = await self.ct("GET", "/carts?" + query)
        carts = sorted(found["results"], key=lambda c: c["lastModifiedAt"], reverse=True)
        return carts[0] if carts else None

    async def add(self, session: dict[str, Any], sku: str, quantity: int = 1) -> dict[str, Any]:
        cart = await self.cart(session)
        if cart is None:
            draft: dict[str, Any] = {
                "currency": CURRENCY,
                "country": COUNTRY,
                "locale": LOCALE,
                "store": {"typeId": "store", "key": STORE},
            }
            customer = session.get("customer_key")
            if customer:
                draft["customerId"] = self.customers[customer]
            else:
                draft["anonymousId"] = session["anonymous_id"]
            cart = await self.ct("POST", "/carts", draft)
        action = {"action": "addLineItem", "sku": sku, "quantity": quantity}
        updated: dict[str, Any] = await self.ct(
            "POST", f"/carts/{cart['id']}", {"version": cart["version"], "actions": [action]}
        )
        return updated


def _shop(request: Request) -> DemoShop:
    demo = request.state.demo
    shop = getattr(demo, "shop", None) if demo is not None else None
    if not isinstance(shop, DemoShop):
        raise NotFound("This instance runs without the demo storefront.")
    return shop


def _session(request: Request, shop: DemoShop) -> tuple[str, dict[str, Any]]:
    sid = request.cookies.get(COOKIE, "")
    if sid not in shop.sessions:
        sid = secrets.token_urlsafe(16)
        shop.sessions[sid] = {"anonymous_id": str(uuid.uuid4()), "customer_key": None}
    return sid, shop.sessions[sid]


def _with_cookie(response: Response, sid: str) -> Response:
    response.set_cookie(COOKIE, sid, httponly=True, samesite="lax", path="/demo/shop")
    return response


def _summary(cart: dict[str, Any] | None) -> dict[str, Any]:
    if not cart:
        return {"items": 0, "total": "0.00", "lines": []}
    names = {p.sku: p.name_de for p in PRODUCT_SPECS}
    price = cart["totalPrice"]
    return {
        "id": cart["id"],
        "items": sum(line["quantity"] for line in cart["lineItems"]),
        "total": f"{price['centAmount'] / 100:.2f}",
        "lines": [
            {"sku": line["variant"].get("sku"), "name": names.get(line["variant"].get("sku"), ""),
             "quantity": line["quantity"]}
            for line in cart["lineItems"]
        ],
    }  # fmt: skip


async def page(request: Request) -> Response:
    shop = _shop(request)
    sid, session = _session(request, shop)
    products = [
        {"sku": p.sku, "name": p.name_de, "price": f"{p.prices[CURRENCY] / 100:.2f}"}
        for p in PRODUCT_SPECS
    ]
    customer = session.get("customer_key")
    context = {
        "products": products,
        "shopper": shop.names.get(customer) if customer else None,
        "demo_shopper": shop.names[SHOPPER],
        "tidio_script": f"{shop.tidio_url}/widget/{shop.tidio_key}.js",
        "tidio_key": shop.tidio_key,
        "agent_url": f"{shop.tidio_url}/agent",
        "backend_url": str(request.base_url).rstrip("/"),
    }
    response: Response = request.state.templates.TemplateResponse(
        request, "demo_shop.html", context, headers={"Cache-Control": "no-store"}
    )
    return _with_cookie(response, sid)


async def snippet(request: Request) -> Response:
    _shop(request)
    return Response(SNIPPET.read_text(), media_type="application/javascript")


async def state(request: Request) -> Response:
    shop = _shop(request)
    sid, session = _session(request, shop)
    cart = await shop.cart(session)
    body = {"shopper": session.get("customer_key"), "cart": _summary(cart)}
    return _with_cookie(JSONResponse(body, headers={"Cache-Control": "no-store"}), sid)


async def add_to_cart(request: Request) -> Response:
    shop = _shop(request)
    sid, session = _session(request, shop)
    body = parse_json(await read_body(request, 4096))  # bad JSON is a 400, like everywhere
    sku = body.get("sku") if isinstance(body, dict) else None
    if sku not in {p.sku for p in PRODUCT_SPECS}:
        raise BadRequest("Unknown product.")
    cart = await shop.add(session, str(sku))
    return _with_cookie(JSONResponse({"cart": _summary(cart)}), sid)


async def login(request: Request) -> Response:
    """Log in as the demo shopper; the guest cart's lines move into the shopper's cart."""
    shop = _shop(request)
    sid, session = _session(request, shop)
    guest = await shop.cart(session) if not session.get("customer_key") else None
    session["customer_key"] = SHOPPER
    for line in (guest or {}).get("lineItems", []):
        await shop.add(session, line["variant"]["sku"], line["quantity"])
    return _with_cookie(JSONResponse({"shopper": SHOPPER}), sid)


async def logout(request: Request) -> Response:
    shop = _shop(request)
    shop.sessions.pop(request.cookies.get(COOKIE, ""), None)
    response = JSONResponse({"shopper": None})
    response.delete_cookie(COOKIE, path="/demo/shop")
    return response


async def identify(request: Request) -> Response:
    """The storefront server asks commerce-context who is chatting (API key, server to server)."""
    shop = _shop(request)
    sid, session = _session(request, shop)
    settings = request.state.settings
    key = settings.tidio_storefront_api_key
    if key is None:
        raise NotFound("CC_TIDIO_STOREFRONT_API_KEY is not set.")
    cart = await shop.cart(session)
    customer = session.get("customer_key")
    body: dict[str, Any] = {"store": STORE, "cart_id": cart["id"] if cart else None}
    if customer:
        body["customer_id"] = shop.customers[customer]
    else:
        body["anonymous_id"] = session["anonymous_id"]
    response = await shop.http.post(
        str(request.base_url).rstrip("/") + "/tidio/identify",
        json=body,
        headers={"X-Api-Key": key.get_secret_value()},
    )
    answer = response.json()
    # The page gets what the snippet needs; the panel link is for agents (the sync sets it).
    if isinstance(answer, dict):
        answer.pop("panel_url", None)
    return _with_cookie(JSONResponse(answer, status_code=response.status_code), sid)


def routes() -> list[Route]:
    return [
        Route("/demo/shop", page, methods=["GET"]),
        Route("/demo/shop/snippet.js", snippet, methods=["GET"]),
        Route("/demo/shop/state", state, methods=["GET"]),
        Route("/demo/shop/cart", add_to_cart, methods=["POST"]),
        Route("/demo/shop/login", login, methods=["POST"]),
        Route("/demo/shop/logout", logout, methods=["POST"]),
        Route("/demo/shop/identify", identify, methods=["POST"]),
    ]


@contextlib.asynccontextmanager
async def demo_tidio(
    harness: Any, client_id: str, client_secret: str
) -> AsyncIterator[tuple[DemoShop, FakeTidio, dict[str, Any]]]:
    """The fake Tidio served on loopback, the demo shop, and the settings for both."""
    from .tidio_sync import PROPERTIES

    webhook_secret = secrets.token_urlsafe(24)
    fake = FakeTidio(webhook_secret=webhook_secret)
    for name, kind in PROPERTIES.items():
        fake.define(name, kind)
    async with serve_fake_tidio(fake) as (_, url), httpx.AsyncClient(timeout=10) as http:
        customers = {k: c.id for k, c in harness.demo.customers.items()}
        shop = DemoShop(
            http=http,
            api_url=f"{harness.api_url}/{harness.project_key}",
            auth_url=harness.auth_url,
            client_id=client_id,
            client_secret=client_secret,
            customers=customers,
            names={k: k.replace("-", " ").title() for k in customers},
            tidio_url=url,
            tidio_key=fake.public_key,
        )
        settings = {
            "link_keys": "demo:" + secrets.token_urlsafe(33),
            "tidio_identity_secret": secrets.token_urlsafe(33),
            "tidio_storefront_api_key": secrets.token_urlsafe(33),
            "tidio_webhook_secrets": webhook_secret,
            "tidio_api_url": url,
            "tidio_client_id": fake.client_id,
            "tidio_client_secret": fake.client_secret,
            "tidio_batch_window": 1.0,
        }
        yield shop, fake, settings
