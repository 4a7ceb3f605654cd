"""Tidio, inbound: visitor identity, the signed contact panel, webhooks and the Lyro action.

* `POST /tidio/identify` — who is chatting, learned only from what a shopper cannot forge: the
  storefront's **server** calling with `X-Api-Key: <CC_TIDIO_STOREFRONT_API_KEY>` (it names the
  customer id, anonymous session id, cart and store it knows), or the shopper's own
  commercetools access token (`Authorization: Bearer …`), checked by commercetools token
  introspection (`POST {auth}/oauth/introspect`), whose `scope` carries `customer_id:<id>` or
  `anonymous_id:<id>`. With a token, ids in the body are ignored. The answer: an opaque
  `distinct_id` for `document.tidioIdentify` (HMAC of the customer or anonymous id with
  `CC_TIDIO_IDENTITY_SECRET`: at most 55 characters, never the email or the commercetools id)
  and a signed visitor token (links.py, kind `visitor`). Whom the `distinct_id` stands for is
  stored (`Visitors`), so the contact-panel link is made on the server (`panel_url_for`, for
  the contact sync) and never reaches a browser: the panel is the agent's view, internal notes
  included. Only the storefront's server (API key) also gets `panel_url` in the answer.
* `GET /tidio/panel?t=…` and `GET /links/order?t=…` — the same masked panels as the Zendesk
  sidebar, resolved from the signed link's binding (never from other query parameters). Bad,
  expired and revoked links get a page that says so, with 401 or 410, and no data. Every view
  is audited (link key id, link id and the bound ids; the viewer is not known).
* `POST /links/order` — an agent in the Zendesk sidebar (its session) gets a signed order link
  for a macro or an internal email (`commerce-context links order` does the same for
  operators).
* `POST /tidio/webhooks` — `x-tidio-signature: t=<unix>,s=<hex>[,s=<hex>…]`, each `s` being
  hex(HMAC-SHA256(secret, raw body + "_" + t)); any `s` matching any configured secret passes;
  `t` must be within `CC_TIDIO_WEBHOOK_TOLERANCE`. The work is queued (202 at once: Tidio
  gives up after 4 seconds) under the key `tidio:webhook:<webhook_id>`, so a redelivery queues
  nothing twice. `contact.created` / `contact.updated` map the contact's `distinct_id` to its
  Tidio contact id (`Contacts`); a delivery older (`created_at`) than what is stored changes
  nothing, so out-of-order deliveries end in the newest state. A changed mapping queues
  `tidio.panel_link`: a fresh panel link written into the contact's `cc_panel_url` through
  Tidio's OpenAPI (also queued when a known shopper identifies again; at most once per contact
  and third of `CC_LINK_TTL`).
* `POST /tidio/lyro/order-status` — "where is my order" for Lyro (Tidio's AI agent): an order
  number and the email on that order, both must match. The answer is the order's state,
  shipment state and tracking links, nothing else. An unknown number and a wrong email get the
  same answer after the same work (one commercetools read, one digest comparison), so the
  action cannot tell anyone whether an order number exists. Rate-limited per visitor, per
  client address and per order number (`CC_TIDIO_LYRO_*`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import correlation, queries, tokens, views
from .commercetools import budget
from .database import Database
from .exceptions import (
    BadRequest,
    CacheUnavailable,
    ClientError,
    NotFound,
    TooManyRequests,
    Unauthorized,
    UpstreamAuthError,
    UpstreamUnavailable,
)
from .jobs import Permanent
from .limits import parse_json, read_body
from .links import Binding, Kind, Link, LinkKeys, Revocations, order_url, panel_url
from .panels import panel_context
from .resolution import Resolution, TicketContext, resolve
from .settings import Settings
from .worker import JobContext

__all__ = [
    "CONTACT_JOB",
    "HANDLERS",
    "PANEL_JOB",
    "PANEL_PROPERTY",
    "Contacts",
    "Introspector",
    "Shopper",
    "Tidio",
    "Visitors",
    "create_order_link",
    "distinct_id",
    "identify",
    "lyro_order_status",
    "panel",
    "panel_url_for",
    "parse_signature",
    "receive_webhook",
    "sign_webhook",
    "verify_webhook",
]

logger = logging.getLogger(__name__)

CONTACT_JOB = "tidio.contact"
PANEL_JOB = "tidio.panel_link"
# The URL contact property (created in Tidio's panel) that holds the signed contact-panel link.
PANEL_PROPERTY = "cc_panel_url"
MAX_WEBHOOK_BYTES = 256 * 1024
MAX_JSON_BYTES = 8 * 1024
SIGNATURE = "x-tidio-signature"
NO_STORE = {"Cache-Control": "no-store"}
# The panel carries personal data under a token in its URL: never send the URL on as a
# Referer (tracking and Merchant Center links), never cache or index it.
PANEL_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")
_ORDER_NUMBER = re.compile(r"^[A-Za-z0-9_./-]{1,64}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_CONTACT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*$")
NOT_FOUND_ANSWER = (
    "We could not find an order with this order number and email address. Please check both "
    "(the email address is the one the order was placed with) and try again."
)


# -- identity -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shopper:
    """Who the storefront (or commercetools, by introspection) says the visitor is."""

    customer_id: str | None = None
    anonymous_id: str | None = None

    @property
    def known(self) -> bool:
        return self.customer_id is not None


def distinct_id(secret: str, shopper: Shopper) -> str:
    """The opaque, stable id Tidio keys the visitor by: 46 characters, never an email or a
    commercetools id, the same for a shopper on every device (keyed by the customer id)."""
    if shopper.customer_id:
        subject = "customer:" + shopper.customer_id
    elif shopper.anonymous_id:
        subject = "anonymous:" + shopper.anonymous_id
    else:
        raise ValueError("a shopper needs a customer id or an anonymous id")
    digest = hmac.new(secret.encode(), subject.encode(), hashlib.sha256).digest()
    return "cc_" + _b64(digest)


class Introspector:
    """commercetools token introspection: is this shopper token active, and whose is it?

    Our API client needs the `introspect_oauth_tokens:{project}` scope to introspect tokens the
    storefront's client was issued."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self._settings = settings
        self._http = http

    def __repr__(self) -> str:
        return "<Introspector>"

    async def shopper(self, token: str) -> Shopper:
        settings = self._settings
        try:
            response = await self._http.post(
                f"{settings.auth_url}/oauth/introspect",
                params={"token": token},
                auth=(settings.ct_client_id, settings.ct_client_secret.get_secret_value()),
                headers={"Accept": "application/json"},
                timeout=settings.ct_timeout,
            )
        except httpx.HTTPError:
            raise UpstreamUnavailable("commercetools token introspection did not answer.") from None
        if response.status_code in (401, 403):
            raise UpstreamAuthError(
                "commercetools refused to introspect the shopper's token: the API client needs "
                "the introspect_oauth_tokens scope"
            )
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"commercetools token introspection answered HTTP {response.status_code}"
            )
        try:
            body = response.json()
        except ValueError:
            raise UpstreamUnavailable("commercetools token introspection sent no JSON") from None
        if not isinstance(body, dict) or body.get("active") is not True:
            raise Unauthorized("The shopper's commercetools session is not active. Sign in again.")
        exp = body.get("exp")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            seconds = exp / 1000 if exp > 10**11 else exp  # milliseconds or seconds
            if seconds <= time.time():
                raise Unauthorized("The shopper's commercetools session has expired.")
        scopes = str(body.get("scope") or "").split()
        customer = _scoped(scopes, "customer_id:")
        anonymous = _scoped(scopes, "anonymous_id:")
        if customer is None and anonymous is None:
            # An API client's own token: it names no shopper, so it identifies no one.
            raise Unauthorized("This commercetools token belongs to no shopper.")
        return Shopper(customer_id=customer, anonymous_id=None if customer else anonymous)


