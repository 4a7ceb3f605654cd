"""Make the REST-only commercetools emulator look like the real API host, GraphQL included.

This is a **test and demo harness**, never part of the production path. The third-party
emulator ``@labdigital/commercetools-mock`` (see ``server.mjs``) implements much of the
commercetools HTTP API but has no ``/graphql`` endpoint, while the backend reads commercetools only
through GraphQL. :func:`create_bridge_app` returns an ASGI app that sits in front of the emulator:

* ``POST /{projectKey}/graphql`` is executed here with graphql-core against the **official SDL**
  (vendored as ``schema.sdl``). Validation, argument coercion, nullability and the response shape
  are therefore exactly what the official schema dictates. The resolvers read the emulator's REST
  API with the caller's ``Authorization`` header, so authentication is enforced end to end.
* Every other path (``/oauth/token`` and all REST paths, any method) is reverse-proxied to the
  emulator unchanged.

How REST maps onto GraphQL (generic, in :func:`_resolve_field`, not per field):

* A GraphQL field reads the REST property of the same name.
* ``xxxRef`` / ``xxxRefs`` return the REST reference(s) stored under ``xxx`` / ``xxxs``
  (``storeRef`` <- ``store``, ``paymentInfo.paymentRefs`` <- ``paymentInfo.payments``,
  ``Customer.storesRef`` <- ``stores``, ``CustomFieldsType.typeRef`` <- ``custom.type``).
* A field whose GraphQL type is a resource (``Order.store: Store``, ``PaymentInfo.payments``,
  ``Customer.customerGroup``) while REST holds a reference ``{typeId, id|key}`` is resolved by
  reading the referenced resource (or its ``obj`` when expanded). ``Order.customer`` and
  ``Cart.customer`` follow ``customerId``.
* ``name(locale, acceptLanguage)`` picks from the REST LocalizedString; ``nameAllLocales``
  lists it as ``[{locale, value}]``.
* ``customFieldsRaw(includeNames, excludeNames)`` lists ``custom.fields``; ``attributesRaw`` lists
  ``attributes``.
* Interfaces (``BaseMoney``, ``ReturnItem``, ...) are resolved by the REST ``type``
  discriminator (``centPrecision`` -> ``Money``, ``highPrecision`` -> ``HighPrecisionMoney``).
* A non-null list missing in REST resolves to ``[]``; a few non-null enums the emulator omits get
  the real API's documented default (``Order.inventoryMode`` -> ``None`` ...), and
  ``Cart.totalLineItemQuantity`` (never set by the emulator) is derived from the line items.
  ``Cart.totalPrice.fractionDigits`` is the currency's (ISO 4217, as the real API has it): the
  emulator keeps the 0 it computed for the cart when it was created empty.
  ``Delivery.key`` also reads ``deliveryKey``, where the emulator's ``addDelivery`` stores it.
* Every REST resource is fetched at most once per GraphQL request (a per-request loader cache,
  primed by query results).

Root fields: any ``Query`` field returning a known resource type (``order(id|orderNumber)``,
``customer(id|key)``, ``cart``, ``payment``, ``store``, ...) or a ``*QueryResult`` (``orders``,
``customers``, ``carts``, ``payments``, ``stores``, ...; ``where``/``sort``/``limit``/``offset``),
``customerActiveCart(customerId)`` and ``inStore(key)`` / ``inStores(keys)`` scoping ``order(s)``,
``customer(s)``, ``cart(s)`` and ``customerActiveCart``. Anything else answers with a GraphQL error
saying it is not emulated.

Where the bridge is faithful although the emulator is not:

* ``sort`` (ignored by the emulator) is applied here for ``field asc|desc`` on any (dotted)
  property; so are ``offset`` and ``limit`` (the bridge reads all matches, then pages).
* ``inStore`` filtering (the emulator does none): orders and carts must have ``store.key`` equal to
  the store; customers must list the store in ``stores`` or have no stores at all (global
  customers are "valid for the entire project and any stores in the project", and the in-store
  endpoints 404 only when ``stores`` references a *different* store). A single read outside the
  store is ``null`` (the real API 404s, which GraphQL renders as ``null``).
* ``customerActiveCart`` (the emulator lacks ``/carts/customer-id=``) is the most recently modified
  cart with that ``customerId``, ``cartState`` Active and origin Customer.
* Unknown ids, keys and order numbers are ``null``; a missing or invalid token is a 401 with the
  commercetools error body; a document that fails validation is a 400.

Known deviations that remain:

* Scopes are not enforced (the emulator accepts any token it issued).
* ``total`` is the exact count (the real API caps it at 10000 with a predicate); ``limit`` above
  500 or ``offset`` above 10000 is rejected with ``InvalidInput`` (message wording is ours).
* No query complexity limit, no mutations, no ``me``/search/product-projection fields.
* Every query reads all REST matches and pages in the bridge: fine for demo volumes only.
* Each GraphQL request costs one extra REST call (``GET /{projectKey}``) to check the token.
* The 400 body for invalid documents (``{"errors": [{..., "extensions": {"code":
  "GraphQLError"}}]}``) and graphql-core's message wording are our best approximation.
* ``name`` without ``locale``/``acceptLanguage`` is ``null``; locales fall back by language
  (``de-AT`` matches ``de``). Dangling references are ``null`` (dropped from lists).
* Predicate support, stored data and its quirks are the emulator's (it lowercases customer
  emails, drops ``shipmentState`` on order import).
* The bridge adds an ``X-Correlation-ID`` response header when the emulator sends none.

Token introspection (the emulator lacks it): ``POST /oauth/introspect`` (RFC 7662 as
commercetools documents it: the token as the ``token`` query parameter, or form field; the
caller authenticates with its API client's credentials, HTTP Basic, else 401 ``invalid_client``;
no token is 400 ``invalid_request``). Every token the bridge hands out through the emulator's
token endpoints (``/oauth/token``, ``/oauth/{projectKey}/customers/token``,
``/oauth/{projectKey}/anonymous/token``, in-store customer tokens, refreshes) is remembered with
its scope (customer tokens carry ``customer_id:<id>``, anonymous ones ``anonymous_id:<id>``),
client id and expiry. An active token answers ``{"active": true, "scope", "exp" (epoch
milliseconds), "client_id"}``; an unknown, expired or revoked one ``{"active": false}`` and
nothing else. Harness extension: ``app.state.tokens.expire(token)`` ends a token's life for
introspection (the emulator itself keeps accepting it), so tests can present a token that was
real and is no longer active. Client secrets and scopes (``introspect_oauth_tokens``) are not
checked, as elsewhere in the emulator.

Messages (``messages.py``; **our invention, not commercetools behaviour**, NOTES §7a): the
emulator has no Messages API, so every successful (2xx) write the bridge proxies to
``/{projectKey}/{orders|customers|carts|payments}`` (creates, ``orders/import``, updates,
deletes) is fed to a per-project :class:`~.messages.MessageLog` (``app.state.messages``, a
:class:`~.messages.MessageLogs`). Before proxying an update the bridge reads the resource once,
so Messages can carry old values (``previousValue``, ``oldOrderState``, ...). The log is served at
``GET /{projectKey}/messages`` and ``GET /{projectKey}/messages/{id}`` (the token is checked like
for GraphQL) and through the GraphQL root fields ``messages`` and ``message(id)`` (``payload`` is
the Message itself; a type the SDL's ``MessagePayload`` lacks, such as
``OrderPurchaseOrderNumberSet``, cannot be resolved there).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypeAlias
from urllib.parse import quote, urlencode

import httpx
from babel.numbers import get_currency_precision
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLAbstractType,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLSchema,
    build_schema,
    execute,
    get_named_type,
    is_list_type,
    is_non_null_type,
    is_scalar_type,
    parse,
    validate,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .messages import InvalidQuery, MessageLog, MessageLogs, Write, match_write

__all__ = ["DEFAULT_SCHEMA_PATH", "create_bridge_app", "load_schema"]

DEFAULT_SCHEMA_PATH: Final = Path(__file__).resolve().parent / "schema.sdl"

Json: TypeAlias = dict[str, Any]

_log = logging.getLogger(__name__)

# REST page size used when the bridge reads every match of a query (the real API's maximum).
_PAGE: Final = 500
_MAX_LIMIT: Final = 500
_MAX_OFFSET: Final = 10_000
_DEFAULT_LIMIT: Final = 20

# GraphQL type name, REST typeId, REST collection path.
_RESOURCES: Final = (
    ("Order", "order", "orders"),
    ("Customer", "customer", "customers"),
    ("Cart", "cart", "carts"),
    ("Payment", "payment", "payments"),
    ("Store", "store", "stores"),
    ("CustomerGroup", "customer-group", "customer-groups"),
    ("TypeDefinition", "type", "types"),
    ("ShippingMethod", "shipping-method", "shipping-methods"),
    ("TaxCategory", "tax-category", "tax-categories"),
    ("Zone", "zone", "zones"),
    ("Channel", "channel", "channels"),
    ("State", "state", "states"),
    ("ProductTypeDefinition", "product-type", "product-types"),
    ("Product", "product", "products"),
    ("CartDiscount", "cart-discount", "cart-discounts"),
    ("DiscountCode", "discount-code", "discount-codes"),
    ("ShoppingList", "shopping-list", "shopping-lists"),
)
_COLLECTION_BY_TYPE: Final = {gql: coll for gql, _, coll in _RESOURCES}
_COLLECTION_BY_TYPE_ID: Final = {type_id: coll for _, type_id, coll in _RESOURCES}
_TYPE_ID_BY_TYPE: Final = {gql: type_id for gql, type_id, _ in _RESOURCES}

# Collections the in-store scope can filter (see _in_store).
_STORE_SCOPED: Final = frozenset({"orders", "carts", "customers"})

# Non-null fields the emulator may omit, with the real API's documented defaults.
_CART_LIKE_DEFAULTS: Final = {
    "inventoryMode": "None",
    "taxMode": "Platform",
    "priceRoundingMode": "HalfEven",
    "taxRoundingMode": "HalfEven",
    "taxCalculationMode": "LineItemLevel",
    "shippingMode": "Single",
    "origin": "Customer",
}
_DEFAULTS: Final[dict[tuple[str, str], Any]] = {
    **{("Order", k): v for k, v in _CART_LIKE_DEFAULTS.items()},
    **{("Cart", k): v for k, v in _CART_LIKE_DEFAULTS.items()},
    ("Order", "lastMessageSequenceNumber"): 0,
    ("Money", "type"): "centPrecision",
    ("TrackingData", "isReturn"): False,
    ("Customer", "isEmailVerified"): False,
    ("LineItem", "lineItemMode"): "Standard",
    ("LineItem", "priceMode"): "Platform",
    ("Payment", "paymentStatus"): {},
}


def _total_line_item_quantity(cart: Mapping[str, Any]) -> int | None:
    # "Sum of all LineItem quantities, excluding CustomLineItems. Only present when the Cart
    # has at least one LineItem." The emulator never sets it.
    items = [i for i in cart.get("lineItems") or [] if isinstance(i, Mapping)]
    return sum(int(i.get("quantity", 0)) for i in items) if items else None


# Fields the emulator omits but the real API derives from the resource.
_DERIVED: Final[dict[tuple[str, str], Callable[[Mapping[str, Any]], Any]]] = {
    ("Cart", "totalLineItemQuantity"): _total_line_item_quantity,
    # GraphQL nests a Message's own fields under `payload`; REST keeps them in the Message.
    ("Message", "payload"): lambda message: message,
}


def _currency_digits(money: Any) -> Any:
    # The emulator computes a cart's total when the cart is created (empty: 0 fraction digits)
    # and keeps those digits as line items are added; the real API uses the currency's.
    if not isinstance(money, Mapping) or money.get("type", "centPrecision") != "centPrecision":
        return money
    try:
        digits = get_currency_precision(str(money.get("currencyCode")))
    except (KeyError, ValueError):
        return money
    return {**money, "fractionDigits": digits}


# Values the emulator stores wrongly, corrected on the way out.
_CORRECTED: Final[dict[tuple[str, str], Callable[[Any], Any]]] = {
    ("Cart", "totalPrice"): _currency_digits,
}

# Properties the emulator stores under another name than the real API.
_ALIASES: Final = {
    ("Delivery", "key"): "deliveryKey",  # addDelivery keeps `deliveryKey`
    ("Message", "userProvidedIdentifiers"): "resourceUserProvidedIdentifiers",  # REST name
}

# REST `type` discriminators whose value is not the GraphQL type name.
_DISCRIMINATORS: Final = {"centPrecision": "Money", "highPrecision": "HighPrecisionMoney"}

_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Recomputed by httpx (requests) or Starlette (responses); httpx also decodes the body.
_RECOMPUTED: Final = frozenset({"host", "content-length", "content-encoding"})
_ALL_METHODS: Final = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@lru_cache(maxsize=4)
def load_schema(path: Path = DEFAULT_SCHEMA_PATH) -> GraphQLSchema:
    """Build the official commercetools schema once per path (about a second of work)."""
    return build_schema(path.read_text(encoding="utf-8"))


# -- upstream REST access ----------------------------------------------------------------------


class RestError(Exception):
    """A REST call failed; ``extensions`` becomes the GraphQL error's extensions."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.extensions: dict[str, Any] = {"code": code}


