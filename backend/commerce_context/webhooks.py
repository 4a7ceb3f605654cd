"""`POST /zendesk/webhooks`: Zendesk webhooks in, jobs out.

Every request is checked before anything is read from it:

* `X-Zendesk-Webhook-Signature` must equal base64(HMAC-SHA256(key = the webhook's signing
  secret as its raw UTF-8 bytes, message = the `X-Zendesk-Webhook-Signature-Timestamp` header
  followed by the raw body)), compared in constant time -> 401 otherwise;
* the timestamp (ISO 8601, as Zendesk sends it) must lie within `CC_ZENDESK_WEBHOOK_REPLAY_WINDOW`
  of our clock, so a captured request cannot be replayed later -> 401;
* the body is bounded (`MAX_BODY_BYTES`) and must be a JSON object -> 400.

Then the work goes to the queue and the answer is 202 at once. Each job's idempotency key
starts with the invocation id (`X-Zendesk-Webhook-Invocation-Id`, the same on Zendesk's
retries of one delivery), so a delivery seen twice enqueues nothing twice, durably.

Two payload shapes are understood:

* an **event subscription** envelope, `{"type": "zen:event-type:ticket.created", "detail":
  {...ticket...}, ...}`: a created ticket is prefetched (its requester is only an id there, so
  the prefetch uses what the detail carries);
* a **trigger** webhook whose JSON body the admin writes (docs/sync.md has the recommended
  body): `{"event": "ticket.created" | "ticket.updated", "ticket": {"id", "requester_email",
  "brand_id", "order_number", "fields": {"<ticket field id>": "<value>"}}}`. Created tickets are
  prefetched; every mapped field present becomes a writeback job (`writebacks.py`), coalesced
  per ticket (or order number) and field so a burst of changes writes the latest value once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import correlation, zendesk_sync
from .exceptions import BadRequest, NotFound, Unauthorized
from .limits import parse_json, read_body
from .settings import Settings

__all__ = [
    "MAX_BODY_BYTES",
    "TicketEvent",
    "demo_jobs",
    "demo_sign",
    "enqueue_event",
    "expected_signature",
    "parse_event",
    "receive",
    "sign",
    "verify_signature",
]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
SIGNATURE = "x-zendesk-webhook-signature"
TIMESTAMP = "x-zendesk-webhook-signature-timestamp"
INVOCATION = "x-zendesk-webhook-invocation-id"
PREFETCH = "zendesk.prefetch"
WRITEBACK = "writeback"
_MAX_FIELDS = 50


def sign(secret: str, message: bytes) -> str:
    """base64(HMAC-SHA256(secret as raw UTF-8 bytes, message)). Zendesk's secrets look like
    base64 but are used as they are, never decoded."""
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    return sign(secret, timestamp.encode("utf-8") + body)


def verify_signature(
    secret: str,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    window: float,
    now: datetime | None = None,
) -> None:
    """Raises `Unauthorized` with a short reason unless the delivery is authentic and recent."""
    if not signature or not timestamp:
        raise Unauthorized("The webhook signature or its timestamp header is missing.")
    try:
        given = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unauthorized("The webhook signature is not valid base64.") from None
    wanted = base64.b64decode(expected_signature(secret, timestamp, body))
    if not hmac.compare_digest(given, wanted):
        raise Unauthorized("The webhook signature does not match.")
    # Checked after the signature, so an attacker learns nothing about our clock.
    sent = _timestamp(timestamp)
    if sent is None:
        raise Unauthorized("The webhook timestamp is not an ISO 8601 date and time.")
    age = ((now or datetime.now(UTC)) - sent).total_seconds()
    if abs(age) > window:
        raise Unauthorized("The webhook timestamp is outside the replay window.")


def _timestamp(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class TicketEvent:
    """What a webhook says about a ticket, in either payload shape."""

    kind: str  # "created", "updated" or the envelope's event type when not understood
    ticket_id: int | None
    emails: tuple[str, ...] = ()
    brand_id: int | None = None
    order_number: str | None = None
    fields: dict[int, str] = field(default_factory=dict)

    @property
    def created(self) -> bool:
        return self.kind == "created"


def parse_event(body: object, *, order_field_id: int | None) -> TicketEvent:
    """Either payload shape -> TicketEvent; raises BadRequest for anything else."""
    if not isinstance(body, Mapping):
        raise BadRequest("The webhook body must be a JSON object.")
    event_type = body.get("type")
    if isinstance(event_type, str) and event_type.startswith("zen:event-type:"):
        detail = body.get("detail")
        if not isinstance(detail, Mapping):
            raise BadRequest("The event has no `detail` object.")
        name = event_type.removeprefix("zen:event-type:")
        kind = "created" if name == "ticket.created" else name
        return TicketEvent(
            kind=kind,
            ticket_id=_int(detail.get("id"), "detail.id"),
            brand_id=_int(detail.get("brand_id"), "detail.brand_id"),
        )
    ticket = body.get("ticket")
    if not isinstance(ticket, Mapping):
        raise BadRequest(
            "The webhook body has neither an event `type` nor a `ticket` object; see the "
            "recommended trigger body in docs/sync.md."
        )
    event = body.get("event", "ticket.updated")
    if event not in ("ticket.created", "ticket.updated"):
        raise BadRequest("`event` must be ticket.created or ticket.updated.")
    raw_fields = ticket.get("fields") or {}
    if not isinstance(raw_fields, Mapping) or len(raw_fields) > _MAX_FIELDS:
        raise BadRequest(f"`ticket.fields` must be an object of at most {_MAX_FIELDS} fields.")
    fields: dict[int, str] = {}
    for key, value in raw_fields.items():
        field_id = _int(key, "ticket.fields key")
        if field_id is None:
            continue
        fields[field_id] = _text(value)
    order_number = _text(ticket.get("order_number"))
    if not order_number and order_field_id is not None:
        order_number = fields.get(order_field_id, "")
    email = _text(ticket.get("requester_email"))
    return TicketEvent(
        kind="created" if event == "ticket.created" else "updated",
        ticket_id=_int(ticket.get("id"), "ticket.id"),
        emails=(email,) if "@" in email else (),
        brand_id=_int(ticket.get("brand_id"), "ticket.brand_id"),
        order_number=order_number or None,
        fields=fields,
    )


def _int(value: object, where: str) -> int | None:
    # Trigger placeholders arrive as strings ("{{ticket.id}}" -> "123"); empty means absent.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise BadRequest(f"`{where}` must be a number.")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise BadRequest(f"`{where}` must be a number.")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise BadRequest("Ticket field values must be strings or numbers.")


async def receive(request: Request) -> Response:
    settings: Settings = request.state.settings
    secret = settings.zendesk_webhook_secret
    if secret is None:
        raise NotFound("Zendesk webhooks are not configured (CC_ZENDESK_WEBHOOK_SECRET).")
    body = await read_body(request, MAX_BODY_BYTES)
    verify_signature(
        secret.get_secret_value(),
        signature=request.headers.get(SIGNATURE),
        timestamp=request.headers.get(TIMESTAMP),
        body=body,
        window=settings.zendesk_webhook_replay_window,
    )
    payload = parse_json(body)
    event = parse_event(payload, order_field_id=settings.zendesk_order_field_id)
    invocation = (request.headers.get(INVOCATION) or "").strip()[:128]
    if not invocation:
        # Zendesk always sends one; without it, the signed content identifies the delivery.
        invocation = (
            "sha256:"
            + hashlib.sha256(request.headers.get(TIMESTAMP, "").encode() + body).hexdigest()
        )
    jobs = await enqueue_event(request.state.queue, event, invocation, settings)
    logger.info(
        "zendesk webhook %s: ticket %s %s -> %d job(s)",
        invocation,
        event.ticket_id if event.ticket_id is not None else "-",
        event.kind,
        len(jobs),
    )
    return JSONResponse(
        {"accepted": True, "invocation_id": invocation, "jobs": jobs},
        status_code=202,
        headers={"Cache-Control": "no-store"},
    )


async def enqueue_event(
    queue: Any, event: TicketEvent, invocation: str, settings: Settings
) -> list[str]:
    """The jobs for one webhook delivery, keyed by its invocation id; returns their ids."""
    ids: list[str] = []
    source = f"zendesk:webhook:{invocation}"
    cid = correlation.current()
    ticket = {
        "ticket_id": event.ticket_id,
        "emails": list(event.emails),
        "brand_id": event.brand_id,
        "order_number": event.order_number,
    }
    if event.created and (event.emails or event.order_number):
        job = await queue.enqueue(
            PREFETCH,
            ticket,
            key=f"zendesk:{invocation}:prefetch",
            destination="commercetools",
            correlation_id=cid,
            source=source,
        )
        ids.append(job.id)
    if event.created:
        # Routing attributes (store, channel, currency, ...) into the new ticket's fields.
        routing = await zendesk_sync.enqueue_ticket_created(
            queue, settings, ticket, invocation=invocation, correlation_id=cid, source=source
        )
        if routing is not None:
            ids.append(routing.id)
    writebacks = settings.mappings.writebacks
    for field_id, value in sorted(event.fields.items()):
        mapped = writebacks.by_zendesk_field(field_id)
        if mapped is None or not value:
            continue  # not ours, or cleared: nothing to write
        name, spec = mapped
        if not spec.writes_commercetools or event.ticket_id is None:
            continue
        # Latest value wins per order (when the ticket names it) or per ticket, and field.
        target = (
            f"order-number:{event.order_number}"
            if event.order_number
            else f"ticket:{event.ticket_id}"
        )
        job = await queue.enqueue(
            WRITEBACK,
            {**ticket, "field": name, "value": value, "zendesk_field_id": field_id},
            key=f"zendesk:{invocation}:writeback:{name}",
            destination="commercetools",
            coalesce=f"writeback:{target}:{name}",
            correlation_id=cid,
            source=source,
        )
        ids.append(job.id)
    return ids


async def demo_sign(request: Request) -> Response:
    """Demo only: a simulated ticket's field change as Zendesk would deliver it — the trigger
    body of docs/sync.md, signed with the webhook secret, for the page to POST to
    /zendesk/webhooks. Plays Zendesk's part; not mounted outside the demo."""
    demo = request.state.demo
    settings: Settings = request.state.settings
    if demo is None or settings.zendesk_webhook_secret is None:
        raise NotFound("This instance runs without the demo.")
    body = await read_body(request, 16 * 1024)
    wanted = parse_json(body)
    if not isinstance(wanted, Mapping) or not isinstance(wanted.get("fields"), Mapping):
        raise BadRequest("Send {ticket_id, fields: {<field id>: <value>}}.")
    ticket = next((t for t in demo.tickets if t["id"] == wanted.get("ticket_id")), None)
    if ticket is None:
        raise NotFound("The demo has no such ticket.")
    fields = {str(k): _text(v) for k, v in wanted["fields"].items()}
    if demo.order_field_id and ticket.get("order_number"):
        fields[str(demo.order_field_id)] = ticket["order_number"]
    # Exactly what the recommended trigger body renders to (placeholders become strings).
    trigger = {
        "event": "ticket.updated",
        "ticket": {
            "id": str(ticket["id"]),
            "requester_email": (ticket.get("requester") or {}).get("email") or "",
            "brand_id": str((ticket.get("brand") or {}).get("id") or ""),
            "fields": fields,
        },
    }
    text = json.dumps(trigger)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    secret = settings.zendesk_webhook_secret.get_secret_value()
    headers = {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Id": "demo",
        "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": expected_signature(secret, stamp, text.encode()),
    }
    return JSONResponse(
        {"url": str(request.url_for("webhooks").path), "body": text, "headers": headers},
        headers={"Cache-Control": "no-store"},
    )


async def demo_jobs(request: Request) -> Response:
    """Demo only: the states of the jobs a simulated webhook queued (`?id=...&id=...`), so the
    simulated ticket can re-fetch the sidebar once its writebacks have landed."""
    if request.state.demo is None:
        raise NotFound("This instance runs without the demo.")
    ids = [i for i in request.query_params.getlist("id") if re.fullmatch(r"[0-9a-f]{32}", i)]
    states = {}
    for job_id in ids[:20]:
        job = await request.state.queue.get(job_id)
        if job is not None:
            states[job_id] = job.state
    return JSONResponse({"jobs": states}, headers={"Cache-Control": "no-store"})