def _scoped(scopes: Sequence[str], prefix: str) -> str | None:
    for scope in scopes:
        if scope.startswith(prefix):
            value = scope[len(prefix) :]
            if _ID.match(value):
                return value
    return None


# -- the services the routes share ----------------------------------------------------------------


class Visitors:
    """Whom each distinct_id stands for (customer, anonymous session, cart, store), as the
    last identify call learned it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(self, distinct: str, binding: Binding) -> None:
        await self.db.execute(
            "INSERT INTO tidio_visitors (distinct_id, customer_id, anonymous_id, cart_id, store, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (distinct_id) DO UPDATE SET "
            "customer_id = excluded.customer_id, anonymous_id = excluded.anonymous_id, "
            "cart_id = excluded.cart_id, store = excluded.store, updated_at = excluded.updated_at",
            (distinct, binding.customer_id, binding.anonymous_id, binding.cart_id, binding.store,
             time.time()),
        )  # fmt: skip

    async def binding(self, distinct: str) -> Binding | None:
        """The contact panel's binding for this visitor, or None when never identified."""
        row = await self.db.fetchone(
            "SELECT customer_id, anonymous_id, cart_id, store FROM tidio_visitors "
            "WHERE distinct_id = ?",
            (distinct,),
        )
        if row is None:
            return None
        return Binding(
            "panel",
            customer_id=row["customer_id"],
            anonymous_id=row["anonymous_id"],
            cart_id=row["cart_id"],
            store=row["store"],
        )


