"""Outbound sync to Tidio: cart and order context as contact properties.

Job kinds (registered in handlers.py; on when `CC_TIDIO_CLIENT_ID`/`_SECRET` and
`CC_TIDIO_IDENTITY_SECRET` are set):

* `tidio.order` (destination `commercetools`), payload `{"order_id"}`, coalesced per order: reads
  the order, then the shopper's orders (the customer's, or the anonymous session's), and queues
  the **order** properties of the shopper's contact: the newest order's number, state, shipment
  state and tracking link, the order count and total spent (orders not cancelled, in the newest
  order's currency), the routing properties and the contact-panel link.
* `tidio.cart` (destination `commercetools`), payload `{"cart_id"}` or a signed visitor's
  `{"customer_id"|"anonymous_id", "store"}`: reads the cart and queues the **cart** properties
  (item count, total, last change, status, optionally the lines) and the routing properties; and
  a `tidio.cart_idle` check after `CC_TIDIO_CART_IDLE` seconds.
* `tidio.cart_idle`: when the cart is still at the version it had, active and not empty, queues
  `cart_status = abandoned` (the signal a Tidio Flow starts from; docs/tidio.md).
* `tidio.push` (destination `tidio`, rate-limited by the engine), payload
  `{"distinct_id", "email"?, "group", "values", "at"}`, coalesced per contact and group (only the
  latest values of a group are ever sent): the job that runs absorbs the other queued pushes (up
  to 100 contacts), merges each contact's groups property by property (newest `at` wins),
  resolves the Tidio contact id (the `contact.created`/`contact.updated` webhooks' mapping in
  `tidio_contacts`, else a lookup by the order's email), drops properties Tidio has no
  definition for, and sends **one** `PATCH /contacts/batch`. Tidio saves a batch all or nothing
  and does not say which contact it refused, so a refused batch is split in two halves, each
  queued as its own push (each then waits for its own rate-limit token); a refused single
  contact is dead at once, with the reason, for an operator to look at.

Everything is idempotent: handlers re-read commercetools, so a re-run sends the latest values,
and sending the same values twice changes nothing in Tidio. Tidio sends no webhook for changes
made through its API, so our writes never come back as contact webhooks.

The routing properties (`store`, `locale`, `currency`, `market`) let Tidio Flows and routing
rules segment by store; docs/tidio.md shows a Flow that routes by store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import correlation, queries, tidio
from .exceptions import (
    BadRequest,
    CommerceContextError,
    NotFound,
    TooManyRequests,
    UpstreamRejected,
)
from .jobs import Job, Permanent, Queue
from .limits import parse_json, read_body
from .links import Binding, LinkKeys, panel_url
from .queries import Read, compose
from .settings import Settings
from .tidio_api import MAX_BATCH, MAX_VALUE, TidioClient
from .views import View, string_literal
from .worker import JobContext

__all__ = [
    "CART_IDLE_KIND",
    "CART_KIND",
    "HANDLERS",
    "MAX_MESSAGE_BYTES",
    "ORDER_KIND",
    "PROPERTIES",
    "PUSH_KIND",
    "cart_context",
    "cart_idle",
    "cart_notification",
    "cart_properties",
    "enqueue_cart",
    "enqueue_for_events",
    "enqueue_order",
    "enqueue_push",
    "order_context",
    "push",
]

logger = logging.getLogger(__name__)

ORDER_KIND = "tidio.order"
CART_KIND = "tidio.cart"
CART_IDLE_KIND = "tidio.cart_idle"
PUSH_KIND = "tidio.push"
SOURCE = "worker"
MAX_MESSAGE_BYTES = 4 * 1024
CART_NOTIFICATIONS, CART_WINDOW = 30, 60.0  # per visitor token: a busy shopper's cart page
ORDERS_PER_SHOPPER = 500  # orders counted for order_count and total_spent
DEFINITIONS_TTL = 600.0  # seconds Tidio's property definitions are trusted
# The contact properties this sync writes, with the type to create each with in Tidio.
PROPERTIES: dict[str, str] = {
    "cc_store": "text",
    "cc_locale": "text",
    "cc_currency": "text",
    "cc_market": "text",
    "cc_panel_url": "url",
    "cc_cart_items": "number",
    "cc_cart_total": "number",
    "cc_cart_updated_at": "text",
    "cc_cart_status": "text",
    "cc_cart_lines": "text",
    "cc_last_order": "text",
    "cc_last_order_state": "text",
    "cc_last_order_shipment": "text",
    "cc_last_order_tracking": "url",
    "cc_order_count": "number",
    "cc_total_spent": "number",
}
MONEY = "centAmount currencyCode fractionDigits"
TIDIO_ORDER = View(
    "tidio_order",
    "Order",
    f"""
    id version createdAt orderNumber customerId customerEmail anonymousId locale country
    orderState shipmentState storeRef {{ key }} totalPrice {{ {MONEY} }}
    shippingInfo {{ deliveries {{ parcels {{ createdAt trackingData {{ trackingId carrier
      isReturn }} }} }} }}
    """,
)
TIDIO_CART = View(
    "tidio_cart",
    "Cart",
    f"""
    id version lastModifiedAt cartState customerId anonymousId customerEmail locale country
    storeRef {{ key }} totalLineItemQuantity totalPrice {{ {MONEY} }}
    lineItems {{ quantity nameAllLocales {{ locale value }} }}
    """,
)
# Order messages after which the order properties may change.
ORDER_MESSAGES = frozenset(
    {
        "OrderCreated", "OrderImported", "OrderStateChanged", "OrderShipmentStateChanged",
        "OrderStateTransition", "ParcelAddedToDelivery", "DeliveryAdded",
        "ParcelTrackingDataUpdated", "ReturnInfoAdded", "ReturnInfoSet", "OrderStoreSet",
        "ResourceCreated", "ResourceUpdated",
    }
)  # fmt: skip
# Tidio's property definitions per API base: (read at, name -> type).
_DEFINITIONS: dict[str, tuple[float, dict[str, str]]] = {}


def enabled(settings: Settings) -> bool:
    return settings.tidio_api_enabled and settings.tidio_identity_secret is not None


# -- producing -----------------------------------------------------------------------------------


async def enqueue_order(
    queue: Queue, order_id: str, *, version: int | None = None, source: str = "commercetools"
) -> Job:
    marker = version if version is not None else f"t{time.time_ns()}"
    return await queue.enqueue(
        ORDER_KIND,
        {"order_id": order_id},
        key=f"tidio:order:{order_id}:{marker}",
        destination="commercetools",
        coalesce=f"tidio:order:{order_id}",
        correlation_id=correlation.current(),
        source=source,
    )


async def enqueue_cart(
    queue: Queue,
    payload: dict[str, Any],
    *,
    version: int | None = None,
    source: str = "commercetools",
) -> Job:
    """A changed cart (`{"cart_id"}`), or a visitor's (`customer_id`/`anonymous_id`)."""
    if payload.get("cart_id"):
        target = str(payload["cart_id"])
    elif payload.get("customer_id"):
        target = f"c-{payload['customer_id']}"
    else:
        target = f"a-{payload.get('anonymous_id')}"
    marker = version if version is not None else f"t{time.time_ns()}"
    return await queue.enqueue(
        CART_KIND,
        payload,
        key=f"tidio:cart:{target}:{marker}",
        destination="commercetools",
        coalesce=f"tidio:cart:{target}",
        correlation_id=correlation.current(),
        source=source,
    )


