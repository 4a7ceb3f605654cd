"""static/sidebar.js against its backend contract, in Chromium, with the real ZAF SDK.

The backend here is a stub that honours the contract of POST /zendesk/sidebar (the page with
#app[data-session|data-panels-url|data-order-field-id], #panels, the refresh button, the SDK and
sidebar.js from the real static directory) and POST /zendesk/panels (records each request,
answers with whatever the test queued). The end-to-end test with the real routes is
test_sidebar.py; this one pins the script's behaviour: what it reads, what it sends, events,
debounce, refresh, order clicks, errors, session expiry, out-of-order responses.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from commerce_context.emulator.harness import serve
from commerce_context.panels import sidebar_strings

from .conftest import ROOT, FakeZendeskFactory
from .fake_zendesk import FakeZendesk

STATIC = ROOT / "backend" / "commerce_context" / "static"
# The labels the real page embeds (templates/sidebar.html), for every language.
STRINGS = json.dumps(sidebar_strings()).replace("</", "<\\/")
AGENT = {"id": 9001, "name": "Agent Smith", "locale": "en-US", "role": "agent"}
SESSION = "session-token-abc"
FIELD = "360000001"
ORDER_ID = "6a1d4a6e-6a7c-4a49-9a37-3b1f1c2b9f10"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>commerce-context</title>
<link rel="stylesheet" href="/static/vendor/css-bedrock-10.0.1.css">
<link rel="stylesheet" href="/static/vendor/css-buttons-9.0.1.css">
<link rel="stylesheet" href="/static/app.css"></head>
<body>
<main id="app" data-session="{session}" data-panels-url="/zendesk/panels"
      data-order-field-id="{field}">
  <header><button type="button" class="c-btn c-btn--sm" data-action="refresh" aria-busy="false"
    ><span class="spinner" aria-hidden="true"></span><span class="label">Refresh</span></button>
  </header>
  <div id="panels" aria-live="polite"><p class="muted loading">Loading…</p></div>
</main>
<script type="application/json" id="cc-strings">@STRINGS@</script>
<script src="/static/vendor/zaf_sdk-2.0.37.js"></script>
<script src="/static/sidebar.js"></script>
</body></html>"""

TICKET: dict[str, Any] = {
    "id": 4242,
    "requester": {
        "id": 7,
        "name": "Anna Schmidt",
        "email": "Anna@Example.com",
        "externalId": "ct-customer-1",
        "identities": [
            {"type": "twitter", "value": "@anna"},
            {"type": "email", "value": "second@example.org", "primary": False},
            {"type": "email", "value": "anna@example.com", "primary": True},
            {"type": "email", "value": "not-an-email", "primary": False},
        ],
    },
    "brand": {"id": 1001, "name": "Shop Berlin"},
    "custom_fields": {FIELD: 1003},
}


@dataclass
class Reply:
    status: int = 200
    body: str | dict[str, Any] = ""
    delay: float = 0.0
    hold: asyncio.Event | None = None  # answer only once the test sets it


