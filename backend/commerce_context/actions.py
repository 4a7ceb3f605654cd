"""Agent actions from the sidebar: endpoints and the jobs that carry them out.

`POST /zendesk/actions` (authenticated exactly like `/zendesk/panels`) queues one action on one
order and answers 202 with the job id; `GET /zendesk/actions/{job_id}` says pending, applied or
failed (with the reason); `GET /zendesk/activity?order_id=…&ticket_id=…` lists the recent
writebacks and actions of an order or ticket for the panel. Nothing runs in the request: the
worker applies the action, so a slow or failing commercetools never holds an agent's click.

Gates, in order: the action must be enabled in the mapping file (`[actions] enabled`); when
`[actions.roles]` names roles for it, the agent's Zendesk role must be one of them. The role is
the one the sidebar reads from Zendesk (`currentUser.role`) and sends along: the browser
reports it, so it is advisory (see docs/sync.md); identity is the signed session.

Idempotency: the sidebar makes a `request_id` when the agent opens the confirmation, and the
job's key is built from it, so a double click or a retried request is the same job. Each job
also checks commercetools before it writes (compare-before-write), so a job re-run after a crash
changes nothing twice:

* set support status / internal note: the field already holds the value -> unchanged;
* cancel: the order is already Cancelled -> unchanged; allowed only in the configured states
  and never once anything shipped;
* refund: a Refund transaction with this request's timestamp and amount exists -> unchanged;
  at most what was charged minus what is refunded or being refunded. The transaction is
  added in state Initial: **money never moves here**, the merchant's payment integration
  executes it (docs/sync.md);
* return: a return with this request's return date exists -> unchanged; quantities at most
  what was bought minus what is already being returned.

Every request and every outcome lands in the audit log (ids and amounts, no free text).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Literal

from jinja2 import Environment
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import correlation, formatting, sidebar
from .exceptions import BadRequest, Forbidden, NotFound, UpstreamNotFound
from .jobs import Job, Permanent
from .limits import parse_json, read_body
from .settings import ActionName, Settings
from .views import MONEY, View
from .writebacks import gone, load_order, mask, set_custom_field

if TYPE_CHECKING:
    from .worker import JobContext

__all__ = ["ACTION_KINDS", "HANDLERS", "activity", "install_globals", "status", "submit"]

logger = logging.getLogger(__name__)

ACTION_KINDS: dict[str, str] = {
    "set_support_status": "Set support status",
    "set_internal_note": "Set internal note",
    "cancel_order": "Cancel order",
    "request_refund": "Request refund",
    "create_return": "Create return",
}
SHIPPED = frozenset({"Shipped", "Delivered", "Partial"})
MAX_JSON_BYTES = 16 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)

PAYMENTS = View(
    "action_payments",
    "Order",
    f"""
    paymentInfo {{ payments {{
      id version
      transactions {{ id timestamp type state amount {{ {MONEY} }} }}
    }} }}
    """,
)
LINES = View(
    "action_lines",
    "Order",
    """
    lineItems { id quantity }
    returnInfo { returnDate items { quantity ... on LineItemReturnItem { lineItemId } } }
    shippingInfo { deliveries { id } }
    """,
)


class ReturnLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    line_item_id: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)


class ActionRequest(BaseModel):
    """What the sidebar sends. Validated: bad input is a 400."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    action: ActionName
    order_id: str = Field(min_length=36, max_length=36)
    request_id: str
    ticket_id: int | None = Field(default=None, ge=0)
    role: str | None = Field(default=None, max_length=64)
    value: str | None = Field(default=None, max_length=10_000)
    amount_cents: int | None = Field(default=None, ge=1)
    items: tuple[ReturnLine, ...] = Field(default=(), max_length=100)
    comment: str | None = Field(default=None, max_length=500)


# -- endpoints ---------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    if not settings.zendesk_enabled:
        raise NotFound("The Zendesk sidebar is not configured on this instance (CC_ZENDESK_*).")
    return settings


