"""The Tidio OpenAPI client against the fake Tidio, over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context import correlation
from commerce_context.emulator.tidio import FakeTidio, serve_fake_tidio
from commerce_context.exceptions import (
    ConfigError,
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from commerce_context.settings import Settings
from commerce_context.tidio_api import TidioClient
from tests.fakes import Sent, offline_settings

CLIENT_ID, CLIENT_SECRET = "ci_test0client", "cs_test0secret0value"


def _settings(url: str, **overrides: Any) -> Settings:
    return offline_settings(
        **{
            "tidio_api_url": url,
            "tidio_client_id": CLIENT_ID,
            "tidio_client_secret": CLIENT_SECRET,
            "tidio_timeout": 2.0,
            "tidio_fallback_backoff": 42.0,
            **overrides,
        }
    )


@pytest_asyncio.fixture
async def client(clean_environment: None) -> AsyncIterator[tuple[TidioClient, FakeTidio, Sent]]:
    fake = FakeTidio(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, limit_per_minute=1000)
    fake.define("cart_total", "number")
    async with serve_fake_tidio(fake) as (_, url):
        sent = Sent()
        async with httpx.AsyncClient(event_hooks={"request": [sent]}) as http:
            yield TidioClient(_settings(url), http), fake, sent


async def test_headers_on_every_call(client: tuple[TidioClient, FakeTidio, Sent]) -> None:
    tidio, _, sent = client
    correlation.use("corr-12345")  # this test's own task context
    properties = await tidio.contact_properties()
    assert properties["cart_total"] == "number"
    request = sent.requests[-1]
    assert request.headers["X-Tidio-Openapi-Client-Id"] == CLIENT_ID
    assert request.headers["X-Tidio-Openapi-Client-Secret"] == CLIENT_SECRET
    assert request.headers["Accept"] == "application/json; version=1"
    assert request.headers["X-Correlation-ID"] == "corr-12345"
    assert tidio.rate_limit.limit == 1000 and tidio.rate_limit.remaining == 999
    assert CLIENT_SECRET not in repr(tidio)


async def test_update_contact_and_batch(client: tuple[TidioClient, FakeTidio, Sent]) -> None:
    tidio, fake, _ = client
    ids = [fake.add_contact(email=f"c{i}@example.com") for i in range(3)]
    await tidio.update_contact(ids[0], {"properties": [{"name": "cart_total", "value": "5"}]})
    assert fake.property(ids[0], "cart_total") == "5"
    await tidio.update_contacts(
        [{"id": c, "properties": [{"name": "cart_total", "value": "7"}]} for c in ids]
    )
    assert [fake.property(c, "cart_total") for c in ids] == ["7", "7", "7"]
    assert fake.batch_sizes == [3]
    with pytest.raises(ValueError, match="at most 100"):
        await tidio.update_contacts([{"id": ids[0]}] * 101)
    found = await tidio.contacts_by_email("c1@example.com")
    assert [c["id"] for c in found] == [ids[1]]


async def test_validation_error_is_rejected_with_codes(
    client: tuple[TidioClient, FakeTidio, Sent],
) -> None:
    tidio, fake, _ = client
    cid = fake.add_contact(email="jo@example.com")
    with pytest.raises(UpstreamRejected) as caught:
        await tidio.update_contact(cid, {"properties": [{"name": "nope", "value": "x"}]})
    assert caught.value.status == 422
    assert caught.value.errors == ["validation_error"]
    assert "/contacts/{id}" in caught.value.message and cid not in caught.value.message
    with pytest.raises(UpstreamNotFound):
        await tidio.get_contact("a1b4ca4c-1108-4432-b256-1e4cf2bf6f9e")


async def test_429_pauses_with_the_fallback_or_retry_after(
    client: tuple[TidioClient, FakeTidio, Sent],
) -> None:
    tidio, fake, _ = client
    fake.inject("429")
    with pytest.raises(UpstreamUnavailable) as caught:
        await tidio.contact_properties()
    assert caught.value.retry_after == 42.0  # Tidio documents no Retry-After: our fallback
    fake.inject("429-retry-after", seconds=7)
    with pytest.raises(UpstreamUnavailable) as again:
        await tidio.contact_properties()
    assert again.value.retry_after == 7.0
    assert tidio.throttled == 2
    fake.inject("503")
    with pytest.raises(UpstreamUnavailable) as down:
        await tidio.contact_properties()
    assert down.value.retry_after is None


async def test_wrong_credentials_and_configuration(clean_environment: None) -> None:
    async with (
        serve_fake_tidio(FakeTidio(client_id=CLIENT_ID, client_secret="cs_other")) as (_, url),
        httpx.AsyncClient() as http,
    ):
        with pytest.raises(UpstreamAuthError, match="CC_TIDIO_CLIENT_ID"):
            await TidioClient(_settings(url), http).contact_properties()
        unconfigured = _settings(url, tidio_client_id=None, tidio_client_secret=None)
        with pytest.raises(ConfigError):
            TidioClient(unconfigured, http)


async def test_unreachable_is_unavailable(clean_environment: None) -> None:
    async with httpx.AsyncClient() as http:
        tidio = TidioClient(_settings("http://127.0.0.1:9"), http)
        with pytest.raises(UpstreamUnavailable):
            await tidio.contact_properties()
