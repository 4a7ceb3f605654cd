"""panels.py's pure helpers: the payment's headline state, the order's amounts as lines that
add up to its total, deliveries with their items, state colours, and the translations."""

from __future__ import annotations

import json
import re
import string
from importlib.resources import files
from typing import Any

import pytest

from commerce_context import panels
from commerce_context.actions import ACTION_KINDS
from commerce_context.panels import (
    deliveries,
    note_text,
    order_lines,
    payment_status,
    sidebar_strings,
    tone,
    translator,
    ui_language,
)
from commerce_context.resolution import NOTE_CODES, Note


def money(cents: int, currency: str = "EUR") -> dict[str, Any]:
    return {"centAmount": cents, "currencyCode": currency, "fractionDigits": 2}


def tx(kind: str, state: str, cents: int = 1000) -> dict[str, Any]:
    return {"type": kind, "state": state, "amount": money(cents)}


# -- the payment's headline state ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("transactions", "expected"),
    [
        ([], "initial"),
        (None, "initial"),
        ([tx("Authorization", "Success")], "authorized"),
        ([tx("Authorization", "Success"), tx("Charge", "Success")], "charged"),
        ([tx("Charge", "Success")], "charged"),
        (
            [tx("Authorization", "Success"), tx("Charge", "Success"), tx("Refund", "Success", 400)],
            "partly_refunded",
        ),
        (
            [tx("Charge", "Success", 1000), tx("Refund", "Success", 600), tx("Refund", "Success")],
            "refunded",
        ),
        ([tx("Charge", "Success"), tx("Refund", "Success", 1000)], "refunded"),
        ([tx("Charge", "Success"), tx("Chargeback", "Success", 1000)], "refunded"),
        # a refund still pending has not returned any money yet
        ([tx("Charge", "Success"), tx("Refund", "Pending", 1000)], "charged"),
        ([tx("Charge", "Success"), tx("Refund", "Failure", 1000)], "charged"),
        ([tx("Authorization", "Failure")], "failed"),
        ([tx("Authorization", "Failure"), tx("Charge", "Failure")], "failed"),
        ([tx("Authorization", "Pending")], "pending"),
        ([tx("Authorization", "Initial")], "pending"),
        ([tx("Authorization", "Success"), tx("Charge", "Pending")], "pending"),
        ([tx("Authorization", "Failure"), tx("Authorization", "Pending")], "pending"),
        ([tx("Authorization", "Success"), tx("CancelAuthorization", "Success")], "initial"),
    ],
)
def test_payment_status_from_transactions(
    transactions: list[dict[str, Any]] | None, expected: str
) -> None:
    assert payment_status(transactions) == expected


def test_every_payment_status_has_a_label_and_a_colour() -> None:
    for status in ("initial", "pending", "authorized", "charged", "partly_refunded", "refunded"):
        for language in panels.LANGUAGES:
            assert f"payment.status.{status}" in translator(language)
        assert tone("payment_status", status) in {"grey", "blue", "green", "yellow"}
    assert tone("payment_status", "failed") == "red"


# -- states ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "state", "hue"),
    [
        ("order", "Open", "grey"),
        ("order", "Confirmed", "blue"),
        ("order", "Complete", "green"),
        ("order", "Cancelled", "red"),
        ("shipment", "Pending", "grey"),
        ("shipment", "Ready", "blue"),
        ("shipment", "Shipped", "blue"),
        ("shipment", "Delivered", "green"),
        ("shipment", "Delayed", "yellow"),
        ("shipment", "Backorder", "yellow"),
        ("shipment", "Canceled", "red"),
        ("payment", "Pending", "grey"),
        ("payment", "Paid", "green"),
        ("payment", "BalanceDue", "yellow"),
        ("payment", "CreditOwed", "yellow"),
        ("payment", "Failed", "red"),
        ("order", "SomethingNew", "grey"),
        ("nonsense", "Paid", "grey"),
    ],
)
def test_state_colours_follow_meaning(kind: str, state: str, hue: str) -> None:
    assert tone(kind, state) == hue


def test_every_known_state_has_a_label_in_every_language() -> None:
    for kind in ("order", "shipment", "payment"):
        for state in panels.TONES[kind]:
            for language in panels.LANGUAGES:
                assert f"state.{kind}.{state}" in translator(language), (kind, state)


# -- the order's amounts --------------------------------------------------------------------------


def line_item(cents: int, quantity: int = 1) -> dict[str, Any]:
    return {"id": f"li-{cents}", "quantity": quantity, "totalPrice": money(cents)}


