"""From a ticket to the right customer, their orders and their active cart.

Stable keys, strongest first:

1. an order chosen in the panel (`order_id`), or the order number / order id in the ticket's
   mapped custom field: that order, and its customer;
2. the requester's `external_id`, taken as a commercetools customer id;
3. the requester's email addresses (all identities): customers by `lowercaseEmail`, and orders
   and active carts placed with those addresses, including guest ones (no customer).

Orders: a customer's orders are read by `customerId` whenever the customer is known: in the
first request when the id is known as it is planned (the external id, or the customer the same
addresses resolved to last time, `Reader.owners`), else in a follow-up request once the first
answer names the customer. Orders keep the address as typed at checkout and have no
case-insensitive predicate, so an address is queried in two spellings: as the ticket has it
and in lower case (`queries.email_spellings`); a customer's orders under any other spelling
(say the account's own `Mixed.Case@Example.com`) are found by id. Guest orders (no customer)
are found only by those two spellings. The customer of an order named in the ticket has their
orders read by id only when none of those found by address is theirs (or the read came back
full).

De-duplication, when the requester's addresses match several customers (store-scoped customers
share an address across stores): the customer of the brand's store wins; then the one with the
most recent order; then the earliest created. `chosen_reason` says which rule decided
(`order`, `external_id`, `only_account`, `store`, `recent_order`, `earliest_account`);
`other_customers` are the accounts that share the chosen one's address; accounts under the
requester's other addresses are only counted (a note). One shopper behind several Zendesk
users needs nothing special: each ticket resolves from its own keys to the same records.

Store scoping: the ticket's brand maps to a store key (the mapping file). Orders of other stores
are left out of the list, and those of this shopper are listed in `hidden_orders` (summaries) so
the panel can offer to show one: showing it sends its `order_id`, the strongest key, and the
order is then shown with a note saying which store it belongs to. The active cart is read in the
brand's store only. A brand mapped to no store (while stores are configured) sees all stores,
with a note.

What the panels read from a `Resolution` (all entities already policy-masked):

* `customer`, `orders` (newest first, at most `RECENT_ORDERS`), `order` (the one in detail),
  `cart` (the active cart: `totalLineItemQuantity`, `totalPrice`, `lastModifiedAt`, `storeRef`,
  `lineItems` with name, SKU, quantity and total; see `views.CART`), or None;
* `matched_by` (which key found the shopper) and `chosen_reason` (why this customer);
* `other_customers` (same address, not shown), `hidden_orders` (this shopper's orders of other
  stores), `orders_elsewhere` (how many orders were left out, other stores or other accounts);
* `notes`: `Note(code, params, text)`, where `text` is the English sentence and `code` a stable
  key for translations (`note.<code>`, formatted with `params`); see `NOTE_CODES`.

Everything is read in one GraphQL document. A second request is made when a customer found
by email, the first time this process sees their addresses, needs their orders read by id
(above), or when the order to detail is not in the answer (an ambiguous address whose newest
order belongs to another customer). When such a follow-up finds commercetools unavailable, the
first answer is shown with an `incomplete` note.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import metrics, queries, views
from .cache import Reader
from .exceptions import BadRequest, UpstreamUnavailable
from .lru import LRU

__all__ = [
    "NOTE_CODES",
    "Note",
    "Resolution",
    "TicketContext",
    "plan",
    "resolve",
    "resolve_answer",
]

Entity = dict[str, Any]
MatchedBy = Literal["order", "external_id", "email", "guest_email"]
ChosenReason = Literal[
    "order", "external_id", "only_account", "store", "recent_order", "earliest_account"
]
MAX_EMAILS = 5
RECENT_ORDERS = 10
EMAIL_ORDERS = 2 * RECENT_ORDERS  # orders read by address: several accounts and guests share it
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,8}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")

# The English sentence of each note; `{name}` placeholders are the note's params.
NOTE_CODES: Final[dict[str, str]] = {
    "order_not_found": "No order {number} was found.",
    "order_other_store": "Order {number} belongs to store {store}, not to this brand's store "
    "{brand_store}.",
    "other_store_external_id": "This customer (the requester's external id) belongs to store "
    "{stores}, not to this brand's store {brand_store}.",
    "no_store_mapping": "Zendesk brand {brand} is not mapped to a store: orders and carts of "
    "all stores are shown.",
    "chosen_by_order": "Showing the customer of order {number}, named in the ticket; {count} "
    "other customer account(s) use the same address ({stores}).",
    "chosen_by_external_id": "Showing the customer of the requester's external id; {count} "
    "other customer account(s) use the same address ({stores}).",
    "chosen_by_store": "{count} other customer account(s) use this address ({stores}). "
    "Showing the account of this brand's store {brand_store}.",
    "chosen_by_recent_order": "{count} other customer account(s) use this address ({stores}). "
    "Showing the account with the most recent order.",
    "chosen_by_earliest_account": "{count} other customer account(s) use this address ({stores}). "
    "Showing the earliest created account: none of them has an order.",
    "accounts_other_address": "{count} other account(s) use the requester's other email "
    "address(es) and are not shown.",
    "orders_hidden": "{count} order(s) of other stores are not shown.",
    "orders_other_accounts": "{count} order(s) of other customer accounts are not shown.",
    "incomplete": "commercetools did not answer a second request in time: some of this "
    "shopper's orders, the cart or the order detail may be missing. Refresh to try again.",
}


@dataclass(frozen=True)
class Note:
    """Something the agent should know about this resolution, in words and as a stable key.

    `text` is the English sentence; `code` (see `NOTE_CODES`) and `params` let the panel say it
    in the agent's language. `str(note)` is the English text."""

    code: str
    params: Mapping[str, str | int]
    text: str

    @classmethod
    def of(cls, code: str, **params: str | int) -> Note:
        return cls(code, dict(params), NOTE_CODES[code].format(**params))

    def __str__(self) -> str:
        return self.text


