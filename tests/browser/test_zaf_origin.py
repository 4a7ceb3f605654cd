"""The official ZAF SDK refuses to talk to a parent that is not Zendesk, in Chromium.

Zendesk's own SDK (static/vendor/zaf_sdk-2.0.37.js) accepts an `origin` only on Zendesk's
domains and loopback; on any other it replaces the page with "Invalid domain <origin>". It
answers only messages from that origin and from the parent window. The npm fork used before had
no allow-list. These tests load the real sidebar, signed by the demo's Zendesk key pair, from a
fake Zendesk parent (tests/browser/fake_zendesk.py) and check that the sidebar never asks the
backend for panels on behalf of a foreign origin.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page, Request

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import DEMO_ORDER_FIELD_ID, Harness, demo_settings, serve

from .conftest import FakeZendeskFactory, parent_app
from .fake_zendesk import IFRAME_NAME, open_fake_zendesk

# 127.0.0.2 is loopback too, but the SDK's allow-list names only 127.0.0.1 and localhost: a
# parent served there stands for any non-Zendesk site that frames the app.
FOREIGN_HOST = "127.0.0.2"


@pytest.fixture(scope="module")
def demo_zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backend(harness: Harness, demo_zendesk: DemoZendesk) -> AsyncIterator[str]:
    """The demo's settings: only loopback 127.0.0.1/localhost may frame the sidebar."""
    async with serve(create_app(demo_settings(harness, demo_zendesk))) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def open_backend(harness: Harness, demo_zendesk: DemoZendesk) -> AsyncIterator[str]:
    """The foreign parent may frame this one (frame-ancestors), so a test reaches the SDK's own
    origin check rather than stopping at the page's CSP."""
    ancestors = ("'self'", "http://127.0.0.1:*", "http://localhost:*", f"http://{FOREIGN_HOST}:*")
    settings = demo_settings(harness, demo_zendesk, zendesk_frame_ancestors=ancestors)
    async with serve(create_app(settings)) as url:
        yield url


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def foreign_parent() -> AsyncIterator[str]:
    """The same fake Zendesk parent page, served from an origin outside the allow-list."""
    async with serve(parent_app(), host=FOREIGN_HOST) as url:
        yield url


def ticket(harness: Harness) -> dict[str, Any]:
    anna = harness.demo.customers["anna-schmidt"]
    return {
        "id": 4711,
        "subject": "Where is my order?",
        "requester": {
            "id": 7,
            "name": f"{anna.first_name} {anna.last_name}",
            "email": anna.email,
            "externalId": None,
            "identities": [{"type": "email", "value": anna.email, "primary": True}],
        },
        "brand": {"id": 1001, "name": "Shop Berlin"},
        "custom_fields": {str(DEMO_ORDER_FIELD_ID): None},
    }


def record_requests(page: Page) -> list[str]:
    urls: list[str] = []

    def on_request(request: Request) -> None:
        urls.append(request.url)

    page.on("request", on_request)
    return urls


async def test_the_sidebar_with_a_foreign_origin_parameter_is_refused(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
) -> None:
    """Zendesk signed the request, but the page is told to talk to https://evil.example."""
    requests = record_requests(page)
    with pytest.raises(AssertionError, match="never completed the ZAF handshake"):
        await fake_zendesk(
            page,
            f"{backend}/zendesk/sidebar",
            demo_zendesk.token(),
            ticket=ticket(harness),
            origin_param="https://evil.example",
            within=3,
        )
    frame = page.frame(name=IFRAME_NAME)
    assert frame is not None
    await frame.wait_for_selector("text=Invalid domain https://evil.example", timeout=10_000)
    # The SDK replaced the document: the sidebar's own markup is gone, nothing was loaded.
    assert await frame.query_selector("#app") is None
    assert any(url.startswith(f"{backend}/zendesk/sidebar?") for url in requests)
    assert not [url for url in requests if "/zendesk/panels" in url]


async def test_a_parent_on_a_foreign_origin_cannot_frame_the_sidebar(
    page: Page,
    foreign_parent: str,
    backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
) -> None:
    """A non-Zendesk site posts a signed token into the sidebar in its own frame: the page's
    frame-ancestors forbid it, so nothing runs and the protocol never starts."""
    requests = record_requests(page)
    with pytest.raises(AssertionError, match="never completed the ZAF handshake"):
        await open_fake_zendesk(
            page,
            foreign_parent,
            f"{backend}/zendesk/sidebar",
            demo_zendesk.token(),
            ticket=ticket(harness),
            within=3,
        )
    frame = page.frame(name=IFRAME_NAME)
    assert frame is not None
    assert any(url.startswith(f"{backend}/zendesk/sidebar?") for url in requests)
    assert await frame.query_selector("#app") is None
    assert not [url for url in requests if "/zendesk/panels" in url]


async def test_the_sdk_refuses_a_parent_on_a_foreign_origin(
    page: Page,
    foreign_parent: str,
    open_backend: str,
    demo_zendesk: DemoZendesk,
    harness: Harness,
) -> None:
    """Even where the CSP lets a foreign parent frame the page, the official SDK refuses its
    origin: it replaces the sidebar with its "Invalid domain" notice (the npm fork did not),
    and the cleared page asks the backend for nothing, though the handshake completes."""
    requests = record_requests(page)
    zd = await open_fake_zendesk(
        page,
        foreign_parent,
        f"{open_backend}/zendesk/sidebar",
        demo_zendesk.token(),
        ticket=ticket(harness),
        within=5,
    )
    await zd.frame.wait_for_selector(f"text=Invalid domain {foreign_parent}", timeout=10_000)
    assert await zd.frame.query_selector("#app") is None
    assert await zd.frame.query_selector("#panels") is None
    # Give a registered sidebar script the time it would need to ask for panels.
    await page.wait_for_timeout(1500)
    assert not [url for url in requests if "/zendesk/panels" in url]
