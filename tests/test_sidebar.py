"""The Zendesk sidebar end to end against the seeded emulator: signed-URL entry, every
resolution path, the panels' content and masking, and bad input."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bs4 import BeautifulSoup
from pydantic import SecretStr

from commerce_context import queries, views
from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.settings import Settings
from tests.asgi import app_client
from tests.conftest import Recorder

pytestmark = pytest.mark.emulator

BERLIN, LONDON, NEWYORK = 1001, 1002, 1003


@pytest.fixture(scope="session")
def zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest.fixture(scope="session")
def sidebar_settings(harness: Harness, zendesk: DemoZendesk) -> Settings:
    # Fifty concurrent views of one session below: the lookup limits are tested elsewhere
    # (tests/test_hostile.py).
    return demo_settings(
        harness,
        zendesk,
        ct_backoff_base=0.01,
        ct_backoff_max=0.1,
        lookups_per_session=1000,
        lookups_per_agent=1000,
    )


class Sidebar:
    def __init__(self, client: httpx.AsyncClient, zendesk: DemoZendesk, recorder: Recorder):
        self.client = client
        self.zendesk = zendesk
        self.recorder = recorder
        self._session: str | None = None

    async def open(self, token: str | None = None) -> httpx.Response:
        return await self.client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc-123",
            data={"token": token if token is not None else self.zendesk.token()},
            headers={"Accept": "text/html"},
        )

    async def session(self) -> str:
        if self._session is None:
            page = BeautifulSoup((await self.open()).text, "html.parser")
            app = page.select_one("#app")
            assert app is not None
            self._session = str(app["data-session"])
        return self._session

    async def panels(self, **context: Any) -> httpx.Response:
        self.recorder.requests.clear()
        return await self.client.post(
            "/zendesk/panels",
            json=context,
            headers={"Authorization": f"Bearer {await self.session()}"},
        )

    async def page(self, **context: Any) -> BeautifulSoup:
        response = await self.panels(**context)
        assert response.status_code == 200, response.text
        return BeautifulSoup(response.text, "html.parser")


@pytest_asyncio.fixture(loop_scope="session")
async def sidebar(
    sidebar_settings: Settings, zendesk: DemoZendesk, recorder: Recorder
) -> AsyncIterator[Sidebar]:
    # raise_errors: any unexpected exception fails the test instead of becoming a 500 page.
    async with (
        httpx.AsyncClient(event_hooks={"request": [recorder]}) as http,
        app_client(create_app(sidebar_settings, http=http), raise_errors=True) as client,
    ):
        yield Sidebar(client, zendesk, recorder)


def text(page: BeautifulSoup, selector: str) -> str:
    node = page.select_one(selector)
    assert node is not None, f"{selector} not found in {page}"
    return " ".join(node.get_text(" ").split())


# -- entry ----------------------------------------------------------------------------------------


async def test_signed_url_opens_the_sidebar_page(sidebar: Sidebar) -> None:
    response = await sidebar.open()
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    page = BeautifulSoup(response.text, "html.parser")
    app = page.select_one("#app")
    assert app is not None and str(app["data-session"]).count(".") == 2
    scripts = [s["src"] for s in page.select("script[src]")]
    assert scripts == [
        "/static/vendor/zaf_sdk-2.0.37.js",
        "/static/sidebar.js",
        "/static/actions.js",
    ]
    assert app["data-order-field-id"] == "360000001"


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c", "eyJhbGciOiJub25lIn0.eyJ4IjoxfQ."])
async def test_bad_tokens_get_a_readable_401_page(
    sidebar: Sidebar, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    response = await sidebar.open(token)
    assert response.status_code == 401
    assert "text/html" in response.headers["content-type"]
    assert "<h1>401</h1>" in response.text
    if token:
        assert token not in response.text and token not in caplog.text


async def test_an_expired_token_is_refused(sidebar: Sidebar) -> None:
    response = await sidebar.open(sidebar.zendesk.token(lifetime=-120))
    assert response.status_code == 401
    assert "expired" in response.text


async def test_token_of_another_key_is_refused(sidebar: Sidebar) -> None:
    response = await sidebar.open(DemoZendesk.generate().token())
    assert response.status_code == 401


async def test_get_on_the_sidebar_explains_itself(sidebar: Sidebar) -> None:
    response = await sidebar.client.get("/zendesk/sidebar")
    assert response.status_code == 401
    assert "Open this app from a Zendesk ticket" in response.json()["error"]["message"]


# -- resolution paths -----------------------------------------------------------------------------


async def test_email_resolves_customer_orders_and_latest_order(
    sidebar: Sidebar, harness: Harness
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    page = await sidebar.page(emails=[anna.email.upper()], brand_id=BERLIN, ticket_id=1)
    customer = page.select_one('[data-testid="customer"]')
    assert customer is not None and customer["data-customer-id"] == anna.id
    numbers = [a.get_text() for a in page.select('[data-testid="orders"] a[data-order-id]')]
    assert numbers == [o.order_number for o in harness.demo.orders_of("anna-schmidt")]
    order = page.select_one('[data-testid="order"]')
    assert order is not None and order["data-order-number"] == numbers[0]
    # A cold ticket view: one upstream request, and, the first time these addresses are seen,
    # one more for the customer's orders by id.
    assert len(sidebar.recorder.api_calls()) == 2
    # Later views of the addresses (here: Refresh, which reads everything again) need one.
    await sidebar.page(emails=[anna.email.upper()], brand_id=BERLIN, ticket_id=1, refresh=True)
    assert len(sidebar.recorder.api_calls()) == 1


async def test_external_id_resolves_the_customer(sidebar: Sidebar, harness: Harness) -> None:
    james = harness.demo.customers["james-taylor"]
    page = await sidebar.page(external_id=james.id, brand_id=LONDON)
    assert page.select_one(f'[data-customer-id="{james.id}"]') is not None
    numbers = [a.get_text() for a in page.select("a[data-order-id]")]
    assert numbers == [o.order_number for o in harness.demo.orders_of("james-taylor")]
    assert len(sidebar.recorder.api_calls()) == 1


async def test_order_number_field_wins(sidebar: Sidebar, harness: Harness) -> None:
    berlin_alex = harness.demo.customers["alex-morgan-berlin"]
    # The email alone would pick another customer; the order number decides.
    page = await sidebar.page(
        order_number="DE-1003", emails=[harness.demo.shared_email], brand_id=BERLIN
    )
    assert page.select_one('[data-testid="order"]')["data-order-number"] == "DE-1003"  # type: ignore[index]
    assert page.select_one(f'[data-customer-id="{berlin_alex.id}"]') is not None


async def test_order_id_in_the_field_works_too(sidebar: Sidebar, harness: Harness) -> None:
    order = harness.demo.orders["US-3001"]
    page = await sidebar.page(order_number=order.id)
    assert page.select_one('[data-testid="order"]')["data-order-number"] == "US-3001"  # type: ignore[index]


async def test_order_chosen_in_the_panel(sidebar: Sidebar, harness: Harness) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    chosen = harness.demo.orders["DE-1001"]
    page = await sidebar.page(emails=[anna.email], order_id=chosen.id, brand_id=BERLIN)
    assert page.select_one('[data-testid="order"]')["data-order-number"] == "DE-1001"  # type: ignore[index]
    selected = page.select_one("tr.selected a[data-order-id]")
    assert selected is not None and selected.get_text() == "DE-1001"


async def test_shared_email_prefers_the_brands_store(sidebar: Sidebar, harness: Harness) -> None:
    london = harness.demo.customers["alex-morgan-london"]
    page = await sidebar.page(emails=[harness.demo.shared_email], brand_id=LONDON)
    assert page.select_one(f'[data-customer-id="{london.id}"]') is not None
    note = text(page, '[data-testid="other-customers"]')
    assert note.startswith("1 other customer account") and "berlin" in note
    numbers = [a.get_text() for a in page.select("a[data-order-id]")]
    assert numbers == ["UK-2002"]


async def test_shared_email_without_brand_prefers_most_recent_order(
    sidebar: Sidebar, harness: Harness
) -> None:
    # UK-2002 (London) is more recent than DE-1003 (Berlin).
    london = harness.demo.customers["alex-morgan-london"]
    page = await sidebar.page(emails=[harness.demo.shared_email])
    assert page.select_one(f'[data-customer-id="{london.id}"]') is not None
    assert "most recent order" in text(page, '[data-testid="other-customers"]')


async def test_guest_orders(sidebar: Sidebar, harness: Harness) -> None:
    page = await sidebar.page(emails=[harness.demo.guest_email])
    assert page.select_one('[data-testid="guest"]') is not None
    numbers = {a.get_text() for a in page.select("a[data-order-id]")}
    assert numbers == set(harness.demo.guest_order_numbers)


async def test_store_scoping_hides_other_stores_orders(sidebar: Sidebar, harness: Harness) -> None:
    page = await sidebar.page(emails=[harness.demo.guest_email], brand_id=BERLIN)
    numbers = [a.get_text() for a in page.select("a[data-order-id]")]
    assert numbers == ["DE-1004"]
    assert "1 order(s) of other stores" in page.get_text()


async def test_explicit_order_of_another_store_is_shown_with_a_note(sidebar: Sidebar) -> None:
    page = await sidebar.page(order_number="US-3002", brand_id=BERLIN)
    assert page.select_one('[data-testid="order"]') is not None
    assert "belongs to store newyork, not to this brand's store berlin" in page.get_text()


async def test_nothing_found_says_what_was_searched(sidebar: Sidebar) -> None:
    page = await sidebar.page(emails=["pat.doe@example.net"], order_number="XX-1", brand_id=BERLIN)
    empty = text(page, '[data-testid="empty"]')
    assert "order XX-1" in empty and "pat.doe@example.net" in empty and "berlin" in empty
    assert "No order XX-1 was found" in page.get_text()


async def test_a_ticket_without_keys_costs_nothing_upstream(sidebar: Sidebar) -> None:
    page = await sidebar.page(ticket_id=7)
    assert "no requester email" in text(page, '[data-testid="empty"]')
    assert sidebar.recorder.api_calls() == []


# -- panel content ---------------------------------------------------------------------------------


async def test_order_panels_show_lines_shipments_payments_refunds_returns(
    sidebar: Sidebar, harness: Harness, sidebar_settings: Settings
) -> None:
    info = harness.demo.orders["DE-1002"]
    page = await sidebar.page(order_number="DE-1002", brand_id=BERLIN)
    lines = page.select('[data-testid="order"] tr[data-sku]')
    assert {str(tr["data-sku"]) for tr in lines} == {"SNEAKER-WHT-42", "HOODIE-GRY-L"}
    assert "€" in text(page, '[data-field="order-total"]')
    assert "," in text(page, '[data-field="order-total"]')  # de-DE decimal comma
    tracking = page.select("[data-tracking]")
    assert {str(a["data-tracking"]) for a in tracking} == set(info.tracking_ids)
    assert all(str(a["href"]).startswith("https://www.dhl.de/") for a in tracking)
    kinds = [str(tr["data-transaction"]) for tr in page.select("tr[data-transaction]")]
    assert {"Authorization", "Charge", "Refund"} <= set(kinds)
    assert page.select("[data-refund]")
    returns = text(page, '[data-testid="returns"]')
    assert "Return of 1 \u00d7" in returns and "Returned" in returns
    assert text(page, '[data-custom="rmaStatus"]') == "refunded"
    link = page.select_one('[data-testid="order"] a.mc')
    assert link is not None
    assert link["href"] == f"{sidebar_settings.mc_url}/test-project/orders/{info.id}"


async def test_pii_is_masked_in_the_panels(sidebar: Sidebar, harness: Harness) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    response = await sidebar.panels(emails=[anna.email], brand_id=BERLIN)
    page = BeautifulSoup(response.text, "html.parser")
    email = text(page, '[data-field="email"]')
    assert email != anna.email and "***" in email
    assert anna.email.lower() not in response.text.lower()
    phone = page.select_one('[data-field="phone"]')
    assert phone is None or "•" in phone.get_text()
    address = text(page, '[data-field="shipping-address"]')
    assert "•" in address  # street and postal code are masked by default


async def test_no_payment_secrets_reach_the_page(sidebar: Sidebar, harness: Harness) -> None:
    response = await sidebar.panels(order_number="DE-1001")
    assert "8816178952380001" not in response.text  # the PSP reference (interfaceId)


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"emails": "anna@example.com"}, "emails"),
        ({"emails": ["not-an-email"]}, "emails"),
        ({"order_id": "DE-1001"}, "order_id"),
        ({"brand_id": "berlin"}, "brand_id"),
        ({"ticket_id": -1}, "ticket_id"),
        ([1, 2], "JSON object"),
    ],
)
async def test_bad_ticket_context_is_a_400(sidebar: Sidebar, body: Any, message: str) -> None:
    response = await sidebar.client.post(
        "/zendesk/panels",
        json=body,
        headers={"Authorization": f"Bearer {await sidebar.session()}"},
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]


async def test_invalid_json_and_wrong_content_type_are_400(sidebar: Sidebar) -> None:
    headers = {"Authorization": f"Bearer {await sidebar.session()}"}
    broken = await sidebar.client.post(
        "/zendesk/panels", content=b"{nope", headers={**headers, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400
    form = await sidebar.client.post("/zendesk/panels", data={"a": "b"}, headers=headers)
    assert form.status_code == 400


@pytest.mark.parametrize("authorization", [None, "Bearer", "Bearer nope", "Basic abc"])
async def test_panels_need_a_session(sidebar: Sidebar, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await sidebar.client.post("/zendesk/panels", json={}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_the_signed_url_token_is_not_a_session(sidebar: Sidebar) -> None:
    response = await sidebar.client.post(
        "/zendesk/panels", json={}, headers={"Authorization": f"Bearer {sidebar.zendesk.token()}"}
    )
    assert response.status_code == 401


async def test_sidebar_is_not_found_when_zendesk_is_not_configured(harness: Harness) -> None:
    async with app_client(create_app(demo_settings(harness))) as client:
        response = await client.post("/zendesk/panels", json={})
    assert response.status_code == 404
    assert "CC_ZENDESK" in response.json()["error"]["message"]


async def test_outage_serves_the_last_known_panels_marked_stale(
    sidebar_settings: Settings, zendesk: DemoZendesk, harness: Harness
) -> None:
    class Switchable(httpx.AsyncHTTPTransport):
        down = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if self.down and request.url.path != "/oauth/token":
                raise httpx.ConnectError("down", request=request)
            return await super().handle_async_request(request)

    transport = Switchable()
    settings = sidebar_settings.model_copy(update={"cache_ttl_lists": 0, "ct_max_retries": 0})
    anna = harness.demo.customers["anna-schmidt"]
    async with (
        httpx.AsyncClient(transport=transport) as http,
        app_client(create_app(settings, http=http), raise_errors=True) as client,
    ):
        sidebar = Sidebar(client, zendesk, Recorder())
        live = await sidebar.page(emails=[anna.email], brand_id=BERLIN)
        assert live.select_one('[data-testid="stale"]') is None
        transport.down = True
        stale = await sidebar.page(emails=[anna.email], brand_id=BERLIN)
        assert "not answering" in text(stale, '[data-testid="stale"]')
        assert text(stale, '[data-testid="customer"]') == text(live, '[data-testid="customer"]')
        # Nothing cached for this ticket: a clear 503, not a blank sidebar or a 500.
        missing = await sidebar.panels(emails=["nobody@example.net"])
        assert missing.status_code == 503
        assert missing.json()["error"]["code"] == "upstream_unavailable"


async def test_bundled_mode_secure_request_token_is_accepted(
    sidebar_settings: Settings, harness: Harness
) -> None:
    import time

    import jwt

    secret = "zaf-shared-secret-for-tests-0123456789"
    settings = sidebar_settings.model_copy(update={"zendesk_shared_secret": SecretStr(secret)})
    now = int(time.time())
    # What Zendesk's proxy mints for client.request({jwt: {algorithm: "HS256", ...}}).
    token = jwt.encode({"iat": now, "exp": now + 60, "ticket": 1}, secret, algorithm="HS256")
    forged = jwt.encode(
        {"iat": now, "exp": now + 60}, "another-secret-0123456789abcdefghij", "HS256"
    )
    anna = harness.demo.customers["anna-schmidt"]
    async with app_client(create_app(settings), raise_errors=True) as client:
        ok = await client.post(
            "/zendesk/panels",
            json={"emails": [anna.email]},
            headers={"Authorization": f"Bearer {token}"},
        )
        refused = await client.post(
            "/zendesk/panels", json={}, headers={"Authorization": f"Bearer {forged}"}
        )
    assert ok.status_code == 200 and f'data-customer-id="{anna.id}"' in ok.text
    assert refused.status_code == 401


async def test_sidebar_page_may_only_be_framed_by_zendesk(sidebar: Sidebar) -> None:
    csp = (await sidebar.open()).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    ancestors = directives["frame-ancestors"].split()
    assert ancestors[0] == "https://demo.zendesk.com"
    assert directives["default-src"] == "'self'"
    assert "'unsafe-inline'" not in csp


async def test_concurrent_views_of_one_ticket_all_show_the_same_panels(
    sidebar: Sidebar, harness: Harness
) -> None:
    import asyncio

    session = await sidebar.session()

    async def view() -> str:
        response = await sidebar.client.post(
            "/zendesk/panels",
            json={"order_number": "DE-1003", "brand_id": BERLIN},
            headers={"Authorization": f"Bearer {session}"},
        )
        return response.text

    sidebar.recorder.requests.clear()
    pages = await asyncio.gather(*(view() for _ in range(50)))
    assert len(sidebar.recorder.api_calls()) == 1  # one flight for all of them
    customer = harness.demo.customers["alex-morgan-berlin"].id
    assert all(f'data-customer-id="{customer}"' in page for page in pages)


async def test_warm_views_reuse_rendered_panels_until_an_entry_changes(
    sidebar: Sidebar, harness: Harness, ct: Any
) -> None:
    number = "UK-2003"
    first = await sidebar.panels(order_number=number)
    second = await sidebar.panels(order_number=number)
    assert second.text == first.text and sidebar.recorder.api_calls() == []
    order_id = harness.demo.orders[number].id
    read = queries.order_by_id(order_id, [views.VERSION])
    version = (await ct.fetch(queries.compose([read])))["order"]["version"]
    note = f"note {uuid.uuid4().hex[:8]}"
    await ct.update(
        "orders",
        order_id,
        version,
        [{"action": "setCustomField", "name": "internalNote", "value": note}],
    )
    refreshed = await sidebar.panels(order_number=number, refresh=True)
    assert note in refreshed.text  # re-rendered from the changed entry, not the memo


@pytest.mark.parametrize(
    ("headers", "content", "status"),
    [
        ({"Content-Length": "abc"}, b"{}", 400),
        ({}, b'{"emails": [' + b'"a@example.com",' * 2000 + b'"b@example.com"]}', 413),
    ],
)
async def test_malformed_or_oversized_bodies_are_4xx(
    sidebar: Sidebar, headers: dict[str, str], content: bytes, status: int
) -> None:
    response = await sidebar.client.post(
        "/zendesk/panels",
        content=content,
        headers={
            "Authorization": f"Bearer {await sidebar.session()}",
            "Content-Type": "application/json",
            **headers,
        },
    )
    assert response.status_code == status