async def panel_url_for(settings: Settings, db: Database, distinct: str) -> str | None:
    """A fresh signed contact-panel link for a visitor (the value of `PANEL_PROPERTY`), made
    on the server; None when links are off, `CC_PUBLIC_URL` is unset or the visitor unknown."""
    keys = LinkKeys.from_settings(settings)
    if keys is None or not settings.public_url:
        return None
    binding = await Visitors(db).binding(distinct)
    if binding is None:
        return None
    return panel_url(settings.public_url, keys.sign(binding, ttl=settings.link_ttl))


class Contacts:
    """Tidio contact id by distinct_id, learned from contact webhooks (newest wins)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def remember(self, distinct: str, contact_id: str, *, at: float) -> bool:
        """Store the mapping unless a newer delivery already did; True when applied."""
        changed = await self.db.execute(
            "INSERT INTO tidio_contacts (distinct_id, contact_id, at, updated_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (distinct_id) DO UPDATE SET "
            "contact_id = excluded.contact_id, at = excluded.at, updated_at = excluded.updated_at "
            "WHERE tidio_contacts.at <= excluded.at",
            (distinct, contact_id, float(at), time.time()),
        )
        return changed > 0

    async def contact_id(self, distinct: str) -> str | None:
        row = await self.db.fetchone(
            "SELECT contact_id FROM tidio_contacts WHERE distinct_id = ?", (distinct,)
        )
        return None if row is None else str(row["contact_id"])


@dataclass(frozen=True)
class Tidio:
    """Created once in the app lifespan (`request.state.tidio`)."""

    keys: LinkKeys | None
    revocations: Revocations
    contacts: Contacts
    visitors: Visitors
    introspector: Introspector

    @classmethod
    def create(cls, settings: Settings, http: httpx.AsyncClient, db: Database) -> Tidio:
        return cls(
            keys=LinkKeys.from_settings(settings),
            revocations=Revocations(db),
            contacts=Contacts(db),
            visitors=Visitors(db),
            introspector=Introspector(settings, http),
        )


def _tidio(request: Request) -> Tidio:
    tidio: Tidio = request.state.tidio
    return tidio


def base_url(request: Request) -> str:
    settings: Settings = request.state.settings
    return (settings.public_url or str(request.base_url)).rstrip("/")


# -- POST /tidio/identify --------------------------------------------------------------------------


async def identify(request: Request) -> Response:
    settings: Settings = request.state.settings
    tidio = _tidio(request)
    cors = _cors_headers(request, settings)
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors)
    if tidio.keys is None or settings.tidio_identity_secret is None:
        raise NotFound(
            "Tidio visitor identity is not configured (CC_LINK_KEYS, CC_TIDIO_IDENTITY_SECRET)."
        )
    body = await _json_object(request, MAX_JSON_BYTES)
    api_key = request.headers.get("x-api-key")
    bearer = tokens.bearer(request.headers.get("authorization"))
    store = _optional_id(body, "store")
    if store is not None and store not in settings.mappings.stores:
        raise BadRequest("store is not a configured store key.")
    if api_key is not None:
        wanted = settings.tidio_storefront_api_key
        if wanted is None or not hmac.compare_digest(
            api_key.strip().encode(), wanted.get_secret_value().encode()
        ):
            raise Unauthorized("The storefront API key is not valid.")
        shopper = Shopper(
            customer_id=_optional_id(body, "customer_id"),
            anonymous_id=_optional_id(body, "anonymous_id"),
        )
        if shopper.customer_id is None and shopper.anonymous_id is None:
            raise BadRequest("Send customer_id or anonymous_id (or both).")
        cart_id = _optional_id(body, "cart_id")  # the storefront server knows its cart
        via = "api_key"
    elif bearer is not None:
        # The shopper's own token: whatever ids the body names are ignored.
        await _charge_identify(request, settings)
        shopper = await tidio.introspector.shopper(bearer)
        cart_id = None
        via = "introspection"
    else:
        raise Unauthorized(
            "Identify with the storefront's X-Api-Key (from its server) or the shopper's "
            "commercetools access token (Authorization: Bearer …)."
        )
    secret = settings.tidio_identity_secret.get_secret_value()
    binding = {
        "customer_id": shopper.customer_id,
        "anonymous_id": shopper.anonymous_id,
        "cart_id": cart_id,
        "store": store,
    }
    ttl = settings.link_ttl
    distinct = distinct_id(secret, shopper)
    await tidio.visitors.remember(distinct, Binding("panel", **binding))
    contact_id = await tidio.contacts.contact_id(distinct)
    if contact_id is not None:  # a returning shopper: renew the contact's panel link
        await enqueue_panel_link(request.state.queue, settings, contact_id, distinct, "identify")
    answer: dict[str, Any] = {
        "distinct_id": distinct,
        "shopper": "customer" if shopper.known else "guest",
        "visitor_token": tidio.keys.sign(Binding("visitor", **binding), ttl=ttl),
        "expires_in": ttl,
    }
    if via == "api_key":
        # The server may keep it for its own use; a browser never gets the agent's view.
        panel = tidio.keys.sign(Binding("panel", **binding), ttl=ttl)
        answer["panel_url"] = panel_url(base_url(request), panel)
    logger.info("tidio visitor identified (%s, %s)", via, "customer" if shopper.known else "guest")
    return JSONResponse(answer, headers={**NO_STORE, **cors})


async def _charge_identify(request: Request, settings: Settings) -> None:
    """Browsers' identify calls per client address and minute: each costs commercetools a token
    introspection. If the store (Redis) does not answer, the call goes through (logged)."""
    client = request.client.host if request.client else "unknown"
    digest = hashlib.sha256(client.encode()).hexdigest()[:32]
    try:
        count, left = await request.state.store.count(f"identify:ip:{digest}", 60.0)
    except CacheUnavailable as exc:
        logger.warning("identify calls not counted: %s", exc.message)
        return
    if count > settings.tidio_identify_per_ip:
        raise TooManyRequests("Too many identify calls. Try again in a minute.", retry_after=left)


def _cors_headers(request: Request, settings: Settings) -> dict[str, str]:
    """The storefront's own pages may call with the shopper's token (CC_TIDIO_ALLOWED_ORIGINS)."""
    origin = request.headers.get("origin")
    if not origin or origin not in settings.tidio_allowed_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _optional_id(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _ID.match(value.strip()):
        raise BadRequest(f"{name} must be an id (letters, digits, - _ . :, at most 256).")
    return value.strip()


async def _json_object(request: Request, limit: int) -> Mapping[str, Any]:
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if not isinstance(body, Mapping):
        raise BadRequest("The request body must be a JSON object.")
    return body


# -- GET /tidio/panel, GET /links/order ----------------------------------------------------------


async def panel(request: Request) -> Response:
    """The contact panel (kind `panel`) or an order deep link (kind `order`)."""
    settings: Settings = request.state.settings
    tidio = _tidio(request)
    kind: Kind = "order" if request.url.path.startswith("/links/") else "panel"
    if tidio.keys is None:
        return _link_page(request, 404, "Signed links are not configured on this instance.")
    token = request.query_params.get("t", "")
    try:
        link = tidio.keys.verify(token, kind=kind)
        await tidio.revocations.check(link)
    except ClientError as exc:
        logger.info("%s link refused: %s", kind, exc.message)
        return _link_page(request, exc.status_code, exc.message)
    resolution = await _resolve_link(request, link)
    await request.state.audit.record(
        action=f"{kind}.view",
        source="link",
        target="panel",
        outcome="shown" if not resolution.empty else "empty",
        correlation_id=correlation.current(),
        order_id=link.binding.order_id,
        customer_id=link.binding.customer_id or (resolution.customer or {}).get("id"),
        detail={
            "kid": link.kid,
            "link_id": link.link_id,
            "anonymous_id": link.binding.anonymous_id,
            "cart_id": link.binding.cart_id,
            "store": link.binding.store,
        },
    )
    context = panel_context(resolution, settings)
    expires = datetime.fromtimestamp(link.expires_at, tz=UTC).isoformat()
    context.update(cc_actions=None, link_kind=kind, expires_at=expires)
    templates = request.state.templates
    response: Response = templates.TemplateResponse(
        request, "tidio_panel.html", context, headers=PANEL_HEADERS
    )
    return response


async def _resolve_link(request: Request, link: Link) -> Resolution:
    settings: Settings = request.state.settings
    binding = link.binding
    ticket = TicketContext(
        external_id=binding.customer_id,
        order_id=binding.order_id if binding.order_id and _is_uuid(binding.order_id) else None,
        order_number=binding.order_id if binding.order_id and not _is_uuid(binding.order_id)
        else None,
        ui_locale=_language(request.headers.get("accept-language")),
    )  # fmt: skip
    reader = request.state.reader
    with budget(settings.view_budget):
        resolution = await resolve(
            ticket,
            reader=reader,
            store=binding.store,
            custom_fields=settings.mappings.order_custom_fields,
            stores_configured=False,
        )
        if binding.kind == "order":
            return resolution  # an order link shows that order (and its customer) only
        cart = await _bound_cart(reader, binding)
    if cart is not None:
        resolution.cart = cart
    return resolution


async def _bound_cart(reader: Any, binding: Binding) -> dict[str, Any] | None:
    """The binding's cart (by id, or the anonymous session's active cart). Ownership is part of
    the predicate, so a cart id never shows someone else's cart."""
    read = bound_cart_read(binding)
    if read is None:
        return None
    answer = await reader.fetch([read], name="LinkCart")
    found = answer.found.get(read.key) or []
    for cart in found if isinstance(found, list) else [found]:
        if cart and cart.get("cartState", "Active") == "Active":
            return dict(cart)
    return None


