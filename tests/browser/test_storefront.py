"""`make run`'s storefront with the Tidio snippet, in Chromium, against the fake Tidio's widget
stand-in and API: nothing of Tidio loads before consent; a guest who logs in keeps one chat;
adding to the cart updates the contact properties; the panel link shows the right cart and
orders."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import uvicorn
from playwright.async_api import Page, Request

from commerce_context.app import create_app
from commerce_context.database import Database
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    Harness,
    build_demo,
    demo_settings,
)
from commerce_context.emulator.tidio import FakeTidio
from commerce_context.settings import Settings
from commerce_context.storefront import SNIPPET, demo_tidio

pytestmark = pytest.mark.browser


@dataclass
class Shop:
    url: str
    fake: FakeTidio
    settings: Settings
    tidio_url: str

    async def contact_of(self, distinct: str) -> str | None:
        db = Database.from_url(self.settings.database_location)
        await db.open()
        try:
            row = await db.fetchone(
                "SELECT contact_id FROM tidio_contacts WHERE distinct_id = ?", (distinct,)
            )
        finally:
            await db.close()
        return None if row is None else str(row["contact_id"])


@contextlib.asynccontextmanager
async def served_on(sock: socket.socket, app: object) -> AsyncIterator[None]:
    """uvicorn on an already bound socket (its address is in the settings: CC_PUBLIC_URL)."""
    config = uvicorn.Config(app, log_level="warning", lifespan="on")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield
    finally:
        server.should_exit = True
        await task
        sock.close()


@pytest_asyncio.fixture(loop_scope="session")
async def shop(harness: Harness, tmp_path: Path) -> AsyncIterator[Shop]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with demo_tidio(harness, DEMO_CLIENT_ID, DEMO_CLIENT_SECRET) as (store, fake, tidio):
        zendesk = DemoZendesk.generate()
        settings = demo_settings(
            harness, zendesk, state_path=tmp_path / "state.sqlite3", public_url=url, **tidio
        )
        app = create_app(settings, demo=replace(build_demo(harness, zendesk), shop=store))
        fake.webhook_url = f"{url}/tidio/webhooks"
        async with served_on(sock, app):
            yield Shop(url, fake, settings, store.tidio_url)


async def eventually(check: Callable[[], Any], what: str, seconds: float = 15.0) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def ready(page: Page) -> dict[str, Any]:
    await page.wait_for_function("window.__tidioFake && window.__tidioFake.ready", timeout=15000)
    rec: dict[str, Any] = await page.evaluate("window.__tidioFake")
    return rec


async def test_nothing_of_tidio_loads_before_consent(page: Page, shop: Shop) -> None:
    requests: list[str] = []

    def seen(request: Request) -> None:
        requests.append(request.url)

    page.on("request", seen)
    await page.goto(f"{shop.url}/demo/shop")
    await page.wait_for_selector("#consent:not([hidden])")
    await page.wait_for_timeout(500)  # time for anything eager to go out
    tidio_origin = shop.fake.public_key
    assert not [u for u in requests if tidio_origin in u or "/identify" in u]
    assert await page.evaluate("typeof window.tidioChatApi") == "undefined"
    assert await page.evaluate("document.tidioIdentify === undefined")
    assert await page.evaluate("document.querySelector('script[data-cc-tidio]') === null")
    await page.click("#decline")
    await page.reload()
    await page.wait_for_selector("#cart-items")
    await page.wait_for_timeout(500)
    assert await page.is_hidden("#consent")
    assert not [u for u in requests if tidio_origin in u or "/identify" in u]
    assert not shop.fake.contacts
    # Consent given: identity first, then Tidio's script, then the ready event.
    await page.evaluate("localStorage.removeItem('demo_chat_consent')")
    await page.reload()
    await page.click("#accept")
    rec = await ready(page)
    assert rec["loads"] == 1 and rec["identify"] is None  # a guest stays anonymous
    identify = next(i for i, u in enumerate(requests) if u.endswith("/demo/shop/identify"))
    script = next(i for i, u in enumerate(requests) if u.endswith(f"{tidio_origin}.js"))
    assert identify < script


async def test_a_guest_who_logs_in_keeps_one_chat(page: Page, shop: Shop) -> None:
    await page.goto(f"{shop.url}/demo/shop")
    await page.click("#accept")
    guest = await ready(page)
    assert guest["identify"] is None
    await page.click("#login")
    await page.wait_for_selector("#logout")
    known = await ready(page)
    distinct = known["identify"]["distinct_id"]
    assert distinct.startswith("cc_") and len(distinct) <= 55
    assert known["visitor"] == guest["visitor"]
    assert known["conversation"] == guest["conversation"]  # the same chat continues
    assert len(shop.fake.contacts) == 1
    contact = shop.fake.contacts[known["contact"]]
    assert contact["distinct_id"] == distinct
    # Tidio's contact webhook told the backend which contact the shopper is.
    assert (
        await eventually(lambda: shop.contact_of(distinct), "the contact mapping")
        == (known["contact"])
    )
    html = await page.content()
    assert "@" not in distinct and "anna" not in distinct.lower() and distinct not in html


async def test_adding_to_the_cart_updates_the_contact_properties(page: Page, shop: Shop) -> None:
    await page.goto(f"{shop.url}/demo/shop")
    await page.click("#accept")
    rec = await ready(page)
    contact = rec["contact"]
    await page.click('button.add[data-sku="CAP-NAVY"]')
    await eventually(lambda: shop.fake.property(contact, "cc_cart_items") == "1", "1 item")
    assert shop.fake.property(contact, "cc_cart_total") == "24.95"
    assert shop.fake.property(contact, "cc_store") == "berlin"
    assert shop.fake.property(contact, "cc_currency") == "EUR"
    await page.click('button.add[data-sku="CAP-NAVY"]')
    await page.click('button.add[data-sku="SOCKS-3PK"]')
    await eventually(lambda: shop.fake.property(contact, "cc_cart_items") == "3", "3 items")
    assert shop.fake.property(contact, "cc_cart_total") == "62.85"
    calls = await page.evaluate("window.__tidioFake.calls")
    sets = [c["args"][0] for c in calls if c["method"] == "setContactProperties"]
    assert sets[-1]["cc_cart_items"] == 3 and sets[-1]["cc_cart_status"] == "active"
    # The agents' panel link never comes from the page (a guest has none at all).
    assert not any("cc_panel_url" in values for values in sets)
    assert shop.fake.property(contact, "cc_panel_url") is None
    assert "panel" not in json.dumps(await page.evaluate("window.__tidioFake"))


async def test_the_panel_link_shows_the_right_cart_and_orders(
    page: Page, shop: Shop, harness: Harness
) -> None:
    await page.goto(f"{shop.url}/demo/shop")
    await page.click("#accept")
    await ready(page)
    await page.click('button.add[data-sku="HOODIE-GRY-L"]')
    await page.click("#login")
    await page.wait_for_selector("#logout")
    rec = await ready(page)
    contact = rec["contact"]
    # Set by the backend's contact sync (after the cart notification), never by the page.
    link = await eventually(
        lambda: shop.fake.property(contact, "cc_panel_url"), "the known shopper's panel link"
    )
    assert link.startswith(f"{shop.url}/tidio/panel?t=")
    # The agent opens it from the (simulated) Tidio agent view.
    agent = await page.context.new_page()
    await agent.goto(f"{shop.tidio_url}/agent")
    await agent.wait_for_selector(f'section[data-contact="{contact}"]')
    async with agent.context.expect_page() as opened:
        await agent.click(f'section[data-contact="{contact}"] a[href="{link}"]')
    panel = await opened.value
    await panel.wait_for_load_state()
    text = await panel.inner_text("body")
    orders = [o.order_number for o in harness.demo.orders_of("anna-schmidt")]
    assert orders and orders[0] in text
    assert "Grauer Kapuzenpullover" in text or "Grey Hoodie" in text  # the guest's line, merged
    assert "Alex Morgan" not in text


def test_the_snippet_stays_small() -> None:
    assert SNIPPET.stat().st_size < 8 * 1024


TCF_STUB = """
window.__tcfapi = function (command, version, callback) {
  if (command !== "addEventListener") return;
  setTimeout(function () {
    callback({eventStatus: "useractioncomplete", gdprApplies: true,
              purpose: {consents: {1: %s}}, vendor: {consents: {}}}, true);
  }, 50);
};
"""


@pytest.mark.parametrize("granted", [True, False])
async def test_iab_tcf_consent_starts_the_chat_only_when_granted(
    page: Page, shop: Shop, granted: bool
) -> None:
    await page.add_init_script(TCF_STUB % ("true" if granted else "false"))
    await page.goto(f"{shop.url}/demo/shop")
    if granted:
        rec = await ready(page)  # no click on the page's own banner
        assert rec["loads"] == 1
    else:
        await page.wait_for_timeout(800)
        assert await page.evaluate("typeof window.tidioChatApi") == "undefined"
        assert await page.evaluate("document.querySelector('script[data-cc-tidio]') === null")
        assert not shop.fake.contacts
