"""Render a resolution as the sidebar's panels: view helpers and template globals.

Entities arrive already masked by the field policy; nothing here sees raw PII. Money and dates
are formatted for the store's locale (the mapping file), else the order's, else English. Labels
follow the agent's Zendesk locale (`ui_locale`), from the catalogs in `translations/` (English
is the fallback for a missing language or key, then the key itself).

The rest are pure helpers the template uses, each tested on its own: the payment's headline
state derived from its transactions, the order's amounts as lines that add up to its total,
deliveries grouped with their items and parcels, and the colour (Garden tag hue) of a state.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any

from jinja2 import Environment

from . import formatting
from .lru import LRU
from .resolution import Resolution
from .settings import Mappings, Settings

__all__ = [
    "LANGUAGES",
    "Delivery",
    "Line",
    "PanelContext",
    "Rendered",
    "Translator",
    "deliveries",
    "install_filters",
    "note_text",
    "order_lines",
    "panel_context",
    "payment_status",
    "sidebar_strings",
    "tone",
    "translator",
    "ui_language",
]

# Custom-field labels live in the mapping file ([order_custom_fields.<name>] label = ...):
# `Mappings.custom_field_label(name, language)`; the demo's defaults are in settings.py.

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
    env.globals["sidebar_strings"] = sidebar_strings


def panel_context(resolution: Resolution, settings: Settings) -> PanelContext:
    mappings = settings.mappings
    locale = "en-US"
    if resolution.store and resolution.store in mappings.stores:
        locale = mappings.stores[resolution.store].locale
    elif resolution.order and resolution.order.get("locale"):
        locale = resolution.order["locale"]
    base = f"{settings.mc_url}/{settings.ct_project_key}"
    tracking = mappings.tracking_urls
    t = translator(ui_language(getattr(resolution.context, "ui_locale", None)))

    def tracking_url(carrier: str | None, tracking_id: str) -> str | None:
        template = tracking.get((carrier or "").strip().lower())
        return template.replace("{tracking_id}", _url_quote(tracking_id)) if template else None

    as_of = None
    if resolution.as_of is not None:
        as_of = datetime.fromtimestamp(resolution.as_of, tz=UTC).isoformat()
    return {
        "resolution": resolution,
        "as_of": as_of,
        "searched": searched(resolution, t),
        "locale": locale,
        "t": t,
        "lang": t.language,
        "stats": order_stats(resolution),
        "mc_order": lambda order_id: f"{base}/orders/{order_id}",
        "mc_customer": lambda customer_id: f"{base}/customers/{customer_id}",
        "tracking_url": tracking_url,
        "custom_fields": lambda order: custom_fields(order, mappings, t.language),
        "label": lambda name: mappings.custom_field_label(name, t.language),
        "refunds_of": refunds_of,
        "line_name": lambda order, item: line_name(order, item, locale) or t("order.item_fallback"),
        "note_text": lambda note: note_text(note, t),
        "tone": tone,
        "payment_status": payment_status,
        "order_lines": order_lines,
        "deliveries": lambda order: deliveries(order, locale),
    }


def searched(resolution: Resolution, t: Translator) -> list[str]:
    """What was looked for, in the agent's language (for the empty state)."""
    context = resolution.context
    items = []
    if context.order_id:
        items.append(t("searched.order_id", value=context.order_id))
    if context.order_number:
        items.append(t("searched.order", value=context.order_number))
    if context.external_id:
        items.append(t("searched.customer_id", value=context.external_id))
    items += [t("searched.email", value=email) for email in context.emails]
    return items


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


def custom_fields(
    order: Mapping[str, Any], mappings: Mappings, language: str
) -> list[tuple[str, str, str]]:
    """(name, label, value) of the order's custom fields that the mapping file lists, in its
    order; unlisted, excluded and empty ones are left out. Values are already scrubbed, and
    masked ones already `•••` (the policy did both before caching)."""
    raw = ((order.get("custom") or {}).get("customFieldsRaw")) or []
    values = {f.get("name"): f.get("value") for f in raw if isinstance(f, Mapping)}
    out = []
    for name, field in mappings.custom_fields.items():
        if field.treatment == "exclude" or name not in values:
            continue
        text = _custom_value(values[name], language)
        if text:
            out.append((name, field.label_for(language), text))
    return out