def bound_cart_read(binding: Binding) -> queries.Read | None:
    """The carts query for a binding: `id` and owner (the customer, else the anonymous
    session), or the anonymous session's most recently changed active cart. Ids are checked
    (`_ID`: no quotes, no backslashes), so the predicate needs no escaping beyond its quotes."""
    if binding.customer_id:
        owner = f'customerId = "{binding.customer_id}"'
    elif binding.anonymous_id:
        owner = f'anonymousId = "{binding.anonymous_id}"'
    else:
        return None
    if binding.cart_id:
        where = f'id = "{binding.cart_id}" and {owner}'
    elif binding.customer_id:
        return None  # the customer's active cart is part of the resolution already
    else:
        where = f'{owner} and cartState = "Active"'
    for value in (binding.cart_id, binding.customer_id, binding.anonymous_id):
        if value is not None and not _ID.match(value):
            raise ValueError("not an id")
    return queries.Read(
        "lc",
        "carts",
        "Cart",
        (
            queries.Arg("where", "String", where),
            queries.Arg("limit", "Int", 1),
            queries.Arg("sort", "[String!]", ["lastModifiedAt desc"]),
        ),
        (views.CART,),
        many=True,
        store=binding.store,
    )


async def create_order_link(request: Request) -> Response:
    """`POST /links/order`: an agent in the Zendesk sidebar (its session, `Authorization:
    Bearer …`) gets a signed order link to paste into a macro or an internal email.
    Body: `{"order_id": "<id>"}` or `{"order_number": "<number>"}`, optional `"ttl"` seconds
    (at most `CC_LINK_TTL`). Audited with the agent's id."""
    from .sidebar import authenticate

    settings: Settings = request.state.settings
    tidio = _tidio(request)
    if tidio.keys is None or not settings.zendesk_enabled:
        raise NotFound("Order links need CC_LINK_KEYS and the Zendesk sidebar.")
    agent = authenticate(request, settings)
    body = await _json_object(request, MAX_JSON_BYTES)
    order = _optional_id(body, "order_id") or _optional_id(body, "order_number")
    if order is None:
        raise BadRequest("Send order_id or order_number.")
    ttl = body.get("ttl", settings.link_ttl)
    if not isinstance(ttl, int) or isinstance(ttl, bool) or not 60 <= ttl <= settings.link_ttl:
        raise BadRequest(f"ttl must be whole seconds from 60 to {settings.link_ttl}.")
    token = tidio.keys.sign(Binding("order", order_id=order), ttl=ttl)
    link = tidio.keys.verify(token, kind="order")
    await request.state.audit.record(
        action="order_link.create",
        source="sidebar",
        target="link",
        outcome="issued",
        correlation_id=correlation.current(),
        order_id=order if _is_uuid(order) else None,
        order_number=None if _is_uuid(order) else order,
        agent_id=agent.user_id,
        detail={"kid": link.kid, "link_id": link.link_id, "ttl": ttl},
    )
    return JSONResponse(
        {"url": order_url(base_url(request), token), "expires_in": ttl}, headers=NO_STORE
    )


