"""The Zendesk API client against the fake Zendesk, over real HTTP."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context import correlation
from commerce_context.emulator.zendesk import FakeZendesk, serve_fake_zendesk
from commerce_context.exceptions import (
    ConcurrentModification,
    ConfigError,
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from commerce_context.settings import Settings
from commerce_context.zendesk import ZendeskClient, sanitise
from tests.fakes import Sent, offline_settings

EMAIL, TOKEN = "sync@example.com", "not-a-real-token-123"


def _settings(url: str, **overrides: Any) -> Settings:
    return offline_settings(
        **{
            "zendesk_api_url": url,
            "zendesk_api_email": EMAIL,
            "zendesk_api_token": TOKEN,
            "zendesk_timeout": 2.0,
            "zendesk_fallback_backoff": 42.0,
            **overrides,
        }
    )


@pytest_asyncio.fixture
async def account() -> AsyncIterator[tuple[FakeZendesk, str]]:
    async with serve_fake_zendesk(FakeZendesk(email=EMAIL, api_token=TOKEN)) as served:
        yield served


@pytest_asyncio.fixture
async def client(
    account: tuple[FakeZendesk, str], clean_environment: None
) -> AsyncIterator[tuple[ZendeskClient, FakeZendesk, Sent]]:
    fake, url = account
    sent = Sent()
    async with httpx.AsyncClient(event_hooks={"request": [sent]}) as http:
        yield ZendeskClient(_settings(url), http), fake, sent


async def _wait(client: ZendeskClient, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        job = await client.job_status(job_id)
        if job["status"] in ("completed", "failed"):
            return job
        await asyncio.sleep(0.01)
    raise AssertionError("job never finished")


async def test_api_token_auth_and_correlation_id(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, fake, sent = client
    fake.add_user("Jane", "jane@example.com", external_id="ct-1")
    correlation.use("cc-test-correlation-1")
    users = await zendesk.search_users(external_id="ct-1")
    assert [u["email"] for u in users] == ["jane@example.com"]
    request = sent.requests[-1]
    expected = base64.b64encode(f"{EMAIL}/token:{TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected}"
    assert request.headers["X-Correlation-ID"] == "cc-test-correlation-1"
    assert zendesk.rate_limit.limit == 700 and zendesk.rate_limit.remaining == 699


async def test_oauth_bearer(account: tuple[FakeZendesk, str], clean_environment: None) -> None:
    fake, url = account
    settings = _settings(
        url, zendesk_api_email=None, zendesk_api_token=None, zendesk_oauth_token="fake-oauth-token"
    )
    async with httpx.AsyncClient() as http:
        zendesk = ZendeskClient(settings, http)
        ticket = fake.add_ticket(subject="Where is my parcel")
        assert (await zendesk.get_ticket(ticket["id"]))["subject"] == "Where is my parcel"


async def test_wrong_credentials_raise_auth_error_without_the_token(
    account: tuple[FakeZendesk, str], clean_environment: None
) -> None:
    _, url = account
    async with httpx.AsyncClient() as http:
        zendesk = ZendeskClient(_settings(url, zendesk_api_token="wrong-token-456"), http)
        with pytest.raises(UpstreamAuthError) as caught:
            await zendesk.get_ticket(1)
    assert "wrong-token-456" not in str(caught.value)
    assert "wrong-token-456" not in repr(zendesk)


async def test_bulk_upsert_and_job_status(client: tuple[ZendeskClient, FakeZendesk, Sent]) -> None:
    zendesk, fake, _ = client
    job = await zendesk.create_or_update_many_users(
        [
            {"name": "A", "email": "a@example.com", "external_id": "ct-a"},
            {"name": "B", "email": "b@example.com", "external_id": "ct-b"},
        ]
    )
    done = await _wait(zendesk, job["id"])
    assert [r["status"] for r in done["results"]] == ["Created", "Created"]
    shown = await zendesk.show_many_users(external_ids=["ct-a", "ct-b"], include_identities=True)
    assert sorted(u["external_id"] for u in shown["users"]) == ["ct-a", "ct-b"]
    assert sorted(i["value"] for i in shown["identities"]) == ["a@example.com", "b@example.com"]
    user_id = fake.user_by_external_id("ct-a")["id"]  # type: ignore[index]
    identities = await zendesk.user_identities(user_id)
    assert [i["value"] for i in identities] == ["a@example.com"]
    assert [u["id"] for u in await zendesk.search_users(query="email:a@example.com")] == [user_id]


async def test_batch_size_is_enforced_before_sending(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, _, sent = client
    with pytest.raises(ValueError, match="at most 100"):
        await zendesk.create_or_update_many_users([{"name": str(i)} for i in range(101)])
    assert sent.requests == []


async def test_organization_upsert(client: tuple[ZendeskClient, FakeZendesk, Sent]) -> None:
    zendesk, _, _ = client
    created = await zendesk.create_or_update_organization({"name": "Acme", "external_id": "bu-1"})
    updated = await zendesk.create_or_update_organization(
        {"name": "Acme AG", "external_id": "bu-1"}
    )
    assert created["id"] == updated["id"] and updated["name"] == "Acme AG"


async def test_ticket_update_with_safe_update(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, fake, _ = client
    ticket = fake.add_ticket(custom_fields={501: "Open"})
    read = await zendesk.get_ticket(ticket["id"])
    updated = await zendesk.update_ticket(
        ticket["id"], custom_fields={501: "Shipped"}, updated_stamp=read["updated_at"]
    )
    assert {"id": 501, "value": "Shipped"} in updated["custom_fields"]
    # The stamp read before the update is stale now: Zendesk answers 409.
    with pytest.raises(ConcurrentModification):
        await zendesk.update_ticket(
            ticket["id"], custom_fields={501: "Delivered"}, updated_stamp=read["updated_at"]
        )
    assert fake.field_value(ticket["id"], 501) == "Shipped"


async def test_search_tickets_follows_pages(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, fake, sent = client
    ids = {fake.add_ticket(custom_fields={9: "10042"})["id"] for _ in range(150)}
    fake.add_ticket(custom_fields={9: "other"})
    found = await zendesk.search_tickets("custom_field_9:10042")
    assert {t["id"] for t in found} == ids
    assert len(sent.requests) == 2  # two pages of at most 100


async def test_not_found_and_rejected(client: tuple[ZendeskClient, FakeZendesk, Sent]) -> None:
    zendesk, fake, _ = client
    with pytest.raises(UpstreamNotFound):
        await zendesk.get_ticket(987654)
    closed = fake.add_ticket(status="closed")
    with pytest.raises(UpstreamRejected) as caught:
        await zendesk.update_ticket(closed["id"], custom_fields={1: "x"})
    assert caught.value.status == 422 and caught.value.errors == ["RecordInvalid"]


async def test_429_with_retry_after_pauses_without_sending_more(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, fake, sent = client
    fake.inject("429", seconds=30)
    with pytest.raises(UpstreamUnavailable) as caught:
        await zendesk.get_ticket(1)
    assert caught.value.retry_after == 30
    with pytest.raises(UpstreamUnavailable) as again:
        await zendesk.get_ticket(1)
    assert again.value.retry_after is not None and 0 < again.value.retry_after <= 30
    assert len(sent.requests) == 1 and zendesk.throttled == 1


async def test_429_without_retry_after_uses_the_reset_header_then_the_fallback(
    account: tuple[FakeZendesk, str], clean_environment: None
) -> None:
    fake, url = account
    async with httpx.AsyncClient() as http:
        zendesk = ZendeskClient(_settings(url), http)
        fake.inject("429-no-retry-after")
        with pytest.raises(UpstreamUnavailable) as caught:
            await zendesk.get_ticket(1)
        reset = zendesk.rate_limit.reset
        assert reset is not None and caught.value.retry_after == reset

        bare = ZendeskClient(_settings(url), http)
        fake.inject("429-bare")
        with pytest.raises(UpstreamUnavailable) as caught:
            await bare.get_ticket(1)
        assert caught.value.retry_after == 42.0  # CC_ZENDESK_FALLBACK_BACKOFF


async def test_exhausted_budget_stops_calls_until_the_window_resets(
    client: tuple[ZendeskClient, FakeZendesk, Sent],
) -> None:
    zendesk, fake, sent = client
    fake.limit_per_minute = 2
    ticket = fake.add_ticket()
    await zendesk.get_ticket(ticket["id"])
    await zendesk.get_ticket(ticket["id"])  # answered with ratelimit-remaining: 0
    with pytest.raises(UpstreamUnavailable) as caught:
        await zendesk.get_ticket(ticket["id"])
    assert caught.value.retry_after is not None and caught.value.retry_after > 0
    assert len(sent.requests) == 2 and fake.throttled == 0  # never earned a 429


async def test_5xx_and_timeouts_are_unavailable(
    account: tuple[FakeZendesk, str], clean_environment: None
) -> None:
    fake, url = account
    async with httpx.AsyncClient() as http:
        zendesk = ZendeskClient(_settings(url, zendesk_timeout=0.2), http)
        fake.inject("503")
        with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
            await zendesk.get_ticket(1)
        fake.inject("latency", seconds=1.0)
        with pytest.raises(UpstreamUnavailable, match="in time"):
            await zendesk.get_ticket(1)


def test_sanitise_masks_emails_and_phone_numbers() -> None:
    text = "Email: jane.doe+vip@example.com is already being used by +44 20 7946 0958"
    masked = sanitise(text)
    assert "jane" not in masked and "7946" not in masked
    assert masked == "Email: <email> is already being used by <number>"
    assert len(sanitise("x" * 1000)) == 200


def test_settings_need_a_complete_credential(clean_environment: None) -> None:
    with pytest.raises(ConfigError, match="CC_ZENDESK_API_TOKEN"):
        _settings("http://127.0.0.1:1", zendesk_api_token=None)
    with pytest.raises(ConfigError, match="not both"):
        _settings("http://127.0.0.1:1", zendesk_oauth_token="x")
    with pytest.raises(ConfigError, match="which account"):
        _settings(None)  # type: ignore[arg-type]
    settings = _settings("http://127.0.0.1:1", zendesk_api_email=None, zendesk_api_token=None)
    assert not settings.zendesk_api_enabled
    with pytest.raises(ConfigError):
        ZendeskClient(settings, httpx.AsyncClient())
