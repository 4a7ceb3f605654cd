"""Browser fixtures: Debian's Chromium through Playwright, and a fake Zendesk parent page.

Fixtures (all async, on the session event loop, so a backend served with
`commerce_context.emulator.harness.serve(app)` in the same loop keeps answering):

* `browser`         session: Chromium at /usr/bin/chromium (fails, never skips, if missing).
* `page`            a fresh context + page per test; console lines and page errors of the page
                    and its frames are echoed into the test output on failure.
* `zendesk_parent`  session: base URL of the loopback server holding the fake Zendesk parent
                    page (tests/browser/static) and the committed vendored assets (/static/vendor).
* `fake_zendesk`    factory: `zd = await fake_zendesk(page, sidebar_url, token, ticket={...})`
                    -> `FakeZendesk` (see fake_zendesk.py): `.frame`, `.resizes`, `.gets`,
                    `.subscriptions`, `await .fire(event, payload)`, `await .set_ticket(...)`.
* `artifacts`       the gitignored artifacts/ directory (screenshots).
"""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
import pytest_asyncio
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from commerce_context.emulator.harness import serve

from .fake_zendesk import STATIC_DIR, FakeZendesk, open_fake_zendesk

ROOT = Path(__file__).resolve().parents[2]
VENDOR_DIR = ROOT / "backend" / "commerce_context" / "static" / "vendor"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


def require_chromium() -> str:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests drive Debian's Chromium. "
            "Install it with `apt-get update && apt-get install -y chromium` (.ci/run does).",
            pytrace=False,
        )
    return str(CHROMIUM)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = require_chromium()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest_asyncio.fixture(loop_scope="session")
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 1100, "height": 800})
    page = await context.new_page()
    log: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        log.append(f"console.{message.type}: {message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: log.append(f"pageerror: {error}"))
    page.on("requestfailed", lambda r: log.append(f"requestfailed: {r.method} {r.url}"))
    try:
        yield page
    finally:
        if log:
            # shown by pytest for failing tests (captured stdout)
            print("\n--- browser log ---\n" + "\n".join(log))
        await context.close()


# -- the fake Zendesk parent server ----------------------------------------------------------


async def _probe_app(request: Request) -> Response:
    """A minimal ZAF app for protocol tests: GET or POST (signed-URL form) renders zaf_probe.html
    with the posted `token` (escaped) so a test can prove the form POST reached the app."""
    token = ""
    if request.method == "POST":
        form = await request.form()
        value = form.get("token")
        token = value if isinstance(value, str) else ""
    page = (STATIC_DIR / "zaf_probe.html").read_text(encoding="utf-8")
    return HTMLResponse(
        page.replace("{{ token }}", html.escape(token, quote=True)),
        headers={"Cache-Control": "no-store"},
    )


def parent_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/probe", _probe_app, methods=["GET", "POST"]),
            Mount("/static", StaticFiles(directory=VENDOR_DIR.parent), name="package-static"),
            Mount("/", StaticFiles(directory=STATIC_DIR), name="parent"),
        ]
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def zendesk_parent() -> AsyncIterator[str]:
    """Base URL (http://127.0.0.1:PORT) of the fake Zendesk parent page server."""
    async with serve(parent_app()) as url:
        yield url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app_server() -> AsyncIterator[str]:
    """The same app on a second loopback port, so the probe iframe is cross-origin to the
    parent, as a real app is to *.zendesk.com."""
    async with serve(parent_app()) as url:
        yield url


class FakeZendeskFactory(Protocol):
    def __call__(
        self, page: Page, sidebar_url: str, token: str, **options: Any
    ) -> Awaitable[FakeZendesk]: ...


@pytest.fixture
def fake_zendesk(zendesk_parent: str) -> FakeZendeskFactory:
    """`await fake_zendesk(page, sidebar_url, token, ticket={...}, **options)`; options are
    those of `open_fake_zendesk` (app_guid, register_delay_ms, response_delay_ms, ...)."""
    opener: Callable[..., Awaitable[FakeZendesk]] = open_fake_zendesk

    def factory(page: Page, sidebar_url: str, token: str, **options: Any) -> Awaitable[FakeZendesk]:
        return opener(page, zendesk_parent, sidebar_url, token, **options)

    return factory


@pytest.fixture(scope="session")
def artifacts() -> Path:
    path = ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path