async def enqueue_for_events(queue: Queue, settings: Settings, events: Iterable[Any]) -> int:
    """Tidio jobs for commercetools events (`events.Event`), as the subscription endpoint
    delivers them. Returns the jobs enqueued (none when the Tidio sync is off)."""
    if not enabled(settings):
        return 0
    count = 0
    for event in events:
        if event.kind == "order" and event.type in ORDER_MESSAGES:
            await enqueue_order(queue, event.resource_id, version=event.version)
            count += 1
        elif event.kind == "cart" and event.type not in ("CartDeleted", "ResourceDeleted"):
            await enqueue_cart(queue, {"cart_id": event.resource_id}, version=event.version)
            count += 1
    return count


async def enqueue_push(
    queue: Queue,
    settings: Settings,
    *,
    distinct_id: str,
    group: str,
    values: Mapping[str, Any],
    key: str,
    email: str | None = None,
    customer_id: str | None = None,
    delay: float | None = None,
    correlation_id: str | None = None,
) -> Job:
    """Properties of one group (`order`, `cart`, `idle`) for the shopper's contact, coalesced
    per contact and group (latest values win), sent after `CC_TIDIO_BATCH_WINDOW`."""
    payload = {
        "distinct_id": distinct_id,
        "group": group,
        "values": dict(values),
        "at": time.time(),
        "email": email,
        "customer_id": customer_id,
    }
    return await queue.enqueue(
        PUSH_KIND,
        payload,
        key=f"tidio:push:{distinct_id}:{group}:{key}",
        destination="tidio",
        coalesce=f"tidio:push:{distinct_id}:{group}",
        delay=settings.tidio_batch_window if delay is None else delay,
        correlation_id=correlation_id,
        source=SOURCE,
    )


