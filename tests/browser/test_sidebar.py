"""The real sidebar in headless Chromium: the real ZAF SDK in the iframe, a fake Zendesk parent
answering it, the backend served over HTTP against the seeded emulator."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, Route

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import DEMO_ORDER_FIELD_ID, Harness, demo_settings, serve

from .conftest import FakeZendeskFactory

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="session")
def demo_zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def backend(harness: Harness, demo_zendesk: DemoZendesk) -> AsyncIterator[str]:
    settings = demo_settings(harness, demo_zendesk)
    async with serve(create_app(settings)) as url:
        yield url


def requester(harness: Harness, key: str) -> dict[str, Any]:
    customer = harness.demo.customers[key]
    return {
        "id": 100 + len(key),
        "name": f"{customer.first_name} {customer.last_name}",
        "email": customer.email,
        "externalId": None,
        "identities": [{"type": "email", "value": customer.email, "primary": True}],
    }


async def panel_text(page_frame: Any, selector: str) -> str:
    await page_frame.wait_for_selector(selector, timeout=15000)
    text: str = await page_frame.inner_text(selector)
    return text


async def test_sidebar_shows_the_seeded_order_masked(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
    artifacts: Path,
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    latest = harness.demo.orders_of("anna-schmidt")[0]
    await page.set_viewport_size({"width": 1000, "height": 1400})
    zd = await fake_zendesk(
        page,
        f"{backend}/zendesk/sidebar",
        demo_zendesk.token(),
        ticket={
            "id": 4711,
            "subject": "Where is my order?",
            "requester": requester(harness, "anna-schmidt"),
            "brand": {"id": 1001, "name": "Shop Berlin"},
            "custom_fields": {str(DEMO_ORDER_FIELD_ID): None},
        },
        account={"subdomain": demo_zendesk.subdomain},
    )
    frame = zd.frame
    order = await panel_text(frame, '[data-testid="order"]')
    assert latest.order_number in order
    customer = await panel_text(frame, '[data-testid="customer"]')
    assert "Anna Schmidt" in customer
    email = await frame.inner_text('[data-field="email"]')
    assert email != anna.email and "***" in email
    html = await frame.content()
    assert anna.email not in html
    # The app asked Zendesk for the ticket fields it needs, and to fit the frame to its content.
    assert "ticket.requester" in zd.requested_paths
    assert f"ticket.customField:custom_field_{DEMO_ORDER_FIELD_ID}" in zd.requested_paths
    resize = await zd.wait_for_resizes(1)
    assert int(str(resize["height"]).removesuffix("px")) > 300
    await page.screenshot(path=str(artifacts / "zendesk-sidebar.png"), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # refresh the copy in docs/ on purpose only
        shutil.copyfile(artifacts / "zendesk-sidebar.png", DOCS / "zendesk-sidebar.png")


async def test_sidebar_follows_ticket_changes_and_order_clicks(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
) -> None:
    zd = await fake_zendesk(
        page,
        f"{backend}/zendesk/sidebar",
        demo_zendesk.token(),
        ticket={
            "id": 4712,
            "requester": requester(harness, "anna-schmidt"),
            "brand": {"id": 1001, "name": "Shop Berlin"},
        },
        account={"subdomain": demo_zendesk.subdomain},
    )
    frame = zd.frame
    await panel_text(frame, '[data-testid="customer"]')
    # The agent changes the requester: the sidebar follows.
    await zd.set_ticket(
        requester=requester(harness, "emily-johnson"), brand={"id": 1003, "name": "Shop NY"}
    )
    await zd.fire("ticket.requester.email.changed", harness.demo.customers["emily-johnson"].email)
    await frame.wait_for_function(
        "() => document.querySelector('[data-testid=customer]')?.innerText.includes('Emily')",
        timeout=15000,
    )
    # Clicking an older order shows its detail.
    oldest = harness.demo.orders_of("emily-johnson")[-1]
    await frame.click(f'a[data-order-id="{oldest.id}"]')
    await frame.wait_for_selector(
        f'[data-testid="order"][data-order-number="{oldest.order_number}"]', timeout=15000
    )
    # Refresh re-fetches without losing the selected order.
    await frame.click('[data-action="refresh"]')
    await frame.wait_for_selector(
        f'[data-testid="order"][data-order-number="{oldest.order_number}"]', timeout=15000
    )


async def test_a_forged_token_never_shows_data(
    page: Page, backend: str, demo_zendesk: DemoZendesk
) -> None:
    forged = DemoZendesk.generate().token()
    await page.set_content(
        f'<form method="post" action="{backend}/zendesk/sidebar?origin=http://x&app_guid=g">'
        f'<input name="token" value="{forged}"></form>'
    )
    async with page.expect_navigation():
        await page.evaluate("document.forms[0].submit()")
    assert "401" in await page.inner_text("h1")
    assert "data-session" not in await page.content()


async def test_german_agent_refresh_shows_it_is_working_copy_and_screenshot(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
    artifacts: Path,
) -> None:
    """A German agent on a Berlin ticket: labels in German, money and dates in the store's
    format; Refresh is busy and inert while its request is held; copy buttons copy."""
    latest = harness.demo.orders_of("anna-schmidt")[0]
    await page.set_viewport_size({"width": 1000, "height": 1400})
    zd = await fake_zendesk(
        page,
        f"{backend}/zendesk/sidebar",
        demo_zendesk.token(),
        ticket={
            "id": 4713,
            "subject": "Wo ist meine Bestellung?",
            "requester": requester(harness, "anna-schmidt"),
            "brand": {"id": 1001, "name": "Shop Berlin"},
        },
        current_user={"id": 9003, "name": "Agentin", "locale": "de"},
        account={"subdomain": demo_zendesk.subdomain},
    )
    frame = zd.frame
    order = await panel_text(frame, '[data-testid="order"]')
    assert f"Bestellung {latest.order_number}" in order
    assert "Letzte Bestellungen" in await frame.inner_text('[data-testid="orders"]')
    assert "Aktiver Warenkorb" in await frame.inner_text('[data-testid="cart"]')
    assert await frame.inner_text('[data-action="refresh"]') == "Aktualisieren"

    # Hold the next panels request: the button shows it is working and cannot be pressed again.
    held: list[Route] = []
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        held.append(route)
        await release.wait()
        await route.continue_()

    await page.route("**/zendesk/panels", hold)
    await frame.click('[data-action="refresh"]')
    await frame.wait_for_selector('[data-action="refresh"][aria-busy="true"]:disabled')
    assert await frame.inner_text('[data-action="refresh"]') == "Wird aktualisiert…"
    await frame.evaluate("() => document.querySelector('[data-action=refresh]').click()")
    await asyncio.sleep(0.5)
    assert len(held) == 1
    release.set()
    await frame.wait_for_selector('[data-action="refresh"][aria-busy="false"]:enabled')
    await page.unroute("**/zendesk/panels")

    # The agent actions: German labels, and actions.js's own messages in German too (nothing
    # is sent here: the confirmation is left with "Zurück", the refund asked is too large).
    actions = '[data-testid="actions"]'
    await frame.wait_for_selector(actions, timeout=15000)
    text = await frame.text_content(actions) or ""  # as written (headings are upper-cased)
    assert "Aktionen" in text and "Supportstatus" in text and "Verlauf" in text
    assert "Actions" not in text and "Activity" not in text
    status = f'{actions} form[data-cc-action="set_support_status"]'
    await frame.click(f"{status} [data-cc-ask]")
    confirm = f"{actions} [data-cc-confirm]"
    await frame.wait_for_selector(confirm, state="visible")
    chosen = await frame.eval_on_selector(f"{status} select", "s => s.value")
    question = await frame.inner_text(f"{actions} [data-cc-question]")
    assert question == f"Supportstatus auf \u201e{chosen}\u201c setzen?"
    assert await frame.inner_text(f"{confirm} [data-cc-yes]") == "Bestätigen"
    assert await frame.get_attribute(confirm, "aria-label") == "Bestätigung"
    await frame.click(f"{confirm} [data-cc-no]")  # "Zurück"
    await frame.wait_for_selector(confirm, state="hidden")
    refund = f'{actions} form[data-cc-action="request_refund"]'
    most = int(await frame.get_attribute(refund, "data-max-cents") or "0")
    assert most > 0
    label = await frame.inner_text(f"{refund} label")
    euros = f"{most // 100:,}".replace(",", ".") + f",{most % 100:02d}\u00a0€"
    assert label.strip() == f"Erstattung in EUR (höchstens {euros})"  # the store's format
    await frame.fill(f"{refund} [name=amount]", str(most))
    await frame.click(f"{refund} [data-cc-ask]")
    result = f'{actions} [data-cc-result][data-state="invalid"]'
    await frame.wait_for_selector(result)
    assert await frame.inner_text(result) == f"Es können höchstens {euros} erstattet werden."
    # The activity list, filled by actions.js after the render (it holds "\u2013" until then).
    await frame.wait_for_function(
        "() => document.querySelector('[data-cc-activity] li').textContent !== '\\u2013'"
    )
    for row in await frame.locator(f"{actions} [data-cc-activity] li").all_inner_texts():
        assert row == "Noch keine Rückschreibungen oder Aktionen." or re.search(
            r": (ausstehend…|ausgeführt|fehlgeschlagen|abgebrochen)", row
        ), row

    # The order number's copy button.
    copy = f'[data-testid="order"] button[data-copy="{latest.order_number}"]'
    await frame.click(copy)
    await frame.wait_for_selector(f'{copy}[data-copied="{latest.order_number}"]')
    assert await frame.inner_text(copy) == "Kopiert"
    await frame.wait_for_selector(f"{copy}:not([data-copied])", timeout=5000)

    await page.screenshot(path=str(artifacts / "zendesk-sidebar-de.png"), full_page=True)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS"):
        shutil.copyfile(artifacts / "zendesk-sidebar-de.png", DOCS / "zendesk-sidebar-de.png")


async def test_a_hidden_order_of_another_store_is_shown_with_one_click(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
) -> None:
    guest = {
        "id": 301,
        "name": "Sam Lee",
        "email": harness.demo.guest_email,
        "externalId": None,
        "identities": [{"type": "email", "value": harness.demo.guest_email, "primary": True}],
    }
    zd = await fake_zendesk(
        page,
        f"{backend}/zendesk/sidebar",
        demo_zendesk.token(),
        ticket={"id": 4714, "requester": guest, "brand": {"id": 1001, "name": "Shop Berlin"}},
        account={"subdomain": demo_zendesk.subdomain},
    )
    frame = zd.frame
    hidden = harness.demo.orders["US-3003"]
    show = f'[data-testid="hidden-orders"] button[data-order-id="{hidden.id}"]'
    await frame.wait_for_selector(show, timeout=15000)
    await frame.click(show)
    await frame.wait_for_selector(
        '[data-testid="order"][data-order-number="US-3003"]', timeout=15000
    )
    notes = await frame.inner_text(".panel.notes")
    assert "belongs to store newyork" in notes
