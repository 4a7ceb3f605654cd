"""Writebacks: Zendesk ticket field values into commercetools order custom fields.

The mapping file's `[writebacks]` section says which ticket field feeds which order custom
field, in which direction, and which values are allowed (a Zendesk -> commercetools value map
for dropdowns, or a list of accepted values, and a length limit for text). A webhook
(`webhooks.py`) turns each mapped field it carries into a `writeback` job; this module runs it:

1. **Which order.** The order named in the job (id or number, from the ticket's order-number
   field), else the order the sidebar would show for the ticket's requester
   (`resolution.resolve`, the same rules as the panels). The association is audited. No order
   -> the job is dead with a reason an operator can act on.
2. **Refused** when the mapping does not allow the value (or the field is not mapped to
   commercetools): nothing is written, the refusal is logged and audited.
3. **Compare before write.** The order is read fresh (not from the cache); a field that already
   holds the value is left alone, so re-running a job changes nothing.
4. **Write** with `setCustomField`, or `setCustomType` (the configured type key) when the order
   has no custom type yet, with the order's `version`: `setCustomField` gets the client's bounded
   409 retry (it sets a value, so re-sending is safe); `setCustomType` does not (it replaces
   every custom field, so a conflict re-reads the order instead, by retrying the job).
5. **After.** The result goes into the idempotency ledger under the job's key, the order is
   evicted from the cache so the sidebar shows the new value, and the outcome is audited.

A deleted order is a permanent failure (dead, "order ... no longer exists").
`set_custom_field()` is also what the sidebar's "set support status / internal note" actions run.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import queries
from .exceptions import UpstreamNotFound
from .jobs import Permanent
from .resolution import TicketContext, resolve
from .settings import FieldWriteback, Settings
from .views import View

if TYPE_CHECKING:
    from .worker import JobContext

__all__ = [
    "custom_field_actions",
    "load_order",
    "mask",
    "prefetch",
    "set_custom_field",
    "writeback",
]

logger = logging.getLogger(__name__)

# What a write needs to decide, read fresh for every job (never from the cache).
ORDER_STATE = View(
    "order_write_state",
    "Order",
    """
    id version orderNumber orderState shipmentState paymentState
    custom { typeRef { id } }
    """,
)


def _custom_view(names: Sequence[str]) -> View:
    quoted = ", ".join('"' + n.replace("\\", "\\\\").replace('"', '\\"') + '"' for n in names)
    return View(
        "order_write_fields",
        "Order",
        f"custom {{ customFieldsRaw(includeNames: [{quoted}]) {{ name value }} }}",
    )


async def load_order(
    ctx: JobContext,
    *,
    order_id: str | None = None,
    order_number: str | None = None,
    fields: Sequence[str] = (),
    extra: Sequence[View] = (),
) -> dict[str, Any] | None:
    """The order as commercetools has it now (one GraphQL request); None when it is gone."""
    wanted = [ORDER_STATE, *extra]
    if fields:
        wanted.append(_custom_view(fields))
    if order_id:
        read = queries.order_by_id(order_id, wanted, key="order")
    elif order_number:
        read = queries.order_by_number(order_number, wanted, key="order")
    else:
        return None
    found = await ctx.commercetools.fetch(queries.compose([read], "OrderForWrite"))
    order = found.get("order")
    return order if isinstance(order, dict) else None


def current_value(order: Mapping[str, Any], name: str) -> Any:
    custom = order.get("custom") or {}
    for entry in custom.get("customFieldsRaw") or []:
        if entry.get("name") == name:
            return entry.get("value")
    return None


def custom_field_actions(
    order: Mapping[str, Any], name: str, value: str, type_key: str
) -> list[dict[str, Any]]:
    """The update actions that set `name` to `value` on `order` (see the module docstring)."""
    if order.get("custom"):
        return [{"action": "setCustomField", "name": name, "value": value}]
    return [
        {
            "action": "setCustomType",
            "type": {"typeId": "type", "key": type_key},
            "fields": {name: value},
        }
    ]


def mask(spec: FieldWriteback | None, value: str) -> str:
    """What the audit log may hold of a value: enum-like values as they are, free text never."""
    if spec is not None and (spec.values or spec.allowed):
        return value
    return f"<{len(value)} characters>"


async def set_custom_field(
    ctx: JobContext,
    order: Mapping[str, Any],
    name: str,
    value: str,
) -> dict[str, Any]:
    """Compare, then write one custom field; returns the outcome (applied or unchanged)."""
    settings: Settings = ctx.settings
    order_id = str(order["id"])
    if current_value(order, name) == value:
        return {"outcome": "unchanged", "order_id": order_id, "version": order["version"]}
    actions = custom_field_actions(order, name, value, settings.mappings.writebacks.custom_type_key)
    try:
        updated = await ctx.commercetools.update(
            "orders",
            order_id,
            int(order["version"]),
            actions,
            idempotent=actions[0]["action"] == "setCustomField",
        )
    except UpstreamNotFound:
        raise Permanent(gone(order)) from None
    await ctx.reader.invalidate("order", order_id)
    return {"outcome": "applied", "order_id": order_id, "version": updated.get("version")}


def gone(order: Mapping[str, Any] | None, reference: str | None = None) -> str:
    what = (order or {}).get("orderNumber") or (order or {}).get("id") or reference or "?"
    return f"order {what} no longer exists in commercetools (deleted?)"


async def find_order(
    ctx: JobContext, payload: Mapping[str, Any], fields: Sequence[str]
) -> tuple[dict[str, Any], str]:
    """The order a ticket's job applies to, and how it was found (audited as the association)."""
    order_id = payload.get("order_id")
    order_number = payload.get("order_number")
    if order_id or order_number:
        order = await load_order(ctx, order_id=order_id, order_number=order_number, fields=fields)
        if order is None:
            raise Permanent(gone(None, order_number or order_id))
        return order, "order_field" if order_number else "order_id"
    emails = payload.get("emails") or []
    if not emails:
        raise Permanent(
            f"ticket {payload.get('ticket_id')} names no order and has no requester email"
        )
    settings: Settings = ctx.settings
    context = TicketContext.parse(
        {
            "ticket_id": payload.get("ticket_id"),
            "emails": emails,
            "brand_id": payload.get("brand_id"),
        }
    )
    store = settings.mappings.store_for_brand(context.brand_id)
    resolution = await resolve(
        context,
        reader=ctx.reader,
        store=store,
        custom_fields=settings.mappings.order_custom_fields,
    )
    if resolution.order is None:
        raise Permanent(f"no order found for ticket {payload.get('ticket_id')}'s requester")
    order = await load_order(ctx, order_id=resolution.order["id"], fields=fields)
    if order is None:
        raise Permanent(gone(resolution.order))
    return order, "resolution"


