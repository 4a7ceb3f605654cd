"""Locale-aware display helpers for the panels: money, dates and localized strings.

Everything here is forgiving by design: upstream data that cannot be parsed is shown as it came
(or as an empty string for a missing value), never turned into an error, because a panel must
not fail over one odd field. Locale tags are accepted as `de-DE` or `de_DE`; an unknown tag falls
back to English (configured locales are validated at start-up, in settings.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime, get_timezone
from babel.numbers import format_currency, get_currency_precision

__all__ = ["babel_locale", "date", "datetime_", "localized", "money"]

FALLBACK_LOCALE: Final = "en"


@lru_cache(maxsize=256)
def babel_locale(tag: str) -> Locale:
    """`de-DE` or `de_DE` as a babel Locale; anything unknown or malformed gives English."""
    try:
        return Locale.parse(tag.strip().replace("-", "_"))
    except (ValueError, TypeError, AttributeError, UnknownLocaleError):
        return Locale.parse(FALLBACK_LOCALE)


def money(value: Mapping[str, Any] | None, locale: str) -> str:
    """A commercetools Money (or HighPrecisionMoney) for display, e.g. `129,90 €` in de-DE.

    `centAmount` is in units of 10^-fractionDigits of the currency. A HighPrecisionMoney (known by
    `type` "highPrecision" or `__typename`) is shown from `preciseAmount` when it was selected,
    since its `fractionDigits` belongs to that field; otherwise its rounded `centAmount` is shown
    in the currency's usual digits. Nothing is rounded away. Unusable values give "".
    """
    if not value:
        return ""
    try:
        currency = str(value["currencyCode"])
        high_precision = (
            value.get("type") == "highPrecision"
            or value.get("__typename") == "HighPrecisionMoney"
            or "preciseAmount" in value
        )
        if high_precision and value.get("preciseAmount") is not None:
            amount = _scaled(value["preciseAmount"], value["fractionDigits"])
        elif high_precision:
            amount = _scaled(value["centAmount"], get_currency_precision(currency))
        else:
            digits = value.get("fractionDigits")
            if digits is None:
                digits = get_currency_precision(currency)
            amount = _scaled(value["centAmount"], digits)
        return _currency(amount, currency, locale)
    except (KeyError, TypeError, ValueError, InvalidOperation, ArithmeticError):
        return ""


# Panels format the same few amounts and dates over and over; babel is slow at it.
@lru_cache(maxsize=4096)
def _currency(amount: Decimal, currency: str, locale: str) -> str:
    return format_currency(
        amount, currency, locale=babel_locale(locale), decimal_quantization=False
    )


def _scaled(units: Any, digits: Any) -> Decimal:
    if isinstance(units, bool) or isinstance(digits, bool):
        raise TypeError("amounts are integers")
    return Decimal(int(units)).scaleb(-int(digits))


def _parse(iso: str) -> dt.datetime | dt.date:
    text = iso.strip()
    if len(text) == 10:  # a commercetools Date, e.g. dateOfBirth
        return dt.date.fromisoformat(text)
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _zone(name: str) -> dt.tzinfo:
    try:
        return get_timezone(name)
    except LookupError:
        return dt.UTC


def datetime_(
    iso: str | None, locale: str, *, timezone: str = "UTC", format: str = "medium"
) -> str:
    """An ISO-8601 timestamp (`2026-08-03T09:12:00.000Z`) in `timezone`, formatted for `locale`.

    `format` is short, medium, long, full or a CLDR pattern. None gives ""; anything that does not
    parse comes back unchanged.
    """
    return _when(iso, locale, timezone, format, date_only=False)


def date(iso: str | None, locale: str, *, timezone: str = "UTC", format: str = "medium") -> str:
    """The calendar date of an ISO-8601 timestamp in `timezone` (or of a plain `YYYY-MM-DD`)."""
    return _when(iso, locale, timezone, format, date_only=True)


def _when(iso: object, locale: str, timezone: str, format: str, *, date_only: bool) -> str:
    if iso is None:
        return ""
    if not isinstance(iso, str):
        return str(iso)
    return _format_when(iso, locale, timezone, format, date_only)


@lru_cache(maxsize=4096)
def _format_when(iso: str, locale: str, timezone: str, format: str, date_only: bool) -> str:
    try:
        parsed = _parse(iso)
        loc = babel_locale(locale)
        if isinstance(parsed, dt.datetime) and not date_only:
            return format_datetime(parsed, format=format, tzinfo=_zone(timezone), locale=loc)
        if isinstance(parsed, dt.datetime):
            parsed = parsed.astimezone(_zone(timezone)).date()
        return format_date(parsed, format=format, locale=loc)
    except (ValueError, TypeError, LookupError, OverflowError, AttributeError):
        return iso


def localized(
    values: Sequence[Mapping[str, Any]] | None,
    locale: str,
    fallbacks: Iterable[str] = (FALLBACK_LOCALE,),
) -> str:
    """Pick from a commercetools `[{locale, value}]` list (e.g. `nameAllLocales`).

    Order: the exact locale, then the same language (de-DE ↔ de ↔ de-AT), then each fallback
    the same way, then the first value present. Nothing usable gives "".
    """
    if not values:
        return ""
    present: list[tuple[str, str]] = []
    for entry in values:
        if not isinstance(entry, Mapping):
            continue
        tag, text = entry.get("locale"), entry.get("value")
        if isinstance(text, str) and text:
            present.append((_norm(tag) if isinstance(tag, str) else "", text))
    if not present:
        return ""
    for wanted in (locale, *fallbacks):
        found = _pick(present, _norm(wanted))
        if found is not None:
            return found
    return present[0][1]


def _norm(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def _pick(present: list[tuple[str, str]], wanted: str) -> str | None:
    if not wanted:
        return None
    for tag, text in present:
        if tag == wanted:
            return text
    language = wanted.split("-")[0]
    for tag, text in present:  # the bare language first, then any region of it
        if tag == language:
            return text
    for tag, text in present:
        if tag.split("-")[0] == language:
            return text
    return None
