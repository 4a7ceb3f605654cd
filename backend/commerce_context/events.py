"""commercetools change events: push (subscriptions) and the shared logic that applies them.

commercetools delivers subscription messages to a queue (SQS, Pub/Sub, ...), never to HTTPS;
the merchant's queue bridge forwards each payload to `POST /commercetools/events` with
`Authorization: Bearer <CC_EVENTS_SECRET>`. Accepted shapes (one payload or a JSON array):

* Platform format: `MessageDeliveryPayload` (`notificationType: "Message"`) and the change
  payloads `ResourceCreated` / `ResourceUpdated` / `ResourceDeleted`;
* CloudEvents 1.0 JSON (`specversion`), whose `data` is the Platform payload.

Delivery is at least once and unordered, so every event is treated as "this entity is now at
version N": a cached entity at N or newer is kept (an old or repeated message changes nothing),
an older one is evicted. Events that can add or remove list members (an order created, an
address changed) also expire cached lists (kept, no longer fresh: the "as of" fallback still
serves them during an outage). Duplicates are recognised by message id, and an event is
marked as seen only after it was applied: one whose application failed (commercetools down
for a payment's orders, Redis down) is applied again when the bridge redelivers it.
Identifiers are length-bounded (`MAX_ID`), and one request holds at most `MAX_EVENTS`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from . import tidio_sync
from .cache import Reader
from .exceptions import BadRequest, NotFound, Unauthorized
from .limits import parse_json, read_body
from .settings import Settings
from .tokens import bearer
from .zendesk_sync import enqueue_for_events as enqueue_zendesk

__all__ = ["Event", "apply_events", "parse_payload", "receive"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
MAX_ID = 256  # commercetools ids are UUIDs; message types and typeIds are short names
MAX_EVENTS = 1000
SEEN_TTL = 7 * 86400.0  # commercetools keeps messages 15 days; redeliveries come much sooner
KINDS = {"order": "order", "customer": "customer", "cart": "cart", "payment": "payment"}
# Message types after which cached lists (a customer's orders, an address's customers) may be
# wrong: something was created, deleted, or moved to another customer, address or store.
LIST_CHANGES = frozenset(
    {
        "OrderCreated", "OrderImported", "OrderDeleted", "OrderCustomerSet",
        "OrderCustomerEmailSet", "OrderStoreSet", "CustomerCreated", "CustomerDeleted",
        "CustomerEmailChanged", "CustomerStoresSet", "CustomerStoreAdded",
        "CustomerStoreRemoved", "CartCreated", "CartDeleted", "ResourceCreated",
        "ResourceDeleted",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    id: str  # message id (or a stable id for change payloads), for de-duplication
    type: str  # message type, or ResourceCreated / ResourceUpdated / ResourceDeleted
    kind: str  # order, customer, cart, payment, or another typeId (ignored)
    resource_id: str
    version: int | None


def parse_payload(payload: object) -> Event:
    """One Platform or CloudEvents payload; BadRequest naming what is wrong."""
    event = _parse(payload)
    for name in ("id", "type", "kind", "resource_id"):
        if len(getattr(event, name)) > MAX_ID:
            raise BadRequest(f"The event's {name} is longer than {MAX_ID} characters.")
    return event


def _parse(payload: object) -> Event:
    if not isinstance(payload, Mapping):
        raise BadRequest("Each event must be a JSON object.")
    if "specversion" in payload:
        if str(payload.get("specversion")) != "1.0":
            raise BadRequest("Only CloudEvents specversion 1.0 is supported.")
        data = payload.get("data")
        if not isinstance(data, Mapping):
            raise BadRequest("A CloudEvents payload must carry the Platform payload in data.")
        event = _parse(data)
        cloud_id = payload.get("id")
        return Event(
            str(cloud_id) if cloud_id else event.id,
            event.type,
            event.kind,
            event.resource_id,
            event.version,
        )
    kind_of = payload.get("notificationType")
    resource = payload.get("resource")
    if (
        not isinstance(resource, Mapping)
        or not isinstance(resource.get("typeId"), str)
        or not isinstance(resource.get("id"), str)
        or not resource["typeId"]
        or not resource["id"]
    ):
        raise BadRequest("An event needs resource.typeId and resource.id (strings).")
    type_id, resource_id = str(resource["typeId"]), str(resource["id"])
    if kind_of == "Message":
        message_id, message_type = payload.get("id"), payload.get("type")
        if not message_id or not message_type:
            raise BadRequest("A Message payload needs id and type.")
        return Event(
            str(message_id),
            str(message_type),
            type_id,
            resource_id,
            _int(payload.get("resourceVersion")),
        )
    if kind_of in ("ResourceCreated", "ResourceUpdated", "ResourceDeleted"):
        version = _int(payload.get("version"))
        stable = f"{kind_of}:{type_id}:{resource_id}:{version}"
        return Event(stable, str(kind_of), type_id, resource_id, version)
    raise BadRequest(f"Unrecognised notificationType {str(kind_of)[:40]!r}.")


@dataclass
class Outcome:
    accepted: int = 0
    evicted: int = 0
    duplicates: int = 0
    ignored: int = 0


async def apply_events(reader: Reader, events: list[Event]) -> Outcome:
    """Apply what was not applied before; raises (marking nothing) if applying fails."""
    outcome = Outcome()
    lists_changed = False
    keys = ["event:" + e.id for e in events]
    applied: list[str] = []
    for event, key, seen in zip(events, keys, await reader.seen(keys), strict=True):
        if seen or key in applied:
            outcome.duplicates += 1
            continue
        applied.append(key)
        outcome.accepted += 1
        if event.kind not in KINDS:
            outcome.ignored += 1
            continue
        lists_changed |= event.type in LIST_CHANGES
        if event.kind == "payment":
            # Payments are read through their order: evict the orders that hold this one.
            outcome.evicted += await reader.invalidate_payment(event.resource_id)
        elif await reader.invalidate(KINDS[event.kind], event.resource_id, event.version):
            outcome.evicted += 1
    if lists_changed:
        await reader.invalidate_lists()
    # Only now: an exception above leaves them unseen, so a redelivery applies them.
    if applied:
        await reader.mark_seen(applied, SEEN_TTL)
    return outcome


async def receive(request: Request) -> JSONResponse:
    """`POST /commercetools/events` from the merchant's queue bridge."""
    settings: Settings = request.state.settings
    secret = settings.events_secret
    if secret is None:
        raise NotFound("Push events are not enabled on this instance (CC_EVENTS_SECRET).")
    given = bearer(request.headers.get("authorization"))
    if given is None or not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
        raise Unauthorized("Wrong or missing events secret.")
    payload: Any = parse_json(await read_body(request, MAX_BODY_BYTES))
    payloads = payload if isinstance(payload, list) else [payload]
    if len(payloads) > MAX_EVENTS:
        raise BadRequest(f"At most {MAX_EVENTS} events per request.")
    events = [parse_payload(p) for p in payloads]
    # Tidio contact properties follow orders and carts. Queued before the events are marked
    # seen, so a failure here is redelivered; keys carry the version, so nothing runs twice.
    await tidio_sync.enqueue_for_events(request.state.queue, settings, events)
    # Zendesk users and ticket fields follow customers and orders (when that sync is on).
    await enqueue_zendesk(request.state.queue, settings, events)
    outcome = await apply_events(request.state.reader, events)
    logger.info(
        "events: %d accepted, %d evicted, %d duplicates, %d ignored",
        outcome.accepted,
        outcome.evicted,
        outcome.duplicates,
        outcome.ignored,
    )
    return JSONResponse(outcome.__dict__, status_code=202)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
