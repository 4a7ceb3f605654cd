"""The Tidio contact panel (a signed link) in Chromium: it renders the shopper's panels under
our CSP with no console errors, offers none of the sidebar's interactive bits, and following
a link out of it (a parcel's tracking page) sends no Referer, so the token in its URL stays
here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import ConsoleMessage, Page, Request, Route

from commerce_context.app import create_app
from commerce_context.emulator.harness import Harness, demo_settings, serve
from commerce_context.links import Binding, LinkKeys, panel_url, parse_keys

pytestmark = pytest.mark.browser
KEYS = "kb:" + "b" * 40


@pytest_asyncio.fixture(loop_scope="session")
async def link_site(harness: Harness, tmp_path: Path) -> AsyncIterator[str]:
    settings = demo_settings(harness, state_path=tmp_path / "state.sqlite3", link_keys=KEYS)
    async with serve(create_app(settings)) as url:
        yield url


async def test_panel_renders_read_only_and_leaks_no_referer(
    page: Page, link_site: str, harness: Harness, artifacts: Path
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    shipped = harness.demo.orders["DE-1002"]  # two parcels with DHL tracking
    binding = Binding("panel", customer_id=anna.id, order_id=shipped.id)
    token = LinkKeys(parse_keys(KEYS)).sign(binding, ttl=600)
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" or "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", on_console)
    outbound: list[dict[str, str]] = []

    async def tracking_page(route: Route, request: Request) -> None:
        outbound.append(await request.all_headers())
        await route.fulfill(status=200, content_type="text/html", body="<p>parcel</p>")

    await page.context.route("https://www.dhl.de/**", tracking_page)
    response = await page.goto(panel_url(link_site, token))
    assert response is not None and response.status == 200
    await page.wait_for_selector("[data-testid=customer]")
    assert anna.id == await page.get_attribute("[data-testid=customer]", "data-customer-id")
    assert "DE-1002" in await page.inner_text("#panels")
    # Read-only: copy buttons are not offered (stylesheet loaded under the CSP).
    copies = page.locator("#panels .copy")
    assert await copies.count() > 0
    assert await copies.first.evaluate("e => getComputedStyle(e).display") == "none"
    await page.screenshot(path=str(artifacts / "tidio-panel.png"), full_page=True)
    # Following a tracking link: the new tab's request carries no Referer.
    async with page.context.expect_page() as opened:
        await page.locator("a[href^='https://www.dhl.de/']").first.click()
    tab = await opened.value
    await tab.wait_for_load_state()
    assert outbound, "the tracking page was not requested"
    assert "referer" not in outbound[0]
    assert problems == []


async def test_expired_link_page_in_the_browser(page: Page, link_site: str) -> None:
    keys = LinkKeys(parse_keys(KEYS), clock=lambda: 1_000_000.0)
    token = keys.sign(Binding("panel", anonymous_id="anon-1"), ttl=60)
    response = await page.goto(panel_url(link_site, token))
    assert response is not None and response.status == 410
    assert "no longer valid" in await page.inner_text("[data-testid=link-error]")