async def _enqueue_push(
    ctx: JobContext,
    *,
    distinct_id: str,
    group: str,
    values: Mapping[str, Any],
    email: str | None = None,
    customer_id: str | None = None,
    delay: float | None = None,
) -> Job:
    return await enqueue_push(
        ctx.queue,
        ctx.settings,
        distinct_id=distinct_id,
        group=group,
        values=values,
        key=ctx.job.key,
        email=email,
        customer_id=customer_id,
        delay=delay,
        correlation_id=ctx.job.correlation_id,
    )


# -- what the properties are ----------------------------------------------------------------------


def _amount(money: Mapping[str, Any] | None) -> str | None:
    if not money:
        return None
    digits = int(money.get("fractionDigits") or 0)
    cents = int(money.get("centAmount") or 0)
    return f"{cents / 10**digits:.{digits}f}"


def routing(entity: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """store, locale, currency, market: what Flows and routing rules segment by."""
    store = (entity.get("storeRef") or {}).get("key")
    scope = settings.mappings.stores.get(store) if store else None
    currency = (entity.get("totalPrice") or {}).get("currencyCode")
    return {
        "cc_store": store,
        "cc_locale": entity.get("locale") or (scope.locale if scope else None),
        "cc_currency": currency or (scope.currency if scope else None),
        "cc_market": entity.get("country"),
    }


def cart_properties(
    cart: Mapping[str, Any], settings: Settings, *, status: str | None = None
) -> dict[str, Any]:
    """The cart properties (and the routing ones) of a cart as read with TIDIO_CART."""
    state = cart.get("cartState")
    quantity = int(cart.get("totalLineItemQuantity") or 0)
    values: dict[str, Any] = {
        **routing(cart, settings),
        "cc_cart_items": quantity if state == "Active" else 0,
        "cc_cart_total": _amount(cart.get("totalPrice")) if state == "Active" else "0",
        "cc_cart_updated_at": cart.get("lastModifiedAt"),
        "cc_cart_status": status
        or ("ordered" if state == "Ordered" else "active" if quantity else "empty"),
    }
    if settings.tidio_cart_lines:
        values["cc_cart_lines"] = _lines(cart, values.get("cc_locale"))
    return values


def _lines(cart: Mapping[str, Any], locale: str | None) -> str:
    parts = []
    for line in cart.get("lineItems") or []:
        names = {n.get("locale"): n.get("value") for n in line.get("nameAllLocales") or []}
        name = names.get(locale) or next(iter(names.values()), "item")
        parts.append(f"{line.get('quantity')} x {name}")
    text = "; ".join(parts)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def order_properties(
    newest: Mapping[str, Any], orders: list[Mapping[str, Any]], settings: Settings
) -> dict[str, Any]:
    currency = (newest.get("totalPrice") or {}).get("currencyCode")
    counted = [o for o in orders if o.get("orderState") != "Cancelled"]
    spent_cents = 0
    digits = int((newest.get("totalPrice") or {}).get("fractionDigits") or 2)
    for order in counted:
        price = order.get("totalPrice") or {}
        if price.get("currencyCode") == currency:
            spent_cents += int(price.get("centAmount") or 0)
    return {
        **routing(newest, settings),
        "cc_last_order": newest.get("orderNumber") or newest.get("id"),
        "cc_last_order_state": newest.get("orderState"),
        "cc_last_order_shipment": newest.get("shipmentState"),
        "cc_last_order_tracking": _tracking_url(newest, settings),
        "cc_order_count": len(counted),
        "cc_total_spent": f"{spent_cents / 10**digits:.{digits}f}",
    }


def _tracking_url(order: Mapping[str, Any], settings: Settings) -> str | None:
    """The newest outbound parcel's tracking link, when the carrier has a configured URL."""
    newest: tuple[str, str] | None = None
    for delivery in (order.get("shippingInfo") or {}).get("deliveries") or []:
        for parcel in delivery.get("parcels") or []:
            data = parcel.get("trackingData") or {}
            if not data.get("trackingId") or data.get("isReturn"):
                continue
            template = settings.mappings.tracking_urls.get(str(data.get("carrier") or "").lower())
            if template is None:
                continue
            url = template.replace("{tracking_id}", quote(str(data["trackingId"]), safe=""))
            stamp = str(parcel.get("createdAt") or "")
            if newest is None or stamp >= newest[0]:
                newest = (stamp, url)
    return newest[1] if newest else None


def _distinct(settings: Settings, customer_id: str | None, anonymous_id: str | None) -> str:
    secret = settings.tidio_identity_secret
    if secret is None:
        raise Permanent("CC_TIDIO_IDENTITY_SECRET is not set")
    shopper = tidio.Shopper(
        customer_id=customer_id, anonymous_id=None if customer_id else anonymous_id
    )
    return tidio.distinct_id(secret.get_secret_value(), shopper)


def _panel(
    settings: Settings, *, customer_id: str | None, anonymous_id: str | None,
    cart_id: str | None = None, store: str | None = None,
) -> str | None:  # fmt: skip
    keys = LinkKeys.from_settings(settings)
    if keys is None:
        return None
    binding = Binding(
        "panel",
        customer_id=customer_id,
        anonymous_id=None if customer_id else anonymous_id,
        cart_id=cart_id,
        store=store,
    )
    base = (settings.public_url or "").rstrip("/")
    return panel_url(base, keys.sign(binding, ttl=settings.link_ttl)) if base else None


# -- handlers --------------------------------------------------------------------------------------


async def order_context(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    order_id = payload.get("order_id")
    if not isinstance(order_id, str) or not order_id:
        raise Permanent("malformed tidio.order payload")
    read = queries.order_by_id(order_id, [TIDIO_ORDER], key="order")
    order = (await ctx.commercetools.fetch(compose([read], "TidioOrder")))["order"]
    if not order:
        return {"skipped": "order not found"}
    customer_id, anonymous_id = order.get("customerId"), order.get("anonymousId")
    if customer_id:
        where = f"customerId = {string_literal(customer_id)}"
    elif anonymous_id:
        where = f"anonymousId = {string_literal(anonymous_id)}"
    else:
        return {"skipped": "a guest order without a session: no Tidio contact to address"}
    orders_read = queries.filtered(
        "orders",
        "orders",
        "Order",
        where,
        [TIDIO_ORDER],
        limit=ORDERS_PER_SHOPPER,
        store=None,
        sort="createdAt desc",
    )
    orders = (await ctx.commercetools.fetch(compose([orders_read], "TidioOrders")))["orders"]
    orders = [o for o in orders or [] if isinstance(o, dict)] or [order]
    newest = orders[0]
    values = order_properties(newest, orders, ctx.settings)
    values[tidio.PANEL_PROPERTY] = _panel(
        ctx.settings,
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        store=values.get("cc_store"),
    )
    distinct = _distinct(ctx.settings, customer_id, anonymous_id)
    job = await _enqueue_push(
        ctx,
        distinct_id=distinct,
        group="order",
        values=values,
        email=order.get("customerEmail"),
        customer_id=customer_id,
    )
    return {"push": job.id, "orders": len(orders)}


async def cart_context(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    cart = await _read_cart(ctx, payload)
    if cart is None:
        return {"skipped": "no cart"}
    customer_id, anonymous_id = cart.get("customerId"), cart.get("anonymousId")
    if not customer_id and not anonymous_id:
        return {"skipped": "a cart without a shopper"}
    distinct = _distinct(ctx.settings, customer_id, anonymous_id)
    if not customer_id and await tidio.Contacts(ctx.ledger.db).contact_id(distinct) is None:
        # A guest stays an anonymous visitor in Tidio (no distinct_id, no contact we can
        # address); the snippet sets its cart properties from the page.
        return {"skipped": "guest without a Tidio contact"}
    values = cart_properties(cart, ctx.settings)
    values[tidio.PANEL_PROPERTY] = _panel(
        ctx.settings,
        customer_id=customer_id,
        anonymous_id=anonymous_id,
        cart_id=cart.get("id"),
        store=values.get("cc_store"),
    )
    job = await _enqueue_push(
        ctx,
        distinct_id=distinct,
        group="cart",
        values=values,
        email=cart.get("customerEmail"),
        customer_id=customer_id,
    )
    if cart.get("cartState") == "Active" and values["cc_cart_items"]:
        await ctx.queue.enqueue(
            CART_IDLE_KIND,
            {"cart_id": cart["id"], "version": cart.get("version")},
            key=f"tidio:cart-idle:{cart['id']}:{cart.get('version')}",
            destination="commercetools",
            delay=ctx.settings.tidio_cart_idle,
            correlation_id=ctx.job.correlation_id,
            source=SOURCE,
        )
    return {"push": job.id}


async def cart_idle(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    cart = await _read_cart(ctx, {"cart_id": payload.get("cart_id")})
    if cart is None or cart.get("version") != payload.get("version"):
        return {"abandoned": False}
    if cart.get("cartState") != "Active" or not cart.get("totalLineItemQuantity"):
        return {"abandoned": False}
    customer_id, anonymous_id = cart.get("customerId"), cart.get("anonymousId")
    if not customer_id and not anonymous_id:
        return {"abandoned": False}
    distinct = _distinct(ctx.settings, customer_id, anonymous_id)
    await _enqueue_push(
        ctx,
        distinct_id=distinct,
        group="idle",
        values={"cc_cart_status": "abandoned"},
        email=cart.get("customerEmail"),
        customer_id=customer_id,
        delay=0.0,
    )
    return {"abandoned": True}


def _newest_cart(where: str, store: str | None) -> Read:
    return queries.filtered(
        "carts", "carts", "Cart", where, [TIDIO_CART], limit=1, store=store,
        sort="lastModifiedAt desc",
    )  # fmt: skip


async def _read_cart(ctx: JobContext, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    cart_id = payload.get("cart_id")
    customer_id = payload.get("customer_id")
    anonymous_id = payload.get("anonymous_id")
    store = payload.get("store")
    if isinstance(cart_id, str) and cart_id:
        read = queries.by_ids("carts", "Cart", [cart_id], [TIDIO_CART], key="carts")
    elif isinstance(customer_id, str) and customer_id:
        read = queries.active_cart(customer_id, [TIDIO_CART], store=store, key="cart")
    elif isinstance(anonymous_id, str) and anonymous_id:
        where = f'anonymousId = {string_literal(anonymous_id)} and cartState = "Active"'
        read = _newest_cart(where, store)
    else:
        raise Permanent("malformed tidio.cart payload")
    found = (await ctx.commercetools.fetch(compose([read], "TidioCart")))[read.key]
    cart = (found[0] if found else None) if isinstance(found, list) else found
    if not isinstance(cart, dict):
        return None
    # A visitor's notification names a cart: it must be that visitor's.
    if customer_id and cart.get("customerId") != customer_id:
        return None
    if anonymous_id and not customer_id and cart.get("anonymousId") != anonymous_id:
        return None
    return cart


# -- pushing -------------------------------------------------------------------------------------


async def push(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    client = TidioClient(ctx.settings, ctx.http)
    if "contacts" in payload:  # half of a refused batch: contact ids and values resolved
        contacts = {
            str(c["contact_id"]): dict(c["properties"])
            for c in payload["contacts"]
            if isinstance(c, dict)
        }
        refs = {cid: payload.get("refs", {}).get(cid) for cid in contacts}
    else:
        entries = await _with_absorbed(ctx, payload)
        contacts, refs = await _resolve(ctx, client, entries)
    if not contacts:
        return {"contacts": 0}
    definitions = await _definitions(ctx.settings, client)
    items = []
    for contact_id, values in contacts.items():
        properties = [
            {"name": name, "value": _value(value)}
            for name, value in sorted(values.items())
            if name in definitions
        ]
        if properties:
            items.append({"id": contact_id, "properties": properties})
    dropped = sorted({n for v in contacts.values() for n in v} - set(definitions))
    if dropped:
        logger.warning("tidio: properties not defined in Tidio, not sent: %s", ", ".join(dropped))
    if not items:
        return {"contacts": 0, "undefined": dropped}
    try:
        await client.update_contacts(items)
    except UpstreamRejected as exc:
        if len(items) == 1:
            await _audit(ctx, items, refs, "rejected", exc.errors)
            raise
        await _split(ctx, items, refs)
        return {"split": len(items)}
    await _audit(ctx, items, refs, "updated", [])
    return {"contacts": len(items), "undefined": dropped}


async def _with_absorbed(ctx: JobContext, payload: dict[str, Any]) -> list[dict[str, Any]]:
    """This push plus the other queued ones (up to 100 contacts).

    The absorbed jobs' ids go to the ledger first, so a crash before they are sent loses
    nothing (the re-run reads them again). Each is cancelled *before* its payload is read: a
    queued job takes newer values until then (coalescing), a cancelled one no longer, so the
    values sent are the newest ones. A job another worker claimed meanwhile is left to it."""
    key = f"tidio:absorbed:{ctx.job.key}"
    done = await ctx.ledger.done(key)
    if done is not None:
        ids = [str(i) for i in done.get("jobs", [])]
    else:
        ids = []
        contacts = {payload.get("distinct_id")}
        for job in await ctx.queue.list(state="queued", kind=PUSH_KIND, limit=1000):
            if job.id == ctx.job.id or "contacts" in job.payload:
                continue
            distinct = job.payload.get("distinct_id")
            if distinct not in contacts and len(contacts) >= MAX_BATCH:
                continue
            contacts.add(distinct)
            ids.append(job.id)
        await ctx.ledger.record(key, {"jobs": ids})
    entries = [payload]
    for job_id in ids:
        with contextlib.suppress(CommerceContextError):  # claimed meanwhile, or cancelled
            await ctx.queue.cancel(job_id)
        absorbed = await ctx.queue.get(job_id)
        if absorbed is not None and absorbed.state == "cancelled":
            entries.append(absorbed.payload)
    return entries


async def _resolve(
    ctx: JobContext, client: TidioClient, entries: list[dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Per Tidio contact id: the merged values (newest `at` wins per property)."""
    merged: dict[str, dict[str, tuple[float, Any]]] = {}
    emails: dict[str, str] = {}
    customers: dict[str, str] = {}
    for entry in entries:
        distinct = str(entry.get("distinct_id") or "")
        if not distinct:
            continue
        at = float(entry.get("at") or 0)
        slot = merged.setdefault(distinct, {})
        for name, value in (entry.get("values") or {}).items():
            if name not in slot or slot[name][0] <= at:
                slot[name] = (at, value)
        if entry.get("email"):
            emails[distinct] = str(entry["email"])
        if entry.get("customer_id"):
            customers[distinct] = str(entry["customer_id"])
    known = tidio.Contacts(ctx.ledger.db)
    contacts: dict[str, dict[str, Any]] = {}
    refs: dict[str, dict[str, Any]] = {}
    for distinct, slot in merged.items():
        contact_id = await known.contact_id(distinct)
        if contact_id is None and distinct in emails:
            contact_id = await _by_email(client, known, distinct, emails[distinct])
        if contact_id is None:
            await ctx.audit.record(
                action="tidio.contact.sync",
                source=SOURCE,
                target="tidio:contact",
                outcome="no_contact",
                correlation_id=ctx.job.correlation_id or correlation.current(),
                customer_id=customers.get(distinct),
                job_id=ctx.job.id,
            )
            continue
        contacts[contact_id] = {name: value for name, (_, value) in slot.items()}
        refs[contact_id] = {"customer_id": customers.get(distinct)}
    return contacts, refs


async def _by_email(
    client: TidioClient, known: tidio.Contacts, distinct: str, email: str
) -> str | None:
    """The contact with this email: the one carrying our distinct_id, else the only one."""
    found = await client.contacts_by_email(email)
    ours = [c for c in found if c.get("distinct_id") == distinct]
    chosen = ours or (found if len(found) == 1 and not found[0].get("distinct_id") else [])
    if not chosen or not isinstance(chosen[0].get("id"), str):
        return None
    contact_id = str(chosen[0]["id"])
    await known.remember(distinct, contact_id, at=0.0)  # any webhook (newer) overrides it
    return contact_id


async def _definitions(settings: Settings, client: TidioClient) -> dict[str, str]:
    base = settings.tidio_api_base
    cached = _DEFINITIONS.get(base)
    now = time.monotonic()
    if cached is not None and now - cached[0] < DEFINITIONS_TTL:
        return cached[1]
    names = await client.contact_properties()
    _DEFINITIONS[base] = (now, names)
    return names


def _value(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


async def _split(ctx: JobContext, items: list[dict[str, Any]], refs: Mapping[str, Any]) -> None:
    half = len(items) // 2
    for suffix, part in (("a", items[:half]), ("b", items[half:])):
        contacts = [
            {"contact_id": i["id"], "properties": {p["name"]: p["value"] for p in i["properties"]}}
            for i in part
        ]
        await ctx.queue.enqueue(
            PUSH_KIND,
            {"contacts": contacts, "refs": {i["id"]: refs.get(i["id"]) for i in part}},
            key=f"{ctx.job.key}:{suffix}",
            destination="tidio",
            correlation_id=ctx.job.correlation_id,
            source=SOURCE,
        )


async def _audit(
    ctx: JobContext,
    items: list[dict[str, Any]],
    refs: Mapping[str, Any],
    outcome: str,
    errors: list[str],
) -> None:
    for item in items:
        ref = refs.get(item["id"]) or {}
        await ctx.audit.record(
            action="tidio.contact.sync",
            source=SOURCE,
            target="tidio:contact",
            outcome=outcome,
            correlation_id=ctx.job.correlation_id or correlation.current(),
            customer_id=ref.get("customer_id"),
            job_id=ctx.job.id,
            detail={
                "contact_id": item["id"],
                "properties": [p["name"] for p in item["properties"]],
                **({"errors": errors} if errors else {}),
            },
        )


# -- POST /tidio/cart: the snippet's signed cart notification ------------------------------------


async def cart_notification(request: Request) -> Response:
    """The storefront snippet says "my cart changed" with its signed visitor token. Answers the
    cart properties to set from the page, and queues the same for the Tidio API."""
    settings: Settings = request.state.settings
    state: tidio.Tidio = request.state.tidio
    cors = tidio._cors_headers(request, settings)
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors)
    if state.keys is None:
        raise NotFound("Signed links are not configured on this instance (CC_LINK_KEYS).")
    body = parse_json(await read_body(request, MAX_MESSAGE_BYTES))
    if not isinstance(body, dict) or not isinstance(body.get("visitor_token"), str):
        raise BadRequest('Send {"visitor_token": "…"} as returned by POST /tidio/identify.')
    link = state.keys.verify(body["visitor_token"], kind="visitor")
    await state.revocations.check(link)
    # Each notification reads commercetools: bounded per visitor token.
    count, left = await request.state.store.count(
        f"tidio-cart:{link.kid}:{link.link_id}", CART_WINDOW
    )
    if count > CART_NOTIFICATIONS:
        raise TooManyRequests("Too many cart notifications; try again shortly.", retry_after=left)
    binding = link.binding
    payload: dict[str, Any] = {
        "customer_id": binding.customer_id,
        "anonymous_id": None if binding.customer_id else binding.anonymous_id,
        "store": binding.store,
    }
    if binding.cart_id:
        payload["cart_id"] = binding.cart_id
    cart = await _read_cart_cached(request, payload)
    properties = cart_properties(cart, settings) if cart is not None else {}
    if enabled(settings) and cart is not None:
        owner = binding.customer_id or binding.anonymous_id
        await request.state.queue.enqueue(
            CART_KIND,
            {k: v for k, v in payload.items() if v is not None},
            key=f"tidio:cart-notify:{owner}:{cart.get('version')}",
            destination="commercetools",
            coalesce=f"tidio:cart-notify:{owner}",
            delay=settings.tidio_batch_window,
            correlation_id=correlation.current(),
            source="tidio:snippet",
        )
    return JSONResponse(
        {"properties": {k: v for k, v in properties.items() if v is not None}},
        headers={**tidio.NO_STORE, **cors},
    )


async def _read_cart_cached(request: Request, payload: Mapping[str, Any]) -> dict[str, Any] | None:
    """The visitor's cart, read through the delta cache's reader (masked like every panel)."""
    customer_id, anonymous_id = payload.get("customer_id"), payload.get("anonymous_id")
    store, cart_id = payload.get("store"), payload.get("cart_id")
    if customer_id and not cart_id:
        read = queries.active_cart(customer_id, [TIDIO_CART], store=store, key="cart")
    else:
        owner = (
            f"customerId = {string_literal(customer_id)}"
            if customer_id
            else f"anonymousId = {string_literal(str(anonymous_id))}"
        )
        where = (
            f"id = {string_literal(cart_id)} and {owner}"
            if cart_id
            else f'{owner} and cartState = "Active"'
        )
        read = _newest_cart(where, store)
    # Fresh, not cached: the notification says the cart just changed.
    answer = await request.state.reader.fetch([read], refresh=True, name="TidioCartNotification")
    found = answer.found.get(read.key)
    cart = (found[0] if found else None) if isinstance(found, list) else found
    return dict(cart) if isinstance(cart, dict) else None


HANDLERS = {
    ORDER_KIND: order_context,
    CART_KIND: cart_context,
    CART_IDLE_KIND: cart_idle,
    PUSH_KIND: push,
}
