"""Locale-aware display helpers: exact babel 2.18 output for de-DE, en-GB, en-US and ja-JP.

Expected strings are written out in full, including babel's non-breaking space (\\xa0) between
amount and symbol in German and the narrow no-break space (\\u202f) before AM/PM in en-US.
"""

from __future__ import annotations

from typing import Any

import pytest
from babel import Locale

from commerce_context.formatting import babel_locale, date, datetime_, localized, money

NBSP = "\xa0"
NNBSP = "\u202f"
TS = "2026-08-03T09:12:00.000Z"


def m(cents: int, currency: str, digits: int | None = 2, **extra: Any) -> dict[str, Any]:
    value: dict[str, Any] = {"centAmount": cents, "currencyCode": currency, **extra}
    if digits is not None:
        value["fractionDigits"] = digits
    return value


# -- babel_locale -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("de-DE", "de_DE"),
        ("de_DE", "de_DE"),
        (" en-GB ", "en_GB"),
        ("ja-JP", "ja_JP"),
        ("de", "de"),
        ("xx-YY", "en"),
        ("", "en"),
        ("not a locale", "en"),
        ("de--DE", "en"),
    ],
)
def test_babel_locale(tag: str, expected: str) -> None:
    locale = babel_locale(tag)
    assert isinstance(locale, Locale)
    assert str(locale) == expected


# -- money --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "locale", "expected"),
    [
        (m(12990, "EUR"), "de-DE", f"129,90{NBSP}€"),
        (m(12990, "EUR"), "en-GB", "€129.90"),
        (m(12990, "EUR"), "en-US", "€129.90"),
        (m(12990, "EUR"), "ja-JP", "€129.90"),
        (m(123456750, "EUR"), "de-DE", f"1.234.567,50{NBSP}€"),
        (m(123456750, "EUR"), "en-GB", "€1,234,567.50"),
        (m(1290, "JPY", 0), "de-DE", f"1.290{NBSP}¥"),
        (m(1290, "JPY", 0), "en-GB", "JP¥1,290"),
        (m(1290, "JPY", 0), "en-US", "¥1,290"),
        (m(1290, "JPY", 0), "ja-JP", "￥1,290"),
        (m(1200, "GBP"), "en-GB", "£12.00"),
        (m(1200, "GBP"), "de-DE", f"12,00{NBSP}£"),
        (m(-500, "USD"), "en-US", "-$5.00"),
        (m(-500, "USD"), "de-DE", f"-5,00{NBSP}$"),
        (m(0, "EUR"), "de-DE", f"0,00{NBSP}€"),
        (m(5, "EUR"), "en-US", "€0.05"),
        (m(1234, "KWD", 3), "en-US", "KWD1.234"),  # three fraction digits
        (m(1234, "KWD", 3), "de-DE", f"1,234{NBSP}KWD"),
        (m(12345, "RSD"), "en-US", "RSD123.45"),  # ISO digits kept even where CLDR shows none
        (m(12990, "EUR", None), "de-DE", f"129,90{NBSP}€"),  # no fractionDigits: the currency's
        (m(1290, "JPY", None), "en-US", "¥1,290"),
        (m(12990, "EUR"), "de_DE", f"129,90{NBSP}€"),
        (m(12990, "EUR"), "zz-ZZ", "€129.90"),  # unknown locale: English
    ],
)
def test_money(value: dict[str, Any], locale: str, expected: str) -> None:
    assert money(value, locale) == expected


def test_money_high_precision() -> None:
    precise = {
        "type": "highPrecision",
        "currencyCode": "EUR",
        "centAmount": 1,
        "preciseAmount": 1235,
        "fractionDigits": 5,
    }
    assert money(precise, "de-DE") == f"0,01235{NBSP}€"
    assert money(precise, "en-US") == "€0.01235"
    # Without preciseAmount, fractionDigits belongs to the precise amount: centAmount is in the
    # currency's own digits.
    rounded = {"__typename": "HighPrecisionMoney", "currencyCode": "EUR", "centAmount": 1}
    assert money({**rounded, "fractionDigits": 5}, "en-US") == "€0.01"
    assert money({**precise, "type": None, "__typename": None}, "en-US") == "€0.01235"


@pytest.mark.parametrize(
    "value",
    [
        None,
        {},
        {"centAmount": 100},
        {"currencyCode": "EUR", "fractionDigits": 2},
        {"centAmount": "abc", "currencyCode": "EUR", "fractionDigits": 2},
        {"centAmount": True, "currencyCode": "EUR", "fractionDigits": 2},
        {"centAmount": 100, "currencyCode": "EUR", "fractionDigits": "two"},
        {"centAmount": None, "currencyCode": "EUR", "fractionDigits": 2},
    ],
)
def test_money_unusable_values_give_empty_string(value: dict[str, Any] | None) -> None:
    assert money(value, "de-DE") == ""


def test_money_accepts_numeric_strings() -> None:
    # GraphQL `Long` may arrive as a string from some clients.
    assert money({"centAmount": "12990", "currencyCode": "EUR", "fractionDigits": 2}, "en-GB") == (
        "€129.90"
    )


# -- datetime_ and date -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "medium", "short"),
    [
        ("de-DE", "03.08.2026, 09:12:00", "03.08.26, 09:12"),
        ("en-GB", "3 Aug 2026, 09:12:00", "03/08/2026, 09:12"),
        ("en-US", f"Aug 3, 2026, 9:12:00{NNBSP}AM", f"8/3/26, 9:12{NNBSP}AM"),
        ("ja-JP", "2026/08/03 9:12:00", "2026/08/03 9:12"),
    ],
)
def test_datetime_utc(locale: str, medium: str, short: str) -> None:
    assert datetime_(TS, locale) == medium
    assert datetime_(TS, locale, format="short") == short