async def _json(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", ""):
        raise BadRequest("Send the action as application/json.")
    return parse_json(await read_body(request, MAX_JSON_BYTES))


async def submit(request: Request) -> Response:
    settings = _settings(request)
    identity = sidebar.authenticate(request, settings)
    body = await _json(request)
    if not isinstance(body, Mapping):
        raise BadRequest("The request body must be a JSON object.")
    try:
        wanted = ActionRequest.model_validate(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in error["loc"]) or "body"
        raise BadRequest(f"Invalid action: {where} {error['msg']}.") from None
    if not _UUID.match(wanted.order_id):
        raise BadRequest("Invalid action: order_id is not a commercetools order id.")
    if not _REQUEST_ID.match(wanted.request_id):
        raise BadRequest("Invalid action: request_id must be 8-64 letters, digits, - or _.")
    config = settings.mappings.actions
    if wanted.action not in config.enabled:
        raise Forbidden(f"{ACTION_KINDS[wanted.action]} is not enabled on this instance.")
    roles = config.roles.get(wanted.action)
    if roles and (wanted.role or "") not in roles:
        raise Forbidden(
            f"{ACTION_KINDS[wanted.action]} is allowed for the roles {', '.join(roles)} only."
        )
    payload = _payload(wanted, settings)
    agent = identity.user_id
    payload["agent_id"] = agent
    scope = f"{identity.subdomain}:{identity.installation_id}:{agent or '-'}"
    coalesce = None
    if wanted.action in ("set_support_status", "set_internal_note"):
        coalesce = f"action:{wanted.order_id}:{payload['field']}"
    queue = request.state.queue
    job: Job = await queue.enqueue(
        "action." + wanted.action,
        payload,
        key=f"action:{scope}:{wanted.request_id}",
        destination="commercetools",
        coalesce=coalesce,
        correlation_id=correlation.current(),
        source=f"zendesk:sidebar:{agent or '-'}",
    )
    await request.state.audit.record(
        action="action." + wanted.action,
        source="zendesk:sidebar",
        target=f"order:{wanted.order_id}",
        outcome="requested",
        correlation_id=correlation.current(),
        ticket_id=wanted.ticket_id,
        order_id=wanted.order_id,
        agent_id=agent,
        job_id=job.id,
        detail=_audit_detail(payload, settings),
    )
    return JSONResponse(_status(job), status_code=202, headers={"Cache-Control": "no-store"})


def _payload(wanted: ActionRequest, settings: Settings) -> dict[str, Any]:
    config = settings.mappings.actions
    payload: dict[str, Any] = {
        "order_id": wanted.order_id,
        "ticket_id": wanted.ticket_id,
        # The moment of the request: the marker that makes refunds and returns idempotent.
        "requested_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }
    if wanted.action in ("set_support_status", "set_internal_note"):
        name = (
            config.support_status_field
            if wanted.action == "set_support_status"
            else config.internal_note_field
        )
        value = (wanted.value or "").strip()
        if not value:
            raise BadRequest("Give the value to set.")
        spec = settings.mappings.writebacks.fields.get(name)
        allowed = _allowed(settings, name)
        if allowed and value not in allowed:
            raise BadRequest(f"{value!r} is not one of {', '.join(allowed)}.")
        if spec is not None and len(value) > spec.max_length:
            raise BadRequest(f"At most {spec.max_length} characters.")
        payload.update(field=name, value=value)
    elif wanted.action == "request_refund":
        if wanted.amount_cents is None:
            raise BadRequest("Give the amount to refund (amount_cents).")
        payload["amount_cents"] = wanted.amount_cents
    elif wanted.action == "create_return":
        if not wanted.items:
            raise BadRequest("Choose at least one line item to return.")
        payload["items"] = [item.model_dump() for item in wanted.items]
        payload["comment"] = wanted.comment or None
    return payload


def _allowed(settings: Settings, name: str) -> tuple[str, ...]:
    spec = settings.mappings.writebacks.fields.get(name)
    if spec is None:
        return ()
    if spec.allowed:
        return spec.allowed
    return tuple(dict.fromkeys(spec.values.values()))


def _audit_detail(payload: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if "field" in payload:
        spec = settings.mappings.writebacks.fields.get(payload["field"])
        enum = spec is not None and bool(spec.values or spec.allowed)
        shown = payload["value"] if enum else mask(None, payload["value"])
        detail.update(field=payload["field"], value=shown)
    if "amount_cents" in payload:
        detail["amount_cents"] = payload["amount_cents"]
    if "items" in payload:
        detail["items"] = payload["items"]
    return detail


def _status(job: Job) -> dict[str, Any]:
    """A job as the panel shows it: pending, applied (or unchanged), failed with a reason."""
    result = job.result or {}
    if job.state in ("queued", "running"):
        state, reason = "pending", None
    elif job.state == "done" and result.get("outcome") == "refused":
        state, reason = "failed", result.get("reason")
    elif job.state == "done":
        state, reason = "applied", None
    elif job.state == "cancelled":
        state, reason = "cancelled", None
    else:
        state, reason = "failed", job.last_error or "failed"
    kind = job.kind.removeprefix("action.")
    label = ACTION_KINDS.get(kind) or f"Update {job.payload.get('field', 'order')}"
    return {
        "job_id": job.id,
        "kind": job.kind,
        "label": label,
        "state": state,
        "outcome": result.get("outcome"),
        "reason": reason,
        "attempts": job.attempts,
        "updated_at": datetime.fromtimestamp(job.updated_at, UTC).isoformat(timespec="seconds"),
    }


async def status(request: Request) -> Response:
    settings = _settings(request)
    sidebar.authenticate(request, settings)
    job_id = request.path_params["job_id"]
    job: Job | None = None
    if re.fullmatch(r"[0-9a-f]{32}", job_id):
        job = await request.state.queue.get(job_id)
    if job is None or not _visible(job):
        raise NotFound("No such action.")
    return JSONResponse(_status(job), headers={"Cache-Control": "no-store"})


def _visible(job: Job) -> bool:
    return job.kind.startswith("action.") or job.kind == "writeback"


async def activity(request: Request) -> Response:
    """Recent writebacks and actions of one order (or ticket), newest first."""
    settings = _settings(request)
    sidebar.authenticate(request, settings)
    order_id = request.query_params.get("order_id") or None
    order_number = request.query_params.get("order_number") or None
    ticket = request.query_params.get("ticket_id") or None
    if order_id is not None and not _UUID.match(order_id):
        raise BadRequest("order_id is not a commercetools order id.")
    if ticket is not None and not ticket.isdigit():
        raise BadRequest("ticket_id must be a number.")
    if order_id is None and ticket is None and order_number is None:
        raise BadRequest("Give order_id, order_number or ticket_id.")
    jobs: list[Job] = await request.state.queue.list(limit=500)
    shown = []
    for job in jobs:
        if not _visible(job):
            continue
        p = job.payload
        result = job.result or {}
        if (
            (order_id and order_id in (p.get("order_id"), result.get("order_id")))
            or (order_number and p.get("order_number") == order_number)
            or (ticket and str(p.get("ticket_id")) == ticket)
        ):
            shown.append(_status(job))
        if len(shown) >= 10:
            break
    return JSONResponse({"items": shown}, headers={"Cache-Control": "no-store"})


def install_globals(env: Environment, settings: Settings) -> None:
    """What templates/_actions.html needs: the enabled actions and the choices they offer."""
    config = settings.mappings.actions
    note = settings.mappings.writebacks.fields.get(config.internal_note_field)
    env.globals["cc_actions"] = {
        "enabled": tuple(config.enabled),
        "roles": bool(config.roles),
        "statuses": _allowed(settings, config.support_status_field),
        "status_field": config.support_status_field,
        "note_max": note.max_length if note is not None else 2000,
        "cancel_states": tuple(config.cancel_states),
        "shipped": SHIPPED,
    }
    # The mapped ticket fields (the demo's simulated ticket offers them).
    env.globals["cc_writeback_fields"] = [
        {"name": name, "field_id": spec.zendesk_field_id, "choices": tuple(spec.values)}
        for name, spec in settings.mappings.writebacks.fields.items()
        if spec.zendesk_field_id is not None and spec.writes_commercetools
    ]
    env.globals["cc_custom_value"] = custom_value
    env.globals["cc_refundable"] = refundable
    env.globals["cc_returnable"] = returnable


def custom_value(order: Mapping[str, Any], name: str) -> Any:
    custom = order.get("custom") or {}
    for entry in custom.get("customFieldsRaw") or []:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry.get("value")
    return None


def _available(transactions: list[Mapping[str, Any]]) -> int:
    """Charged minus refunded (or being refunded), in cents."""
    charged = sum(
        int((t.get("amount") or {}).get("centAmount") or 0)
        for t in transactions
        if t.get("type") == "Charge" and t.get("state") == "Success"
    )
    refunded = sum(
        int((t.get("amount") or {}).get("centAmount") or 0)
        for t in transactions
        if t.get("type") == "Refund" and t.get("state") in ("Initial", "Pending", "Success")
    )
    return charged - refunded


def refundable(order: Mapping[str, Any]) -> dict[str, Any] | None:
    """The most that can be refunded on one payment of the order (what the form offers)."""
    best: dict[str, Any] | None = None
    for payment in ((order.get("paymentInfo") or {}).get("payments")) or []:
        transactions = payment.get("transactions") or []
        money = next((t.get("amount") for t in transactions if t.get("type") == "Charge"), None)
        if not money:
            continue
        cents = _available(transactions)
        if best is None or cents > best["cents"]:
            digits = int(money.get("fractionDigits") or 2)
            text = f"{cents / 10**digits:.{digits}f}" if digits else str(cents)
            best = {
                "cents": cents,
                "currency": money.get("currencyCode"),
                "digits": digits,
                "text": text,
            }
    return best


def _returning(order: Mapping[str, Any]) -> dict[str, int]:
    """Quantity already on a return, per line item id."""
    returning: dict[str, int] = {}
    for info in order.get("returnInfo") or []:
        for item in info.get("items") or []:
            line = item.get("lineItemId")
            if line:
                returning[line] = returning.get(line, 0) + int(item.get("quantity") or 0)
    return returning


def returnable(order: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Line items with the quantity that can still be returned."""
    returning = _returning(order)
    lines = []
    locale = str(order.get("locale") or "en")
    for li in order.get("lineItems") or []:
        left = int(li.get("quantity") or 0) - returning.get(li.get("id"), 0)
        if left > 0:
            name = formatting.localized(li.get("nameAllLocales"), locale) or li.get("id")
            lines.append({"id": li.get("id"), "name": name, "left": left})
    return lines


# -- job handlers --------------------------------------------------------------------------------


async def _order(
    ctx: JobContext,
    payload: Mapping[str, Any],
    *,
    fields: Sequence[str] = (),
    extra: Sequence[View] = (),
) -> dict[str, Any]:
    """The action's order as commercetools has it now; a deleted order is a Permanent failure."""
    order = await load_order(ctx, order_id=payload["order_id"], fields=fields, extra=extra)
    if order is None:
        raise Permanent(gone(None, payload["order_id"]))
    return order


async def run_set_field(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Jobs `action.set_support_status` and `action.set_internal_note`."""
    done = await ctx.ledger.done(ctx.job.key)
    if done is not None:
        return done
    name = payload["field"]
    order = await _order(ctx, payload, fields=[name])
    result = await set_custom_field(ctx, order, name, payload["value"])
    return await _finish(ctx, payload, order, result)


async def run_cancel(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Job `action.cancel_order`: changeOrderState to Cancelled, where allowed."""
    done = await ctx.ledger.done(ctx.job.key)
    if done is not None:
        return done
    settings: Settings = ctx.settings
    order = await _order(ctx, payload, extra=[LINES])
    if order.get("orderState") == "Cancelled":
        result: dict[str, Any] = {"outcome": "unchanged", "order_id": order["id"]}
        return await _finish(ctx, payload, order, result)
    deliveries = ((order.get("shippingInfo") or {}).get("deliveries")) or []
    if order.get("shipmentState") in SHIPPED or deliveries:
        raise Permanent(f"order {order.get('orderNumber')} has shipped; it cannot be cancelled")
    allowed = settings.mappings.actions.cancel_states
    if order.get("orderState") not in allowed:
        raise Permanent(
            f"order {order.get('orderNumber')} is {order.get('orderState')}; cancelling is "
            f"allowed only when it is {' or '.join(allowed)}"
        )
    updated = await _update(
        ctx,
        "orders",
        order,
        [{"action": "changeOrderState", "orderState": "Cancelled"}],
    )
    await ctx.reader.invalidate("order", order["id"])
    result = {"outcome": "applied", "order_id": order["id"], "version": updated.get("version")}
    return await _finish(ctx, payload, order, result)


def _same_moment(a: object, b: object) -> bool:
    try:
        first = datetime.fromisoformat(str(a).replace("Z", "+00:00"))
        second = datetime.fromisoformat(str(b).replace("Z", "+00:00"))
    except ValueError:
        return False
    return first == second


async def run_refund(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Job `action.request_refund`: a Refund transaction in state Initial on the payment."""
    done = await ctx.ledger.done(ctx.job.key)
    if done is not None:
        return done
    order = await _order(ctx, payload, extra=[PAYMENTS])
    amount = int(payload["amount_cents"])
    payments = ((order.get("paymentInfo") or {}).get("payments")) or []
    best: tuple[int, dict[str, Any], dict[str, Any]] | None = None
    for payment in payments:
        transactions = payment.get("transactions") or []
        for t in transactions:
            if (
                t.get("type") == "Refund"
                and _same_moment(t.get("timestamp"), payload["requested_at"])
                and (t.get("amount") or {}).get("centAmount") == amount
            ):
                result = {"outcome": "unchanged", "order_id": order["id"], "payment": payment["id"]}
                return await _finish(ctx, payload, order, result)
        charged_money = next((t["amount"] for t in transactions if t.get("type") == "Charge"), None)
        available = _available(transactions)
        if charged_money is not None and (best is None or available > best[0]):
            best = (available, payment, charged_money)
    if best is None:
        raise Permanent(f"order {order.get('orderNumber')} has no charged payment to refund")
    available, payment, money = best
    if amount > available:
        raise Permanent(
            f"at most {available} cents ({money['currencyCode']}) can be refunded on order "
            f"{order.get('orderNumber')}; {amount} was asked"
        )
    transaction = {
        "type": "Refund",
        "state": "Initial",
        "amount": {"currencyCode": money["currencyCode"], "centAmount": amount},
        "timestamp": payload["requested_at"],
    }
    updated = await _update(
        ctx, "payments", payment, [{"action": "addTransaction", "transaction": transaction}]
    )
    await ctx.reader.invalidate("order", order["id"])
    result = {
        "outcome": "applied",
        "order_id": order["id"],
        "payment": payment["id"],
        "version": updated.get("version"),
    }
    return await _finish(ctx, payload, order, result)


def return_key(job_key: str, index: int) -> str:
    return f"cc-{sha256(job_key.encode()).hexdigest()[:24]}-{index}"


async def run_return(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Job `action.create_return`: addReturnInfo for the chosen line items and quantities."""
    done = await ctx.ledger.done(ctx.job.key)
    if done is not None:
        return done
    order = await _order(ctx, payload, extra=[LINES])
    for info in order.get("returnInfo") or []:
        if _same_moment(info.get("returnDate"), payload["requested_at"]):
            result = {"outcome": "unchanged", "order_id": order["id"]}
            return await _finish(ctx, payload, order, result)
    bought = {li["id"]: int(li["quantity"]) for li in order.get("lineItems") or []}
    returning = _returning(order)
    items = []
    for index, wanted in enumerate(payload["items"]):
        line, quantity = wanted["line_item_id"], int(wanted["quantity"])
        if line not in bought:
            raise Permanent(f"order {order.get('orderNumber')} has no line item {line}")
        left = bought[line] - returning.get(line, 0)
        if quantity > left:
            raise Permanent(
                f"only {left} of line item {line} can still be returned; {quantity} was asked"
            )
        returning[line] = returning.get(line, 0) + quantity
        draft: dict[str, Any] = {
            "key": return_key(ctx.job.key, index),
            "lineItemId": line,
            "quantity": quantity,
            "shipmentState": "Advised",
        }
        if payload.get("comment"):
            draft["comment"] = payload["comment"]
        items.append(draft)
    action = {"action": "addReturnInfo", "items": items, "returnDate": payload["requested_at"]}
    updated = await _update(ctx, "orders", order, [action])
    await ctx.reader.invalidate("order", order["id"])
    result = {"outcome": "applied", "order_id": order["id"], "version": updated.get("version")}
    return await _finish(ctx, payload, order, result)


async def _update(
    ctx: JobContext,
    resource: Literal["orders", "payments"],
    entity: Mapping[str, Any],
    actions: list[Any],
) -> dict[str, Any]:
    # Not idempotent when re-sent blindly (a state change, a new transaction or return): a 409
    # comes back as ConcurrentModification and the worker re-runs the job, which re-reads and
    # re-decides.
    try:
        updated: dict[str, Any] = await ctx.commercetools.update(
            resource, str(entity["id"]), int(entity["version"]), actions, idempotent=False
        )
    except UpstreamNotFound:
        raise Permanent(gone(entity if resource == "orders" else None, str(entity["id"]))) from None
    return updated


async def _finish(
    ctx: JobContext, payload: Mapping[str, Any], order: Mapping[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    await ctx.ledger.record(ctx.job.key, result)
    await ctx.audit.record(
        action=ctx.job.kind,
        source="zendesk:sidebar",
        target=f"order:{order['id']}",
        outcome=result["outcome"],
        correlation_id=ctx.job.correlation_id,
        ticket_id=payload.get("ticket_id"),
        order_id=order["id"],
        order_number=order.get("orderNumber"),
        agent_id=payload.get("agent_id"),
        job_id=ctx.job.id,
        detail={k: v for k, v in result.items() if k in ("version", "payment")},
    )
    logger.info("%s on order %s: %s", ctx.job.kind, order["id"], result["outcome"])
    return result


HANDLERS = {
    "action.set_support_status": run_set_field,
    "action.set_internal_note": run_set_field,
    "action.cancel_order": run_cancel,
    "action.request_refund": run_refund,
    "action.create_return": run_return,
}