def _link_page(request: Request, status: int, message: str) -> Response:
    templates = request.state.templates
    response: Response = templates.TemplateResponse(
        request,
        "link_error.html",
        {"status": status, "message": message, "reference": correlation.current()},
        status_code=status,
        headers=PANEL_HEADERS,
    )
    return response


def _is_uuid(value: str) -> bool:
    return re.fullmatch(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}", value) is not None


def _language(header: str | None) -> str | None:
    first = (header or "").split(",")[0].split(";")[0].strip()
    return first if _LANGUAGE.match(first) else None


# -- POST /tidio/webhooks --------------------------------------------------------------------------


def sign_webhook(secret: str, body: bytes, timestamp: int | str) -> str:
    """hex(HMAC-SHA256(secret, raw body + "_" + t)), as Tidio signs."""
    message = body + b"_" + str(timestamp).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def parse_signature(header: str | None) -> tuple[str, list[str]]:
    """`t=<unix>,s=<hex>[,s=<hex>…]` -> (t, [s, …]); Unauthorized when malformed."""
    if not header:
        raise Unauthorized("The x-tidio-signature header is missing.")
    timestamp: str | None = None
    signatures: list[str] = []
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if name == "t":
            timestamp = value.strip()
        elif name == "s" and value.strip():
            signatures.append(value.strip().lower())
    if timestamp is None or not timestamp.isdigit() or not signatures or len(signatures) > 10:
        raise Unauthorized("The x-tidio-signature header is not t=…,s=….")
    return timestamp, signatures


