"""Messages for the emulator: **our invention, not commercetools behaviour** (NOTES §7a).

The third-party emulator has no Messages API (``GET /{projectKey}/messages`` is a 404) and never
delivers Subscriptions. This harness extension lets the delta-sync code paths run against it
anyway. The bridge (``bridge.py``) feeds every successful write it proxies to a
:class:`MessageLog`, which turns the write into Messages shaped like the official ``Message``
components of the OpenAPI spec (``OrderCustomFieldChangedMessage``, ``DeliveryAddedMessage``,
...), and serves them from ``GET /{projectKey}/messages``. The payload builders at the end render
a Message (or a change) the way a Subscription delivers it, in the Platform and the CloudEvents
format, as the merchant's queue bridge would forward it.

What produces Messages (everything else produces none; there is no generic "Updated" Message):

========================================================  =========================================
Write through the bridge                                  Message type(s)
========================================================  =========================================
``POST /{pk}/orders/import``                              ``OrderImported`` {order}
``POST /{pk}/orders`` (from a cart)                       ``OrderCreated`` {order}
``POST /{pk}/customers``                                  ``CustomerCreated`` {customer}
``POST /{pk}/payments``                                   ``PaymentCreated`` {payment}
``POST /{pk}/carts``                                      none (commercetools has no CartCreated)
``DELETE /{pk}/orders/{id}``                              ``OrderDeleted`` {order}
``DELETE /{pk}/customers/{id}``                           ``CustomerDeleted`` {email}
order ``setCustomField``                                  ``OrderCustomFieldAdded`` / ``…Changed``
                                                          {previousValue} / ``…Removed``
order ``setCustomType``                                   ``OrderCustomTypeSet`` / ``…Removed``
order ``changeOrderState``                                ``OrderStateChanged``
order ``changeShipmentState``                             ``OrderShipmentStateChanged``
order ``changePaymentState``                              ``OrderPaymentStateChanged``
order ``transitionState``                                 ``OrderStateTransition``
order ``setCustomerEmail``                                ``OrderCustomerEmailSet``
order ``setShippingAddress`` / ``setBillingAddress``      ``Order{Shipping|Billing}AddressSet``
order ``setPurchaseOrderNumber``                          ``OrderPurchaseOrderNumberSet``
order ``addDelivery`` / ``removeDelivery``                ``DeliveryAdded`` / ``DeliveryRemoved``
order ``addParcelToDelivery``                             ``ParcelAddedToDelivery``
order ``setParcelTrackingData``                           ``ParcelTrackingDataUpdated``
order ``addReturnInfo``                                   ``ReturnInfoAdded``
order ``setReturnShipmentState``                          ``OrderReturnShipmentStateChanged``
order ``addPayment`` / ``removePayment``                  ``OrderPaymentAdded`` / ``…Removed``
customer ``changeEmail``                                  ``CustomerEmailChanged``
customer ``setFirstName`` ``setLastName`` ``setTitle``    ``CustomerFirstNameSet`` ... (same names)
``setCompanyName`` ``setDateOfBirth`` ``setExternalId``
customer ``setCustomerGroup``                             ``CustomerGroupSet``
customer ``addAddress`` / ``changeAddress`` /             ``CustomerAddressAdded`` / ``…Changed`` /
``removeAddress``                                         ``…Removed``
customer ``setDefaultShippingAddress`` / ``…Billing…``    ``CustomerDefaultShippingAddressSet`` / …
customer ``setCustomField`` / ``setCustomType``           ``CustomerCustomField…`` / ``…Type…``
payment ``addTransaction``                                ``PaymentTransactionAdded``
payment ``changeTransactionState``                        ``PaymentTransactionStateChanged``
payment ``setInterfaceId``                                ``PaymentInterfaceIdSet``
payment ``transitionState``                               ``PaymentStatusStateTransition``
payment ``setStatusInterfaceCode``                        ``PaymentStatusInterfaceCodeSet``
payment ``addInterfaceInteraction``                       ``PaymentInteractionAdded``
cart ``freezeCart`` ``unfreezeCart`` ``lockCart``         ``CartFrozen`` ``CartUnfrozen``
``unlockCart``                                            ``CartLocked`` ``CartUnlocked``
cart ``setPurchaseOrderNumber``                           ``CartPurchaseOrderNumberSet``
========================================================  =========================================

How the common fields are filled:

* ``sequenceNumber`` counts per resource from 1, +1 per Message. ``version`` is always 1.
* ``resourceVersion``: the emulator bumps the version once per action that changes something.
  The actions of one update get consecutive versions ending at the response's ``version``. An
  action the log can tell is a no-op (same state, same custom field value, ...) gets no version
  and no Message. Creates use the created resource's version. Deletes use the deleted
  resource's version (our choice).
* Old values (``previousValue``, ``oldOrderState``, ``oldEmail``, ...) come from ``before``, the
  resource as it was before the write (the bridge reads it just before proxying an update).
  Without ``before`` optional old values are left out, and Messages that *require* one
  (``CustomerEmailChanged``, ``DeliveryRemoved``, ...) are not produced.
* Added elements (deliveries, parcels, return infos, transactions, addresses, payments) are read
  from the response: the last *n* elements, where *n* is the number of such actions.
* ``createdBy``/``lastModifiedBy`` copy the resource's ``lastModifiedBy`` (``createdBy`` for
  creates), keeping only the documented ``ClientLogging`` properties. The emulator records the
  client id of the token, so a caller can recognise its own writes.
* ``createdAt`` = ``lastModifiedAt`` = the time the bridge saw the response (never earlier than the
  previous Message, so the log's order is its time order). ``record(..., created_at=...)`` can
  put a Message in the past, to exercise overlap windows with late-arriving Messages.
* ``resourceUserProvidedIdentifiers`` lists ``key``, ``orderNumber``, ``customerNumber`` and
  ``externalId`` when the resource has them; it is left out otherwise.
* Deliveries and parcels are reduced to their official properties (the emulator stores
  ``deliveryKey`` and bookkeeping fields; the official ``Delivery`` has ``key``).

The query side (:meth:`MessageLog.query_params`) understands what a poller sends:
``where=createdAt > "<DateTime>"`` (also ``>=``), ``resource(typeId="order")``, ``type = "X"`` and
``type in ("X", "Y")``, joined with ``and`` or given as repeated ``where`` parameters;
``sort`` on ``createdAt``, ``lastModifiedAt``, ``sequenceNumber``, ``resourceVersion``, ``id``
or ``type`` (``asc``/``desc``; default ``createdAt asc``); ``limit`` (default 20, at most 500),
``offset`` (at most 10000) and ``withTotal`` (default true). Any other predicate, or a bad value,
is a 400 ``InvalidInput`` (:class:`InvalidQuery`), as the real API answers an invalid query.
Unlike the real API, messages are always recorded (the project's ``messages.enabled`` flag is
not consulted) and never expire.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

__all__ = [
    "ACTION_MESSAGES",
    "InvalidQuery",
    "MessageFilter",
    "MessageLog",
    "MessageLogs",
    "Write",
    "cloudevents_payload",
    "format_datetime",
    "match_write",
    "parse_where",
    "platform_payload",
    "resource_created_payload",
    "resource_deleted_payload",
    "resource_updated_payload",
]

Json: TypeAlias = dict[str, Any]
Emitted: TypeAlias = list[tuple[str, Json]]

MAX_LIMIT: Final = 500
MAX_OFFSET: Final = 10_000
DEFAULT_LIMIT: Final = 20

# REST collection <-> Reference typeId, for the resources whose writes produce Messages.
TYPE_IDS: Final = {
    "orders": "order",
    "customers": "customer",
    "carts": "cart",
    "payments": "payment",
}
COLLECTIONS: Final = {type_id: collection for collection, type_id in TYPE_IDS.items()}

_IDENTIFIERS: Final = ("key", "externalId", "orderNumber", "customerNumber")
_CLIENT_LOGGING: Final = (
    "clientId",
    "externalUserId",
    "customer",
    "anonymousId",
    "associate",
    "attributedTo",
)
_DELIVERY_PROPS: Final = ("id", "key", "createdAt", "items", "parcels", "address", "custom")
_PARCEL_PROPS: Final = ("id", "key", "createdAt", "measurements", "trackingData", "items", "custom")


# -- time ----------------------------------------------------------------------------------------


def format_datetime(moment: datetime) -> str:
    """``2026-11-24T15:02:41.760Z``: UTC, millisecond precision, as commercetools writes it."""
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _parse_datetime(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _as_datetime(value: datetime | str) -> datetime:
    moment = _parse_datetime(value) if isinstance(value, str) else value
    # Messages carry millisecond precision; truncating keeps comparisons consistent with it.
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


# -- which writes produce messages -------------------------------------------------------------

_WRITE_PATH: Final = re.compile(
    r"^/(?P<pk>[^/]+)(?:/in-store/key=[^/]+)?/(?P<collection>orders|customers|carts|payments)"
    r"(?:/(?P<rest>[^/]+))?/?$"
)
# Single path segments below a collection that are not resources (POST there is no update).
_NOT_RESOURCES: Final = frozenset(
    {"import", "search", "edits", "quotes", "password", "email-token", "password-token", "matching"}
)

WriteKind: TypeAlias = Literal["create", "import", "update", "delete"]


@dataclass(frozen=True)
class Write:
    """A write the bridge is about to proxy that may produce Messages."""

    project_key: str
    collection: str  # orders | customers | carts | payments
    kind: WriteKind
    body: Any = None  # the request JSON (None for DELETE)

    @property
    def type_id(self) -> str:
        return TYPE_IDS[self.collection]


def match_write(method: str, path: str, body: bytes | None = None) -> Write | None:
    """The :class:`Write` for a request, or None when it cannot produce Messages.

    ``path`` is the decoded URL path (``/{projectKey}/orders/{id}``); ``body`` the raw request
    body. An update must be a JSON object with an ``actions`` list.
    """
    match = _WRITE_PATH.match(path)
    if match is None or method.upper() not in ("POST", "DELETE"):
        return None
    project_key, collection, rest = match["pk"], match["collection"], match["rest"]
    if method.upper() == "DELETE":
        if rest is None or rest in _NOT_RESOURCES:
            return None
        return Write(project_key, collection, "delete")
    payload = _json_object(body)
    if payload is None:
        return None
    if rest is None:
        return Write(project_key, collection, "create", payload)
    if rest == "import" and collection == "orders":
        return Write(project_key, collection, "import", payload)
    if rest in _NOT_RESOURCES or not isinstance(payload.get("actions"), list):
        return None
    return Write(project_key, collection, "update", payload)


def _json_object(body: bytes | None) -> Json | None:
    try:
        payload = json.loads(body or b"null")
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


# -- translating update actions ----------------------------------------------------------------


@dataclass
class _Context:
    """One update request being translated, action by action."""

    state: Json  # the resource before the write, updated as actions are translated
    known: bool  # whether `state` is real (the caller passed `before`)
    after: Json  # the response body: the resource after every action
    actions: list[Json]
    index: int = 0  # the action being translated
    _added: dict[str, int] = field(default_factory=dict)

    @property
    def action(self) -> Json:
        return self.actions[self.index]

    def added(self, kind: str, items: Sequence[Any], count: Callable[[Json], bool]) -> Any:
        """The element the current action appended to ``items`` (the response's list).

        Actions of one kind append in order, so the current one added element
        ``len(items) - total + position``, where ``total`` counts the actions matching
        ``count`` and ``position`` is the current action's place among them.
        """
        total = sum(1 for a in self.actions if count(a))
        position = self._added.get(kind, 0)
        self._added[kind] = position + 1
        index = len(items) - total + position
        return items[index] if 0 <= index < len(items) else None


_Translator: TypeAlias = Callable[[_Context], Emitted | None]  # None: the action changed nothing


def _ref(type_id: str, value: Any) -> Json | None:
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return {"typeId": type_id, "id": value["id"]}
    return None


def _dig(value: Any, *path: str) -> Any:
    for part in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _only(value: Mapping[str, Any], keys: Iterable[str]) -> Json:
    return {k: value[k] for k in keys if value.get(k) is not None}


def _delivery(value: Any) -> Json | None:
    if not isinstance(value, Mapping):
        return None
    delivery = dict(value)
    if "key" not in delivery and isinstance(delivery.get("deliveryKey"), str):
        delivery["key"] = delivery["deliveryKey"]  # the emulator's name for it
    official = _only(delivery, _DELIVERY_PROPS)
    official.setdefault("items", [])
    official["parcels"] = [_parcel(p) for p in delivery.get("parcels") or []]
    return official


def _parcel(value: Any) -> Json:
    return _only(value, _PARCEL_PROPS) if isinstance(value, Mapping) else {}


def _put(payload: Json, key: str, value: Any) -> Json:
    if value is not None:
        payload[key] = value
    return payload


# Generic translators -------------------------------------------------------------------------


def _state_change(message: str, field_name: str, new_key: str, old_key: str) -> _Translator:
    """``changeOrderState {orderState}`` -> ``OrderStateChanged {orderState, oldOrderState}``."""

    def translate(ctx: _Context) -> Emitted | None:
        new = ctx.action.get(field_name)
        old = ctx.state.get(field_name)
        if ctx.known and old == new:
            return None
        ctx.state[field_name] = new
        payload = _put({new_key: new}, old_key, old if ctx.known else None)
        return [(message, payload)]

    return translate


def _setter(
    message: str,
    state_field: str,
    *,
    action_field: str | None = None,
    key: str | None = None,
    old_key: str | None = None,
    required_old: bool = False,
) -> _Translator:
    """``setFirstName {firstName?}`` -> ``CustomerFirstNameSet {firstName?}`` (+ old value).

    ``state_field`` is the resource property, ``action_field`` the action's (default: the
    same), ``key`` the Message's (default: the action's).
    """
    action_key = action_field or state_field
    message_key = key or action_key

    def translate(ctx: _Context) -> Emitted | None:
        new = ctx.action.get(action_key)
        old = ctx.state.get(state_field)
        if ctx.known and old == new:
            return None
        ctx.state[state_field] = new
        if required_old and (not ctx.known or old is None):
            return []  # the Message needs the old value, which we do not know
        payload = _put({}, message_key, new)
        if old_key is not None and ctx.known:
            _put(payload, old_key, old)
        return [(message, payload)]

    return translate


def _signal(message: str) -> _Translator:
    return lambda ctx: [(message, {})]


def _custom_field(prefix: str) -> _Translator:
    def translate(ctx: _Context) -> Emitted | None:
        name, value = ctx.action.get("name"), ctx.action.get("value")
        fields = _dig(ctx.state, "custom", "fields")
        if not ctx.known:
            if value is None:
                return [(f"{prefix}CustomFieldRemoved", {"name": name})]
            return [(f"{prefix}CustomFieldChanged", {"name": name, "value": value})]
        fields = fields if isinstance(fields, dict) else {}
        present, old = name in fields, fields.get(name)
        if value is None:
            if not present:
                return None
            del fields[name]
            return [(f"{prefix}CustomFieldRemoved", {"name": name})]
        if present and old == value:
            return None
        fields[name] = value
        if not present:
            return [(f"{prefix}CustomFieldAdded", {"name": name, "value": value})]
        return [
            (f"{prefix}CustomFieldChanged", {"name": name, "value": value, "previousValue": old})
        ]

    return translate


def _custom_type(prefix: str) -> _Translator:
    def translate(ctx: _Context) -> Emitted | None:
        previous = _dig(ctx.state, "custom", "type", "id") if ctx.known else None
        if ctx.action.get("type") is None:
            if ctx.known and not ctx.state.get("custom"):
                return None
            ctx.state["custom"] = None
            return [(f"{prefix}CustomTypeRemoved", _put({}, "previousTypeId", previous))]
        custom = ctx.after.get("custom")
        if not isinstance(custom, Mapping) or _ref("type", custom.get("type")) is None:
            return []
        fields = {"type": _ref("type", custom["type"]), "fields": dict(custom.get("fields") or {})}
        ctx.state["custom"] = copy.deepcopy(fields)
        payload = _put({"customFields": fields}, "previousTypeId", previous)
        return [(f"{prefix}CustomTypeSet", payload)]

    return translate


def _state_transition(message: str, with_old: bool) -> _Translator:
    def translate(ctx: _Context) -> Emitted | None:
        state = _ref("state", ctx.after.get("state")) or _ref("state", ctx.action.get("state"))
        old = _ref("state", ctx.state.get("state")) if ctx.known else None
        ctx.state["state"] = state
        if state is None:
            return []
        payload: Json = {"state": state, "force": bool(ctx.action.get("force", False))}
        if with_old:
            _put(payload, "oldState", old)
        return [(message, payload)]

    return translate


# Orders --------------------------------------------------------------------------------------


def _deliveries(resource: Any, shipping_key: Any) -> list[Any]:
    if isinstance(shipping_key, str):
        for shipping in _dig(resource, "shipping") or []:
            if isinstance(shipping, Mapping) and shipping.get("shippingKey") == shipping_key:
                return list(_dig(shipping, "shippingInfo", "deliveries") or [])
        return []
    return list(_dig(resource, "shippingInfo", "deliveries") or [])


def _is(name: str) -> Callable[[Json], bool]:
    return lambda action: action.get("action") == name


def _add_delivery(ctx: _Context) -> Emitted | None:
    shipping_key = ctx.action.get("shippingKey")
    items = _deliveries(ctx.after, shipping_key)

    def same_shipping(action: Json) -> bool:
        return action.get("action") == "addDelivery" and action.get("shippingKey") == shipping_key

    delivery = _delivery(ctx.added(f"delivery:{shipping_key}", items, same_shipping))
    if delivery is None:
        return []
    return [("DeliveryAdded", _put({"delivery": delivery}, "shippingKey", shipping_key))]


def _find_delivery(deliveries: Iterable[Any], action: Mapping[str, Any]) -> Any:
    for delivery in deliveries:
        if not isinstance(delivery, Mapping):
            continue
        if action.get("deliveryId") is not None and delivery.get("id") == action["deliveryId"]:
            return delivery
        key = action.get("deliveryKey")
        if key is not None and key in (delivery.get("key"), delivery.get("deliveryKey")):
            return delivery
    return None


def _remove_delivery(ctx: _Context) -> Emitted | None:
    shipping_key = ctx.action.get("shippingKey")
    delivery = _delivery(_find_delivery(_deliveries(ctx.state, shipping_key), ctx.action))
    if delivery is None:
        return []
    return [("DeliveryRemoved", _put({"delivery": delivery}, "shippingKey", shipping_key))]


def _add_parcel(ctx: _Context) -> Emitted | None:
    shipping_key = ctx.action.get("shippingKey")
    target = _find_delivery(_deliveries(ctx.after, shipping_key), ctx.action)
    if not isinstance(target, Mapping):
        return []
    ident = ctx.action.get("deliveryId") or ctx.action.get("deliveryKey")

    def same_delivery(action: Json) -> bool:
        return action.get("action") == "addParcelToDelivery" and ident in (
            action.get("deliveryId"),
            action.get("deliveryKey"),
        )

    parcel = ctx.added(f"parcel:{ident}", target.get("parcels") or [], same_delivery)
    if parcel is None:
        return []
    payload = {"delivery": _delivery(target), "parcel": _parcel(parcel)}
    return [("ParcelAddedToDelivery", _put(payload, "shippingKey", shipping_key))]


def _set_parcel_tracking(ctx: _Context) -> Emitted | None:
    wanted_id, wanted_key = ctx.action.get("parcelId"), ctx.action.get("parcelKey")
    deliveries = _deliveries(ctx.after, None)
    for shipping in _dig(ctx.after, "shipping") or []:
        deliveries += list(_dig(shipping, "shippingInfo", "deliveries") or [])
    for delivery in deliveries:
        for parcel in _dig(delivery, "parcels") or []:
            if (wanted_id is not None and parcel.get("id") == wanted_id) or (
                wanted_key is not None and parcel.get("key") == wanted_key
            ):
                payload = {"deliveryId": delivery["id"], "parcelId": parcel["id"]}
                return [
                    (
                        "ParcelTrackingDataUpdated",
                        _put(payload, "trackingData", parcel.get("trackingData")),
                    )
                ]
    return []


def _add_return_info(ctx: _Context) -> Emitted | None:
    info = ctx.added("returnInfo", ctx.after.get("returnInfo") or [], _is("addReturnInfo"))
    return [("ReturnInfoAdded", {"returnInfo": info})] if isinstance(info, Mapping) else []


def _set_return_shipment_state(ctx: _Context) -> Emitted | None:
    wanted_id, wanted_key = ctx.action.get("returnItemId"), ctx.action.get("returnItemKey")
    for info in ctx.after.get("returnInfo") or []:
        for item in _dig(info, "items") or []:
            if (wanted_id is not None and item.get("id") == wanted_id) or (
                wanted_key is not None and item.get("key") == wanted_key
            ):
                payload = {
                    "returnItemId": item["id"],
                    "returnShipmentState": ctx.action["shipmentState"],
                }
                return [("OrderReturnShipmentStateChanged", payload)]
    return []


def _payment_refs(resource: Any) -> list[Any]:
    return list(_dig(resource, "paymentInfo", "payments") or [])


def _add_payment(ctx: _Context) -> Emitted | None:
    added = ctx.added("payment", _payment_refs(ctx.after), _is("addPayment"))
    ref = _ref("payment", added) or _ref("payment", ctx.action.get("payment"))
    return [("OrderPaymentAdded", {"paymentRef": ref})] if ref is not None else []


def _remove_payment(ctx: _Context) -> Emitted | None:
    wanted = ctx.action.get("payment") or {}
    for ref in _payment_refs(ctx.state) if ctx.known else []:
        if isinstance(ref, Mapping) and (
            ref.get("id") == wanted.get("id")
            or (wanted.get("key") and ref.get("key") == wanted["key"])
        ):
            payload = {
                "paymentRef": _ref("payment", ref),
                "removedPaymentInfo": not _payment_refs(ctx.after),
            }
            return [("OrderPaymentRemoved", payload)]
    return []


# Customers -----------------------------------------------------------------------------------


def _address_roles(customer: Mapping[str, Any], address_id: Any) -> list[str]:
    roles = []
    if address_id in (customer.get("shippingAddressIds") or []):
        roles.append("Shipping")
    if address_id in (customer.get("billingAddressIds") or []):
        roles.append("Billing")
    return roles


def _find_address(customer: Any, action: Mapping[str, Any], prefix: str = "address") -> Any:
    wanted_id, wanted_key = action.get(f"{prefix}Id"), action.get(f"{prefix}Key")
    for address in _dig(customer, "addresses") or []:
        if isinstance(address, Mapping) and (
            (wanted_id is not None and address.get("id") == wanted_id)
            or (wanted_key is not None and address.get("key") == wanted_key)
        ):
            return address
    return None


def _add_address(ctx: _Context) -> Emitted | None:
    address = ctx.added("address", ctx.after.get("addresses") or [], _is("addAddress"))
    return [("CustomerAddressAdded", {"address": address})] if isinstance(address, Mapping) else []


def _change_address(ctx: _Context) -> Emitted | None:
    address = _find_address(ctx.after, ctx.action)
    if not isinstance(address, Mapping):
        return []
    roles = _address_roles(ctx.after, address.get("id"))
    return [("CustomerAddressChanged", {"address": address, "addressRoles": roles})]


def _remove_address(ctx: _Context) -> Emitted | None:
    address = _find_address(ctx.state, ctx.action) if ctx.known else None
    if not isinstance(address, Mapping):
        return []
    roles = _address_roles(ctx.state, address.get("id"))
    return [("CustomerAddressRemoved", {"address": address, "addressRoles": roles})]


def _default_address(message: str) -> _Translator:
    def translate(ctx: _Context) -> Emitted | None:
        address = _find_address(ctx.after, ctx.action)
        return [(message, _put({}, "address", address))]

    return translate


def _set_customer_group(ctx: _Context) -> Emitted | None:
    group = _ref("customer-group", ctx.after.get("customerGroup")) or _ref(
        "customer-group", ctx.action.get("customerGroup")
    )
    return [("CustomerGroupSet", _put({}, "customerGroup", group))]


# Payments ------------------------------------------------------------------------------------


def _add_transaction(ctx: _Context) -> Emitted | None:
    added = ctx.added("transaction", ctx.after.get("transactions") or [], _is("addTransaction"))
    return (
        [("PaymentTransactionAdded", {"transaction": added})] if isinstance(added, Mapping) else []
    )


def _change_transaction_state(ctx: _Context) -> Emitted | None:
    transaction_id, state = ctx.action.get("transactionId"), ctx.action.get("state")
    for transaction in (ctx.state.get("transactions") or []) if ctx.known else []:
        if isinstance(transaction, dict) and transaction.get("id") == transaction_id:
            if transaction.get("state") == state:
                return None
            transaction["state"] = state
    payload = {"transactionId": transaction_id, "state": state}
    return [("PaymentTransactionStateChanged", payload)]


def _add_interaction(ctx: _Context) -> Emitted | None:
    added = ctx.added(
        "interaction", ctx.after.get("interfaceInteractions") or [], _is("addInterfaceInteraction")
    )
    return (
        [("PaymentInteractionAdded", {"interaction": added})] if isinstance(added, Mapping) else []
    )


def _set_status_interface_code(ctx: _Context) -> Emitted | None:
    payload = _put(
        {"paymentId": ctx.after.get("id")}, "interfaceCode", ctx.action.get("interfaceCode")
    )
    return [("PaymentStatusInterfaceCodeSet", payload)]


_TRANSLATORS: Final[dict[str, dict[str, _Translator]]] = {
    "order": {
        "setCustomField": _custom_field("Order"),
        "setCustomType": _custom_type("Order"),
        "changeOrderState": _state_change(
            "OrderStateChanged", "orderState", "orderState", "oldOrderState"
        ),
        "changeShipmentState": _state_change(
            "OrderShipmentStateChanged", "shipmentState", "shipmentState", "oldShipmentState"
        ),
        "changePaymentState": _state_change(
            "OrderPaymentStateChanged", "paymentState", "paymentState", "oldPaymentState"
        ),
        "transitionState": _state_transition("OrderStateTransition", with_old=True),
        "setCustomerEmail": _setter(
            "OrderCustomerEmailSet", "customerEmail", action_field="email", old_key="oldEmail"
        ),
        "setShippingAddress": _setter(
            "OrderShippingAddressSet",
            "shippingAddress",
            action_field="address",
            old_key="oldAddress",
        ),
        "setBillingAddress": _setter(
            "OrderBillingAddressSet", "billingAddress", action_field="address", old_key="oldAddress"
        ),
        "setPurchaseOrderNumber": _setter(
            "OrderPurchaseOrderNumberSet", "purchaseOrderNumber", old_key="oldPurchaseOrderNumber"
        ),
        "addDelivery": _add_delivery,
        "removeDelivery": _remove_delivery,
        "addParcelToDelivery": _add_parcel,
        "setParcelTrackingData": _set_parcel_tracking,
        "addReturnInfo": _add_return_info,
        "setReturnShipmentState": _set_return_shipment_state,
        "addPayment": _add_payment,
        "removePayment": _remove_payment,
    },
    "customer": {
        "changeEmail": _setter(
            "CustomerEmailChanged", "email", old_key="oldEmail", required_old=True
        ),
        "setFirstName": _setter("CustomerFirstNameSet", "firstName"),
        "setLastName": _setter("CustomerLastNameSet", "lastName"),
        "setTitle": _setter("CustomerTitleSet", "title"),
        "setCompanyName": _setter("CustomerCompanyNameSet", "companyName"),
        "setDateOfBirth": _setter("CustomerDateOfBirthSet", "dateOfBirth"),
        "setExternalId": _setter("CustomerExternalIdSet", "externalId"),
        "setCustomerGroup": _set_customer_group,
        "addAddress": _add_address,
        "changeAddress": _change_address,
        "removeAddress": _remove_address,
        "setDefaultShippingAddress": _default_address("CustomerDefaultShippingAddressSet"),
        "setDefaultBillingAddress": _default_address("CustomerDefaultBillingAddressSet"),
        "setCustomField": _custom_field("Customer"),
        "setCustomType": _custom_type("Customer"),
    },
    "payment": {
        "addTransaction": _add_transaction,
        "changeTransactionState": _change_transaction_state,
        "setInterfaceId": _setter("PaymentInterfaceIdSet", "interfaceId", old_key="oldInterfaceId"),
        "transitionState": _state_transition("PaymentStatusStateTransition", with_old=False),
        "setStatusInterfaceCode": _set_status_interface_code,
        "addInterfaceInteraction": _add_interaction,
    },
    "cart": {
        "freezeCart": _signal("CartFrozen"),
        "unfreezeCart": _signal("CartUnfrozen"),
        "lockCart": _signal("CartLocked"),
        "unlockCart": _signal("CartUnlocked"),
        "setPurchaseOrderNumber": _setter(
            "CartPurchaseOrderNumberSet", "purchaseOrderNumber", old_key="oldPurchaseOrderNumber"
        ),
    },
}

# Update action -> Message type(s), for documentation and tests.
ACTION_MESSAGES: Final = {type_id: tuple(sorted(table)) for type_id, table in _TRANSLATORS.items()}


def _translate_update(type_id: str, ctx: _Context) -> list[tuple[int, str, Json]]:
    """``(position among version-bumping actions, type, payload)`` for each Message."""
    table = _TRANSLATORS.get(type_id, {})
    emitted: list[tuple[int, str, Json]] = []
    bumps = 0
    for index, action in enumerate(ctx.actions):
        ctx.index = index
        translate = table.get(str(action.get("action")))
        result: Emitted | None = translate(ctx) if translate is not None else []
        if result is None:
            continue  # a no-op: the emulator does not bump the version for it either
        emitted.extend((bumps, message, payload) for message, payload in result)
        bumps += 1
    # Versions end at the response's version: the first bump is version - bumps + 1.
    return [(position - bumps + 1, message, payload) for position, message, payload in emitted]


# -- the log -------------------------------------------------------------------------------------


class InvalidQuery(ValueError):
    """A query the real API would reject (or that the log cannot answer): 400 InvalidInput."""


@dataclass(frozen=True)
class MessageFilter:
    """What ``where`` asks for: ``createdAt > after`` (or ``>=``), resource typeId, types."""

    created_after: datetime | None = None
    inclusive: bool = False
    resource_type_id: str | None = None
    types: frozenset[str] | None = None

    def matches(self, entry: _Entry) -> bool:
        after = self.created_after
        if after is not None and (
            entry.created < after or (entry.created == after and not self.inclusive)
        ):
            return False
        message = entry.message
        if self.resource_type_id is not None and _dig(message, "resource", "typeId") != (
            self.resource_type_id
        ):
            return False
        return self.types is None or message.get("type") in self.types


@dataclass(frozen=True)
class _Entry:
    created: datetime
    order: int  # insertion order, breaks ties between equal createdAt
    message: Json


_SORTABLE: Final = (
    "createdAt",
    "lastModifiedAt",
    "sequenceNumber",
    "resourceVersion",
    "id",
    "type",
)


class MessageLog:
    """The Messages of one project, in memory (thread-safe; the bridge may run in a thread)."""

    def __init__(self, project_key: str) -> None:
        self.project_key = project_key
        self._lock = threading.RLock()
        self._entries: list[_Entry] = []
        self._by_id: dict[str, _Entry] = {}
        self._sequence: dict[tuple[str, str], int] = {}
        self._clock: datetime | None = None

    # recording --------------------------------------------------------------------------------

    def record(
        self,
        type: str,
        resource: Mapping[str, Any],
        resource_version: int,
        payload: Mapping[str, Any] | None = None,
        *,
        created_at: datetime | str | None = None,
        resource_user_provided_identifiers: Mapping[str, Any] | None = None,
        created_by: Mapping[str, Any] | None = None,
        sequence_number: int | None = None,
        message_id: str | None = None,
    ) -> Json:
        """Append one Message and return it.

        ``resource`` is a Reference ``{typeId, id}``. ``created_at`` defaults to now (never
        before the previous Message); pass an earlier time to simulate a late-arriving Message.
        ``sequence_number`` defaults to the resource's next number.
        """
        reference = {"typeId": str(resource["typeId"]), "id": str(resource["id"])}
        with self._lock:
            moment = self._next_time() if created_at is None else _as_datetime(created_at)
            key = (reference["typeId"], reference["id"])
            sequence = sequence_number or self._sequence.get(key, 0) + 1
            self._sequence[key] = max(sequence, self._sequence.get(key, 0))
            stamp = format_datetime(moment)
            message: Json = {
                "id": message_id or str(uuid.uuid4()),
                "version": 1,
                "sequenceNumber": sequence,
                "resource": reference,
                "resourceVersion": int(resource_version),
            }
            if resource_user_provided_identifiers:
                message["resourceUserProvidedIdentifiers"] = dict(
                    resource_user_provided_identifiers
                )
            message["type"] = type
            message.update(copy.deepcopy(dict(payload or {})))
            message["createdAt"] = stamp
            message["lastModifiedAt"] = stamp
            if created_by:
                message["lastModifiedBy"] = dict(created_by)
                message["createdBy"] = dict(created_by)
            entry = _Entry(moment, len(self._entries), message)
            self._entries.append(entry)
            self._by_id[message["id"]] = entry
            return copy.deepcopy(message)

    def _next_time(self) -> datetime:
        moment = _as_datetime(datetime.now(UTC))
        if self._clock is not None and moment < self._clock:
            moment = self._clock
        self._clock = moment
        return moment

    def record_write(self, write: Write, response: Any, before: Json | None = None) -> list[Json]:
        """Record the Messages one successful write produces (see the module docstring)."""
        resource = response.get("customer", response) if write.kind == "create" else response
        if not isinstance(resource, dict) or not isinstance(resource.get("id"), str):
            return []
        planned = self._plan(write, resource, before)
        if not planned:
            return []
        reference = {"typeId": write.type_id, "id": resource["id"]}
        identifiers = _only(resource, _IDENTIFIERS)
        by_key = "createdBy" if write.kind in ("create", "import") else "lastModifiedBy"
        by = resource.get(by_key)
        created_by = _only(by, _CLIENT_LOGGING) if isinstance(by, Mapping) else None
        version = int(resource.get("version", 1))
        with self._lock:
            moment = self._next_time()  # one timestamp for all Messages of one write
            return [
                self.record(
                    message,
                    reference,
                    max(version + offset, 1),
                    payload,
                    created_at=moment,
                    resource_user_provided_identifiers=identifiers,
                    created_by=created_by,
                )
                for offset, message, payload in planned
            ]

    def _plan(
        self, write: Write, resource: Json, before: Json | None
    ) -> list[tuple[int, str, Json]]:
        type_id = write.type_id
        if write.kind == "import":
            return [(0, "OrderImported", {"order": resource})]
        if write.kind == "create":
            created = {"order": "OrderCreated", "customer": "CustomerCreated"}
            created["payment"] = "PaymentCreated"
            message = created.get(type_id)
            return [(0, message, {type_id: resource})] if message else []
        if write.kind == "delete":
            if type_id == "order":
                return [(0, "OrderDeleted", {"order": resource})]
            if type_id == "customer":
                return [(0, "CustomerDeleted", _put({}, "email", resource.get("email")))]
            return []
        actions = [a for a in (write.body or {}).get("actions", []) if isinstance(a, dict)]
        known = isinstance(before, dict)
        state = copy.deepcopy(before) if isinstance(before, dict) else {}
        return _translate_update(type_id, _Context(state, known, resource, actions))

    # reading ------------------------------------------------------------------------------------

    def get(self, message_id: str) -> Json | None:
        with self._lock:
            entry = self._by_id.get(message_id)
            return copy.deepcopy(entry.message) if entry is not None else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[Json]:
        """Every Message, oldest ``createdAt`` first (copies)."""
        with self._lock:
            entries = sorted(self._entries, key=lambda e: (e.created, e.order))
            return iter([copy.deepcopy(e.message) for e in entries])

    def query(
        self,
        where_created_after: str | datetime | None = None,
        limit: int = DEFAULT_LIMIT,
        offset: int = 0,
        *,
        inclusive: bool = False,
        resource_type_id: str | None = None,
        types: Iterable[str] | None = None,
        sort: Sequence[tuple[str, bool]] = (("createdAt", False),),
        with_total: bool = True,
    ) -> Json:
        """A ``MessagePagedQueryResponse``: ``{limit, offset, count, total?, results}``.

        ``sort`` is a list of ``(field, descending)``; ties keep the recording order.
        """
        created_after = None if where_created_after is None else _as_datetime(where_created_after)
        wanted = MessageFilter(
            created_after,
            inclusive,
            resource_type_id,
            frozenset(types) if types is not None else None,
        )
        return self._page(wanted, sort, limit, offset, with_total)

    def query_params(self, params: Iterable[tuple[str, str]]) -> Json:
        """Answer ``GET /{projectKey}/messages`` query parameters (raises :class:`InvalidQuery`)."""
        items = list(params)
        wanted = parse_where([v for k, v in items if k == "where"])
        sort = _parse_sort([v for k, v in items if k == "sort"])
        values = dict(items)
        limit = _bounded(values.get("limit"), DEFAULT_LIMIT, MAX_LIMIT, "limit")
        offset = _bounded(values.get("offset"), 0, MAX_OFFSET, "offset")
        with_total = _boolean(values.get("withTotal"), True, "withTotal")
        return self._page(wanted, sort, limit, offset, with_total)

    def _page(
        self,
        wanted: MessageFilter,
        sort: Sequence[tuple[str, bool]],
        limit: int,
        offset: int,
        with_total: bool,
    ) -> Json:
        for name, _ in sort:
            if name not in _SORTABLE:
                raise InvalidQuery(f"Messages cannot be sorted by '{name}' in the emulator")
        with self._lock:
            matches = [e for e in self._entries if wanted.matches(e)]
            matches.sort(key=lambda e: (e.created, e.order))
            for name, descending in reversed(sort):
                matches.sort(key=functools.partial(_sort_key, name=name), reverse=descending)
            window = [copy.deepcopy(e.message) for e in matches[offset : offset + limit]]
        page: Json = {"limit": limit, "offset": offset, "count": len(window)}
        if with_total:
            page["total"] = len(matches)
        page["results"] = window
        return page


def _sort_key(entry: _Entry, name: str) -> Any:
    if name in ("createdAt", "lastModifiedAt"):
        return entry.created if name == "createdAt" else str(entry.message.get(name, ""))
    value = entry.message.get(name)
    return value if value is not None else ""


class MessageLogs:
    """The Message logs of every project the bridge has seen (``app.state.messages``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: dict[str, MessageLog] = {}

    def project(self, project_key: str) -> MessageLog:
        with self._lock:
            log = self._logs.get(project_key)
            if log is None:
                log = self._logs[project_key] = MessageLog(project_key)
            return log

    def record_write(self, write: Write, response: Any, before: Json | None = None) -> list[Json]:
        return self.project(write.project_key).record_write(write, response, before)


# -- predicates --------------------------------------------------------------------------------

_STRING: Final = r'"((?:[^"\\]|\\.)*)"'
_CREATED: Final = re.compile(rf"^createdAt\s*(>=|>)\s*{_STRING}$")
_RESOURCE: Final = re.compile(rf"^resource\s*\(\s*typeId\s*=\s*{_STRING}\s*\)$")
_TYPE_IS: Final = re.compile(rf"^type\s*=\s*{_STRING}$")
_TYPE_IN: Final = re.compile(r"^type\s+in\s*\((.*)\)$", re.IGNORECASE | re.DOTALL)
_AND: Final = re.compile(r"\s+and\s+", re.IGNORECASE)


def _conjuncts(predicate: str) -> list[str]:
    """Split on top-level ``and`` (outside strings and parentheses)."""
    parts, depth, quoted, start = [], 0, False, 0
    index = 0
    while index < len(predicate):
        char = predicate[index]
        if quoted:
            if char == "\\":
                index += 1
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif depth == 0 and (match := _AND.match(predicate, index)) is not None and index > 0:
            parts.append(predicate[start:index])
            start = index = match.end()
            continue
        index += 1
    parts.append(predicate[start:])
    return [p.strip() for p in parts]


def _type_list(body: str) -> frozenset[str]:
    values = [v.strip() for v in body.split(",")]
    names = []
    for value in values:
        match = re.fullmatch(_STRING, value)
        if match is None:
            raise InvalidQuery(f"Malformed parameter: where: type in ({body})")
        names.append(match[1])
    return frozenset(names)


def parse_where(predicates: Iterable[str]) -> MessageFilter:
    """Parse the ``where`` parameters a poller sends (repeated parameters are ANDed)."""
    created: datetime | None = None
    inclusive = False
    type_id: str | None = None
    types: frozenset[str] | None = None
    for predicate in predicates:
        for term in _conjuncts(predicate.strip()):
            if (match := _CREATED.match(term)) is not None:
                try:
                    moment = _as_datetime(match[2])
                except ValueError as exc:
                    raise InvalidQuery(
                        f"Malformed parameter: where: {match[2]!r} is no DateTime"
                    ) from exc
                if created is None or moment > created or (moment == created and match[1] == ">"):
                    created, inclusive = moment, match[1] == ">="
            elif (match := _RESOURCE.match(term)) is not None:
                type_id = match[1]
            elif (match := _TYPE_IS.match(term)) is not None:
                types = frozenset({match[1]}) if types is None else types & {match[1]}
            elif (match := _TYPE_IN.match(term)) is not None:
                listed = _type_list(match[1])
                types = listed if types is None else types & listed
            else:
                raise InvalidQuery(
                    f"The predicate {term!r} is not supported by the emulator's message log "
                    '(supported: createdAt > "...", resource(typeId="..."), type = / in)'
                )
    return MessageFilter(created, inclusive, type_id, types)


def _parse_sort(expressions: Iterable[str]) -> list[tuple[str, bool]]:
    parsed = []
    for expression in expressions:
        parts = expression.split()
        direction = parts[1].lower() if len(parts) == 2 else "asc"
        if len(parts) not in (1, 2) or direction not in ("asc", "desc"):
            raise InvalidQuery(f"Malformed parameter: sort: {expression!r}")
        if parts[0] not in _SORTABLE:
            raise InvalidQuery(f"Messages cannot be sorted by '{parts[0]}' in the emulator")
        parsed.append((parts[0], direction == "desc"))
    return parsed or [("createdAt", False)]


def _bounded(value: str | None, default: int, maximum: int, name: str) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidQuery(f"Malformed parameter: {name}: {value!r} is no integer") from exc
    if not 0 <= number <= maximum:
        raise InvalidQuery(f"'{name}' must be between 0 and {maximum}, got {number}")
    return number


def _boolean(value: str | None, default: bool, name: str) -> bool:
    if value is None:
        return default
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise InvalidQuery(f"Malformed parameter: {name}: {value!r} is no boolean")


# -- Subscription payloads ---------------------------------------------------------------------

_COMMON: Final = frozenset(
    {
        "id",
        "version",
        "sequenceNumber",
        "resource",
        "resourceVersion",
        "resourceUserProvidedIdentifiers",
        "type",
        "createdAt",
        "lastModifiedAt",
        "createdBy",
        "lastModifiedBy",
    }
)


def platform_payload(
    message: Mapping[str, Any], project_key: str, *, payload_not_included: bool = False
) -> Json:
    """The ``MessageDeliveryPayload`` a Platform-format Subscription delivers for ``message``.

    With ``payload_not_included`` the Message's own fields (and ``type``) are left out and
    ``payloadNotIncluded {reason, payloadType}`` says so, as for a payload over the size limit.
    """
    payload: Json = {"notificationType": "Message", "projectKey": project_key}
    for key in ("id", "version", "sequenceNumber", "resource", "resourceVersion"):
        payload[key] = copy.deepcopy(message[key])
    if message.get("resourceUserProvidedIdentifiers"):
        payload["resourceUserProvidedIdentifiers"] = dict(
            message["resourceUserProvidedIdentifiers"]
        )
    if payload_not_included:
        payload["payloadNotIncluded"] = {
            "reason": "Payload too large",
            "payloadType": str(message["type"]),
        }
    else:
        payload["type"] = message["type"]
        payload.update(copy.deepcopy({k: v for k, v in message.items() if k not in _COMMON}))
    payload["createdAt"] = message["createdAt"]
    payload["lastModifiedAt"] = message["lastModifiedAt"]
    return payload


def _change_payload(
    notification: str, project_key: str, type_id: str, resource: Mapping[str, Any]
) -> Json:
    payload: Json = {
        "notificationType": notification,
        "projectKey": project_key,
        "resource": {"typeId": type_id, "id": str(resource["id"])},
    }
    identifiers = _only(resource, _IDENTIFIERS)
    if identifiers:
        payload["resourceUserProvidedIdentifiers"] = identifiers
    payload["version"] = int(resource["version"])
    return payload


def resource_created_payload(project_key: str, type_id: str, resource: Mapping[str, Any]) -> Json:
    """The ``ResourceCreatedDeliveryPayload`` of a changes Subscription."""
    payload = _change_payload("ResourceCreated", project_key, type_id, resource)
    payload["modifiedAt"] = str(resource.get("lastModifiedAt") or resource["createdAt"])
    return payload


def resource_updated_payload(
    project_key: str,
    type_id: str,
    resource: Mapping[str, Any],
    *,
    old_version: int | None = None,
) -> Json:
    """The ``ResourceUpdatedDeliveryPayload`` for ``resource`` (the body after the update).

    ``old_version`` is the version before the update (default: one less).
    """
    payload = _change_payload("ResourceUpdated", project_key, type_id, resource)
    version = payload["version"]
    payload["oldVersion"] = int(old_version) if old_version is not None else version - 1
    payload["modifiedAt"] = str(resource["lastModifiedAt"])
    return payload


def resource_deleted_payload(
    project_key: str,
    type_id: str,
    resource: Mapping[str, Any],
    *,
    modified_at: datetime | str | None = None,
    data_erasure: bool | None = None,
) -> Json:
    """The ``ResourceDeletedDeliveryPayload``; ``version`` is the last version seen."""
    payload = _change_payload("ResourceDeleted", project_key, type_id, resource)
    moment = modified_at if modified_at is not None else datetime.now(UTC)
    payload["modifiedAt"] = moment if isinstance(moment, str) else format_datetime(moment)
    if data_erasure is not None:
        payload["dataErasure"] = data_erasure
    return payload


def cloudevents_payload(payload: Mapping[str, Any], project_key: str | None = None) -> Json:
    """The ``CloudEventsPayload`` (CloudEvents 1.0 JSON) a CloudEvents Subscription delivers.

    ``payload`` is a Platform delivery payload (:func:`platform_payload`, ``resource_*_payload``)
    or a Message (then ``project_key`` is required). ``data`` is the Platform payload; ``type``
    is ``com.commercetools.{typeId}.message.{MessageType}`` or
    ``com.commercetools.{typeId}.change.{ResourceCreated|ResourceUpdated|ResourceDeleted}``;
    ``source`` the resource type's REST path with the project key; ``subject`` the resource id;
    ``time`` the Message's ``createdAt`` (``modifiedAt`` for changes). Messages also get
    ``sequence`` (the ``sequenceNumber`` as a string), ``sequencetype`` ``"Integer"`` and
    ``dataref`` (the Message's REST path).
    """
    data = dict(payload)
    if "notificationType" not in data:
        if project_key is None:
            raise ValueError("a Message needs the project key to become a delivery payload")
        data = platform_payload(data, project_key)
    project = str(data["projectKey"])
    type_id = str(data["resource"]["typeId"])
    collection = COLLECTIONS.get(type_id, f"{type_id}s")
    event: Json = {"specversion": "1.0"}
    if data["notificationType"] == "Message":
        message_type = data.get("type") or data["payloadNotIncluded"]["payloadType"]
        event["id"] = str(data["id"])
        event["type"] = f"com.commercetools.{type_id}.message.{message_type}"
        time = str(data["createdAt"])
    else:
        event["id"] = str(
            uuid.uuid5(
                uuid.NAMESPACE_URL,
                f"{project}/{collection}/{data['resource']['id']}"
                f"/{data['notificationType']}/{data['version']}",
            )
        )
        event["type"] = f"com.commercetools.{type_id}.change.{data['notificationType']}"
        time = str(data["modifiedAt"])
    event["source"] = f"/{project}/{collection}"
    event["subject"] = str(data["resource"]["id"])
    event["time"] = time
    if data["notificationType"] == "Message":
        event["sequence"] = str(data["sequenceNumber"])
        event["sequencetype"] = "Integer"
        event["dataref"] = f"/{project}/messages/{data['id']}"
    event["data"] = data
    return event
