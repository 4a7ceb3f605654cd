"""Compose one GraphQL document per request from the views each read needs.

A `Read` is one root field (an order by number, a customer's recent orders, ...) plus the views
that will be rendered from it. `compose()` merges the views of each read field by field and puts
every read in one document under its own alias, so a ticket view costs one upstream request.
Values always travel as GraphQL variables; predicates embed them only through
`views.string_literal()`.

The document text depends only on the shape of the reads (roots, argument names, views, store
scoping), so it is built once per shape and cached.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from graphql import FieldNode, InlineFragmentNode, SelectionSetNode, print_ast
from graphql.utilities import strip_ignored_characters

from .exceptions import ConfigError, UpstreamError
from .views import FORBIDDEN_FIELDS, ORDER_CUSTOMER, View, string_literal

__all__ = [
    "Document",
    "Read",
    "active_cart",
    "active_carts_by_email",
    "by_ids",
    "compose",
    "customer_by_id",
    "customer_orders",
    "customers_by_email",
    "email_spellings",
    "filtered",
    "guest_orders",
    "order_by_id",
    "order_by_number",
    "orders_by_email",
    "orders_by_ids",
    "orders_with_payment",
    "stores",
]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Arg:
    name: str
    type: str  # GraphQL type of the variable, e.g. "String!"
    value: Any = field(compare=False)


@dataclass(frozen=True)
class Read:
    """One root field of the document, and the views rendered from its result."""

    key: str  # response alias; unique within one document
    root: str  # Query (or InStore) field name
    type: str  # the entity type the views apply to
    args: tuple[Arg, ...]
    views: tuple[View, ...]
    many: bool = False  # a paged result: views apply under `results`
    store: str | None = None  # wraps the read in `inStore(key: ...)`

    @cached_property
    def identity(self) -> str:
        """Digest of everything that determines the answer: root, scope, arguments, views."""
        value = [
            self.root, self.type, self.many, self.store,
            [[a.name, a.value] for a in self.args],
            sorted(v.name + ":" + v.fields for v in self.views),
        ]  # fmt: skip
        encoded = json.dumps(value, sort_keys=True, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()[:32]

    @cached_property
    def wants(self) -> tuple[frozenset[str], bool]:
        """The view names each entity must hold, and whether the order's customer is read
        too (`ORDER_CUSTOMER`, a nested entity of its own in the cache)."""
        nested = ORDER_CUSTOMER.name
        return frozenset(v.name for v in self.views if v.name != nested), any(
            v.name == nested for v in self.views
        )

    def shape(self) -> tuple[object, ...]:
        return (
            self.key,
            self.root,
            self.type,
            tuple((a.name, a.type) for a in self.args),
            self.views,
            self.many,
            self.store is not None,
        )


@dataclass(frozen=True)
class Document:
    """A composed GraphQL request and the reads it answers."""

    query: str
    variables: dict[str, Any]
    reads: tuple[Read, ...]
    operation_name: str = "CommerceContext"

    def payload(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "operationName": self.operation_name,
            "variables": self.variables,
        }

    def extract(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Map each read's key to its entity, its list of entities, or None."""
        out: dict[str, Any] = {}
        for read in self.reads:
            value = data.get(read.key)
            if read.store is not None and value is not None:
                value = value.get(read.root)
            if read.many:
                value = [] if value is None else value.get("results", [])
            out[read.key] = value
        return out


# -- reads the client offers -------------------------------------------------------------------


def order_by_number(
    number: str, views: Sequence[View], *, store: str | None = None, key: str = "order"
) -> Read:
    return Read(
        key, "order", "Order", (Arg("orderNumber", "String", number),), tuple(views), store=store
    )


def order_by_id(
    order_id: str, views: Sequence[View], *, store: str | None = None, key: str = "order"
) -> Read:
    return Read(key, "order", "Order", (Arg("id", "String", order_id),), tuple(views), store=store)


def orders_by_ids(
    ids: Sequence[str], views: Sequence[View], *, store: str | None = None, key: str = "orders"
) -> Read:
    if not ids:
        # `id in ()` is not a valid predicate, and one failed list read voids the document.
        raise ConfigError("orders_by_ids() needs at least one id")
    where = f"id in ({', '.join(string_literal(i) for i in ids)})"
    return filtered(key, "orders", "Order", where, views, limit=len(ids), store=store)


def by_ids(root: str, type_: str, ids: Sequence[str], views: Sequence[View], *, key: str) -> Read:
    """Entities of one type by id (the delta cache refetches exactly what changed)."""
    if not ids:
        raise ConfigError("by_ids() needs at least one id")
    where = f"id in ({', '.join(string_literal(i) for i in ids)})"
    return filtered(key, root, type_, where, views, limit=len(ids), store=None)