def verify_webhook(
    secrets_: Sequence[str], header: str | None, body: bytes, *, tolerance: float,
    now: float | None = None,
) -> int:  # fmt: skip
    """The delivery's timestamp when any signature matches any secret and it is recent."""
    timestamp, given = parse_signature(header)
    matched = False
    for secret in secrets_:
        wanted = sign_webhook(secret, body, timestamp).encode()
        for signature in given:
            # Every comparison runs: the time taken does not say which one matched.
            matched |= hmac.compare_digest(signature.encode(), wanted)
    if not matched:
        raise Unauthorized("The webhook signature does not match.")
    sent = int(timestamp)
    if abs((now if now is not None else time.time()) - sent) > tolerance:
        raise Unauthorized("The webhook timestamp is too old (or in the future).")
    return sent


async def receive_webhook(request: Request) -> Response:
    settings: Settings = request.state.settings
    if settings.tidio_webhook_secrets is None:
        raise NotFound("Tidio webhooks are not configured (CC_TIDIO_WEBHOOK_SECRETS).")
    body = await read_body(request, MAX_WEBHOOK_BYTES)
    secrets_ = [
        s.strip() for s in settings.tidio_webhook_secrets.get_secret_value().split(",") if s.strip()
    ]
    verify_webhook(
        secrets_,
        request.headers.get(SIGNATURE),
        body,
        tolerance=settings.tidio_webhook_tolerance,
    )
    envelope = parse_json(body)
    if not isinstance(envelope, Mapping):
        raise BadRequest("The webhook body must be a JSON object.")
    webhook_id = envelope.get("webhook_id")
    topic = envelope.get("topic")
    created_at = envelope.get("created_at")
    if not isinstance(webhook_id, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,64}", webhook_id):
        raise BadRequest("webhook_id must be an id.")
    if not isinstance(topic, str) or len(topic) > 64:
        raise BadRequest("topic must be a string.")
    if not isinstance(created_at, int | float) or isinstance(created_at, bool):
        raise BadRequest("created_at must be a unix timestamp.")
    if topic not in ("contact.created", "contact.updated"):
        logger.info("tidio webhook %s: topic %s acknowledged, nothing to do", webhook_id, topic)
        return JSONResponse({"accepted": True, "ignored": topic}, 202, headers=NO_STORE)
    content = envelope.get("content")
    if not isinstance(content, Mapping):
        raise BadRequest("content must be an object.")
    contact_id = content.get("id")
    distinct = content.get("distinct_id")
    if not isinstance(contact_id, str) or not _CONTACT_ID.match(contact_id):
        raise BadRequest("content.id must be a Tidio contact id.")
    if distinct is not None and not isinstance(distinct, str | int):
        raise BadRequest("content.distinct_id must be a string or a number.")
    if distinct is None or str(distinct) == "" or len(str(distinct)) > 55:
        # A visitor the storefront did not identify: nothing to map.
        return JSONResponse({"accepted": True, "ignored": "no distinct_id"}, 202, headers=NO_STORE)
    job = await request.state.queue.enqueue(
        CONTACT_JOB,
        {
            "webhook_id": webhook_id,
            "topic": topic,
            "created_at": float(created_at),
            "contact_id": contact_id,
            "distinct_id": str(distinct),
        },
        key=f"tidio:webhook:{webhook_id}",
        destination="local",
        correlation_id=correlation.current(),
        source=f"tidio:webhook:{webhook_id}",
    )
    logger.info("tidio webhook %s: %s -> job %s", webhook_id, topic, job.id)
    return JSONResponse({"accepted": True, "job": job.id}, 202, headers=NO_STORE)


