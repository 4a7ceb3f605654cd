"""Drive the fake Zendesk parent page (static/fake_zendesk.html + .js) from Playwright.

`open_fake_zendesk(page, parent_url, sidebar_url, token, ticket=...)` loads the parent page, which
POSTs the form field `token` into the app iframe (target = the iframe's name, action =
`<sidebar_url>?origin=<parent origin>&app_guid=<guid>`), exactly as Zendesk loads a signed-URL
app, and then answers the real ZAF SDK inside the iframe. The returned `FakeZendesk` exposes the
iframe's `Frame`, what the app asked for (`gets`, `resizes`, `invocations`, `subscriptions`),
and lets the test change the ticket and fire framework events into the app.

Ticket shape (all keys optional; a missing requester/brand is a new ticket):

    {"id": 42, "subject": "...", "status": "open",
     "requester": {"id": 7, "name": "...", "email": "a@x.com", "externalId": "ct-customer-id",
                   "identities": [{"type": "email", "value": "a@x.com", "primary": True}]},
     "brand": {"id": 1001, "name": "Shop Berlin"},
     "custom_fields": {"360000001": "DE-1003"}}    # ticket.customField:custom_field_<id>
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Frame, Page

STATIC_DIR = Path(__file__).resolve().parent / "static"
PARENT_PAGE = "fake_zendesk.html"
IFRAME_NAME = "app_commerce-context_ticket_sidebar"

_bindings = itertools.count(1)


@dataclass
class FakeZendesk:
    """The fake agent workspace around one app iframe. Lists fill live as the app talks."""

    page: Page
    frame: Frame
    app_guid: str
    action_url: str  # where the form was POSTed (sidebar URL + origin + app_guid)
    handshakes: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)  # every SDK message, in order
    gets: list[list[str]] = field(default_factory=list)  # params of each client.get
    sets: list[dict[str, Any]] = field(default_factory=list)
    invocations: list[dict[str, Any]] = field(default_factory=list)  # {"name", "args"}
    resizes: list[dict[str, Any]] = field(default_factory=list)  # {"width", "height"}
    subscriptions: dict[str, int] = field(default_factory=dict)  # event -> subscriber count
    triggers: list[dict[str, Any]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)  # client.request options
    registered: asyncio.Event = field(default_factory=asyncio.Event)

    # -- called by the page through the exposed binding --------------------------------------

    def _report(self, kind: str, data: Any) -> None:
        if kind == "message":
            self.messages.append(data)
            if data.get("request") == "get":
                self.gets.append(list(data.get("params") or []))
            elif data.get("request") == "set":
                self.sets.append(dict(data.get("params") or {}))
        elif kind == "handshake":
            self.handshakes.append(data)
        elif kind == "registered":
            self.registered.set()
        elif kind == "invoke":
            self.invocations.append(data)
        elif kind == "resize":
            self.resizes.append(data)
        elif kind == "subscribe":
            self.subscriptions[data["event"]] = data["count"]
        elif kind == "trigger":
            self.triggers.append(data)
        elif kind == "request":
            self.requests.append(data)

    # -- what tests call ----------------------------------------------------------------------

    @property
    def requested_paths(self) -> list[str]:
        """Every path the app read with client.get, flattened, in order."""
        return [path for paths in self.gets for path in paths]

    async def set_ticket(self, **changes: Any) -> dict[str, Any]:
        """Replace top-level ticket attributes (requester=..., brand=..., custom_fields=...).

        Like the agent editing the ticket: no event is sent; call `fire` for that."""
        ticket: dict[str, Any] = await self.page.evaluate(
            "changes => window.fakeZendesk.setTicket(changes)", changes
        )
        return ticket

    async def fire(
        self, event: str, payload: Any = None, *, require_subscriber: bool = True
    ) -> bool:
        """Send a framework event (e.g. "ticket.saved") into the app.

        Zendesk only delivers events an app subscribed to (client.on). By default this waits for
        the subscription and fails the test if it never comes; with require_subscriber=False it
        returns False at once for an event nobody subscribed to. True when delivered."""
        if require_subscriber:
            await self.wait_until(
                lambda: self.subscriptions.get(event, 0) > 0,
                f"the app to subscribe to {event!r} (subscribed: {sorted(self.subscriptions)})",
            )
        delivered: bool = await self.page.evaluate(
            "([name, payload]) => window.fakeZendesk.fire(name, payload, false)",
            [event, payload],
        )
        return delivered

    async def wait_until(
        self, condition: Callable[[], bool], what: str = "a condition", within: float = 10.0
    ) -> None:
        deadline = time.monotonic() + within
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within:g}s waiting for {what}")
            await asyncio.sleep(0.02)

    async def wait_for_resizes(self, count: int = 1, within: float = 10.0) -> dict[str, Any]:
        """Wait until the app has asked for `count` resizes in total; returns the last one."""
        await self.wait_until(lambda: len(self.resizes) >= count, f"{count} resize(s)", within)
        return self.resizes[-1]

    async def snapshot(self) -> dict[str, Any]:
        """The page-side state: ticket, subscriptions, resizes, iframe height, raw messages."""
        result: dict[str, Any] = await self.page.evaluate("() => window.fakeZendesk.snapshot()")
        return result


async def open_fake_zendesk(
    page: Page,
    parent_url: str,
    sidebar_url: str,
    token: str,
    *,
    ticket: Mapping[str, Any] | None = None,
    app_guid: str | None = None,
    current_user: Mapping[str, Any] | None = None,
    account: Mapping[str, Any] | None = None,
    register_delay_ms: int = 0,
    response_delay_ms: int = 0,
    secure_jwt: str | None = None,
    extra_query: Mapping[str, str] | None = None,
    origin_param: str | None = None,
    within: float = 15.0,
) -> FakeZendesk:
    """Open the fake parent at `parent_url` and load `sidebar_url` into its app iframe.

    Returns once the SDK in the iframe has shaken hands and received `app.registered`.
    Options: `app_guid` (default: random), `current_user`/`account` (app.registered context),
    `register_delay_ms`/`response_delay_ms` (slow Zendesk), `within` (seconds to wait for the
    handshake), `secure_jwt` (substituted for `{{jwt.token}}` in secure client.request calls,
    which the fake performs with fetch), `extra_query` (more query parameters on the app URL),
    `origin_param` (override the `origin` query parameter: the SDK then never registers)."""
    binding = f"__fakeZendeskReport{next(_bindings)}"
    guid = app_guid or str(uuid.uuid4())
    box: dict[str, FakeZendesk] = {}
    early: list[tuple[str, Any]] = []

    def report(_source: Any, kind: str, data: Any) -> None:
        if "zd" in box:
            box["zd"]._report(kind, data)
        else:
            early.append((kind, data))

    await page.expose_binding(binding, report)
    await page.goto(f"{parent_url.rstrip('/')}/{PARENT_PAGE}")
    config = {
        "appUrl": sidebar_url,
        "token": token,
        "appGuid": guid,
        "iframeName": IFRAME_NAME,
        "ticket": dict(ticket or {}),
        "currentUser": dict(current_user) if current_user else None,
        "account": dict(account or {}),
        "report": binding,
        "registerDelayMs": register_delay_ms,
        "responseDelayMs": response_delay_ms,
        "secureJwt": secure_jwt,
        "extraQuery": dict(extra_query or {}),
        "originParam": origin_param,
    }
    action_url: str = await page.evaluate("config => window.fakeZendesk.start(config)", config)
    frame = page.frame(name=IFRAME_NAME)
    if frame is None:
        raise AssertionError("the fake parent did not create the app iframe")
    zd = FakeZendesk(page=page, frame=frame, app_guid=guid, action_url=action_url)
    box["zd"] = zd
    for kind, data in early:
        zd._report(kind, data)
    try:
        await asyncio.wait_for(zd.registered.wait(), within)
    except TimeoutError:
        raise AssertionError(
            f"the app at {sidebar_url} never completed the ZAF handshake within {within:g}s "
            f"(frame URL {frame.url}; is the SDK loaded and are origin/app_guid in the URL?)"
        ) from None
    return zd
