"""The panels as rendered for the seeded demo, through the real app and the emulator: the
amounts shown add up to each order's total, labels follow the agent's language, the cart,
hidden orders, the purchase-order number and the copy buttons."""

from __future__ import annotations

import json
import re
from importlib.resources import files

import pytest
from bs4 import BeautifulSoup

from commerce_context.emulator.harness import Harness
from commerce_context.settings import Settings
from tests.conftest import rest_get
from tests.test_sidebar import Sidebar
from tests.test_sidebar import sidebar as sidebar  # the fixtures, shared
from tests.test_sidebar import sidebar_settings as sidebar_settings
from tests.test_sidebar import zendesk as zendesk

pytestmark = pytest.mark.emulator

BRANDS = {"berlin": 1001, "london": 1002, "newyork": 1003}


def cents(node: object) -> int:
    assert node is not None
    return int(str(node["data-cents"]))  # type: ignore[index]


async def test_every_demo_orders_lines_add_up_to_its_total(
    sidebar: Sidebar, harness: Harness
) -> None:
    for number, info in harness.demo.orders.items():
        page = await sidebar.page(order_number=number, brand_id=BRANDS[info.store_key])
        lines = page.select('[data-testid="lines"] tbody tr[data-line]')
        total = page.select_one('[data-field="order-total"]')
        assert lines and total is not None, number
        assert sum(cents(line) for line in lines) == cents(total), number
        # every amount is shown, formatted
        for line in lines:
            assert line.select("td")[-1].get_text(strip=True), (number, str(line))
        kinds = [line["data-line"] for line in lines]
        assert kinds.count("shipping") == 1, number


async def test_discount_and_shipping_lines(sidebar: Sidebar) -> None:
    page = await sidebar.page(order_number="DE-1001", brand_id=BRANDS["berlin"], ui_locale="en")
    voucher = page.select_one('tr[data-line="custom"]')
    assert voucher is not None and cents(voucher) == -1000
    # the name in the store's language (data), the label in the agent's
    assert "Gutschein WELCOME10" in voucher.get_text() and "-10,00" in voucher.get_text()
    shipping = page.select_one('tr[data-line="shipping"]')
    assert shipping is not None and cents(shipping) == 0
    assert "Shipping (DHL Paket)" in shipping.get_text() and "free" in shipping.get_text()
    paid_shipping = await sidebar.page(order_number="DE-1004", brand_id=BRANDS["berlin"])
    row = paid_shipping.select_one('tr[data-line="shipping"]')
    assert row is not None and cents(row) == 495 and "4,95" in row.get_text()


def english_labels() -> set[str]:
    raw = (files("commerce_context") / "translations" / "en.json").read_text("utf-8")
    german = json.loads((files("commerce_context") / "translations" / "de.json").read_text())
    labels = set()
    for key, text in json.loads(raw).items():
        if key.startswith(("_", "sidebar.")):
            continue
        fixed = re.split(r"\{[a-z_]+\}", text)  # the words around the parameters
        for part in fixed:
            part = part.strip(" .,:;()·")
            if len(part) >= 4 and part != german.get(key, "").strip():
                labels.add(part)
    return labels


def visible_text(page: BeautifulSoup) -> str:
    # Left out: data (the merchant's custom fields and their labels, the PSP's status code).
    # The agent-actions section (_actions.html) is checked like every other panel.
    for node in page.select("dl.custom, [data-psp-code]"):
        node.decompose()
    words = [page.get_text(" ")]
    for node in page.select("[title], [aria-label], [placeholder]"):
        words += [str(node.get(a, "")) for a in ("title", "aria-label", "placeholder")]
    return " ".join(" ".join(words).split())


def shows(text: str, label: str) -> bool:
    # The label as words of its own: "order" inside German "anfordern" is not English.
    return re.search(rf"(?<!\w){re.escape(label)}(?!\w)", text) is not None


@pytest.mark.parametrize(
    "context",
    [
        {"order_number": "DE-1002", "brand_id": 1001},  # refund, return, two parcels, sale
        {"emails": ["anna.schmidt@example.com"], "brand_id": 1001},  # customer, cart, orders
        {"emails": ["sam.lee@example.org"], "brand_id": 1001},  # guest, a hidden order
        {"order_number": "US-3003", "brand_id": 1001},  # failed payment, other store's order
        {"emails": ["alex.morgan@example.com"], "brand_id": 1002},  # two accounts
        {"emails": ["nobody@example.net"], "brand_id": 1001},  # the empty state and search
    ],
)
async def test_german_panels_have_no_english_labels(
    sidebar: Sidebar, context: dict[str, object]
) -> None:
    english = visible_text(await sidebar.page(**context, ui_locale="en"))
    german = visible_text(await sidebar.page(**context, ui_locale="de-DE"))
    labels = english_labels()
    shown_in_english = {label for label in labels if shows(english, label)}
    assert shown_in_english, "the English page shows catalog labels"
    assert not {label for label in labels if shows(german, label)}
    assert german != english


async def test_render_memo_keeps_languages_apart(sidebar: Sidebar) -> None:
    context = {"emails": ["anna.schmidt@example.com"], "brand_id": 1001}
    for _ in range(2):  # the second round comes from the render memo
        de = await sidebar.page(**context, ui_locale="de")
        en = await sidebar.page(**context, ui_locale="en-GB")
        assert "Letzte Bestellungen" in de.get_text() and "Recent orders" not in de.get_text()
        assert "Recent orders" in en.get_text() and "Letzte Bestellungen" not in en.get_text()