def test_lines_with_shipping_voucher_and_order_discount_add_up() -> None:
    order = {
        "lineItems": [line_item(5990, 2), line_item(1295)],
        "customLineItems": [{"id": "v", "quantity": 1, "totalPrice": money(-1000)}],
        "shippingInfo": {"shippingMethodName": "DHL Paket", "price": money(495)},
        "discountOnTotalPrice": {"discountedAmount": money(500)},
        "taxedPrice": {"totalNet": money(5282), "totalGross": money(6280)},
        "totalPrice": money(6280),
    }
    lines = order_lines(order)
    assert [(line.kind, line.cents) for line in lines] == [
        ("item", 5990),
        ("item", 1295),
        ("custom", -1000),
        ("shipping", 495),
        ("discount", -500),
    ]
    assert sum(line.cents for line in lines) == order["totalPrice"]["centAmount"]
    assert lines[3].name == "DHL Paket"
    assert lines[4].money == money(-500)


def test_net_prices_get_a_tax_line() -> None:
    order = {
        "lineItems": [line_item(10000)],
        "shippingInfo": {"price": money(795, "USD") | {"currencyCode": "EUR"}},
        "taxedPrice": {"totalNet": money(10795), "totalGross": money(11753)},
        "totalPrice": money(11753),
    }
    lines = order_lines(order)
    assert [(line.kind, line.cents) for line in lines] == [
        ("item", 10000),
        ("shipping", 795),
        ("tax", 958),
    ]
    assert sum(line.cents for line in lines) == 11753


def test_free_shipping_is_a_line_of_zero_and_no_shipping_info_is_no_line() -> None:
    with_free = {"lineItems": [line_item(100)], "shippingInfo": {"price": money(0)}}
    assert [(line.kind, line.cents) for line in order_lines(with_free)] == [
        ("item", 100),
        ("shipping", 0),
    ]
    assert [line.kind for line in order_lines({"lineItems": [line_item(100)]})] == ["item"]
    # Odd upstream data does not break the panel.
    odd = {"lineItems": [{"id": "x", "totalPrice": {"centAmount": "n/a"}}], "shippingInfo": None}
    assert order_lines(odd) == []


# -- deliveries -----------------------------------------------------------------------------------


def test_deliveries_show_item_names_and_parcels_oldest_first() -> None:
    name = [{"locale": "de-DE", "value": "Rucksack"}, {"locale": "en-GB", "value": "Backpack"}]
    order = {
        "lineItems": [
            {"id": "a", "nameAllLocales": name},
            {"id": "b", "nameAllLocales": [{"locale": "en", "value": "Socks"}]},
        ],
        "shippingInfo": {
            "deliveries": [
                {
                    "createdAt": "2026-10-02T10:00:00.000Z",
                    "items": [{"id": "b", "quantity": 2}],
                    "parcels": [{"trackingData": {"trackingId": "T2"}}],
                },
                {
                    "createdAt": "2026-10-01T10:00:00.000Z",
                    "items": [{"id": "a", "quantity": 1}, {"id": "gone", "quantity": 1}],
                    "parcels": [],
                },
            ]
        },
    }
    first, second = deliveries(order, "de-DE")
    assert first.created_at == "2026-10-01T10:00:00.000Z"
    assert first.items == [("Rucksack", 1), ("", 1)]  # an unknown id: the panel says "item"
    assert second.items == [("Socks", 2)]
    assert second.parcels == [{"trackingData": {"trackingId": "T2"}}]
    assert deliveries({}, "en") == []


# -- translations ---------------------------------------------------------------------------------


def catalog(language: str) -> dict[str, str]:
    raw = (files("commerce_context") / "translations" / f"{language}.json").read_text("utf-8")
    data: dict[str, str] = json.loads(raw)
    return {k: v for k, v in data.items() if not k.startswith("_")}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def base(key: str) -> str:
    return re.sub(r"\.(one|other)$", "", key)


def test_every_language_has_every_label_with_the_same_placeholders() -> None:
    english = catalog("en")
    for language in panels.LANGUAGES:
        other = catalog(language)
        for key in english:
            assert key in other or base(key) in {base(k) for k in other}, (language, key)
        for key, text in other.items():
            reference = english.get(key) or english.get(base(key))
            if reference is None:  # notes exist only in other languages (English: note.text)
                assert key.startswith("note."), (language, key)
                continue
            wanted = placeholders(reference) - {"count"}
            assert placeholders(text) - {"count"} == wanted, (language, key)


def test_every_resolution_note_is_translated_with_its_params() -> None:
    german = catalog("de")
    for code, english in NOTE_CODES.items():
        forms = [k for k in german if base(k) == f"note.{code}"]
        assert forms, code
        for key in forms:
            assert placeholders(german[key]) - {"count"} <= placeholders(english), key


