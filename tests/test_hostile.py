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