async def test_state_pills_are_labelled_and_coloured(sidebar: Sidebar) -> None:
    page = await sidebar.page(emails=["anna.schmidt@example.com"], brand_id=1001, ui_locale="en")
    pills = page.select('[data-testid="orders"] .state[data-kind]')
    seen = {(p["data-kind"], p["data-state"]): p for p in pills}
    complete = seen[("order", "Complete")]
    assert "tone-green" in complete["class"]
    assert " ".join(complete.get_text(" ").split()) == "Order Complete"
    assert "tone-blue" in seen[("shipment", "Ready")]["class"]
    assert " ".join(seen[("payment", "Paid")].get_text(" ").split()) == "Payment Paid"
    assert {kind for kind, _ in seen} == {"order", "shipment", "payment"}


async def test_payment_headline_state(sidebar: Sidebar) -> None:
    cases = {"DE-1002": "partly_refunded", "US-3003": "failed", "DE-1005": "charged"}
    cases |= {"UK-2003": "authorized"}
    for number, status in cases.items():
        page = await sidebar.page(order_number=number, ui_locale="en")
        payment = page.select_one("[data-payment-status]")
        assert payment is not None and payment["data-payment-status"] == status, number
    refunded = await sidebar.page(order_number="DE-1002", ui_locale="de")
    assert "Teilweise erstattet" in refunded.get_text()


async def test_deliveries_with_items_parcels_and_copy_buttons(sidebar: Sidebar) -> None:
    page = await sidebar.page(order_number="US-3002", brand_id=1003, ui_locale="en")
    (delivery,) = page.select("[data-delivery]")
    items = [" ".join(li.get_text(" ").split()) for li in delivery.select("[data-delivery-item]")]
    times = "\u00d7"
    assert items == [f"1 {times} Everyday Backpack 20 L", f"2 {times} Organic Cotton T-Shirt (M)"]
    tracked = [p["data-tracking"] for p in delivery.select("[data-tracking]")]
    assert tracked == ["1Z999AA10123457001", "1Z999AA10123457002"]
    copies = [b["data-copy"] for b in page.select("button.copy[data-copy]")]
    assert copies == ["US-3002", "1Z999AA10123457001", "1Z999AA10123457002"]
    po = page.select_one('[data-field="po-number"]')
    assert po is not None and po.get_text() == "PO-4500012345"
    assert page.select_one('[data-field="po-number"]') is not None
    without = await sidebar.page(order_number="US-3001", brand_id=1003)
    assert without.select_one('[data-field="po-number"]') is None


async def test_cart_panel(sidebar: Sidebar, harness: Harness, ct_settings: Settings) -> None:
    cart_id = harness.demo.carts["anna-schmidt"]
    # The cart as commercetools holds it now (the storefront's browser test may have added to
    # the demo shopper's cart earlier in the session): the panel must show exactly that.
    held = await rest_get(harness, ct_settings, f"/carts/{cart_id}")
    page = await sidebar.page(
        emails=["anna.schmidt@example.com"], brand_id=1001, ui_locale="de", refresh=True
    )
    cart = page.select_one('[data-testid="cart"]')
    assert cart is not None
    assert cart["data-cart-id"] == cart_id
    text = " ".join(cart.get_text(" ").split())
    count = sum(li["quantity"] for li in held["lineItems"])
    assert "Aktiver Warenkorb" in text and f"{count} Artikel" in text
    total = cart.select_one('[data-field="cart-total"]')
    cents = held["totalPrice"]["centAmount"]
    euros = f"{cents // 100:,}".replace(",", ".") + f",{cents % 100:02d}"
    assert total is not None and euros in total.get_text() and "EUR" in total.get_text()
    lines = [r["data-cart-line"] for r in cart.select("[data-cart-line]")]
    assert lines == [li["variant"]["sku"] for li in held["lineItems"]]
    assert lines[:2] == ["SNEAKER-WHT-42", "SOCKS-3PK"]  # the seed's, first
    changed = cart.select_one('[data-field="cart-changed"]')
    assert changed is not None and changed.get_text(strip=True)


async def test_hidden_order_is_shown_with_one_click(sidebar: Sidebar, harness: Harness) -> None:
    page = await sidebar.page(emails=["sam.lee@example.org"], brand_id=1001, ui_locale="en")
    hidden = harness.demo.orders["US-3003"]
    button = page.select_one(f'[data-testid="hidden-orders"] button[data-order-id="{hidden.id}"]')
    assert button is not None and button.get_text(strip=True) == "Show"
    # the button sends the order id through the same panels request (sidebar.js)
    shown = await sidebar.page(
        emails=["sam.lee@example.org"], brand_id=1001, order_id=hidden.id, ui_locale="en"
    )
    order = shown.select_one('[data-testid="order"]')
    assert order is not None and order["data-order-number"] == "US-3003"


async def test_empty_state_offers_a_search(sidebar: Sidebar) -> None:
    page = await sidebar.page(emails=["nobody@example.net"], brand_id=1001, ui_locale="de")
    form = page.select_one('[data-testid="empty"] form[data-action="search"]')
    assert form is not None
    field = form.select_one('input[name="q"]')
    assert field is not None and field["placeholder"] == "Bestellnummer oder E-Mail"
    # What the search sends is validated on the server too.
    bad = await sidebar.panels(emails=["not an email"], brand_id=1001)
    assert bad.status_code == 400
    long = await sidebar.panels(order_number="x" * 300, brand_id=1001)
    assert long.status_code == 400