async def writeback(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Job `writeback`: one ticket field value into its order custom field."""
    done = await ctx.ledger.done(ctx.job.key)
    if done is not None:
        return done
    settings: Settings = ctx.settings
    name = str(payload.get("field") or "")
    raw = str(payload.get("value") or "")
    spec = settings.mappings.writebacks.fields.get(name)
    refs = _refs(payload)
    if spec is None or not spec.writes_commercetools:
        return await _refuse(ctx, refs, name, f"field {name!r} is not mapped to commercetools")
    value = spec.translate(raw)
    if value is None:
        return await _refuse(
            ctx, refs, name, f"the mapping does not allow {mask(spec, raw)!r} for {name}"
        )
    order, path = await find_order(ctx, payload, [name])
    refs.update(order_id=order["id"], order_number=order.get("orderNumber"))
    await ctx.audit.record(
        action="association",
        source="zendesk",
        target=f"order:{order['id']}",
        outcome=path,
        correlation_id=ctx.job.correlation_id,
        job_id=ctx.job.id,
        **refs,
        detail={"field": name},
    )
    result = await set_custom_field(ctx, order, name, value)
    await ctx.ledger.record(ctx.job.key, result)
    await ctx.audit.record(
        action="writeback",
        source="zendesk",
        target=f"order:{order['id']}",
        outcome=result["outcome"],
        correlation_id=ctx.job.correlation_id,
        job_id=ctx.job.id,
        **refs,
        detail={"field": name, "value": mask(spec, value), "version": result.get("version")},
    )
    return result


async def _refuse(ctx: JobContext, refs: dict[str, Any], name: str, reason: str) -> dict[str, Any]:
    logger.warning("writeback refused (job %s): %s", ctx.job.id, reason)
    result = {"outcome": "refused", "reason": reason}
    await ctx.ledger.record(ctx.job.key, result)
    await ctx.audit.record(
        action="writeback",
        source="zendesk",
        target=f"field:{name}",
        outcome="refused",
        correlation_id=ctx.job.correlation_id,
        job_id=ctx.job.id,
        **refs,
        detail={"field": name, "reason": reason},
    )
    return result


def _refs(payload: Mapping[str, Any]) -> dict[str, Any]:
    ticket = payload.get("ticket_id")
    return {"ticket_id": None if ticket is None else str(ticket)}


async def prefetch(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Job `zendesk.prefetch`: read a new ticket's commerce context into the cache, so the
    agent's first view of it is a cache hit."""
    settings: Settings = ctx.settings
    context = TicketContext.parse(
        {
            "ticket_id": payload.get("ticket_id"),
            "emails": payload.get("emails") or [],
            "order_number": payload.get("order_number"),
            "brand_id": payload.get("brand_id"),
        }
    )
    resolution = await resolve(
        context,
        reader=ctx.reader,
        store=settings.mappings.store_for_brand(context.brand_id),
        custom_fields=settings.mappings.order_custom_fields,
    )
    return {
        "outcome": "prefetched" if not resolution.empty else "nothing_found",
        "matched_by": resolution.matched_by,
        "orders": len(resolution.orders),
    }
