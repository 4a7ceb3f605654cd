"""An agent action in headless Chromium: the real sidebar (real ZAF SDK, fake Zendesk parent),
the backend over HTTP with its in-process worker, the emulator behind it. Cancel an order:
the confirmation, the pending state, the applied state, the order shown as Cancelled. And the
demo's simulated ticket: submitting its support status field sends a signed webhook whose
writeback the sidebar then shows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from playwright.async_api import Page

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import DEMO_ORDER_FIELD_ID, Harness, build_demo, serve
from tests.orders import Api, custom_fields
from tests.writepath import write_settings

from .conftest import FakeZendeskFactory

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def site(
    harness: Harness, zendesk: DemoZendesk, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    settings = write_settings(
        harness,
        tmp_path_factory.mktemp("actions"),
        **zendesk.settings(),
        zendesk_order_field_id=DEMO_ORDER_FIELD_ID,
        zendesk_frame_ancestors=("'self'", "http://127.0.0.1:*", "http://localhost:*"),
    )
    async with serve(create_app(settings, demo=build_demo(harness, zendesk))) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def api(harness: Harness) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield Api(http, harness)


async def test_cancel_an_order_from_the_sidebar(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    site: str,
    zendesk: DemoZendesk,
    api: Api,
    artifacts: Path,
) -> None:
    email = f"browser-{uuid.uuid4().hex[:8]}@example.org"
    order = await api.create_order(custom={"supportStatus": "open"}, order_state="Open",
                                   email=email)  # fmt: skip
    await page.set_viewport_size({"width": 1000, "height": 1600})
    zd = await fake_zendesk(
        page,
        f"{site}/zendesk/sidebar",
        zendesk.token(),
        ticket={
            "id": 8100,
            "subject": "Please cancel",
            "requester": {
                "id": 81,
                "name": "Sam",
                "email": email,
                "externalId": None,
                "identities": [{"type": "email", "value": email, "primary": True}],
            },
            "brand": {"id": 1001, "name": "Shop Berlin"},
            "custom_fields": {str(DEMO_ORDER_FIELD_ID): order["orderNumber"]},
        },
        account={"subdomain": zendesk.subdomain},
    )
    frame = zd.frame
    section = '[data-testid="actions"]'
    await frame.wait_for_selector(section, timeout=20000)
    cancel = f'{section} form[data-cc-action="cancel_order"] [data-cc-ask]'
    await frame.click(cancel)
    confirm = f"{section} [data-cc-confirm]"
    await frame.wait_for_selector(confirm, state="visible")
    question = await frame.inner_text(f"{section} [data-cc-question]")
    assert question == f"Cancel order {order['orderNumber']}?"
    # Nothing was sent before the agent confirmed.
    assert (await api.order(order["id"]))["orderState"] == "Open"
    # Pending is shown until the worker has applied it, at least until the first status poll.
    await frame.click(f"{confirm} [data-cc-yes]")
    await frame.wait_for_selector(f'{section} [data-cc-result][data-state="pending"]')
    # Applied: the panels are fetched again and show the order as commercetools has it now.
    await frame.wait_for_selector(
        f'{section} [data-cc-activity] li[data-kind="action.cancel_order"][data-state="applied"]',
        timeout=20000,
    )
    await frame.wait_for_selector('[data-testid="order"] >> text=Cancelled', timeout=20000)
    after = await api.order(order["id"])
    assert (after["orderState"], after["version"]) == ("Cancelled", order["version"] + 1)
    # Once cancelled, the button is no longer offered.
    assert await frame.query_selector(cancel) is None
    await page.screenshot(path=str(artifacts / "sidebar-action-cancel.png"), full_page=True)


@pytest.mark.parametrize("ticket", [4, 1])
async def test_demo_ticket_support_status_reaches_the_order(
    page: Page, site: str, harness: Harness, api: Api, ticket: int
) -> None:
    # Ticket 4 names its order in the order-number field; ticket 1 only has a requester email,
    # so the writeback goes to the order the sidebar shows for her.
    await page.set_viewport_size({"width": 1280, "height": 1500})
    await page.goto(f"{site}/demo/zendesk?ticket={ticket}")
    await page.wait_for_selector('iframe[name="app_commerce-context_ticket_sidebar"]')
    frame = page.frame(name="app_commerce-context_ticket_sidebar")
    assert frame is not None
    shown = await frame.wait_for_selector('[data-testid="order"]', timeout=20000)
    assert shown is not None
    number = await shown.get_attribute("data-order-number")
    assert number
    order_id = harness.demo.order_id(number)
    before = await api.order(order_id)
    original = custom_fields(before).get("supportStatus")
    target = "pending" if original != "pending" else "open"
    try:
        await page.select_option('[data-testid="field-supportStatus"]', target)
        await page.click("#ticket-submit")
        await page.wait_for_selector('#webhook-result[data-status="202"]')
        await page.wait_for_selector('#webhook-result[data-landed="true"]', timeout=20000)
        await frame.wait_for_selector(
            f'[data-testid="order"] [data-custom="supportStatus"] >> text="{target}"', timeout=20000
        )
        after = await api.order(order_id)
        assert custom_fields(after)["supportStatus"] == target
        assert after["version"] == before["version"] + 1
    finally:
        # The seeded order is shared by the session's tests: put its value back.
        current = await api.order(order_id)
        action: dict[str, Any] = {"action": "setCustomField", "name": "supportStatus"}
        if original is not None:
            action["value"] = original
        await api.post(
            "OrderUpdate",
            f"/orders/{order_id}",
            {"version": current["version"], "actions": [action]},
        )
