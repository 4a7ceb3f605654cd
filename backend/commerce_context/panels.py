"""Render a resolution as the sidebar's panels: view helpers and template globals.

Entities arrive already masked by the field policy; nothing here sees raw PII. Money and dates
are formatted for the store's locale (the mapping file), else the order's, else English.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from . import formatting
from .lru import LRU
from .resolution import Resolution
from .settings import Settings

__all__ = ["PanelContext", "Rendered", "install_filters", "panel_context"]

CUSTOM_FIELD_LABELS = {
    "supportStatus": "Support status",
    "internalNote": "Internal note",
    "rmaStatus": "RMA status",
    "warehouse": "Warehouse",
    "marketplaceSource": "Marketplace",
}

PanelContext = dict[str, Any]


class Rendered(LRU[tuple[object, ...], str]):
    """Panels already rendered from exactly these cache entries, for this ticket's keys.

    A warm view of a ticket then costs a cache read and a lookup, not a template render. Keys
    hold the entries' fingerprint, so any change to an entry (or its freshness being
    confirmed) renders anew."""

    def __init__(self, size: int = 1024) -> None:
        super().__init__(size)


def install_filters(env: Environment) -> None:
    env.filters["money"] = formatting.money
    env.filters["date"] = formatting.date
    env.filters["datetime"] = formatting.datetime_
    env.filters["localized"] = formatting.localized


def panel_context(resolution: Resolution, settings: Settings) -> PanelContext:
    mappings = settings.mappings
    locale = "en-US"
    if resolution.store and resolution.store in mappings.stores:
        locale = mappings.stores[resolution.store].locale
    elif resolution.order and resolution.order.get("locale"):
        locale = resolution.order["locale"]
    base = f"{settings.mc_url}/{settings.ct_project_key}"
    tracking = mappings.tracking_urls

    def tracking_url(carrier: str | None, tracking_id: str) -> str | None:
        template = tracking.get((carrier or "").strip().lower())
        return template.replace("{tracking_id}", _url_quote(tracking_id)) if template else None

    as_of = None
    if resolution.as_of is not None:
        as_of = datetime.fromtimestamp(resolution.as_of, tz=UTC).isoformat()
    return {
        "resolution": resolution,
        "as_of": as_of,
        "searched": resolution.context.searched(),
        "locale": locale,
        "stats": order_stats(resolution),
        "mc_order": lambda order_id: f"{base}/orders/{order_id}",
        "mc_customer": lambda customer_id: f"{base}/customers/{customer_id}",
        "tracking_url": tracking_url,
        "custom_fields": custom_fields,
        "label": lambda name: CUSTOM_FIELD_LABELS.get(name, name),
        "refunds_of": refunds_of,
        "line_name": lambda order, item: line_name(order, item, locale),
    }


def order_stats(resolution: Resolution) -> dict[str, Any]:
    """Order count and total spent per currency, over the orders we read (most recent)."""
    totals: dict[str, dict[str, Any]] = {}
    for order in resolution.orders:
        if order.get("orderState") == "Cancelled":
            continue
        money = order.get("totalPrice") or {}
        currency = money.get("currencyCode")
        if not currency:
            continue
        entry = totals.setdefault(
            currency,
            {
                "centAmount": 0,
                "currencyCode": currency,
                "fractionDigits": money.get("fractionDigits", 2),
            },
        )
        entry["centAmount"] += int(money.get("centAmount") or 0)
    from .resolution import RECENT_ORDERS

    return {
        "count": len(resolution.orders),
        "more": len(resolution.orders) >= RECENT_ORDERS,
        "totals": list(totals.values()),
    }


def custom_fields(order: Mapping[str, Any]) -> list[tuple[str, str]]:
    raw = ((order.get("custom") or {}).get("customFieldsRaw")) or []
    out = []
    for field in raw:
        value = field.get("value")
        if value in (None, ""):
            continue
        if isinstance(value, Mapping):  # enum values arrive as {key, label}
            value = value.get("label") or value.get("key")
        out.append((str(field.get("name")), str(value)))
    return out


def refunds_of(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    payments = ((order.get("paymentInfo") or {}).get("payments")) or []
    return [t for p in payments for t in p.get("transactions") or [] if t.get("type") == "Refund"]


def line_name(order: Mapping[str, Any], item: Mapping[str, Any], locale: str) -> str:
    # Return items reference line items by id; the id itself means nothing to an agent.
    for line in order.get("lineItems") or []:
        if line.get("id") == item.get("lineItemId"):
            return formatting.localized(line.get("nameAllLocales"), locale)
    return "item"


def _url_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