@dataclass
class StubBackend:
    requests: list[dict[str, Any]] = field(default_factory=list)
    queue: list[Reply] = field(default_factory=list)

    def reset(self) -> None:
        self.requests.clear()
        self.queue.clear()

    async def sidebar(self, request: Request) -> Response:
        form = await request.form()
        token = form.get("token")
        session = SESSION if token == "signed" else ""
        field_id = request.query_params.get("order_field", "")
        return HTMLResponse(
            PAGE.format(session=html.escape(session), field=html.escape(field_id)).replace(
                "@STRINGS@", STRINGS
            ),
            headers={"Cache-Control": "no-store"},
        )

    async def panels(self, request: Request) -> Response:
        body = json.loads(await request.body())
        number = len(self.requests) + 1
        self.requests.append(
            {
                "authorization": request.headers.get("authorization"),
                "content_type": request.headers.get("content-type"),
                "body": body,
            }
        )
        reply = self.queue.pop(0) if self.queue else Reply()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hold is not None:
            await reply.hold.wait()
        if isinstance(reply.body, dict):
            return JSONResponse(reply.body, status_code=reply.status)
        content = reply.body or (
            f'<section class="panel" data-request="{number}">'
            f"<h2>Request {number}</h2>"
            f"<p>{html.escape(', '.join(body['emails']))}</p>"
            f'<ul><li><button type="button" class="c-btn c-btn--sm" data-order-id="{ORDER_ID}">'
            f'<span class="label">DE-1003</span></button></li></ul>'
            f'<a class="mc" href="https://mc.example/p/orders/{ORDER_ID}" target="_blank">MC</a>'
            + (
                '<button type="button" class="back" data-order-id="">Back</button>'
                if body["order_id"]
                else ""
            )
            + f'<div style="height:{150 + 40 * number}px"></div>'
            "</section>"
        )
        return HTMLResponse(content, status_code=reply.status)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/zendesk/sidebar", self.sidebar, methods=["POST"]),
                Route("/zendesk/panels", self.panels, methods=["POST"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def stub_server() -> AsyncIterator[tuple[StubBackend, str]]:
    stub = StubBackend()
    async with serve(stub.app()) as url:
        yield stub, url


@pytest.fixture
def stub(stub_server: tuple[StubBackend, str]) -> StubBackend:
    stub_server[0].reset()
    return stub_server[0]


@pytest.fixture
def sidebar_url(stub_server: tuple[StubBackend, str]) -> str:
    return f"{stub_server[1]}/zendesk/sidebar"


async def open_sidebar(
    fake_zendesk: FakeZendeskFactory,
    page: Page,
    url: str,
    *,
    ticket: dict[str, Any] | None = None,
    order_field: str = FIELD,
    agent: dict[str, Any] | None = None,
) -> FakeZendesk:
    return await fake_zendesk(
        page,
        url,
        "signed",
        ticket=TICKET if ticket is None else ticket,
        extra_query={"order_field": order_field},
        current_user=AGENT if agent is None else agent,
    )


async def wait_state(zd: FakeZendesk, state: str) -> None:
    await zd.frame.wait_for_selector(f'#app[data-state="{state}"]', timeout=10_000)


async def wait_requests(stub: StubBackend, zd: FakeZendesk, count: int) -> None:
    await zd.wait_until(lambda: len(stub.requests) >= count, f"{count} panels request(s)")


async def test_reads_the_ticket_posts_the_context_renders_and_resizes(
    page: Page,
    fake_zendesk: FakeZendeskFactory,
    sidebar_url: str,
    stub: StubBackend,
    artifacts: Path,
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")

    assert zd.gets[0] == [
        "ticket.id",
        "ticket.requester",
        "ticket.requester.identities",
        "ticket.brand",
        "currentUser.locale",
        "currentUser.role",
        f"ticket.customField:custom_field_{FIELD}",
    ]
    [sent] = stub.requests
    assert sent["authorization"] == f"Bearer {SESSION}"
    assert sent["content_type"] == "application/json"
    assert sent["body"] == {
        "ticket_id": 4242,
        # requester.email first, then primary identities, then the rest; case-insensitive
        # de-duplication; only type "email" identities that look like addresses
        "emails": ["Anna@Example.com", "second@example.org"],
        "external_id": "ct-customer-1",
        "order_number": "1003",  # a numeric custom field is sent as text
        "brand_id": 1001,
        "refresh": False,
        "order_id": None,
        "ui_locale": "en-US",
    }
    assert await zd.frame.text_content("#panels h2") == "Request 1"
    assert await zd.frame.get_attribute("#panels", "aria-busy") == "false"
    # For the actions script: the ticket for the audit trail, the role to hide buttons.
    assert await zd.frame.get_attribute("#app", "data-ticket-id") == "4242"
    assert await zd.frame.get_attribute("#app", "data-agent-role") == AGENT["role"]

    resize = await zd.wait_for_resizes(1)
    height = await zd.frame.evaluate("() => document.documentElement.scrollHeight")
    assert resize == {"width": "100%", "height": f"{height}px"}
    assert (await zd.snapshot())["iframeHeight"] == height
    await page.screenshot(path=str(artifacts / "sidebar_js_stub.png"))


async def test_new_ticket_without_requester(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url, ticket={}, order_field="")
    await wait_state(zd, "ready")
    assert zd.gets[0] == [
        "ticket.id",
        "ticket.requester",
        "ticket.requester.identities",
        "ticket.brand",
        "currentUser.locale",
        "currentUser.role",
    ]
    assert stub.requests[0]["body"] == {
        "ticket_id": None,
        "emails": [],
        "external_id": None,
        "order_number": None,
        "brand_id": None,
        "refresh": False,
        "order_id": None,
        "ui_locale": "en-US",
    }


async def test_ticket_events_refetch_once_per_burst(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")
    for event in (
        "ticket.requester.email.changed",
        "ticket.requester.id.changed",
        f"ticket.custom_field_{FIELD}.changed",
        "ticket.brand.changed",
        "ticket.saved",
    ):
        assert zd.subscriptions.get(event) == 1, event

    new_requester = {"email": "new@example.com", "externalId": None, "identities": []}
    await zd.set_ticket(requester=new_requester, brand={"id": 1002}, custom_fields={FIELD: ""})
    await zd.fire("ticket.requester.email.changed", "new@example.com")
    await zd.fire("ticket.requester.id.changed", 8)
    await zd.fire("ticket.brand.changed", {"id": 1002})
    await wait_requests(stub, zd, 2)
    await wait_state(zd, "ready")
    await asyncio.sleep(0.5)  # longer than the debounce: no straggler request
    assert len(stub.requests) == 2
    assert stub.requests[1]["body"] == {
        "ticket_id": 4242,
        "emails": ["new@example.com"],
        "external_id": None,
        "order_number": None,
        "brand_id": 1002,
        "refresh": False,
        "order_id": None,
        "ui_locale": "en-US",
    }
    assert await zd.frame.text_content("#panels h2") == "Request 2"
    await zd.wait_for_resizes(2)

    await zd.fire("ticket.saved", {})
    await wait_requests(stub, zd, 3)


async def test_custom_field_event_only_when_configured(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url, order_field="")
    await wait_state(zd, "ready")
    assert not [e for e in zd.subscriptions if e.startswith("ticket.custom_field_")]
    assert "ticket.saved" in zd.subscriptions
    assert stub.requests[0]["body"]["order_number"] is None


async def test_refresh_button_and_order_click(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")

    await zd.frame.click('[data-action="refresh"]')
    await wait_requests(stub, zd, 2)
    assert stub.requests[1]["body"]["refresh"] is True
    assert stub.requests[1]["body"]["order_id"] is None
    await zd.frame.wait_for_selector('#panels [data-request="2"]')

    await zd.frame.click("#panels [data-order-id] .label")  # delegation from a child element
    await wait_requests(stub, zd, 3)
    assert stub.requests[2]["body"]["order_id"] == ORDER_ID
    assert stub.requests[2]["body"]["refresh"] is False
    await zd.frame.wait_for_selector('#panels [data-request="3"]')

    # the opened order survives the refresh button and ticket.saved ...
    await zd.frame.click('[data-action="refresh"]')
    await wait_requests(stub, zd, 4)
    assert (stub.requests[3]["body"]["order_id"], stub.requests[3]["body"]["refresh"]) == (
        ORDER_ID,
        True,
    )
    await zd.frame.wait_for_selector('#panels [data-request="4"]')
    await zd.fire("ticket.saved", {})
    await wait_requests(stub, zd, 5)
    assert stub.requests[4]["body"]["order_id"] == ORDER_ID
    await zd.frame.wait_for_selector('#panels [data-request="5"]')
    # ... an empty data-order-id goes back to the list
    await zd.frame.click("#panels button.back")
    await wait_requests(stub, zd, 6)
    assert stub.requests[5]["body"]["order_id"] is None
    await zd.frame.wait_for_selector('#panels [data-request="6"]')
    # ... and a change of requester forgets it
    await zd.frame.click("#panels [data-order-id] .label")
    await wait_requests(stub, zd, 7)
    await zd.frame.wait_for_selector('#panels [data-request="7"]')
    await zd.fire("ticket.requester.email.changed", "x@example.com")
    await wait_requests(stub, zd, 8)
    assert stub.requests[7]["body"]["order_id"] is None
    await zd.frame.wait_for_selector('#panels [data-request="8"]')

    # a plain link inside the panels is not intercepted
    await zd.frame.evaluate("() => document.querySelector('a.mc').removeAttribute('target')")
    await zd.frame.evaluate(
        "() => document.querySelector('a.mc').addEventListener('click', e => e.preventDefault())"
    )
    await zd.frame.click("a.mc")
    await asyncio.sleep(0.4)
    assert len(stub.requests) == 8


async def test_error_message_is_text_with_correlation_id(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    message = "commercetools is unavailable <img src=x onerror=window.pwned=1>"
    stub.queue.append(
        Reply(
            503,
            {
                "error": {
                    "status": 503,
                    "code": "upstream_unavailable",
                    "message": message,
                    "correlation_id": "corr-123",
                }
            },
        )
    )
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "error")
    box = zd.frame.locator("#panels [role=alert]")
    assert await box.locator(".cc-message__text").text_content() == message
    assert await box.locator(".cc-message__detail").text_content() == "Reference: corr-123"
    assert await zd.frame.locator("#panels img").count() == 0
    assert await zd.frame.evaluate("() => window.pwned") is None
    await zd.wait_for_resizes(1)

    # the refresh button recovers
    await zd.frame.click('[data-action="refresh"]')
    await wait_state(zd, "ready")
    assert await zd.frame.locator("#panels [role=alert]").count() == 0


@pytest.mark.parametrize("code", ["session_expired", "unauthorized"])
async def test_expired_session_asks_to_reload(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend, code: str
) -> None:
    error = {"status": 401, "code": code, "message": "x", "correlation_id": "c"}
    stub.queue.append(Reply(401, {"error": error}))
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "expired")
    text = await zd.frame.text_content("#panels [role=alert]")
    assert text is not None
    assert "session has expired" in text
    assert "Reload" in text


async def test_only_the_latest_response_renders(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    slow = '<section data-request="slow"><h2>stale</h2></section>'
    stub.queue.extend([Reply(200, slow, delay=1.0), Reply(200, "")])
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_requests(stub, zd, 1)
    assert await zd.frame.get_attribute("#app", "data-state") == "loading"
    await zd.fire("ticket.saved", {})  # a newer request supersedes the slow one
    await wait_requests(stub, zd, 2)
    await zd.frame.wait_for_selector('#panels [data-request="2"]')
    await asyncio.sleep(1.2)  # the slow first answer has arrived (or was aborted) by now
    assert await zd.frame.locator('#panels [data-request="slow"]').count() == 0
    assert await zd.frame.get_attribute("#app", "data-state") == "ready"


async def test_outside_zendesk_shows_a_message(page: Page, stub_server: tuple[Any, str]) -> None:
    # The page without origin/app_guid: ZAFClient.init() returns false.
    await page.goto(f"{stub_server[1]}/static/app.css")  # same origin, then build the page
    await page.set_content(PAGE.format(session=SESSION, field=""))
    await page.add_script_tag(url=f"{stub_server[1]}/static/vendor/zaf_sdk-2.0.37.js")
    await page.add_script_tag(url=f"{stub_server[1]}/static/sidebar.js")
    await page.wait_for_selector('#app[data-state="error"]')
    text = await page.text_content("#panels [role=alert]")
    assert text is not None
    assert "only works inside Zendesk" in text


# -- the refresh button while a request is in flight ------------------------------------------

REFRESH = '[data-action="refresh"]'


async def refresh_button(zd: FakeZendesk) -> dict[str, Any]:
    state: dict[str, Any] = await zd.frame.evaluate(
        """() => { const b = document.querySelector('[data-action="refresh"]');
                   return {disabled: b.disabled, busy: b.getAttribute('aria-busy'),
                           label: b.querySelector('.label').textContent}; }"""
    )
    return state


async def test_refresh_shows_it_is_working_and_cannot_be_pressed_twice(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")
    assert await refresh_button(zd) == {"disabled": False, "busy": "false", "label": "Refresh"}

    held = asyncio.Event()
    stub.queue.append(Reply(hold=held))
    await zd.frame.click(REFRESH)
    await wait_requests(stub, zd, 2)
    assert await refresh_button(zd) == {
        "disabled": True,
        "busy": "true",
        "label": "Refreshing\u2026",
    }
    # Pressing again, by a script or a dispatched event, does nothing while it is in flight.
    await zd.frame.evaluate(
        """() => { const b = document.querySelector('[data-action="refresh"]');
                   b.click(); b.click();
                   b.dispatchEvent(new MouseEvent('click', {bubbles: true})); }"""
    )
    await asyncio.sleep(0.5)  # longer than the debounce: any extra request would have gone out
    assert len(stub.requests) == 2
    held.set()
    await zd.frame.wait_for_selector('#panels [data-request="2"]')
    await wait_state(zd, "ready")
    assert await refresh_button(zd) == {"disabled": False, "busy": "false", "label": "Refresh"}

    # A double click is one refresh.
    await zd.frame.dblclick(REFRESH)
    await wait_requests(stub, zd, 3)
    await zd.frame.wait_for_selector('#panels [data-request="3"]')
    await asyncio.sleep(0.5)
    assert len(stub.requests) == 3
    assert stub.requests[2]["body"]["refresh"] is True


async def test_labels_follow_the_agents_zendesk_locale(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    held = asyncio.Event()
    stub.queue.append(Reply(hold=held))
    agent = {"id": 9002, "name": "Agentin", "locale": "de"}
    zd = await open_sidebar(fake_zendesk, page, sidebar_url, agent=agent)
    await wait_requests(stub, zd, 1)
    assert stub.requests[0]["body"]["ui_locale"] == "de"
    assert (await refresh_button(zd))["label"] == "Wird aktualisiert\u2026"
    assert await zd.frame.get_attribute("html", "lang") == "de"
    held.set()
    await wait_state(zd, "ready")
    assert await refresh_button(zd) == {
        "disabled": False,
        "busy": "false",
        "label": "Aktualisieren",
    }
    # Script-made messages follow the locale too.
    error = {"status": 503, "code": "x", "message": "Fehler", "correlation_id": "c-9"}
    stub.queue.append(Reply(503, {"error": error}))
    await zd.frame.click(REFRESH)
    await wait_state(zd, "error")
    assert await zd.frame.text_content("#panels .cc-message__detail") == "Referenz: c-9"


async def test_an_unknown_locale_falls_back_to_english(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    zd = await open_sidebar(fake_zendesk, page, sidebar_url, agent={"id": 1, "locale": "ja"})
    await wait_state(zd, "ready")
    assert stub.requests[0]["body"]["ui_locale"] == "ja"  # the server falls back as well
    assert (await refresh_button(zd))["label"] == "Refresh"


# -- copy buttons and the empty-state search ---------------------------------------------------

COPY_PANEL = (
    '<section class="panel" data-request="copy"><h2>Order DE-1003'
    '<button type="button" class="copy" data-copy="DE-1003">Copy</button></h2>'
    '<p><span data-tracking="00340434161094044003">00340434161094044003</span>'
    '<button type="button" class="copy" data-copy="00340434161094044003">Copy</button></p>'
    "</section>"
)


async def test_copy_buttons_put_the_value_on_the_clipboard(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    stub.queue.append(Reply(200, COPY_PANEL))
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")
    tracking = '[data-copy="00340434161094044003"]'
    await zd.frame.click(tracking)
    button = await zd.frame.wait_for_selector(f'{tracking}[data-copied="00340434161094044003"]')
    assert button is not None and await button.text_content() == "Copied"
    # What was copied is really on the clipboard: paste it into a field of the page.
    await zd.frame.evaluate(
        "() => { const i = document.createElement('input'); i.id = 'paste';"
        " document.body.appendChild(i); i.focus(); }"
    )
    await page.keyboard.press("ControlOrMeta+V")
    assert await zd.frame.input_value("#paste") == "00340434161094044003"
    # The copy click is not an order click: no request was made.
    assert len(stub.requests) == 1
    # The label comes back, also after a second click while it said "Copied".
    await zd.frame.click(tracking)
    await zd.frame.wait_for_selector(f"{tracking}:not([data-copied])", timeout=5000)
    assert await zd.frame.text_content(tracking) == "Copy"
    order = '[data-copy="DE-1003"]'
    await zd.frame.click(order)
    await zd.frame.wait_for_selector(f'{order}[data-copied="DE-1003"]')
    await zd.frame.wait_for_selector(f"{order}:not([data-copied])", timeout=5000)
    assert await zd.frame.text_content(order) == "Copy"


SEARCH_PANEL = (
    '<section class="panel empty" data-request="empty"><h2>No commercetools shopper found</h2>'
    '<form class="search" data-action="search" novalidate>'
    '<input id="cc-search" name="q" type="text"><button type="submit">Search</button>'
    '<p class="search__error" role="alert" hidden>Enter an order number or an email.</p>'
    "</form></section>"
)


async def test_empty_state_search_by_email_or_order_number(
    page: Page, fake_zendesk: FakeZendeskFactory, sidebar_url: str, stub: StubBackend
) -> None:
    stub.queue.append(Reply(200, SEARCH_PANEL))
    zd = await open_sidebar(fake_zendesk, page, sidebar_url)
    await wait_state(zd, "ready")

    # Not an email and not an order number: said so, nothing sent.
    await zd.frame.fill("#cc-search", "<script>x</script>")
    await zd.frame.press("#cc-search", "Enter")
    await zd.frame.wait_for_selector(".search__error:not([hidden])")
    assert await zd.frame.get_attribute("#cc-search", "aria-invalid") == "true"
    await asyncio.sleep(0.4)
    assert len(stub.requests) == 1

    # An email replaces the ticket's keys.
    stub.queue.append(Reply(200, SEARCH_PANEL))
    await zd.frame.fill("#cc-search", "  Shopper@Example.org ")
    await zd.frame.click(".search button[type=submit]")
    await wait_requests(stub, zd, 2)
    body = stub.requests[1]["body"]
    assert (body["emails"], body["order_number"], body["external_id"], body["order_id"]) == (
        ["Shopper@Example.org"],
        None,
        None,
        None,
    )
    await wait_state(zd, "ready")

    # An order number.
    await zd.frame.fill("#cc-search", "DE-1003")
    await zd.frame.press("#cc-search", "Enter")
    await wait_requests(stub, zd, 3)
    body = stub.requests[2]["body"]
    assert (body["emails"], body["order_number"], body["external_id"]) == ([], "DE-1003", None)
    await wait_state(zd, "ready")

    # Refresh keeps the search; a new requester forgets it.
    await zd.frame.click(REFRESH)
    await wait_requests(stub, zd, 4)
    assert stub.requests[3]["body"]["order_number"] == "DE-1003"
    await wait_state(zd, "ready")
    await zd.fire("ticket.requester.email.changed", "anna@example.com")
    await wait_requests(stub, zd, 5)
    assert stub.requests[4]["body"]["emails"] == ["Anna@Example.com", "second@example.org"]
    assert stub.requests[4]["body"]["order_number"] == "1003"