def orders_with_payment(
    payment_id: str, views: Sequence[View], *, key: str = "payment_orders"
) -> Read:
    """The orders a payment is attached to (normally one)."""
    where = f"paymentInfo(payments(id = {string_literal(payment_id)}))"
    return filtered(key, "orders", "Order", where, views, limit=10, store=None)


def customer_by_id(
    customer_id: str, views: Sequence[View], *, store: str | None = None, key: str = "customer"
) -> Read:
    return Read(
        key, "customer", "Customer", (Arg("id", "String", customer_id),), tuple(views), store=store
    )


def customers_by_email(
    email: str,
    views: Sequence[View],
    *,
    limit: int = 10,
    store: str | None = None,
    key: str = "customers",
) -> Read:
    # commercetools stores email case-preserved; lowercaseEmail is the case-insensitive predicate.
    where = f"lowercaseEmail = {string_literal(normalise_email(email))}"
    return filtered(key, "customers", "Customer", where, views, limit=limit, store=store)


def customer_orders(
    customer_id: str,
    views: Sequence[View],
    *,
    limit: int = 10,
    store: str | None = None,
    key: str = "customer_orders",
) -> Read:
    where = f"customerId = {string_literal(customer_id)}"
    return filtered(
        key, "orders", "Order", where, views, limit=limit, store=store, sort="createdAt desc"
    )


def guest_orders(
    email: str,
    views: Sequence[View],
    *,
    limit: int = 10,
    store: str | None = None,
    key: str = "guest_orders",
) -> Read:
    where = (
        f"customerEmail in ({_quoted_list(email_spellings([email]))}) and customerId is not defined"
    )
    return filtered(
        key, "orders", "Order", where, views, limit=limit, store=store, sort="createdAt desc"
    )


def orders_by_email(
    emails: Sequence[str],
    views: Sequence[View],
    *,
    limit: int = 20,
    store: str | None = None,
    key: str = "email_orders",
) -> Read:
    """Orders placed with any of the addresses, registered or guest, newest first."""
    if not emails:
        raise ConfigError("orders_by_email() needs at least one address")
    where = f"customerEmail in ({_quoted_list(email_spellings(emails))})"
    return filtered(
        key, "orders", "Order", where, views, limit=limit, store=store, sort="createdAt desc"
    )


def active_cart(
    customer_id: str, views: Sequence[View], *, store: str | None = None, key: str = "cart"
) -> Read:
    return Read(
        key,
        "customerActiveCart",
        "Cart",
        (Arg("customerId", "String!", customer_id),),
        tuple(views),
        store=store,
    )


def active_carts_by_email(
    emails: Sequence[str],
    views: Sequence[View],
    *,
    limit: int = 1,
    store: str | None = None,
    key: str = "email_carts",
) -> Read:
    """The most recently changed active carts with any of the addresses (registered or guest)."""
    if not emails:
        raise ConfigError("active_carts_by_email() needs at least one address")
    where = f'cartState = "Active" and customerEmail in ({_quoted_list(email_spellings(emails))})'
    return filtered(
        key, "carts", "Cart", where, views, limit=limit, store=store, sort="lastModifiedAt desc"
    )


def stores(views: Sequence[View], *, limit: int = 100, key: str = "stores") -> Read:
    return Read(key, "stores", "Store", (Arg("limit", "Int", limit),), tuple(views), many=True)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def email_spellings(emails: Sequence[str]) -> list[str]:
    """The spellings of addresses that orders and carts can be queried by.

    Orders and carts keep `customerEmail` as typed at checkout and offer no case-insensitive
    predicate (customers have `lowercaseEmail`; orders and carts do not), so each address is
    matched as given and in lower case; any other letter case is not found this way."""
    return list(dict.fromkeys(s for e in emails for s in (e.strip(), normalise_email(e))))


def filtered(
    key: str,
    root: str,
    type_: str,
    where: str,
    views: Sequence[View],
    *,
    limit: int,
    store: str | None,
    sort: str | None = None,
) -> Read:
    """A `where` query of a collection: up to `limit` results, ordered by `sort` if given."""
    args = [Arg("where", "String", where), Arg("limit", "Int", limit)]
    if sort:
        args.append(Arg("sort", "[String!]", [sort]))
    return Read(key, root, type_, tuple(args), tuple(views), many=True, store=store)


def _quoted_list(values: Sequence[str]) -> str:
    return ", ".join(string_literal(v) for v in values)


# -- composition ---------------------------------------------------------------------------------