@pytest.mark.parametrize(
    ("locale", "timezone", "fmt", "expected"),
    [
        ("de-DE", "Europe/Berlin", "medium", "03.08.2026, 11:12:00"),
        ("de-DE", "Europe/Berlin", "long", "3. August 2026, 11:12:00 MESZ"),
        ("en-GB", "Europe/London", "medium", "3 Aug 2026, 10:12:00"),
        ("en-US", "America/New_York", "long", f"August 3, 2026, 5:12:00{NNBSP}AM EDT"),
        ("ja-JP", "Asia/Tokyo", "medium", "2026/08/03 18:12:00"),
        ("ja-JP", "Asia/Tokyo", "full", "2026年8月3日月曜日 18時12分00秒 日本標準時"),
        ("de-DE", "UTC", "yyyy-MM-dd HH:mm", "2026-08-03 09:12"),
        ("de-DE", "Mars/Olympus_Mons", "medium", "03.08.2026, 09:12:00"),  # unknown zone: UTC
    ],
)
def test_datetime_in_a_timezone(locale: str, timezone: str, fmt: str, expected: str) -> None:
    assert datetime_(TS, locale, timezone=timezone, format=fmt) == expected


def test_datetime_input_variants() -> None:
    assert datetime_("2026-08-03T09:12:00Z", "en-GB") == "3 Aug 2026, 09:12:00"
    assert datetime_("2026-08-03T09:12:00.123456Z", "en-GB") == "3 Aug 2026, 09:12:00"
    assert datetime_("2026-08-03T23:30:00+02:00", "en-GB") == "3 Aug 2026, 21:30:00"
    assert datetime_("2026-08-03T09:12:00", "en-GB") == "3 Aug 2026, 09:12:00"  # naive: UTC
    assert datetime_("1990-05-17", "de-DE") == "17.05.1990"  # a plain Date


@pytest.mark.parametrize(
    "odd", ["", "yesterday", "2026-13-45T99:00:00Z", "2026-08-03T", "03/08/2026"]
)
def test_datetime_malformed_comes_back_unchanged(odd: str) -> None:
    assert datetime_(odd, "de-DE") == odd
    assert date(odd, "de-DE") == odd


def test_datetime_none_and_non_strings() -> None:
    assert datetime_(None, "de-DE") == ""
    assert date(None, "de-DE") == ""
    assert datetime_(1754212320, "de-DE") == "1754212320"  # type: ignore[arg-type]
    assert date(1754212320, "de-DE") == "1754212320"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de-DE", "03.08.2026"),
        ("en-GB", "3 Aug 2026"),
        ("en-US", "Aug 3, 2026"),
        ("ja-JP", "2026/08/03"),
    ],
)
def test_date(locale: str, expected: str) -> None:
    assert date(TS, locale) == expected


def test_date_follows_the_timezone() -> None:
    late = "2026-08-03T23:30:00.000Z"
    assert date(late, "de-DE") == "03.08.2026"
    assert date(late, "de-DE", timezone="Europe/Berlin") == "04.08.2026"
    assert date(late, "en-US", timezone="America/Los_Angeles") == "Aug 3, 2026"
    assert date(late, "ja-JP", timezone="Asia/Tokyo", format="long") == "2026年8月4日"
    assert date("1990-05-17", "en-GB", timezone="Pacific/Kiritimati") == "17 May 1990"
    assert date(late, "en-GB", format="short") == "03/08/2026"


# -- localized ----------------------------------------------------------------------------------

NAMES = [
    {"locale": "de-DE", "value": "Hose"},
    {"locale": "en", "value": "Trousers"},
    {"locale": "en-US", "value": "Pants"},
]


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("de-DE", "Hose"),  # exact
        ("de_DE", "Hose"),
        ("DE-de", "Hose"),  # case does not matter
        ("de", "Hose"),  # same language
        ("de-AT", "Hose"),  # same language, other region
        ("en-US", "Pants"),  # exact beats language
        ("en-GB", "Trousers"),  # bare language
        ("en", "Trousers"),
        ("fr-FR", "Trousers"),  # fallback "en"
    ],
)
def test_localized(locale: str, expected: str) -> None:
    assert localized(NAMES, locale) == expected


def test_localized_prefers_the_bare_language_over_another_region() -> None:
    values = [{"locale": "de-AT", "value": "Hose (AT)"}, {"locale": "de", "value": "Hose"}]
    assert localized(values, "de-DE") == "Hose"
    assert localized(values, "de-CH") == "Hose"
    assert localized(values, "de-AT") == "Hose (AT)"


def test_localized_fallbacks_and_first_available() -> None:
    values = [{"locale": "it", "value": "Pantaloni"}, {"locale": "fr", "value": "Pantalon"}]
    assert localized(values, "de-DE") == "Pantaloni"  # no de, no en: first available
    assert localized(values, "de-DE", fallbacks=("fr", "it")) == "Pantalon"
    assert localized(values, "de-DE", fallbacks=()) == "Pantaloni"
    assert localized(values, "fr-CA", fallbacks=()) == "Pantalon"


@pytest.mark.parametrize(
    "values",
    [None, [], [{"locale": "de", "value": None}], [{"locale": "de", "value": ""}], ["junk"]],
)
def test_localized_nothing_usable(values: Any) -> None:
    assert localized(values, "de-DE") == ""


def test_localized_skips_empty_and_odd_entries() -> None:
    values: list[Any] = [
        {"locale": "de-DE", "value": ""},
        {"locale": None, "value": "No locale"},
        "junk",
        {"locale": "de", "value": "Hose"},
    ]
    assert localized(values, "de-DE") == "Hose"
    assert localized(values, "ja-JP") == "No locale"
