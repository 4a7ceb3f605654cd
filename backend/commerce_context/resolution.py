"""From a ticket to the right customer and order.

Stable keys, strongest first:

1. an order chosen in the panel (`order_id`), or the order number / order id in the ticket's
   mapped custom field: that order, and its customer;
2. the requester's `external_id`, taken as a commercetools customer id;
3. the requester's email addresses (all identities): customers by `lowercaseEmail`, and orders
   placed with those addresses, including guest orders (no customer).

De-duplication, when one address matches several customers (store-scoped customers share an
address across stores): the customer of the brand's store wins; then the one with the most
recent order; then the earliest created. The others are reported so the panel can say they
exist. One shopper behind several Zendesk users needs nothing special: each ticket resolves
from its own requester's keys to the same commercetools records.

Store scoping: the ticket's brand maps to a store key (the mapping file). Orders of other
stores are left out of the list and counted; an order named explicitly in the ticket is shown
even if it belongs to another store, with a note saying so.

Everything is read in one GraphQL document; a second request is made only when the order to
detail is not among the first answer's (an ambiguous address whose newest order belongs to
another customer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import queries, views
from .cache import Reader
from .exceptions import BadRequest

__all__ = ["Resolution", "TicketContext", "plan", "resolve", "resolve_answer"]

Entity = dict[str, Any]
MatchedBy = Literal["order", "external_id", "email", "guest_email"]
MAX_EMAILS = 5
RECENT_ORDERS = 10
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


class TicketContext(BaseModel):
    """What the sidebar sends about the ticket. Validated: bad input is a 400, never a 500."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    ticket_id: int | None = Field(default=None, ge=0)
    emails: tuple[str, ...] = Field(default=(), max_length=20)
    external_id: str | None = Field(default=None, max_length=256)
    order_number: str | None = Field(default=None, max_length=256)
    order_id: str | None = Field(default=None, max_length=64)
    brand_id: int | None = Field(default=None, ge=0)
    refresh: bool = False

    @field_validator("emails", mode="before")
    @classmethod
    def _emails(cls, value: object) -> object:
        if value is None:
            return ()
        if not isinstance(value, list | tuple):
            raise ValueError("must be a list of email addresses")
        cleaned: list[str] = []
        for item in value:
            if not isinstance(item, str) or not _EMAIL.match(item.strip()):
                raise ValueError("must be a list of email addresses")
            address = item.strip()
            if address.lower() not in (c.lower() for c in cleaned):
                cleaned.append(address)
        return tuple(cleaned[:MAX_EMAILS])

    @field_validator("external_id", "order_number", "order_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # Zendesk numeric custom fields arrive as numbers
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("order_id")
    @classmethod
    def _order_id(cls, value: str | None) -> str | None:
        if value is not None and not _UUID.match(value):
            raise ValueError("is not a commercetools order id")
        return value

    @classmethod
    def parse(cls, body: object) -> TicketContext:
        if not isinstance(body, Mapping):
            raise BadRequest("The request body must be a JSON object.")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            error = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join(str(p) for p in error["loc"]) or "body"
            message = error["msg"].removeprefix("Value error, ")
            raise BadRequest(f"Invalid ticket context: {where} {message}.") from None

    def searched(self) -> list[str]:
        """What was looked for, in words an agent understands (for the empty state)."""
        items = []
        if self.order_id:
            items.append(f"order id {self.order_id}")
        if self.order_number:
            items.append(f"order {self.order_number}")
        if self.external_id:
            items.append(f"customer id {self.external_id}")
        items += [f"email {e}" for e in self.emails]
        return items


@dataclass
class Resolution:
    """What the panels show for one ticket: entities are already policy-masked."""

    context: TicketContext
    store: str | None
    matched_by: MatchedBy | None = None
    customer: Entity | None = None
    other_customers: list[Entity] = field(default_factory=list)
    orders: list[Entity] = field(default_factory=list)
    orders_elsewhere: int = 0  # orders of other stores or other customers, left out
    order: Entity | None = None
    notes: list[str] = field(default_factory=list)
    as_of: float | None = None  # set when served from cache during an upstream outage
    fingerprint: tuple[bytes, ...] | None = None  # the cached entries it was built from, if any

    @property
    def empty(self) -> bool:
        return self.customer is None and not self.orders and self.order is None


def detail_views(custom_fields: Sequence[str]) -> list[views.View]:
    return [
        views.ORDER_SUMMARY,
        views.ORDER_DETAIL,
        views.SHIPMENTS,
        views.PAYMENTS,
        views.RETURNS,
        views.order_custom_fields(tuple(custom_fields)),
    ]


def plan(context: TicketContext, custom_fields: Sequence[str]) -> list[queries.Read]:
    """The reads for a ticket: all of them go upstream as one document."""
    keys = (context.emails, context.external_id, context.order_number, context.order_id)
    return list(_plan(keys, tuple(custom_fields)))


@lru_cache(maxsize=4096)
def _plan(
    keys: tuple[tuple[str, ...], str | None, str | None, str | None],
    custom_fields: tuple[str, ...],
) -> tuple[queries.Read, ...]:
    # The same ticket is viewed again and again: its reads (and their digests) are reused.
    context = TicketContext(
        emails=keys[0], external_id=keys[1], order_number=keys[2], order_id=keys[3]
    )
    full = detail_views(custom_fields)
    reads: list[queries.Read] = []
    explicit = context.order_id or context.order_number
    if explicit:
        with_customer = [*full, views.ORDER_CUSTOMER]
        if context.order_id or _UUID.match(explicit):
            reads.append(queries.order_by_id(explicit, with_customer, key="order"))
        else:
            reads.append(queries.order_by_number(explicit, with_customer, key="order"))
    if context.external_id:
        reads.append(queries.customer_by_id(context.external_id, [views.CUSTOMER], key="xc"))
        reads.append(
            queries.customer_orders(
                context.external_id, [views.ORDER_SUMMARY], limit=RECENT_ORDERS, key="xo"
            )
        )
        if not explicit:
            reads.append(queries.customer_orders(context.external_id, full, limit=1, key="xl"))
    if context.emails:
        for index, email in enumerate(context.emails):
            reads.append(queries.customers_by_email(email, [views.CUSTOMER], key=f"e{index}"))
        reads.append(
            queries.orders_by_email(
                context.emails, [views.ORDER_SUMMARY], limit=2 * RECENT_ORDERS, key="eo"
            )
        )
        if not explicit:
            reads.append(queries.orders_by_email(context.emails, full, limit=1, key="el"))
    return tuple(reads)


def resolve_answer(
    context: TicketContext, store: str | None, found: Mapping[str, Any]
) -> tuple[Resolution, str | None]:
    """Choose customer and orders from the answer to `plan()`.

    Returns the resolution and, when the order to detail was not in the answer, its id (the
    caller fetches it and sets `resolution.order`).
    """
    result = Resolution(context=context, store=store)
    explicit: Entity | None = found.get("order")
    by_id: Entity | None = found.get("xc")
    email_customers = _unique(c for i in range(len(context.emails)) for c in found.get(f"e{i}", []))

    if explicit is not None:
        # The answer may be shared by concurrent views (one flight): never change it.
        explicit = dict(explicit)
        result.matched_by = "order"
        result.order = explicit
        result.customer = explicit.pop("customer", None)
        order_store = (explicit.get("storeRef") or {}).get("key")
        if store and order_store and order_store != store:
            result.notes.append(
                f"Order {explicit.get('orderNumber')} belongs to store {order_store}, "
                f"not to this brand's store {store}."
            )
    elif context.order_id or context.order_number:
        result.notes.append(f"No order {context.order_number or context.order_id} was found.")

    if result.customer is None and by_id is not None:
        result.matched_by = result.matched_by or "external_id"
        result.customer = by_id
    if result.customer is None and email_customers:
        chosen, others = choose_customer(email_customers, store, found.get("eo", []))
        result.matched_by = result.matched_by or "email"
        result.customer = chosen
        result.other_customers = others
    elif result.customer is not None:
        result.other_customers = [c for c in email_customers if c["id"] != result.customer["id"]]

    _collect_orders(result, found)
    if result.order is None:
        latest = (found.get("xl") or []) if by_id is not None else (found.get("el") or [])
        wanted = result.orders[0]["id"] if result.orders else None
        if latest and latest[0]["id"] == wanted:
            result.order = latest[0]
        elif wanted is not None:
            return result, wanted
    return result, None


def choose_customer(
    customers: list[Entity], store: str | None, orders: Sequence[Entity]
) -> tuple[Entity, list[Entity]]:
    """The documented de-duplication rule; returns the chosen customer and the others."""
    last_order: dict[str, str] = {}
    for order in orders:
        owner = order.get("customerId")
        if owner and order.get("createdAt", "") > last_order.get(owner, ""):
            last_order[owner] = order["createdAt"]

    def in_store(customer: Entity) -> bool:
        return store is not None and any(
            s.get("key") == store for s in customer.get("storesRef") or []
        )

    ranked = sorted(
        customers,
        key=lambda c: (
            not in_store(c),
            _descending(last_order.get(c["id"], "")),
            c.get("createdAt", ""),
            c["id"],
        ),
    )
    return ranked[0], ranked[1:]


def _collect_orders(result: Resolution, found: Mapping[str, Any]) -> None:
    customer_id = result.customer["id"] if result.customer else None
    candidates = _unique([*(found.get("xo") or []), *(found.get("eo") or [])])
    kept: list[Entity] = []
    for order in candidates:
        owner = order.get("customerId")
        mine = owner is None or owner == customer_id
        order_store = (order.get("storeRef") or {}).get("key")
        here = result.store is None or order_store in (None, result.store)
        if mine and here:
            kept.append(order)
        else:
            result.orders_elsewhere += 1
    kept.sort(key=lambda o: o.get("createdAt", ""), reverse=True)
    result.orders = kept[:RECENT_ORDERS]
    if result.customer is None and result.orders:
        result.matched_by = result.matched_by or "guest_email"


def _unique(entities: Any) -> list[Entity]:
    seen: dict[str, Entity] = {}
    for entity in entities:
        if entity and entity.get("id") not in seen:
            seen[entity["id"]] = entity
    return list(seen.values())


class _Descending(str):
    # Sorts strings in reverse so "most recent first" composes with other ascending keys.
    def __lt__(self, other: str) -> bool:
        return str.__gt__(self, other)


def _descending(value: str) -> _Descending:
    return _Descending(value)


async def resolve(
    context: TicketContext,
    *,
    reader: Reader,
    store: str | None,
    custom_fields: Sequence[str],
) -> Resolution:
    """Read (through the cache), and resolve a ticket.

    Cold: one upstream request; warm: none; changed: at most two. A third is made only in the
    ambiguous case where the order to detail was not part of the first answer.
    """
    reads = plan(context, custom_fields)
    if not reads:
        return Resolution(context=context, store=store)
    answer = await reader.fetch(reads, refresh=context.refresh, name="TicketView")
    resolution, missing_order = resolve_answer(context, store, answer.found)
    resolution.as_of = answer.as_of
    resolution.fingerprint = answer.fingerprint
    if missing_order is not None:
        detail = await reader.fetch(
            [queries.order_by_id(missing_order, detail_views(custom_fields), key="order")],
            refresh=context.refresh,
            name="OrderDetail",
        )
        resolution.order = detail.found["order"]
        resolution.fingerprint = (
            answer.fingerprint + detail.fingerprint
            if answer.fingerprint and detail.fingerprint
            else None
        )
        if detail.as_of is not None:
            resolution.as_of = min(detail.as_of, resolution.as_of or detail.as_of)
    return resolution