def compose(reads: Iterable[Read], operation_name: str = "CommerceContext") -> Document:
    """One document answering every read; raises ConfigError on a malformed combination."""
    reads = tuple(reads)
    if not reads:
        raise ConfigError("compose() needs at least one read")
    keys = [r.key for r in reads]
    if len(set(keys)) != len(keys):
        raise ConfigError(f"duplicate read keys in one document: {keys}")
    query = _document_text(tuple(r.shape() for r in reads), operation_name)
    variables: dict[str, Any] = {}
    for read in reads:
        for arg in read.args:
            variables[f"{read.key}_{arg.name}"] = arg.value
        if read.store is not None:
            variables[f"{read.key}_store"] = read.store
    return Document(query, variables, reads, operation_name)


@lru_cache(maxsize=256)
def _document_text(shapes: tuple[tuple[Any, ...], ...], operation_name: str) -> str:
    declarations: list[str] = []
    fields: list[str] = []
    for key, root, type_, args, views, many, scoped in shapes:
        if not _KEY.match(key):
            raise ConfigError(f"read key {key!r} is not a GraphQL name")
        selection = print_ast(merge_views(views, type_))
        if many:
            selection = "{ results " + selection + " }"
        arguments = ", ".join(f"{name}: ${key}_{name}" for name, _ in args)
        declarations += [f"${key}_{name}: {gql_type}" for name, gql_type in args]
        body = f"{root}({arguments}) {selection}"
        if scoped:
            declarations.append(f"${key}_store: KeyReferenceInput!")
            body = f"inStore(key: ${key}_store) {{ {body} }}"
        fields.append(f"{key}: {body}")
    text = f"query {operation_name}({', '.join(declarations)}) {{\n" + "\n".join(fields) + "\n}"
    # Compact: the document goes upstream with every cold request.
    return strip_ignored_characters(text)


def merge_views(views: Sequence[View], type_: str) -> SelectionSetNode:
    selection = SelectionSetNode(selections=())
    for view in views:
        if view.on not in ("*", type_):
            raise ConfigError(f"view {view.name!r} reads {view.on}, not {type_}")
        forbidden = view.field_names() & FORBIDDEN_FIELDS
        if forbidden:
            raise ConfigError(f"view {view.name!r} selects forbidden fields {sorted(forbidden)}")
        selection = _merge(selection, view.selection)
    return selection


def _merge(a: SelectionSetNode, b: SelectionSetNode) -> SelectionSetNode:
    merged: dict[str, FieldNode | InlineFragmentNode] = {}
    for node in (*a.selections, *b.selections):
        if isinstance(node, InlineFragmentNode):
            # Type conditions (`... on LineItemReturnItem`) merge like fields of that name.
            key = "... on " + (node.type_condition.name.value if node.type_condition else "")
        elif isinstance(node, FieldNode):
            key = node.alias.value if node.alias else node.name.value
        else:
            raise ConfigError("views may only use fields and inline fragments")
        seen = merged.get(key)
        if seen is None:
            merged[key] = node
            continue
        both_fields = isinstance(seen, FieldNode) and isinstance(node, FieldNode)
        if both_fields and _args(seen) != _args(node):  # type: ignore[arg-type]
            raise ConfigError(f"views disagree on the arguments of field {key!r}")
        if seen.selection_set and node.selection_set:
            selection = _merge(seen.selection_set, node.selection_set)
            if isinstance(seen, FieldNode):
                merged[key] = FieldNode(
                    alias=seen.alias,
                    name=seen.name,
                    arguments=seen.arguments,
                    directives=seen.directives,
                    selection_set=selection,
                )
            else:
                merged[key] = InlineFragmentNode(
                    type_condition=seen.type_condition,
                    directives=seen.directives,
                    selection_set=selection,
                )
    return SelectionSetNode(selections=tuple(merged.values()))


def _args(node: FieldNode) -> tuple[str, ...]:
    return tuple(print_ast(arg) for arg in node.arguments or ())


def check_response(body: object) -> Mapping[str, Any]:
    """The `data` of a GraphQL response, or UpstreamError naming the first error."""
    if not isinstance(body, Mapping):
        raise UpstreamError("commercetools GraphQL answered with a non-object body")
    errors = body.get("errors")
    if errors:
        first = errors[0] if isinstance(errors, list) and errors else {}
        code = (first.get("extensions") or {}).get("code", "GraphQLError")
        raise UpstreamError(f"commercetools GraphQL error {code}: {first.get('message', '')}")
    data = body.get("data")
    if not isinstance(data, Mapping):
        raise UpstreamError("commercetools GraphQL answered without data")
    return data
