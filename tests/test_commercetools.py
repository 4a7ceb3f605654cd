"""The commercetools client's transport behaviour, with a fake upstream injected as a transport.

The fake answers the way NOTES.md documents the real API (token response, error bodies, 409
ConcurrentModification with currentVersion); the same client is run against the emulator in
test_integration.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from commerce_context import correlation, queries, views
from commerce_context.commercetools import CommercetoolsClient, budget
from commerce_context.exceptions import (
    ConcurrentModification,
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from commerce_context.settings import Settings
from tests.openapi import assert_valid

API = "https://api.europe-west1.gcp.commercetools.com"
AUTH = "https://auth.europe-west1.gcp.commercetools.com"

Handler = Callable[[httpx.Request], httpx.Response]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "ct_project_key": "proj",
        "ct_client_id": "client-id",
        "ct_client_secret": "not-a-real-secret",
        "ct_region": "europe-west1.gcp",
        "ct_max_retries": 3,
        "ct_backoff_base": 0.01,
        "ct_backoff_max": 1.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


class Upstream:
    """A scripted commercetools: token endpoint plus a queue of API answers."""

    def __init__(self, *answers: httpx.Response | Exception, expires_in: int = 172800) -> None:
        self.answers = list(answers)
        self.expires_in = expires_in
        self.requests: list[httpx.Request] = []
        self.token_requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            self.token_requests.append(request)
            self.tokens_issued += 1
            return httpx.Response(
                200,
                json={
                    "access_token": f"token-{self.tokens_issued}",
                    "token_type": "Bearer",
                    "expires_in": self.expires_in,
                    "scope": "view_orders:proj",
                },
            )
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else graphql_ok()
        if isinstance(answer, Exception):
            raise answer
        return answer


def graphql_ok(data: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.Response(200, json={"data": data if data is not None else {"order": None}})


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def client_for(
    upstream: Handler, sleeps: Sleeps | None = None, **overrides: Any
) -> CommercetoolsClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    return CommercetoolsClient(make_settings(**overrides), http, sleep=sleeps or Sleeps())


def order_document() -> queries.Document:
    return queries.compose([queries.order_by_number("DE-1001", [views.ORDER_SUMMARY])])


# -- tokens ---------------------------------------------------------------------------------------


async def test_token_request_uses_basic_auth_form_body_and_scopes() -> None:
    upstream = Upstream()
    client = client_for(upstream)
    await client.fetch(order_document())
    token_request = upstream.token_requests[0]
    assert str(token_request.url) == f"{AUTH}/oauth/token"
    assert token_request.headers["authorization"].startswith("Basic ")
    form = dict(x.split("=", 1) for x in token_request.content.decode().split("&"))
    assert form["grant_type"] == "client_credentials"
    assert "view_orders%3Aproj" in form["scope"]
    assert upstream.requests[0].headers["authorization"] == "Bearer token-1"


async def test_token_is_cached_and_refreshed_before_expiry() -> None:
    now = [1000.0]
    upstream = Upstream(expires_in=3600)
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    client = CommercetoolsClient(
        make_settings(ct_token_refresh_margin=300), http, sleep=Sleeps(), clock=lambda: now[0]
    )
    await client.fetch(order_document())
    await client.fetch(order_document())
    assert upstream.tokens_issued == 1
    now[0] += 3600 - 301  # still outside the refresh margin
    await client.fetch(order_document())
    assert upstream.tokens_issued == 1
    now[0] += 2  # inside the margin: refresh before it expires
    await client.fetch(order_document())
    assert upstream.tokens_issued == 2
    assert upstream.requests[-1].headers["authorization"] == "Bearer token-2"


async def test_concurrent_refreshes_collapse_into_one() -> None:
    class SlowTokens(Upstream):
        async def handle(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == "/oauth/token":
                await asyncio.sleep(0.05)
            return self(request)

    upstream = SlowTokens()
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream.handle))
    client = CommercetoolsClient(make_settings(), http, sleep=Sleeps())
    await asyncio.gather(*(client.fetch(order_document()) for _ in range(20)))
    assert upstream.tokens_issued == 1
    assert len(upstream.requests) == 20


async def test_rejected_credentials_raise_a_readable_error_without_the_secret() -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            401,
            json={
                "statusCode": 401,
                "message": "Please provide valid client credentials",
                "error": "invalid_client",
            },
        )

    client = client_for(upstream)
    with pytest.raises(UpstreamAuthError) as caught:
        await client.fetch(order_document())
    assert "invalid_client" in caught.value.message
    assert "not-a-real-secret" not in caught.value.message
    assert "not-a-real-secret" not in repr(client)


async def test_a_revoked_token_is_replaced_once() -> None:
    revoked = httpx.Response(
        401,
        json={
            "statusCode": 401,
            "message": "invalid_token",
            "errors": [{"code": "invalid_token", "message": "invalid_token"}],
        },
    )
    upstream = Upstream(revoked, graphql_ok())
    client = client_for(upstream)
    await client.fetch(order_document())
    assert upstream.tokens_issued == 2
    assert [r.headers["authorization"] for r in upstream.requests] == [
        "Bearer token-1",
        "Bearer token-2",
    ]


# -- retries --------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 502, 503, 504])
async def test_transient_statuses_are_retried_with_backoff(status: int) -> None:
    upstream = Upstream(httpx.Response(status), httpx.Response(status), graphql_ok())
    sleeps = Sleeps()
    client = client_for(upstream, sleeps)
    assert await client.fetch(order_document()) == {"order": None}
    assert len(upstream.requests) == 3
    assert len(sleeps.calls) == 2
    assert all(0 <= s <= 1.0 for s in sleeps.calls)


@pytest.mark.parametrize(
    "failure", [httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ConnectError("no")]
)
async def test_timeouts_and_connection_errors_are_retried(failure: Exception) -> None:
    upstream = Upstream(failure, graphql_ok())
    client = client_for(upstream)
    await client.fetch(order_document())
    assert len(upstream.requests) == 2


async def test_retry_after_is_honoured() -> None:
    upstream = Upstream(httpx.Response(429, headers={"Retry-After": "0.5"}), graphql_ok())
    sleeps = Sleeps()
    client = client_for(upstream, sleeps)
    await client.fetch(order_document())
    assert sleeps.calls == [0.5]


@pytest.mark.parametrize(("status", "throttled"), [(429, True), (503, False)])
async def test_giving_up_on_429_without_retry_after_says_throttled(
    status: int, throttled: bool
) -> None:
    """The queue pauses a destination for every worker on a 429, Retry-After or not."""
    upstream = Upstream(*[httpx.Response(status)] * 4)
    client = client_for(upstream)
    with pytest.raises(UpstreamUnavailable) as raised:
        await client.fetch(order_document())
    assert raised.value.retry_after is None
    assert raised.value.throttled is throttled


@pytest.mark.parametrize("header", ["0", "-3", "Wed, 21 Oct 2015 07:28:00 GMT", "nan"])
async def test_a_retry_after_of_zero_or_in_the_past_keeps_the_backoff(header: str) -> None:
    upstream = Upstream(*[httpx.Response(503, headers={"Retry-After": header})] * 3, graphql_ok())
    sleeps = Sleeps()
    # A base so large that even the smallest jittered backoff is clearly above zero.
    client = client_for(upstream, sleeps, ct_backoff_base=1.0, ct_backoff_max=1.0)
    await client.fetch(order_document())
    assert len(sleeps.calls) == 3
    assert all(s > 0 for s in sleeps.calls)


async def test_no_backoff_is_slept_past_the_budget() -> None:
    upstream = Upstream(*[httpx.Response(503, headers={"Retry-After": "1"})] * 5)
    sleeps = Sleeps()
    client = client_for(upstream, sleeps, ct_max_retries=4)
    with budget(0.5), pytest.raises(UpstreamUnavailable):
        await client.fetch(order_document())
    assert sleeps.calls == []  # waiting 1 s would end past the 0.5 s budget
    assert len(upstream.requests) == 1


async def test_no_attempt_starts_once_the_budget_is_spent() -> None:
    upstream = Upstream()
    client = client_for(upstream)
    with budget(0.0), pytest.raises(UpstreamUnavailable):
        await client.fetch(order_document())
    assert upstream.requests == [] and upstream.token_requests == []


async def test_a_long_retry_after_is_raised_for_the_caller_to_defer() -> None:
    upstream = Upstream(httpx.Response(503, headers={"Retry-After": "120"}))
    sleeps = Sleeps()
    client = client_for(upstream, sleeps)
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.fetch(order_document())
    assert caught.value.retry_after == 120
    assert sleeps.calls == []
    assert len(upstream.requests) == 1


async def test_retries_are_bounded_and_end_in_upstream_unavailable() -> None:
    upstream = Upstream(*[httpx.Response(503) for _ in range(10)])
    sleeps = Sleeps()
    client = client_for(upstream, sleeps, ct_max_retries=2)
    with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
        await client.fetch(order_document())
    assert len(upstream.requests) == 3
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize("status", [400, 403, 500])
async def test_other_errors_are_not_retried(status: int) -> None:
    body = {
        "statusCode": status,
        "message": "no",
        "errors": [{"code": "InvalidInput", "message": "no"}],
    }
    upstream = Upstream(httpx.Response(status, json=body))
    client = client_for(upstream)
    with pytest.raises(UpstreamRejected) as caught:
        await client.fetch(order_document())
    assert caught.value.status == status
    assert len(upstream.requests) == 1


async def test_graphql_errors_become_upstream_errors() -> None:
    body = {
        "errors": [
            {"message": "Too complex", "extensions": {"code": "QueryComplexityLimitExceeded"}}
        ]
    }
    client = client_for(Upstream(httpx.Response(200, json=body)))
    with pytest.raises(UpstreamError, match="QueryComplexityLimitExceeded"):
        await client.fetch(order_document())


async def test_a_body_that_is_not_json_is_an_upstream_error() -> None:
    client = client_for(Upstream(httpx.Response(200, text="<html>proxy error</html>")))
    with pytest.raises(UpstreamError, match="not JSON"):
        await client.fetch(order_document())


# -- correlation ----------------------------------------------------------------------------------


async def test_every_call_carries_the_correlation_id(caplog: pytest.LogCaptureFixture) -> None:
    upstream = Upstream(httpx.Response(503), graphql_ok())
    client = client_for(upstream)
    correlation.use("cc-test-correlation-1")
    caplog.set_level(logging.INFO, logger="commerce_context")
    await client.fetch(order_document())
    ids = {r.headers["x-correlation-id"] for r in [*upstream.token_requests, *upstream.requests]}
    assert ids == {"cc-test-correlation-1"}
    assert "POST /proj/graphql -> 503" in caplog.text
    # Logged paths only: never query strings, tokens or variables.
    assert "DE-1001" not in caplog.text and "token-1" not in caplog.text


async def test_graphql_request_body_is_the_composed_document() -> None:
    upstream = Upstream()
    client = client_for(upstream)
    document = order_document()
    await client.fetch(document)
    sent = json.loads(upstream.requests[0].content)
    assert sent == document.payload()
    assert str(upstream.requests[0].url) == f"{API}/proj/graphql"


# -- updates --------------------------------------------------------------------------------------

SET_STATUS = [{"action": "setCustomField", "name": "supportStatus", "value": "open"}]


def conflict(current: int) -> httpx.Response:
    message = f"Object o-1 has a different version than expected. Expected: 1 - Actual: {current}."
    return httpx.Response(
        409,
        json={
            "statusCode": 409,
            "message": message,
            "errors": [
                {"code": "ConcurrentModification", "message": message, "currentVersion": current}
            ],
        },
    )


async def test_update_sends_version_and_actions() -> None:
    upstream = Upstream(httpx.Response(200, json={"id": "o-1", "version": 2}))
    client = client_for(upstream)
    result = await client.update("orders", "o-1", 1, SET_STATUS)
    assert result == {"id": "o-1", "version": 2}
    body = json.loads(upstream.requests[0].content)
    assert body == {"version": 1, "actions": SET_STATUS}
    assert_valid("OrderUpdate", body)
    assert str(upstream.requests[0].url) == f"{API}/proj/orders/o-1"


async def test_update_retries_a_conflict_with_the_current_version() -> None:
    upstream = Upstream(conflict(3), conflict(4), httpx.Response(200, json={"version": 5}))
    client = client_for(upstream)
    await client.update("orders", "o-1", 1, SET_STATUS)
    versions = [json.loads(r.content)["version"] for r in upstream.requests]
    assert versions == [1, 3, 4]


async def test_update_conflicts_are_bounded() -> None:
    upstream = Upstream(*[conflict(v) for v in range(2, 10)])
    client = client_for(upstream, ct_conflict_retries=2)
    with pytest.raises(ConcurrentModification) as caught:
        await client.update("orders", "o-1", 1, SET_STATUS)
    assert caught.value.current_version == 4
    assert len(upstream.requests) == 3


async def test_non_idempotent_updates_return_the_conflict_at_once() -> None:
    upstream = Upstream(conflict(7))
    client = client_for(upstream)
    with pytest.raises(ConcurrentModification) as caught:
        await client.update(
            "orders",
            "o-1",
            1,
            [{"action": "changeOrderState", "orderState": "Cancelled"}],
            idempotent=False,
        )
    assert caught.value.current_version == 7
    assert len(upstream.requests) == 1


async def test_update_of_a_missing_resource_is_not_found() -> None:
    body = {
        "statusCode": 404,
        "message": "not found",
        "errors": [{"code": "ResourceNotFound", "message": "not found"}],
    }
    client = client_for(Upstream(httpx.Response(404, json=body)))
    with pytest.raises(UpstreamNotFound, match="ResourceNotFound"):
        await client.update("orders", "missing", 1, SET_STATUS)