class TicketContext(BaseModel):
    """What the sidebar sends about the ticket. Validated: bad input is a 400, never a 500."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    ticket_id: int | None = Field(default=None, ge=0)
    emails: tuple[str, ...] = Field(default=(), max_length=20)
    external_id: str | None = Field(default=None, max_length=256)
    order_number: str | None = Field(default=None, max_length=256)
    order_id: str | None = Field(default=None, max_length=64)
    brand_id: int | None = Field(default=None, ge=0)
    ui_locale: str | None = Field(default=None, max_length=35)  # the agent's Zendesk locale
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

    @field_validator("ui_locale", mode="before")
    @classmethod
    def _ui_locale(cls, value: object) -> object:
        # Only chooses the panel's language: anything odd falls back to English, not a 400.
        if isinstance(value, str) and _LOCALE.match(value.strip()):
            return value.strip()
        return None

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
    """What the panels show for one ticket: entities are already policy-masked.

    See the module docstring for what each attribute means."""

    context: TicketContext
    store: str | None
    matched_by: MatchedBy | None = None
    chosen_reason: ChosenReason | None = None
    customer: Entity | None = None
    other_customers: list[Entity] = field(default_factory=list)  # same address as `customer`
    orders: list[Entity] = field(default_factory=list)
    hidden_orders: list[Entity] = field(default_factory=list)  # this shopper's, other stores
    orders_elsewhere: int = 0  # orders of other stores or other customers, left out
    order: Entity | None = None
    cart: Entity | None = None
    notes: list[Note] = field(default_factory=list)
    as_of: float | None = None  # set when served from cache during an upstream outage
    fingerprint: tuple[bytes, ...] | None = None  # the cached entries it was built from, if any

    @property
    def empty(self) -> bool:
        return (
            self.customer is None and not self.orders and self.order is None and self.cart is None
        )

    def note(self, code: str, **params: str | int) -> None:
        self.notes.append(Note.of(code, **params))


def detail_views(custom_fields: Sequence[str]) -> list[views.View]:
    return [
        views.ORDER_SUMMARY,
        views.ORDER_DETAIL,
        views.SHIPMENTS,
        views.PAYMENTS,
        views.RETURNS,
        views.order_custom_fields(tuple(custom_fields)),
    ]


def plan(
    context: TicketContext,
    custom_fields: Sequence[str],
    store: str | None = None,
    owner: str | None = None,
) -> list[queries.Read]:
    """The reads for a ticket: all of them go upstream as one document.

    `store` (the brand's store) scopes the active-cart reads and the newest order read in
    detail; customers and order lists are read across stores and filtered here, so the panel
    can say what it left out (and offer to show it). `owner`: the customer these addresses
    resolved to last time (`Reader.owners`); their orders and cart are then read by id in the
    same document, so the follow-up is not needed."""
    keys = (context.emails, context.external_id, context.order_number, context.order_id)
    return list(_plan(keys, tuple(custom_fields), store, owner))


def owner_key(
    context: TicketContext, store: str | None
) -> tuple[tuple[str, ...], str | None] | None:
    """The `Reader.owners` key of a ticket found by its addresses only (None otherwise)."""
    if not context.emails or context.external_id or context.order_id or context.order_number:
        return None
    return tuple(e.lower() for e in context.emails), store


@lru_cache(maxsize=4096)
def _plan(
    keys: tuple[tuple[str, ...], str | None, str | None, str | None],
    custom_fields: tuple[str, ...],
    store: str | None,
    owner: str | None,
) -> tuple[queries.Read, ...]:
    # The same ticket is viewed again and again: its reads (and their digests) are reused.
    emails, external_id, order_number, order_id = keys
    full = detail_views(custom_fields)
    reads: list[queries.Read] = []
    explicit = order_id or order_number
    if explicit:
        with_customer = [*full, views.ORDER_CUSTOMER]
        if order_id or _UUID.match(explicit):
            reads.append(queries.order_by_id(explicit, with_customer, key="order"))
        else:
            reads.append(queries.order_by_number(explicit, with_customer, key="order"))
    if external_id:
        reads.append(queries.customer_by_id(external_id, [views.CUSTOMER], key="xc"))
        reads.append(
            queries.customer_orders(
                external_id, [views.ORDER_SUMMARY], limit=RECENT_ORDERS, key="xo"
            )
        )
        if not explicit:
            reads.append(queries.customer_orders(external_id, full, limit=1, store=store, key="xl"))
        reads.append(queries.active_cart(external_id, [views.CART], store=store, key="xk"))
    if emails:
        for index, email in enumerate(emails):
            reads.append(queries.customers_by_email(email, [views.CUSTOMER], key=f"e{index}"))
        reads.append(
            queries.orders_by_email(emails, [views.ORDER_SUMMARY], limit=EMAIL_ORDERS, key="eo")
        )
        if not explicit:
            reads.append(queries.orders_by_email(emails, full, limit=1, store=store, key="el"))
        reads.append(queries.active_carts_by_email(emails, [views.CART], store=store, key="ek"))
        if owner is not None:
            reads += follow_up(owner, custom_fields, store, detail=not explicit, cart=True)
    return tuple(reads)


def follow_up(
    customer_id: str, custom_fields: Sequence[str], store: str | None, *, detail: bool, cart: bool
) -> list[queries.Read]:
    """The reads of a customer found by email, by id: their orders (and the newest in detail,
    and their active cart, when the first answer had none)."""
    reads = [
        queries.customer_orders(customer_id, [views.ORDER_SUMMARY], limit=RECENT_ORDERS, key="co")
    ]
    if detail:
        reads.append(
            queries.customer_orders(
                customer_id, detail_views(custom_fields), limit=1, store=store, key="cl"
            )
        )
    if cart:
        reads.append(queries.active_cart(customer_id, [views.CART], store=store, key="ck"))
    return reads


BY_ID: Final = ("co", "cl", "ck")  # the keys of `follow_up`'s reads


def resolve_answer(
    context: TicketContext,
    store: str | None,
    found: Mapping[str, Any],
    *,
    custom_fields: Sequence[str] = (),
    stores_configured: bool = False,
    final: bool = False,
    owner: str | None = None,
) -> tuple[Resolution, list[queries.Read] | None]:
    """Choose customer, orders and cart from the answer to `plan()` (and to follow-ups).

    Returns the resolution and, when the answer is not enough, the reads of a follow-up request;
    the caller fetches them, merges their answer into `found` and calls this again. `owner`: the
    customer whose reads by id (`follow_up`) are in `found`. `final`: no follow-up can be made,
    resolve from what there is."""
    result = Resolution(context=context, store=store)
    if stores_configured and store is None and context.brand_id is not None:
        result.note("no_store_mapping", brand=context.brand_id)
    _choose(result, found)
    customer_id = result.customer["id"] if result.customer else None
    if owner != customer_id:
        # Read by id for another customer than the one chosen (a stale hint): not theirs.
        found = {k: v for k, v in found.items() if k not in BY_ID}
    if (
        not final
        and customer_id is not None
        and owner != customer_id
        and context.emails
        and customer_id != context.external_id
        and _needs_orders_by_id(result, customer_id, found)
    ):
        # The same reads as a first request planned with this owner: its answer is then
        # cached for the next view's.
        explicit = bool(context.order_id or context.order_number)
        return result, follow_up(customer_id, custom_fields, store, detail=not explicit, cart=True)

    _collect_orders(result, found)
    result.cart = _pick_cart(result, found)
    if result.order is None and result.orders:
        wanted = result.orders[0]["id"]
        for key in ("od", "cl", "xl", "el"):
            latest = found.get(key)
            latest = latest[0] if isinstance(latest, list) and latest else latest
            if latest and latest.get("id") == wanted:
                result.order = latest
                break
        else:
            if "od" not in found and not final:
                detail = queries.order_by_id(wanted, detail_views(custom_fields), key="od")
                return result, [detail]
    return result, None


def _choose(result: Resolution, found: Mapping[str, Any]) -> None:
    """The customer: the explicit order's, else the external id's, else by email (deduplicated)."""
    context, store = result.context, result.store
    explicit: Entity | None = found.get("order")
    by_id: Entity | None = found.get("xc")
    by_address = [found.get(f"e{i}") or [] for i in range(len(context.emails))]
    email_customers = _unique(c for customers in by_address for c in customers)

    if explicit is not None:
        # The answer may be shared by concurrent views (one flight): never change it.
        explicit = dict(explicit)
        result.matched_by = "order"
        result.order = explicit
        result.customer = explicit.pop("customer", None)
        if result.customer is not None:
            result.chosen_reason = "order"
        order_store = _store_of(explicit)
        if store and order_store and order_store != store:
            result.note(
                "order_other_store", number=_number(explicit), store=order_store, brand_store=store
            )
    elif context.order_id or context.order_number:
        result.note("order_not_found", number=str(context.order_number or context.order_id))

    if result.customer is None and by_id is not None:
        result.matched_by = result.matched_by or "external_id"
        result.chosen_reason = "external_id"
        result.customer = by_id
        stores = [s.get("key") for s in by_id.get("storesRef") or []]
        if store and stores and store not in stores:
            result.note(
                "other_store_external_id",
                stores=", ".join(str(s) for s in stores),
                brand_store=store,
            )
    if result.customer is None and email_customers:
        chosen, reason = choose_customer(email_customers, store, found.get("eo") or [])
        result.matched_by = result.matched_by or "email"
        result.chosen_reason = reason
        result.customer = chosen
    _others(result, by_address, email_customers)


def _needs_orders_by_id(result: Resolution, customer_id: str, found: Mapping[str, Any]) -> bool:
    """Whether a customer reached through the ticket's addresses needs their orders read by id.

    Found by email: always. Orders keep the address as typed at checkout, and no predicate
    ignores case: orders under a third spelling are found only by `customerId`. The customer
    of the ticket's order: when none of the orders found by address is theirs, or a full
    answer may have crowded theirs out."""
    if result.chosen_reason != "order":
        return True
    by_email = found.get("eo") or []
    if len(by_email) >= EMAIL_ORDERS:
        return True
    return not any(o.get("customerId") == customer_id for o in by_email)


def choose_customer(
    customers: list[Entity], store: str | None, orders: Sequence[Entity]
) -> tuple[Entity, ChosenReason]:
    """The documented de-duplication rule: the chosen customer and the rule that decided."""
    last_order: dict[str, str] = {}
    for order in orders:
        owner = order.get("customerId")
        if owner and order.get("createdAt", "") > last_order.get(owner, ""):
            last_order[owner] = order["createdAt"]

    def in_store(customer: Entity) -> bool:
        return store is not None and any(
            s.get("key") == store for s in customer.get("storesRef") or []
        )

    def rank(c: Entity) -> tuple[bool, _Descending, str, str]:
        return (
            not in_store(c),
            _descending(last_order.get(c["id"], "")),
            c.get("createdAt", ""),
            c["id"],
        )

    ranked = sorted(customers, key=rank)
    if len(ranked) == 1:
        return ranked[0], "only_account"
    first, second = rank(ranked[0]), rank(ranked[1])
    reason: ChosenReason
    if first[0] != second[0]:
        reason = "store"
    elif first[1] != second[1]:
        reason = "recent_order"
    else:
        reason = "earliest_account"
    return ranked[0], reason


def _others(
    result: Resolution, by_address: Sequence[Sequence[Entity]], email_customers: list[Entity]
) -> None:
    """Accounts sharing the chosen one's address, and a count of those under other addresses."""
    chosen = result.customer
    if chosen is None:
        return
    same: list[Entity] = []
    for customers in by_address:
        if any(c["id"] == chosen["id"] for c in customers):
            same = [c for c in customers if c["id"] != chosen["id"]]
            break
    result.other_customers = same
    shared = {c["id"] for c in same} | {chosen["id"]}
    elsewhere = [c for c in email_customers if c["id"] not in shared]
    if same:
        stores = "; ".join(
            ", ".join(str(s.get("key")) for s in c.get("storesRef") or []) or "all stores"
            for c in same
        )
        params: dict[str, str | int] = {"count": len(same), "stores": stores}
        reason = result.chosen_reason
        if reason == "order" and result.order is not None:
            params["number"] = _number(result.order)
        if reason == "store":
            params["brand_store"] = str(result.store)
        if reason in ("order", "external_id", "store", "recent_order", "earliest_account"):
            result.note(f"chosen_by_{reason}", **params)
    if elsewhere:
        result.note("accounts_other_address", count=len(elsewhere))


def _collect_orders(result: Resolution, found: Mapping[str, Any]) -> None:
    customer_id = result.customer["id"] if result.customer else None
    candidates = _unique(
        [*(found.get("xo") or []), *(found.get("co") or []), *(found.get("eo") or [])]
    )
    kept: list[Entity] = []
    hidden: list[Entity] = []
    other_accounts = 0
    for order in candidates:
        owner = order.get("customerId")
        mine = owner is None or owner == customer_id
        order_store = _store_of(order)
        here = result.store is None or order_store in (None, result.store)
        if mine and here:
            kept.append(order)
        elif mine:
            hidden.append(order)
        else:
            other_accounts += 1
    kept.sort(key=lambda o: o.get("createdAt", ""), reverse=True)
    hidden.sort(key=lambda o: o.get("createdAt", ""), reverse=True)
    result.orders = kept[:RECENT_ORDERS]
    shown = result.order["id"] if result.order else None
    hidden = [o for o in hidden if o["id"] != shown]  # a revealed order is shown, not hidden
    result.hidden_orders = hidden[:RECENT_ORDERS]
    result.orders_elsewhere = len(hidden) + other_accounts
    if hidden:
        result.note("orders_hidden", count=len(hidden))
    if other_accounts:
        result.note("orders_other_accounts", count=other_accounts)
    if result.customer is None and result.orders:
        result.matched_by = result.matched_by or "guest_email"


def _pick_cart(result: Resolution, found: Mapping[str, Any]) -> Entity | None:
    """The shopper's most recently changed active cart among those read (already in-store)."""
    customer_id = result.customer["id"] if result.customer else None
    candidates: list[Entity] = []
    for key in ("xk", "ck", "ek"):
        value = found.get(key)
        for cart in value if isinstance(value, list) else [value]:
            if not cart or cart.get("cartState", "Active") != "Active":
                continue
            owner = cart.get("customerId")
            if owner is None or owner == customer_id:
                candidates.append(cart)
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.get("lastModifiedAt") or "", c["id"]))


