"""A hostile world: an upstream that holds connections, and callers that misbehave.

The upstream here is real TCP on loopback: a proxy in front of the emulator that, once told to
hold, accepts and reads every request but never answers (a hung commercetools, not a refused
one). Bounds on elapsed time are generous: they tell "answered within the budget" from
"waited for the 30 s upstream timeout", nothing finer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bs4 import BeautifulSoup

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.settings import Settings
from tests.asgi import app_client

pytestmark = pytest.mark.emulator

BUDGET = 1.0
BERLIN = 1001


class HoldingProxy:
    """Forwards TCP to `target` until `hold` is set; then swallows what clients send."""

    def __init__(self, target: str) -> None:
        url = httpx.URL(target)
        self._host, self._port = url.host, url.port or 80
        self.hold = False
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self._host, self._port)
        self._writers += [writer, up_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, up: bool) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while chunk := await source.read(65536):
                    if up and self.hold:
                        continue  # read and held: the request never reaches commercetools
                    sink.write(chunk)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))


@pytest_asyncio.fixture(loop_scope="session")
async def proxy(harness: Harness) -> AsyncIterator[HoldingProxy]:
    held = HoldingProxy(harness.api_url)
    await held.start()
    yield held
    await held.close()


@pytest.fixture(scope="module")
def zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


def hung_settings(harness: Harness, zendesk: DemoZendesk, url: str, **overrides: Any) -> Settings:
    return demo_settings(
        harness,
        zendesk,
        ct_api_url=url,
        ct_auth_url=url,
        ct_timeout=30,  # far longer than the budget: only the budget can answer in time
        ct_max_retries=3,
        ct_backoff_base=0.5,
        ct_backoff_max=2.0,
        view_budget=BUDGET,
        # Everything goes upstream on every view, so the hold is felt at once.
        cache_ttl_order=0,
        cache_ttl_customer=0,
        cache_ttl_cart=0,
        cache_ttl_lists=0,
        **overrides,
    )


async def session_of(client: httpx.AsyncClient, zendesk: DemoZendesk) -> str:
    page = await client.post(
        "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc",
        data={"token": zendesk.token()},
    )
    assert page.status_code == 200, page.text
    app = BeautifulSoup(page.text, "html.parser").select_one("#app")
    assert app is not None
    return str(app["data-session"])


async def timed_panels(
    client: httpx.AsyncClient, session: str, **context: Any
) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.post(
        "/zendesk/panels", json=context, headers={"Authorization": f"Bearer {session}"}
    )
    return response, time.monotonic() - started


async def test_a_hung_upstream_is_answered_from_the_cache_within_the_budget(
    harness: Harness, zendesk: DemoZendesk, proxy: HoldingProxy
) -> None:
    url = proxy.url
    anna = harness.demo.customers["anna-schmidt"]
    settings = hung_settings(harness, zendesk, url)
    async with app_client(create_app(settings), raise_errors=True) as client:
        session = await session_of(client, zendesk)
        live, _ = await timed_panels(client, session, emails=[anna.email], brand_id=BERLIN)
        assert live.status_code == 200 and 'data-testid="stale"' not in live.text
        proxy.hold = True
        try:
            stale, elapsed = await timed_panels(
                client, session, emails=[anna.email], brand_id=BERLIN
            )
            assert elapsed < BUDGET + 2
            assert stale.status_code == 200, stale.text
            page = BeautifulSoup(stale.text, "html.parser")
            marker = page.select_one('[data-testid="stale"]')
            assert marker is not None and "not answering" in marker.get_text()
            assert f'data-customer-id="{anna.id}"' in stale.text
        finally:
            proxy.hold = False


async def test_a_hung_upstream_with_nothing_cached_says_so_within_the_budget(
    harness: Harness, zendesk: DemoZendesk, proxy: HoldingProxy
) -> None:
    url = proxy.url
    settings = hung_settings(harness, zendesk, url)
    async with app_client(create_app(settings), raise_errors=True) as client:
        session = await session_of(client, zendesk)
        # A token is fetched before the hold (the hold is of reads, not of sign-in).
        warm, _ = await timed_panels(client, session, order_number="DE-1003")
        assert warm.status_code == 200
        proxy.hold = True
        try:
            response, elapsed = await timed_panels(
                client, session, emails=["never-seen@example.net"]
            )
        finally:
            proxy.hold = False
    assert elapsed < BUDGET + 2
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    error = response.json()["error"]
    assert error["code"] == "upstream_unavailable"
    assert "not answering" in error["message"]


# -- callers that misbehave, against the service served by uvicorn on loopback ---------------------

EVENTS_SECRET = "events-secret-for-hostile-tests-0123"
BODY_TIMEOUT = 0.5


class Served:
    def __init__(self, url: str, client: httpx.AsyncClient, session: str) -> None:
        self.url = url
        self.client = client
        self.session = session

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session}"}

    async def raw(self, request: bytes) -> bytes:
        """Send bytes as they are, and read what comes back until the server closes."""
        url = httpx.URL(self.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            writer.write(request)
            await writer.drain()
            return await asyncio.wait_for(reader.read(65536), BODY_TIMEOUT + 10)
        finally:
            writer.close()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def served(harness: Harness, zendesk: DemoZendesk) -> AsyncIterator[Served]:
    from commerce_context.emulator.harness import serve

    settings = demo_settings(
        harness,
        zendesk,
        events_secret=EVENTS_SECRET,
        body_timeout=BODY_TIMEOUT,
        ct_backoff_base=0.01,
        ct_backoff_max=0.1,
    )
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        yield Served(url, client, await session_of(client, zendesk))


def status_of(raw: bytes) -> int:
    return int(raw.split(b"\r\n", 1)[0].split()[1])


async def test_a_chunked_form_without_a_length_is_bounded(served: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"token="
        for _ in range(64):
            yield b"A" * 1024

    response = await served.client.post(
        "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc",
        content=chunks(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "content-length" not in response.request.headers  # it really went chunked
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("path", "size"),
    [
        ("/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc", 17 * 1024),
        ("/zendesk/panels", 17 * 1024),
        ("/commercetools/events", 2 * 1024 * 1024),
    ],
)
async def test_oversized_bodies_are_413_everywhere(served: Served, path: str, size: int) -> None:
    headers = served.auth()
    if path.startswith("/commercetools"):
        headers = {"Authorization": f"Bearer {EVENTS_SECRET}"}
    kind = "application/x-www-form-urlencoded" if "sidebar" in path else "application/json"
    response = await served.client.post(
        path, content=b" " * size, headers={**headers, "Content-Type": kind}
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("sent", [b"", b'{"emails": '])
async def test_a_body_that_never_finishes_is_cut_off_with_408(served: Served, sent: bytes) -> None:
    head = (
        "POST /zendesk/panels HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {served.session}\r\nContent-Length: 200\r\n\r\n"
    ).encode()
    answer = await served.raw(head + sent)
    assert status_of(answer) == 408
    assert b"request_timeout" in answer


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"emails": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"emails": ["\\ud800@example.com"]}',
        b'{"order_number": "\\udfff"}',
        b'{"\\ud83d": 1}',
    ],
)
async def test_hostile_json_in_panels_is_a_400(served: Served, body: bytes) -> None:
    response = await served.client.post(
        "/zendesk/panels",
        content=body,
        headers={**served.auth(), "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 413), response.text
    assert response.json()["error"]["status"] == response.status_code


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 50_000 + b"]" * 50_000,
        b'{"notificationType": "Message", "id": "\\ud800", "type": "OrderCreated",'
        b' "resource": {"typeId": "order", "id": "o-1"}}',
        b'{"notificationType": "Message", "id": "m-9", "type": "OrderCreated",'
        b' "resource": {"typeId": "order", "id": "\\udc00"}}',
    ],
)
async def test_hostile_json_in_events_is_a_400(served: Served, body: bytes) -> None:
    response = await served.client.post(
        "/commercetools/events",
        content=body,
        headers={"Authorization": f"Bearer {EVENTS_SECRET}", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


async def test_pages_panels_and_errors_carry_csp_and_nosniff(
    served: Served, harness: Harness
) -> None:
    anna = harness.demo.customers["anna-schmidt"]
    answers = {
        "sidebar page": await served.client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc",
            data={"token": "not-a-token"},
            headers={"Accept": "text/html"},
        ),
        "panels": await served.client.post(
            "/zendesk/panels", json={"emails": [anna.email]}, headers=served.auth()
        ),
        "html error": await served.client.get("/zendesk/sidebar", headers={"Accept": "text/html"}),
        "json error": await served.client.get("/nowhere"),
    }
    assert answers["panels"].status_code == 200
    assert answers["html error"].status_code == 401
    for name, response in answers.items():
        assert response.headers.get("x-content-type-options") == "nosniff", name
        csp = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in csp and "frame-ancestors https://" in csp, name
        assert "'unsafe-inline'" not in csp, name


async def test_lookups_are_limited_per_session_and_per_agent(
    harness: Harness, zendesk: DemoZendesk
) -> None:
    settings = demo_settings(harness, zendesk, lookups_per_session=3, lookups_per_agent=5)
    context = {"order_number": "DE-1001"}
    async with app_client(create_app(settings), raise_errors=True) as client:
        first = await session_of(client, zendesk)
        answers = [(await timed_panels(client, first, **context))[0] for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        limited = answers[-1]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["code"] == "too_many_requests"
        # The same agent in another tab: a fresh session, but the agent's count goes on.
        second = await session_of(client, zendesk)
        more = [(await timed_panels(client, second, **context))[0] for _ in range(3)]
        assert [a.status_code for a in more] == [200, 200, 429]


async def test_readiness_answers_in_time_and_stays_ready_while_commercetools_hangs(
    harness: Harness, zendesk: DemoZendesk, proxy: HoldingProxy
) -> None:
    from commerce_context.health import CHECK_TIMEOUT

    settings = hung_settings(harness, zendesk, proxy.url)
    async with app_client(create_app(settings), raise_errors=True) as client:
        assert (await client.get("/readyz")).json()["checks"]["commercetools"] == "ok"
        proxy.hold = True
        try:
            started = time.monotonic()
            ready = await client.get("/readyz")
            upstream = await client.get("/healthz/upstream")
            elapsed = time.monotonic() - started
        finally:
            proxy.hold = False
    assert elapsed < 2 * CHECK_TIMEOUT + 2
    assert ready.status_code == 200
    assert ready.json()["checks"]["commercetools"] != "ok"
    assert upstream.status_code == 503


class Slow(httpx.AsyncHTTPTransport):
    """The real network to the emulator, each API call answered `delay` seconds late."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.api_calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/oauth/token":
            self.api_calls += 1
            await asyncio.sleep(self.delay)
        return await super().handle_async_request(request)


async def test_a_late_answer_still_fills_the_cache_for_the_next_view(
    harness: Harness, zendesk: DemoZendesk
) -> None:
    settings = demo_settings(harness, zendesk, view_budget=0.3)
    slow = Slow(delay=1.5)
    async with (
        httpx.AsyncClient(transport=slow) as http,
        app_client(create_app(settings, http=http), raise_errors=True) as client,
    ):
        session = await session_of(client, zendesk)
        first, elapsed = await timed_panels(client, session, order_number="UK-2002")
        assert first.status_code == 503 and elapsed < 0.3 + 2  # the budget, not the upstream
        assert slow.api_calls == 1
        # The flight was not abandoned: once it lands, the view is a cache hit.
        for _ in range(100):  # bounded wait for the late answer (1.5 s)
            await asyncio.sleep(0.05)
            second, _ = await timed_panels(client, session, order_number="UK-2002")
            if second.status_code == 200:
                break
        assert second.status_code == 200, second.text
        assert 'data-testid="stale"' not in second.text
    assert slow.api_calls == 1  # the late answer was the only upstream call