class _Unauthorized(RestError):
    def __init__(self, body: Any) -> None:
        super().__init__(401, "invalid_token", "invalid_token")
        self.body = body


_Fetched: TypeAlias = tuple[int, Any]


class Upstream:
    """REST reads for one GraphQL request, each URL fetched once (concurrent callers share it)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base_url: str,
        authorization: str,
        messages: MessageLog | None = None,
    ) -> None:
        self.client = client
        self.base_url = base_url  # emulator URL + "/" + project key
        self.authorization = authorization
        self.messages = messages  # the project's message log (harness extension)
        self.unauthorized: _Unauthorized | None = None
        self._cache: dict[str, asyncio.Future[_Fetched]] = {}

    async def find(self, path: str, params: Sequence[tuple[str, str]] = ()) -> Json | None:
        """The JSON object at ``path``, or None on 404."""
        status, body = await self._fetch(path, params)
        if status == 404:
            return None
        if status == 401:
            self.unauthorized = _Unauthorized(body)
            raise self.unauthorized
        if status >= 400 or not isinstance(body, dict):
            raise _rest_error(status, body)
        return body

    async def query_all(
        self, collection: str, where: str | None, variables: Sequence[tuple[str, str]] = ()
    ) -> list[Json]:
        """Every resource matching ``where``, in the emulator's order, paging through REST."""
        results: list[Json] = []
        while True:
            params = [("limit", str(_PAGE)), ("offset", str(len(results))), *variables]
            if where:
                params.append(("where", where))
            page = await self.find(f"/{collection}", params)
            batch = [r for r in (page or {}).get("results", []) if isinstance(r, dict)]
            for resource in batch:
                self.prime(collection, resource)
            results.extend(batch)
            total = (page or {}).get("total")
            if len(batch) < _PAGE or (isinstance(total, int) and len(results) >= total):
                return results

    async def dereference(self, ref: Mapping[str, Any]) -> Json | None:
        """The resource a REST reference points to (its ``obj`` when expanded)."""
        obj = ref.get("obj")
        if isinstance(obj, dict):
            return obj
        type_id = str(ref.get("typeId", ""))
        collection = _COLLECTION_BY_TYPE_ID.get(type_id, f"{type_id}s")
        if isinstance(ref.get("id"), str):
            return await self.find(f"/{collection}/{_segment(ref['id'])}")
        if isinstance(ref.get("key"), str):
            return await self.find(f"/{collection}/key={_segment(ref['key'])}")
        return None

    def prime(self, collection: str, resource: Json) -> None:
        """Remember a resource read through a query, so references to it cost nothing."""
        paths = [f"/{collection}/{_segment(str(resource.get('id')))}"]
        if isinstance(resource.get("key"), str):
            paths.append(f"/{collection}/key={_segment(resource['key'])}")
        for path in paths:
            if path + "?" not in self._cache:
                done: asyncio.Future[_Fetched] = asyncio.get_running_loop().create_future()
                done.set_result((200, resource))
                self._cache[path + "?"] = done

    async def _fetch(self, path: str, params: Sequence[tuple[str, str]]) -> _Fetched:
        key = f"{path}?{urlencode(list(params))}"
        future = self._cache.get(key)
        if future is None:
            future = asyncio.ensure_future(self._get(path, params))
            self._cache[key] = future
        return await future

    async def _get(self, path: str, params: Sequence[tuple[str, str]]) -> _Fetched:
        headers = {"Authorization": self.authorization, "Accept": "application/json"}
        try:
            response = await self.client.get(
                self.base_url + path, params=list(params), headers=headers
            )
        except httpx.HTTPError as exc:
            raise RestError(502, "General", f"emulator unreachable: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        return response.status_code, body


def _rest_error(status: int, body: Any) -> RestError:
    code, message = "General", f"emulator answered HTTP {status}"
    if isinstance(body, dict):
        message = str(body.get("message") or message)
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            code = str(errors[0].get("code") or code)
    return RestError(status, code, message)


def _segment(value: str) -> str:
    return quote(value, safe="")


_Info: TypeAlias = GraphQLResolveInfo[Upstream]


# -- root fields -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The root value of ``Query`` (project-wide) and of ``InStore`` (limited to ``stores``)."""

    stores: tuple[str, ...] | None = None


def _in_store(collection: str, resource: Mapping[str, Any], stores: tuple[str, ...]) -> bool:
    if collection == "customers":
        # Customers with an empty `stores` are global: commercetools documents them as valid
        # for the entire project and every store in it, and the in-store customer endpoints
        # 404 only when `stores` references a *different* store. So they stay visible in-store.
        refs = resource.get("stores") or []
        return not refs or any(isinstance(r, dict) and r.get("key") in stores for r in refs)
    store = resource.get("store")
    return isinstance(store, dict) and store.get("key") in stores


def _resolve_root(scope: Scope, info: _Info, args: dict[str, Any]) -> Any:
    name = info.field_name
    upstream = info.context
    if name == "inStore":
        return Scope((str(args["key"]),))
    if name == "inStores":
        return Scope(tuple(str(k) for k in args["keys"]))
    if name == "customerActiveCart":
        return _active_cart(upstream, scope, str(args["customerId"]))
    if name in ("messages", "message") and scope.stores is None:
        return _messages(upstream, name, args)
    type_name = get_named_type(info.return_type).name
    if type_name.endswith("QueryResult"):
        collection = _COLLECTION_BY_TYPE.get(type_name.removesuffix("QueryResult"))
        if collection is not None:
            _check_scoped(scope, collection, info)
            return _query(upstream, collection, args, scope)
    collection = _COLLECTION_BY_TYPE.get(type_name)
    if collection is not None:
        _check_scoped(scope, collection, info)
        return _read_one(upstream, collection, args, scope)
    raise _not_emulated(info)


def _messages(upstream: Upstream, name: str, args: Mapping[str, Any]) -> Json | None:
    """``messages(where, sort, limit, offset)`` and ``message(id)`` from the message log."""
    log = upstream.messages
    if name == "message":
        return log.get(str(args.get("id"))) if log is not None and args.get("id") else None
    params = [("where", args["where"])] if args.get("where") else []
    params += [("sort", s) for s in args.get("sort") or []]
    params += [(k, str(args[k])) for k in ("limit", "offset") if args.get(k) is not None]
    try:
        page = (log or MessageLog("")).query_params(params)
    except InvalidQuery as exc:
        raise GraphQLError(str(exc), extensions={"code": "InvalidInput"}) from exc
    return {**page, "exists": page["total"] > 0}


def _check_scoped(scope: Scope, collection: str, info: _Info) -> None:
    if scope.stores is not None and collection not in _STORE_SCOPED:
        raise _not_emulated(info)


def _not_emulated(info: _Info) -> GraphQLError:
    return GraphQLError(
        f"{info.parent_type.name}.{info.field_name} is not emulated by the commercetools bridge",
        extensions={"code": "General"},
    )


def _single_path(collection: str, args: Mapping[str, Any]) -> str:
    if args.get("id") is not None:
        return f"/{collection}/{_segment(str(args['id']))}"
    if args.get("key") is not None:
        return f"/{collection}/key={_segment(str(args['key']))}"
    if collection == "orders" and args.get("orderNumber") is not None:
        return f"/orders/order-number={_segment(str(args['orderNumber']))}"
    given = sorted(k for k, v in args.items() if v is not None)
    raise GraphQLError(
        f"Either 'id' or 'key' must be provided (got {given or 'none'})",
        extensions={"code": "InvalidInput"},
    )


async def _read_one(
    upstream: Upstream, collection: str, args: Mapping[str, Any], scope: Scope
) -> Json | None:
    resource = await upstream.find(_single_path(collection, args))
    if resource is None:
        return None
    if scope.stores is not None and not _in_store(collection, resource, scope.stores):
        return None  # the real in-store endpoint answers 404 ResourceNotFound
    return resource


async def _query(
    upstream: Upstream, collection: str, args: Mapping[str, Any], scope: Scope
) -> Json:
    limit = _bounded(args.get("limit"), _DEFAULT_LIMIT, _MAX_LIMIT, "limit")
    offset = _bounded(args.get("offset"), 0, _MAX_OFFSET, "offset")
    sort = _parse_sort(args.get("sort") or [])
    results = await upstream.query_all(collection, args.get("where"))
    if scope.stores is not None:
        stores = scope.stores
        results = [r for r in results if _in_store(collection, r, stores)]
    results = _sorted(results, sort)
    window = results[offset : offset + limit]
    return {
        "offset": offset,
        "count": len(window),
        "total": len(results),
        "exists": bool(results),
        "results": window,
    }


async def _active_cart(upstream: Upstream, scope: Scope, customer_id: str) -> Json | None:
    carts = await upstream.query_all(
        "carts", 'customerId = :cid and cartState = "Active"', [("var.cid", customer_id)]
    )
    candidates = [
        cart
        for cart in carts
        if cart.get("customerId") == customer_id
        and cart.get("origin", "Customer") == "Customer"
        and (scope.stores is None or _in_store("carts", cart, scope.stores))
    ]
    candidates.sort(key=lambda cart: str(cart.get("lastModifiedAt", "")), reverse=True)
    return candidates[0] if candidates else None


def _bounded(value: Any, default: int, maximum: int, name: str) -> int:
    if value is None:
        return default
    number = int(value)
    if not 0 <= number <= maximum:
        raise GraphQLError(
            f"'{name}' must be between 0 and {maximum}, got {number}",
            extensions={"code": "InvalidInput"},
        )
    return number


def _parse_sort(expressions: Iterable[str]) -> list[tuple[tuple[str, ...], bool]]:
    """``["createdAt desc", "id"]`` -> ``[(("createdAt",), True), (("id",), False)]``."""
    parsed: list[tuple[tuple[str, ...], bool]] = []
    for expression in expressions:
        parts = expression.split()
        direction = parts[1].lower() if len(parts) == 2 else "asc"
        if len(parts) not in (1, 2) or direction not in ("asc", "desc"):
            raise GraphQLError(
                f"Malformed sort expression: {expression!r}", extensions={"code": "InvalidInput"}
            )
        parsed.append((tuple(parts[0].split(".")), direction == "desc"))
    return parsed


def _sorted(resources: list[Json], sort: Sequence[tuple[tuple[str, ...], bool]]) -> list[Json]:
    # Stable sorts applied from the last key to the first give a multi-key sort. Resources
    # without the property go last in either direction.
    for path, descending in reversed(sort):
        present = [(v, r) for r in resources if (v := _dig(r, path)) is not None]
        missing = [r for r in resources if _dig(r, path) is None]
        try:
            present.sort(key=lambda pair: pair[0], reverse=descending)
        except TypeError as exc:
            raise GraphQLError(
                f"Cannot sort by {'.'.join(path)}: mixed value types",
                extensions={"code": "InvalidInput"},
            ) from exc
        resources = [r for _, r in present] + missing
    return resources


def _dig(resource: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(resource, Mapping):
            return None
        resource = resource.get(part)
    return resource


# -- generic field resolution -------------------------------------------------------------------


def _resolve_field(source: Any, info: _Info, **args: Any) -> Any:
    """The default resolver for every field: maps REST JSON onto the official schema."""
    if isinstance(source, Scope):
        return _resolve_root(source, info, args)
    if not isinstance(source, Mapping):
        return None
    name = info.field_name
    named = get_named_type(info.return_type)
    value = _rest_value(source, name, named, args)
    correct = _CORRECTED.get((info.parent_type.name, name))
    if correct is not None and value is not None:
        value = correct(value)
    if value is None:
        value = _missing_value(source, info, named)
    if value is None:
        return None
    if isinstance(value, _Deref):
        return _deref(info, value)
    if is_scalar_type(named) and isinstance(value, Mapping) and not _is_json(named):
        return _localized(value, args)  # a LocalizedString read as `name(locale: ...)`
    if _is_entity(named) and _is_reference_value(value):
        return _deref(info, _Deref(value))
    if isinstance(value, list) and args.get("id") is not None:
        wanted = args["id"]
        return [item for item in value if isinstance(item, Mapping) and item.get("id") == wanted]
    return value


@dataclass(frozen=True)
class _Deref:
    """A REST reference (or list of them) that must be read to answer an entity field."""

    refs: Any


def _rest_value(
    source: Mapping[str, Any], name: str, named: GraphQLNamedType, args: Mapping[str, Any]
) -> Any:
    if name in source:
        return source[name]
    if name.endswith("AllLocales"):
        return _all_locales(source.get(name.removesuffix("AllLocales")))
    if name.endswith("Refs"):
        base = name.removesuffix("Refs")
        return source.get(f"{base}s", source.get(base))
    if name.endswith("Ref"):
        return source.get(name.removesuffix("Ref"))
    if name.endswith("Raw") and _has_fields(named, "name", "value"):
        base = "fields" if name == "customFieldsRaw" else name.removesuffix("Raw")
        return _raw_fields(source.get(base), args)
    return None


def _missing_value(source: Mapping[str, Any], info: _Info, named: GraphQLNamedType) -> Any:
    name = info.field_name
    # `Order.customer` / `Cart.customer`: REST keeps only `customerId`.
    type_id = _TYPE_ID_BY_TYPE.get(named.name)
    if type_id is not None and isinstance(source.get(f"{name}Id"), str):
        return _Deref({"typeId": type_id, "id": source[f"{name}Id"]})
    alias = _ALIASES.get((info.parent_type.name, name))
    if alias is not None and source.get(alias) is not None:
        return source[alias]
    derive = _DERIVED.get((info.parent_type.name, name))
    if derive is not None:
        return derive(source)
    default = _DEFAULTS.get((info.parent_type.name, name))
    if default is not None:
        return default
    if _is_non_null_list(info.return_type):
        return []
    return None


def _deref(info: _Info, value: _Deref) -> Any:
    upstream = info.context
    refs = value.refs
    if isinstance(refs, list):
        return _deref_many(upstream, refs)
    return upstream.dereference(refs)


async def _deref_many(upstream: Upstream, refs: list[Any]) -> list[Json]:
    found = await asyncio.gather(*(upstream.dereference(r) for r in refs if isinstance(r, Mapping)))
    return [resource for resource in found if resource is not None]


def _has_fields(named: GraphQLNamedType, *names: str) -> bool:
    if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
        return False
    return all(name in named.fields for name in names)


def _is_entity(named: GraphQLNamedType) -> bool:
    """An object/interface type that is not itself a reference (has no ``typeId``)."""
    return isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not _has_fields(
        named, "typeId"
    )


def _is_reference_value(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_reference(v) for v in value)
    return _is_reference(value)


def _is_reference(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and "typeId" in value
        and ("id" in value or "key" in value)
        and set(value) <= {"typeId", "id", "key", "obj"}
    )


def _is_json(named: GraphQLNamedType) -> bool:
    return named.name in ("Json", "JsonPrimitive")


def _is_non_null_list(type_: GraphQLOutputType) -> bool:
    return is_non_null_type(type_) and is_list_type(type_.of_type)


def _all_locales(value: Any) -> list[Json] | None:
    if not isinstance(value, Mapping):
        return None
    return [{"locale": locale, "value": text} for locale, text in value.items()]


def _localized(value: Mapping[str, Any], args: Mapping[str, Any]) -> Any:
    wanted = [args["locale"]] if args.get("locale") else list(args.get("acceptLanguage") or [])
    for locale in wanted:
        if locale in value:
            return value[locale]
        language = str(locale).split("-")[0]
        for candidate, text in value.items():
            if str(candidate).split("-")[0] == language:
                return text
    return None


def _raw_fields(value: Any, args: Mapping[str, Any]) -> list[Json] | None:
    if isinstance(value, Mapping):
        items = [{"name": k, "value": v} for k, v in value.items()]
    elif isinstance(value, list):
        items = [dict(v) for v in value if isinstance(v, Mapping)]
    else:
        return None
    include, exclude = args.get("includeNames"), args.get("excludeNames")
    return [
        item
        for item in items
        if (include is None or item.get("name") in include)
        and (exclude is None or item.get("name") not in exclude)
    ]


def _resolve_type(value: Any, info: _Info, abstract_type: GraphQLAbstractType) -> str | None:
    """Pick the concrete type of an interface/union value by its REST ``type`` discriminator."""
    possible = [t.name for t in info.schema.get_possible_types(abstract_type)]
    discriminator = value.get("type") if isinstance(value, Mapping) else None
    if isinstance(discriminator, str):
        for candidate in (_DISCRIMINATORS.get(discriminator), discriminator):
            if candidate in possible:
                return candidate
        prefixed = [n for n in possible if n.lower().startswith(discriminator.lower())]
        if len(prefixed) == 1:
            return prefixed[0]
    if abstract_type.name == "BaseMoney" and isinstance(value, Mapping):
        return "HighPrecisionMoney" if "preciseAmount" in value else "Money"
    return possible[0] if len(possible) == 1 else None


# -- HTTP ----------------------------------------------------------------------------------------


@dataclass
class _Issued:
    scope: str
    client_id: str
    expires_at: float  # epoch seconds


class IssuedTokens:
    """The access tokens the bridge has handed out, for ``POST /oauth/introspect``."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tokens: dict[str, _Issued] = {}
        self._clock = clock

    def record(self, body: Any, client_id: str) -> None:
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            return
        lifetime = body.get("expires_in")
        seconds = float(lifetime) if isinstance(lifetime, int | float) else 172800.0
        self._tokens[body["access_token"]] = _Issued(
            str(body.get("scope") or ""), client_id, self._clock() + seconds
        )

    def expire(self, token: str) -> None:
        issued = self._tokens.get(token)
        if issued is not None:
            issued.expires_at = self._clock() - 1

    def introspect(self, token: str) -> Json:
        issued = self._tokens.get(token)
        if issued is None or issued.expires_at <= self._clock():
            return {"active": False}
        return {
            "active": True,
            "scope": issued.scope,
            "exp": int(issued.expires_at * 1000),
            "client_id": issued.client_id,
        }


def _basic_client_id(authorization: str) -> str | None:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, _ = decoded.partition(":")
    return client_id if sep and client_id else None


def _auth_error(status: int, code: str, message: str) -> JSONResponse:
    # AuthErrorResponse: statusCode, message, error, error_description, errors[].
    body = {
        "statusCode": status,
        "message": message,
        "error": code,
        "error_description": message,
        "errors": [{"code": code, "message": message}],
    }
    return JSONResponse(body, status)


class _Bridge:
    def __init__(
        self, emulator_url: str, schema: GraphQLSchema, client: httpx.AsyncClient | None
    ) -> None:
        self.emulator_url = emulator_url.rstrip("/")
        self.schema = schema
        self.client = client
        self.messages = MessageLogs()
        self.tokens = IssuedTokens()

    async def introspect(self, request: Request) -> Response:
        """``POST /oauth/introspect``: see the module docstring."""
        client_id = _basic_client_id(request.headers.get("authorization", ""))
        if client_id is None:
            return _with_correlation_id(
                _auth_error(
                    401,
                    "invalid_client",
                    "Please provide valid client credentials using HTTP Basic Authentication.",
                ),
                request,
            )
        token = request.query_params.get("token")
        if not token and "form" in request.headers.get("content-type", ""):
            form = await request.form(max_files=0, max_fields=5)
            value = form.get("token")
            token = value if isinstance(value, str) else None
        if not token:
            return _with_correlation_id(
                _auth_error(400, "invalid_request", "Missing required parameter: token."),
                request,
            )
        return _with_correlation_id(JSONResponse(self.tokens.introspect(token)), request)

    def http(self) -> httpx.AsyncClient:
        if self.client is None:
            raise RuntimeError(
                "bridge has no HTTP client: run the app's lifespan or pass client= to "
                "create_bridge_app()"
            )
        return self.client

    async def proxy(self, request: Request) -> Response:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        url = self.emulator_url + raw_path.decode("latin-1")
        if request.scope.get("query_string"):
            url += "?" + request.scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in request.headers.raw if _forwardable(k)]
        body = await request.body()
        write = match_write(request.method, request.url.path, body)
        before = None
        if write is not None and write.kind == "update":
            before = await self._read_before(url.partition("?")[0], request)
        upstream = self.http().build_request(request.method, url, headers=headers, content=body)
        try:
            answer = await self.http().send(upstream)
        except httpx.HTTPError as exc:
            return _error_response(502, "General", f"emulator unreachable: {exc}", request)
        if write is not None and 200 <= answer.status_code < 300:
            self._record(write, answer, before)
        path = request.url.path
        if path.startswith("/oauth/") and path.endswith("/token") and answer.status_code == 200:
            client_id = _basic_client_id(request.headers.get("authorization", "")) or ""
            with contextlib.suppress(ValueError):
                self.tokens.record(answer.json(), client_id)
        response = Response(answer.content, status_code=answer.status_code)
        response.raw_headers.extend(
            (k, v) for k, v in answer.headers.raw if _forwardable(k) and k.lower() != b"date"
        )
        _add_correlation_id(response, request)
        return response

    async def _read_before(self, url: str, request: Request) -> Json | None:
        """The resource an update is about to change (None if it cannot be read)."""
        headers = {"Accept": "application/json"}
        if "authorization" in request.headers:
            headers["Authorization"] = request.headers["authorization"]
        try:
            answer = await self.http().get(url, headers=headers)
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None
        return body if isinstance(body, dict) else None

    def _record(self, write: Write, answer: httpx.Response, before: Json | None) -> None:
        try:
            self.messages.record_write(write, answer.json(), before)
        except Exception:  # a harness bug must not break the write itself
            _log.exception("could not record messages for %s %s", write.kind, write.collection)

    async def messages_query(self, request: Request) -> Response:
        """``GET /{projectKey}/messages`` from the message log."""
        project_key = request.path_params["projectKey"]
        denied = await self._check_token(project_key, request.headers.get("authorization", ""))
        if denied is not None:
            return _with_correlation_id(denied, request)
        try:
            page = self.messages.project(project_key).query_params(
                request.query_params.multi_items()
            )
        except InvalidQuery as exc:
            return _error_response(400, "InvalidInput", str(exc), request)
        return _with_correlation_id(JSONResponse(page), request)

    async def message_by_id(self, request: Request) -> Response:
        """``GET /{projectKey}/messages/{id}`` from the message log."""
        project_key, message_id = request.path_params["projectKey"], request.path_params["id"]
        denied = await self._check_token(project_key, request.headers.get("authorization", ""))
        if denied is not None:
            return _with_correlation_id(denied, request)
        message = self.messages.project(project_key).get(message_id)
        if message is None:
            text = f"The Resource with ID '{message_id}' was not found."
            return _error_response(404, "ResourceNotFound", text, request)
        return _with_correlation_id(JSONResponse(message), request)

    async def graphql(self, request: Request) -> Response:
        project_key = request.path_params["projectKey"]
        authorization = request.headers.get("authorization", "")
        denied = await self._check_token(project_key, authorization)
        if denied is not None:
            return _with_correlation_id(denied, request)
        try:
            query, variables, operation_name = _graphql_request(await request.body())
        except ValueError as exc:
            return _error_response(400, "InvalidJsonInput", str(exc), request)
        try:
            document = parse(query)
        except GraphQLError as exc:
            return _graphql_response(400, None, [exc], request)
        errors = validate(self.schema, document)
        if errors:
            return _graphql_response(400, None, errors, request)
        upstream = Upstream(
            self.http(),
            f"{self.emulator_url}/{_segment(project_key)}",
            authorization,
            self.messages.project(project_key),
        )
        result = await self._execute(document, upstream, variables, operation_name)
        if upstream.unauthorized is not None:
            return _with_correlation_id(JSONResponse(upstream.unauthorized.body, 401), request)
        result_errors = list(result.errors or [])
        if result.data is None and result_errors and all(e.path is None for e in result_errors):
            return _graphql_response(400, None, result_errors, request)  # variables, operation
        return _graphql_response(200, result.data, result_errors, request)

    async def _execute(
        self,
        document: DocumentNode,
        upstream: Upstream,
        variables: dict[str, Any] | None,
        operation_name: str | None,
    ) -> ExecutionResult:
        outcome = execute(
            self.schema,
            document,
            root_value=Scope(),
            context_value=upstream,
            variable_values=variables,
            operation_name=operation_name,
            field_resolver=_resolve_field,
            type_resolver=_resolve_type,
        )
        if inspect.isawaitable(outcome):
            outcome = await outcome
        assert isinstance(outcome, ExecutionResult)  # narrows the union for mypy
        return outcome

    async def _check_token(self, project_key: str, authorization: str) -> Response | None:
        """Ask the emulator whether the caller's token is good; its 401 body is the real one."""
        headers = {"Authorization": authorization} if authorization else {}
        try:
            answer = await self.http().get(
                f"{self.emulator_url}/{_segment(project_key)}", headers=headers
            )
        except httpx.HTTPError as exc:
            return JSONResponse(_error_body(502, "General", f"emulator unreachable: {exc}"), 502)
        if answer.status_code in (401, 403):
            return Response(answer.content, answer.status_code, media_type="application/json")
        return None


def _graphql_request(body: bytes) -> tuple[str, dict[str, Any] | None, str | None]:
    try:
        payload = json.loads(body or b"null")
    except ValueError as exc:
        raise ValueError(f"Request body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
        raise ValueError("GraphQL request body must be an object with a 'query' string")
    variables = payload.get("variables")
    operation_name = payload.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        raise ValueError("'variables' must be an object")
    if operation_name is not None and not isinstance(operation_name, str):
        raise ValueError("'operationName' must be a string")
    return payload["query"], variables, operation_name


def _format_error(error: GraphQLError) -> Json:
    formatted: Json = dict(error.formatted)
    extensions = dict(formatted.get("extensions") or {})
    if "code" not in extensions:
        original = error.original_error
        unexpected = original is not None and not isinstance(original, GraphQLError)
        extensions["code"] = "General" if unexpected else "GraphQLError"
    formatted["extensions"] = extensions
    return formatted


def _graphql_response(
    status: int, data: Any, errors: Sequence[GraphQLError], request: Request
) -> Response:
    body: Json = {} if status >= 400 else {"data": data}
    if errors:
        body["errors"] = [_format_error(e) for e in errors]
    return _with_correlation_id(JSONResponse(body, status), request)


def _error_body(status: int, code: str, message: str) -> Json:
    error = {"code": code, "message": message}
    return {"statusCode": status, "message": message, "errors": [error]}


def _error_response(status: int, code: str, message: str, request: Request) -> Response:
    return _with_correlation_id(JSONResponse(_error_body(status, code, message), status), request)


def _forwardable(name: bytes) -> bool:
    lowered = name.decode("latin-1").lower()
    return lowered not in _HOP_BY_HOP and lowered not in _RECOMPUTED


def _add_correlation_id(response: Response, request: Request) -> None:
    if "x-correlation-id" not in response.headers:
        response.headers["X-Correlation-ID"] = request.headers.get(
            "x-correlation-id", f"bridge-{uuid.uuid4()}"
        )


def _with_correlation_id(response: Response, request: Request) -> Response:
    _add_correlation_id(response, request)
    return response


def create_bridge_app(
    emulator_url: str,
    *,
    schema_path: Path | None = None,
    client: httpx.AsyncClient | None = None,
) -> Starlette:
    """An ASGI app serving the emulator at ``emulator_url`` as if it were the real API host.

    Without ``client`` the app opens one ``httpx.AsyncClient`` in its lifespan and closes it on
    shutdown. Pass ``client`` (for example when serving through ``httpx.ASGITransport``, which
    runs no lifespan); the caller then owns and closes it.
    """
    bridge = _Bridge(emulator_url, load_schema(schema_path or DEFAULT_SCHEMA_PATH), client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if bridge.client is not None:
            yield
            return
        async with httpx.AsyncClient(timeout=30.0) as owned:
            bridge.client = owned
            try:
                yield
            finally:
                bridge.client = None

    routes = [
        Route("/{projectKey}/graphql", bridge.graphql, methods=["POST"]),
        Route("/{projectKey}/messages", bridge.messages_query, methods=["GET"]),
        Route("/{projectKey}/messages/{id}", bridge.message_by_id, methods=["GET"]),
        Route("/oauth/introspect", bridge.introspect, methods=["POST"]),
        Route("/{path:path}", bridge.proxy, methods=_ALL_METHODS),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.messages = bridge.messages  # harness extension: tests inject/inspect messages
    app.state.tokens = bridge.tokens  # harness extension: tests expire issued tokens
    return app