def _store_of(entity: Mapping[str, Any]) -> str | None:
    key = (entity.get("storeRef") or {}).get("key")
    return str(key) if key else None


def _number(order: Mapping[str, Any]) -> str:
    return str(order.get("orderNumber") or order.get("id"))


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


MAX_FOLLOW_UPS = 2
# Resolutions made from exactly these fresh cache entries (the fingerprint) for these keys: a
# warm view of a ticket resolves nothing twice. Shared read-only, like the entries themselves.
_RESOLVED: LRU[tuple[object, ...], Resolution] = LRU(1024)


async def resolve(
    context: TicketContext,
    *,
    reader: Reader,
    store: str | None,
    custom_fields: Sequence[str],
    stores_configured: bool = False,
) -> Resolution:
    """Read (through the cache), and resolve a ticket.

    Cold: one upstream request, two for addresses of an account not seen before; warm: none.
    Follow-ups (a customer found by email whose orders are read by id; the order to detail
    missing from the answer) cost one request each, at most two, and are cached like the
    first. A follow-up that fails leaves
    the first answer shown, with an `incomplete` note."""
    owners = owner_key(context, store)
    owner = reader.owners.get(owners) if owners is not None else None
    reads = plan(context, custom_fields, store, owner)
    if not reads:
        resolution = Resolution(context=context, store=store)
        if stores_configured and store is None and context.brand_id is not None:
            resolution.note("no_store_mapping", brand=context.brand_id)
        return resolution
    answer = await reader.fetch(reads, refresh=context.refresh, name="TicketView")
    metrics.cache_read(reads, answer)
    memo_key = None
    if answer.fingerprint is not None:
        # Fresh entries: the resolution is a function of them and of the ticket's keys.
        memo_key = (
            answer.fingerprint,
            (context.emails, context.external_id, context.order_number, context.order_id),
            context.brand_id,
            store,
            owner,
            stores_configured,
            tuple(custom_fields),
        )
        known = _RESOLVED.get(memo_key)
        if known is not None:
            resolution = copy.copy(known)  # a shallow copy (replace() runs __init__: slower)
            resolution.context, resolution.notes = context, list(known.notes)
            return resolution
    found: dict[str, Any] = dict(answer.found)
    as_of, fingerprint = answer.as_of, answer.fingerprint
    settle = partial(
        resolve_answer,
        context,
        store,
        custom_fields=custom_fields,
        stores_configured=stores_configured,
    )
    resolution, more = settle(found, owner=owner)
    for _ in range(MAX_FOLLOW_UPS):
        if more is None:
            break
        try:
            extra = await reader.fetch(more, refresh=context.refresh, name="TicketFollowUp")
            metrics.cache_read(more, extra)
        except UpstreamUnavailable:
            # The first answer stands: show it, and say that something may be missing.
            break
        if any(read.key in BY_ID for read in more) and resolution.customer is not None:
            # Read for this customer: what an earlier read by id held (for another) goes.
            owner = resolution.customer["id"]
            found = {k: v for k, v in found.items() if k not in BY_ID}
        found.update(extra.found)
        fingerprint = fingerprint + extra.fingerprint if fingerprint and extra.fingerprint else None
        if extra.as_of is not None:
            as_of = min(extra.as_of, as_of or extra.as_of)
        resolution, more = settle(found, owner=owner)
    if more is not None:
        resolution, _ = settle(found, owner=owner, final=True)
        resolution.note("incomplete")
        fingerprint = None  # never reuse this render once the follow-up can be read
    elif owners is not None and resolution.matched_by == "email" and resolution.customer:
        # Next time (this process), the first request reads this customer's orders by id too.
        reader.owners.put(owners, resolution.customer["id"])
    resolution.as_of = as_of
    resolution.fingerprint = fingerprint
    if memo_key is not None and fingerprint is answer.fingerprint:  # no follow-up was needed
        _RESOLVED.put(memo_key, replace(resolution, notes=list(resolution.notes)))
    return resolution