def test_translator_falls_back_to_english_then_to_the_key() -> None:
    de = translator("de")
    assert de("orders.title") == "Letzte Bestellungen"
    assert translator("en")("orders.title") == "Recent orders"
    assert de("no.such.key") == "no.such.key"
    assert de("no.such.key", _default="Paid") == "Paid"
    assert de("cart.items", count=1) == "1 Artikel"
    assert de("cart.items", count=3) == "3 Artikel"
    assert translator("en")("cart.items", count=1) == "1 item"
    assert translator("en")("cart.items", count=0) == "0 items"
    assert de("order.title", number="DE-1003") == "Bestellung DE-1003"
    # a missing parameter leaves the label as written instead of failing the panel
    assert de("order.title") == "Bestellung {number}"
    assert translator("xx").language == "en"


@pytest.mark.parametrize(
    ("tag", "language"),
    [
        ("de", "de"),
        ("de-DE", "de"),
        ("de_ch", "de"),
        ("DE-at", "de"),
        ("en-US", "en"),
        ("ja", "en"),
        ("", "en"),
        (None, "en"),
        ("<script>", "en"),
        ("d", "en"),
    ],
)
def test_ui_language(tag: str | None, language: str) -> None:
    assert ui_language(tag) == language


def test_notes_in_the_agents_language_with_the_notes_own_text_as_fallback() -> None:
    note = Note.of("orders_hidden", count=2)
    assert note_text(note, translator("en")) == note.text
    assert (
        note_text(note, translator("de")) == "2 Bestellungen anderer Stores werden nicht angezeigt."
    )
    one = Note.of("orders_hidden", count=1)
    assert (
        note_text(one, translator("de"))
        == "1 Bestellung eines anderen Stores wird nicht angezeigt."
    )
    unknown = Note("brand_new_code", {}, "Something new.")
    assert note_text(unknown, translator("de")) == "Something new."
    assert note_text("A plain sentence.", translator("de")) == "A plain sentence."


def test_sidebar_strings_carry_every_language() -> None:
    strings = sidebar_strings()
    assert set(strings) == set(panels.LANGUAGES)
    assert strings["en"]["refresh"] == "Refresh"
    assert strings["de"]["refresh"] == "Aktualisieren"
    assert strings["de"]["refreshing"] == "Wird aktualisiert…"
    assert set(strings["de"]) == set(strings["en"])


# -- the agent actions' labels (templates/_actions.html, static/actions.js) ----------------------


def test_every_actions_label_is_in_both_languages_with_the_same_params() -> None:
    english = {k: v for k, v in catalog("en").items() if k.startswith("actions.")}
    german = {k: v for k, v in catalog("de").items() if k.startswith("actions.")}
    assert len(english) >= 30
    assert set(german) == set(english)
    for key, text in english.items():
        assert german[key].strip(), key
        assert placeholders(german[key]) == placeholders(text), key
    # German, not English left in place (a few are the same in both, e.g. "{label}?").
    same = {k for k in english if english[k] == german[k]}
    assert same <= {"actions.ask.other", "actions.state.other"}, same
    assert german["actions.title"] == "Aktionen"
    assert german["actions.cancel.button"] == "Bestellung stornieren"
    assert german["actions.activity.title"] == "Verlauf"


def package_text(path: str) -> str:
    return (files("commerce_context") / path).read_text("utf-8")


def test_every_actions_key_the_template_and_script_use_is_in_the_catalog() -> None:
    english = catalog("en")
    template = package_text("templates/_actions.html")
    used = set(re.findall(r"""\bt\(\s*["'](actions\.[a-z_.]+)["']""", template))
    assert "actions.title" in used and "actions.refund.label" in used
    script = package_text("static/actions.js")
    for key in re.findall(r"""\blabel\(section,\s*"([a-z_.]+)"\s*[,)]""", script):
        used.add(f"actions.{key}")
    assert "actions.ask.cancel_order" in used and "actions.sending" in used
    for key in used:
        assert key in english or f"{key}.one" in english, key
    # state.<job state> is built at run time: every state the server reports has its label
    for state in ("pending", "applied", "unchanged", "failed", "cancelled", "other"):
        assert f"actions.state.{state}" in english
    # and so is kind.<action>: every action the server offers has its name
    for kind in ACTION_KINDS:
        assert f"actions.kind.{kind}" in english, kind
    # No English sentence is left in the script: its messages all come from the catalog.
    code = re.sub(r"/\*.*?\*/|//[^\n]*", "", script, flags=re.S)
    assert not re.findall(r'"[A-Z][a-z]+ [a-z]+[^"]*"', code)


def test_sidebar_strings_carry_the_actions_labels_for_actions_js() -> None:
    strings = sidebar_strings()
    for language in panels.LANGUAGES:
        own = {k: v for k, v in catalog(language).items() if k.startswith("actions.")}
        assert {k: v for k, v in strings[language].items() if k.startswith("actions.")} == own
    assert strings["de"]["actions.confirm.back"] == "Zurück"
    assert strings["en"]["actions.ask.create_return.other"] == "Create a return of {count} items?"
    # sidebar.js's own labels keep their short names
    assert strings["de"]["refresh"] == "Aktualisieren"
