"""`make run`'s simulated Zendesk ticket: the demo page hosts the real sidebar."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import Page

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, build_demo, demo_settings, serve

pytestmark = pytest.mark.browser
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo_site(harness: Harness) -> AsyncIterator[str]:
    zendesk = DemoZendesk.generate()
    app = create_app(demo_settings(harness, zendesk), demo=build_demo(harness, zendesk))
    async with serve(app) as url:
        yield url


@pytest.mark.parametrize(("ticket", "expected"), [(4, "DE-1003"), (3, "Guest shopper")])
async def test_demo_ticket_page_shows_the_live_sidebar(
    page: Page, demo_site: str, artifacts: Path, ticket: int, expected: str
) -> None:
    await page.set_viewport_size({"width": 1280, "height": 1300})
    await page.goto(f"{demo_site}/demo/zendesk?ticket={ticket}")
    await page.wait_for_selector('iframe[name="app_commerce-context_ticket_sidebar"]')
    frame = page.frame(name="app_commerce-context_ticket_sidebar")
    assert frame is not None
    await frame.wait_for_selector("#panels .panel", timeout=20000)
    assert expected in await frame.inner_text("#panels")
    await page.screenshot(path=str(artifacts / f"demo-ticket-{ticket}.png"), full_page=True)
    if ticket == 4 and os.environ.get("UPDATE_DOCS_SCREENSHOTS"):  # on purpose only
        shutil.copyfile(artifacts / "demo-ticket-4.png", DOCS / "demo-zendesk-ticket.png")


async def test_demo_ticket_page_as_a_german_agent(page: Page, demo_site: str) -> None:
    # The demo home's link: the simulated Zendesk presents an agent whose language is German.
    await page.goto(f"{demo_site}/")
    await page.click('a[data-testid="german-agent"]')
    await page.wait_for_url("**/demo/zendesk?ticket=*&locale=de")
    await page.wait_for_selector('iframe[name="app_commerce-context_ticket_sidebar"]')
    frame = page.frame(name="app_commerce-context_ticket_sidebar")
    assert frame is not None
    await frame.wait_for_selector("#panels .panel", timeout=20000)
    assert await frame.get_attribute("html", "lang") == "de"
    assert await frame.inner_text('[data-action="refresh"]') == "Aktualisieren"
    text = await frame.text_content("#panels") or ""
    assert "Letzte Bestellungen" in text and "Recent orders" not in text
    assert "Aktionen" in text and "Verlauf" in text and "Activity" not in text
    # Another ticket from the list keeps the agent's language.
    await page.click('nav > a[href^="?ticket=4"]')
    await page.wait_for_url("**/demo/zendesk?ticket=4&locale=de")
    await page.wait_for_selector('iframe[name="app_commerce-context_ticket_sidebar"]')
    frame = page.frame(name="app_commerce-context_ticket_sidebar")
    assert frame is not None
    await frame.wait_for_selector('[data-testid="order"]', timeout=20000)
    assert "Bestellung DE-1003" in await frame.inner_text('[data-testid="order"]')


async def test_unknown_demo_ticket_is_a_404(page: Page, demo_site: str) -> None:
    response = await page.goto(f"{demo_site}/demo/zendesk?ticket=999")
    assert response is not None and response.status == 404