def _custom_value(value: Any, language: str) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bool):
        return "✓" if value else "✗"
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (_custom_value(v, language) for v in value) if t)
    if isinstance(value, Mapping):
        if "label" in value or "key" in value:  # an enum: {key, label}, label maybe localized
            return _custom_value(value.get("label") or value.get("key"), language)
        if "centAmount" in value and "currencyCode" in value:
            return formatting.money(value, language)
        if value and all(isinstance(v, str) for v in value.values()):  # a LocalizedString
            entries = [{"locale": k, "value": v} for k, v in value.items()]
            return formatting.localized(entries, language)
        return ""  # a reference or a nested object: nothing an agent can read
    return str(value)


def refunds_of(order: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    payments = ((order.get("paymentInfo") or {}).get("payments")) or []
    return [t for p in payments for t in p.get("transactions") or [] if t.get("type") == "Refund"]


def line_name(order: Mapping[str, Any], item: Mapping[str, Any], locale: str) -> str:
    # Return items reference line items by id; the id itself means nothing to an agent.
    for line in order.get("lineItems") or []:
        if line.get("id") == item.get("lineItemId"):
            return formatting.localized(line.get("nameAllLocales"), locale)
    return ""


def _url_quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


# -- translations ------------------------------------------------------------------------------

FALLBACK_LANGUAGE = "en"
LANGUAGES = ("en", "de")  # one catalog each in translations/<language>.json
_LOCALE_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


@lru_cache(maxsize=1)
def _catalogs() -> dict[str, dict[str, str]]:
    folder = files("commerce_context") / "translations"
    catalogs = {}
    for language in LANGUAGES:
        raw = json.loads((folder / f"{language}.json").read_text(encoding="utf-8"))
        catalogs[language] = {k: v for k, v in raw.items() if not k.startswith("_")}
    return catalogs


@lru_cache(maxsize=256)
def ui_language(tag: str | None) -> str:
    """The catalog for a Zendesk locale (`de`, `de-DE`, `de_ch`); anything else is English."""
    if not tag or not _LOCALE_TAG.match(tag):
        return FALLBACK_LANGUAGE
    language = tag.replace("_", "-").split("-")[0].lower()
    return language if language in LANGUAGES else FALLBACK_LANGUAGE


class Translator:
    """`t(key, **params)`: the label in one language, else English, else the key itself.

    `{name}` in a label is replaced by the parameter `name`. With a `count` parameter, the key's
    `.one` or `.other` form is used when the catalog has one. `_default` replaces the key as the
    last fallback (for values such as states that the catalog may not know yet)."""

    def __init__(self, language: str) -> None:
        catalogs = _catalogs()
        self.language = language
        self._own = catalogs.get(language, {})
        self._labels = {**catalogs[FALLBACK_LANGUAGE], **self._own}

    def __contains__(self, key: str) -> bool:
        return key in self._labels

    def has_own(self, key: str) -> bool:
        """Whether this language itself has the key (or its `.one`/`.other` forms)."""
        own = self._own
        return key in own or f"{key}.one" in own or f"{key}.other" in own

    def __call__(self, key: str, _default: str | None = None, **params: Any) -> str:
        text = None
        if "count" in params:
            form = "one" if params["count"] == 1 else "other"
            text = self._labels.get(f"{key}.{form}")
        if text is None:
            text = self._labels.get(key)
        if text is None:
            return key if _default is None else _default
        if not params:
            return text
        try:
            return text.format_map(params)
        except (KeyError, IndexError, ValueError, AttributeError):
            return text  # a catalog typo must not break a panel


@lru_cache(maxsize=len(LANGUAGES))
def translator(language: str) -> Translator:
    return Translator(language if language in LANGUAGES else FALLBACK_LANGUAGE)


@lru_cache(maxsize=1)
def sidebar_strings() -> dict[str, dict[str, str]]:
    """The script labels of every language (#cc-strings), each script picking the agent's:
    `sidebar.*` without its prefix for sidebar.js, `actions.*` with it for actions.js."""
    out = {}
    for language in LANGUAGES:
        t = translator(language)
        strings: dict[str, str] = {}
        for key in _catalogs()[FALLBACK_LANGUAGE]:
            if key.startswith("sidebar."):
                strings[key.removeprefix("sidebar.")] = t(key)
            elif key.startswith("actions."):
                strings[key] = t(key)
        out[language] = strings
    return out


def note_text(note: object, t: Translator) -> str:
    """A resolution note in the agent's language: `note.<code>` from that language's catalog
    with the note's params, else the note's own English text (resolution.py writes it, so the
    English catalog holds no notes). Plain strings are shown as they are."""
    if isinstance(note, str):
        return note
    code = getattr(note, "code", None)
    params = getattr(note, "params", None) or {}
    text = str(getattr(note, "text", "") or "")
    if isinstance(code, str) and t.has_own(f"note.{code}"):
        return t(f"note.{code}", **{str(k): v for k, v in dict(params).items()})
    return text or str(note)


# -- states ------------------------------------------------------------------------------------

# Garden tag hues by meaning: grey waits, blue is under way, green is done, yellow needs an eye,
# red went wrong.
TONES: dict[str, dict[str, str]] = {
    "order": {"Open": "grey", "Confirmed": "blue", "Complete": "green", "Cancelled": "red"},
    "shipment": {
        "Pending": "grey",
        "Ready": "blue",
        "Shipped": "blue",
        "Delivered": "green",
        "Delayed": "yellow",
        "Partial": "yellow",
        "Backorder": "yellow",
        "Canceled": "red",
    },
    "payment": {
        "Pending": "grey",
        "BalanceDue": "yellow",
        "CreditOwed": "yellow",
        "Paid": "green",
        "Failed": "red",
    },
    "payment_status": {
        "initial": "grey",
        "pending": "grey",
        "authorized": "blue",
        "charged": "green",
        "partly_refunded": "yellow",
        "refunded": "yellow",
        "failed": "red",
    },
    "transaction": {"Initial": "grey", "Pending": "grey", "Success": "green", "Failure": "red"},
    "return_shipment": {
        "Advised": "yellow",
        "Returned": "blue",
        "BackInStock": "green",
        "Unusable": "red",
    },
    "return_payment": {
        "Initial": "grey",
        "NonRefundable": "grey",
        "NotRefunded": "yellow",
        "Refunded": "green",
    },
}


def tone(kind: str, value: object) -> str:
    """The Garden hue (grey, blue, green, yellow, red) for a state; unknown states are grey."""
    return TONES.get(kind, {}).get(str(value), "grey")


def payment_status(transactions: Iterable[Mapping[str, Any]] | None) -> str:
    """A payment's headline state from its transactions, as an agent would put it.

    Money returned (refund or chargeback succeeded) wins: `refunded` once it reaches the
    charged amount, else `partly_refunded`; then `charged` (a charge succeeded); `pending` when
    anything is still pending or initial; `authorized` (an authorisation succeeded and was not
    cancelled); `failed` when every transaction failed; `initial` when there are none."""
    done: dict[str, int] = {}
    open_ = False
    states = []
    for transaction in transactions or ():
        kind, state = transaction.get("type"), transaction.get("state")
        states.append(state)
        if state in ("Pending", "Initial"):
            open_ = True
        if state == "Success":
            amount = int(((transaction.get("amount") or {}).get("centAmount")) or 0)
            done[str(kind)] = done.get(str(kind), 0) + amount
    returned = done.get("Refund", 0) + done.get("Chargeback", 0)
    charged = done.get("Charge", 0)
    if returned > 0:
        return "refunded" if returned >= charged else "partly_refunded"
    if charged > 0:
        return "charged"
    if open_:
        return "pending"
    if "Authorization" in done and "CancelAuthorization" not in done:
        return "authorized"
    if states and all(state == "Failure" for state in states):
        return "failed"
    return "initial"


# -- the order's amounts -----------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    """One amount of the order's breakdown. `cents` is signed (discounts are negative)."""

    kind: str  # item, custom, shipping, discount, tax
    cents: int
    money: Mapping[str, Any]  # for display, with the sign of `cents`
    item: Mapping[str, Any] | None = None  # the line item or custom line item
    name: str = ""


def _cents(money: Mapping[str, Any] | None) -> int | None:
    if not money or money.get("centAmount") is None:
        return None
    try:
        return int(money["centAmount"])
    except (TypeError, ValueError):
        return None


def _signed(money: Mapping[str, Any], cents: int) -> dict[str, Any]:
    return {
        "centAmount": cents,
        "currencyCode": money.get("currencyCode"),
        "fractionDigits": money.get("fractionDigits", 2),
    }


def order_lines(order: Mapping[str, Any]) -> list[Line]:
    """The order's amounts as lines that add up to `totalPrice`: line items, custom line items
    (vouchers, fees), shipping, the discount on the total and, for net prices, the tax.

    Tax is shown only when the prices are net (the other lines add up to the net total, and the
    tax bridges to the gross). Without shipping info there is no shipping line; shipping that
    costs nothing is a line of 0 (the panel says "free")."""
    lines: list[Line] = []
    for item in order.get("lineItems") or ():
        money = item.get("totalPrice") or {}
        cents = _cents(money)
        if cents is not None:
            lines.append(Line("item", cents, money, item))
    for item in order.get("customLineItems") or ():
        money = item.get("totalPrice") or {}
        cents = _cents(money)
        if cents is not None:
            lines.append(Line("custom", cents, money, item))
    shipping = order.get("shippingInfo") or {}
    price = shipping.get("price")
    cents = _cents(price)
    if price and cents is not None:
        lines.append(
            Line("shipping", cents, price, None, str(shipping.get("shippingMethodName") or ""))
        )
    discount = (order.get("discountOnTotalPrice") or {}).get("discountedAmount")
    cents = _cents(discount)
    if discount and cents:
        lines.append(Line("discount", -cents, _signed(discount, -cents)))
    total = _cents(order.get("totalPrice"))
    taxed = order.get("taxedPrice") or {}
    net, gross = _cents(taxed.get("totalNet")), _cents(taxed.get("totalGross"))
    subtotal = sum(line.cents for line in lines)
    net_prices = net is not None and gross is not None and subtotal == net != gross == total
    if net_prices and net is not None and gross is not None:
        lines.append(Line("tax", gross - net, _signed(order["totalPrice"], gross - net)))
    return lines


# -- deliveries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One delivery: when, what (line item names and quantities) and its parcels."""

    created_at: str | None
    items: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    parcels: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)


def deliveries(order: Mapping[str, Any], locale: str) -> list[Delivery]:
    """The order's deliveries, oldest first, with item names resolved from the line items (a
    delivery item names a line item by id; the id means nothing to an agent)."""
    names = {
        li.get("id"): formatting.localized(li.get("nameAllLocales"), locale)
        for li in order.get("lineItems") or ()
    }
    names.update(
        {
            li.get("id"): formatting.localized(li.get("nameAllLocales"), locale)
            for li in order.get("customLineItems") or ()
        }
    )
    out = []
    for delivery in (order.get("shippingInfo") or {}).get("deliveries") or ():
        items = [
            (names.get(item.get("id")) or "", int(item.get("quantity") or 0))
            for item in delivery.get("items") or ()
        ]
        out.append(Delivery(delivery.get("createdAt"), items, list(delivery.get("parcels") or ())))
    return sorted(out, key=lambda d: d.created_at or "")