async def remember_contact(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Job `tidio.contact`: the distinct_id -> Tidio contact id mapping (newest delivery wins),
    then the contact's panel link (`tidio.panel_link`) when this changed the mapping."""
    try:
        distinct = str(payload["distinct_id"])
        contact_id = str(payload["contact_id"])
        at = float(payload["created_at"])
    except (KeyError, TypeError, ValueError):
        raise Permanent("malformed tidio.contact payload") from None
    applied = await Contacts(ctx.ledger.db).remember(distinct, contact_id, at=at)
    if applied:
        await enqueue_panel_link(ctx.queue, ctx.settings, contact_id, distinct, ctx.job.source)
    return {"applied": applied, "contact_id": contact_id}


async def enqueue_panel_link(
    queue: Any, settings: Settings, contact_id: str, distinct: str, source: str | None
) -> None:
    """Queue writing the contact's panel link, at most once per contact and third of
    `CC_LINK_TTL` (so a returning shopper's link is renewed well before it expires)."""
    if not settings.tidio_api_enabled or settings.link_keys is None or not settings.public_url:
        return
    bucket = int(time.time() // max(settings.link_ttl / 3, 60))
    await queue.enqueue(
        PANEL_JOB,
        {"contact_id": contact_id, "distinct_id": distinct},
        key=f"tidio:panel:{contact_id}:{distinct}:{bucket}",
        destination="tidio",
        coalesce=f"tidio:panel:{contact_id}",
        correlation_id=correlation.current(),
        source=source,
    )


async def write_panel_link(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Job `tidio.panel_link`: a fresh signed panel link into the contact's `PANEL_PROPERTY`,
    through Tidio's OpenAPI (server to server: the link never passes through a browser)."""
    from .tidio_api import TidioClient

    contact_id, distinct = str(payload.get("contact_id")), str(payload.get("distinct_id"))
    if not ctx.settings.tidio_api_enabled:
        raise Permanent("the Tidio OpenAPI is not configured (CC_TIDIO_CLIENT_ID/SECRET)")
    db = ctx.ledger.db
    if await Contacts(db).contact_id(distinct) != contact_id:
        return {"skipped": "the distinct_id belongs to another contact now"}
    url = await panel_url_for(ctx.settings, db, distinct)
    if url is None:
        return {"skipped": "no visitor binding or links not configured"}
    change = {"properties": [{"name": PANEL_PROPERTY, "value": url}]}
    await TidioClient(ctx.settings, ctx.http).update_contact(contact_id, change)
    return {"written": PANEL_PROPERTY, "contact_id": contact_id}


HANDLERS = {CONTACT_JOB: remember_contact, PANEL_JOB: write_panel_link}


# -- POST /tidio/lyro/order-status -----------------------------------------------------------------


async def lyro_order_status(request: Request) -> Response:
    settings: Settings = request.state.settings
    wanted = settings.tidio_lyro_token
    if wanted is None:
        raise NotFound("The Lyro order-status action is not configured (CC_TIDIO_LYRO_TOKEN).")
    token = tokens.bearer(request.headers.get("authorization"))
    if token is None or not hmac.compare_digest(token.encode(), wanted.get_secret_value().encode()):
        raise Unauthorized("Send the action's token as Authorization: Bearer ….")
    body = await _json_object(request, MAX_JSON_BYTES)
    number = body.get("order_number")
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    email = body.get("email")
    visitor = body.get("visitor")
    if not isinstance(number, str) or not _ORDER_NUMBER.match(number.strip().lstrip("#")):
        raise BadRequest("order_number must be an order number.")
    if not isinstance(email, str) or not _EMAIL.match(email.strip()):
        raise BadRequest("email must be an email address.")
    if visitor is not None and (not isinstance(visitor, str | int) or len(str(visitor)) > 128):
        raise BadRequest("visitor must be a short string.")
    number = number.strip().lstrip("#")
    await _charge(request, settings, number=number, email=email, visitor=visitor)

    read = queries.order_by_number(number, [views.ORDER_SUMMARY, views.SHIPMENTS], key="o")
    with budget(settings.view_budget):
        found = await request.state.commercetools.fetch(queries.compose([read], "LyroOrder"))
    order = found.get("o") if isinstance(found.get("o"), dict) else None
    # The same comparison whether or not the order exists (a random stand-in otherwise).
    on_order = (order or {}).get("customerEmail") or uuid.uuid4().hex
    given = hashlib.sha256(email.strip().lower().encode()).digest()
    stored = hashlib.sha256(str(on_order).strip().lower().encode()).digest()
    matches = hmac.compare_digest(given, stored) and order is not None
    await request.state.audit.record(
        action="lyro.order_status",
        source="tidio:lyro",
        target="commercetools:order",
        outcome="answered" if matches else "not_matched",
        correlation_id=correlation.current(),
        order_id=order.get("id") if matches and order else None,
        order_number=number,
    )
    if not matches or order is None:
        return JSONResponse({"found": False, "answer": NOT_FOUND_ANSWER}, headers=NO_STORE)
    return JSONResponse(_order_answer(order, settings), headers=NO_STORE)


async def _charge(
    request: Request, settings: Settings, *, number: str, email: str, visitor: object
) -> None:
    """Count the lookup against the visitor (else the address asked about), the client address
    and the order number; 429 past any limit (refused lookups count too)."""
    store = request.state.store
    who = str(visitor) if visitor is not None else "email:" + email.strip().lower()
    client = request.client.host if request.client else "unknown"
    window = settings.tidio_lyro_window
    buckets = (
        ("visitor", who, settings.tidio_lyro_per_visitor),
        ("ip", client, settings.tidio_lyro_per_ip),
        ("order", number.lower(), settings.tidio_lyro_per_visitor),
    )
    for name, value, limit in buckets:
        digest = hashlib.sha256(value.encode()).hexdigest()[:32]  # no PII in store keys
        count, left = await store.count(f"lyro:{name}:{digest}", window)
        if count > limit:
            raise TooManyRequests(
                "Too many order lookups. Please wait a few minutes and try again.",
                retry_after=left,
            )


def _order_answer(order: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    templates = settings.mappings.tracking_urls
    tracking: list[dict[str, Any]] = []
    for delivery in (order.get("shippingInfo") or {}).get("deliveries") or []:
        for parcel in delivery.get("parcels") or []:
            data = parcel.get("trackingData") or {}
            tracking_id = data.get("trackingId")
            if not tracking_id or data.get("isReturn"):
                continue
            carrier = data.get("carrier")
            template = templates.get(str(carrier or "").strip().lower())
            url = template.replace("{tracking_id}", _quote(tracking_id)) if template else None
            tracking.append({"carrier": carrier, "tracking_id": tracking_id, "url": url})
    number = order.get("orderNumber") or order.get("id")
    state = order.get("orderState")
    shipment = order.get("shipmentState")
    words = [f"Order {number} is {state or 'being processed'}."]
    if shipment:
        words.append(f"Shipment: {shipment}.")
    links = [t["url"] or f"{t['carrier'] or 'tracking'} {t['tracking_id']}" for t in tracking]
    if links:
        words.append("Track it: " + ", ".join(links) + ".")
    return {
        "found": True,
        "order_number": number,
        "state": state,
        "shipment_state": shipment,
        "tracking": tracking,
        "answer": " ".join(words),
    }


def _quote(value: str) -> str:
    return quote(value, safe="")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
