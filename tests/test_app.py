"""The service's own endpoints and its one error shape, commercetools faked at the transport."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from bs4 import BeautifulSoup
from starlette.routing import Route

from commerce_context.app import create_app
from tests.asgi import app_client
from tests.test_commercetools import Upstream, make_settings


def service(upstream: Any, **kwargs: Any) -> Any:
    http = httpx.AsyncClient(transport=httpx.MockTransport(upstream))
    return app_client(create_app(make_settings(ct_max_retries=0), http=http, **kwargs))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with service(Upstream()) as c:
        yield c


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"status", "code", "message", "correlation_id"}
    assert error["status"] == status and error["code"] == code
    assert error["message"]
    assert error["correlation_id"] == response.headers["x-correlation-id"]
    return error


async def test_healthz(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_commercetools_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"config": "ok", "commercetools": "ok", "cache": "ok"}


async def test_a_commercetools_outage_keeps_the_instance_ready_and_is_reported() -> None:
    async with service(Upstream(*[httpx.Response(503)] * 2)) as client:
        ready = await client.get("/readyz")
        upstream = await client.get("/healthz/upstream")
    # Stale serving covers the outage: every replica stays in rotation.
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"config": "ok", "cache": "ok", "commercetools": "upstream_unavailable"},
    }
    assert upstream.status_code == 503 and int(upstream.headers["retry-after"]) >= 1
    assert upstream.json()["checks"] == {"commercetools": "upstream_unavailable"}


async def test_upstream_health_when_commercetools_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz/upstream")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"commercetools": "ok"}}


async def test_unknown_path_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.get("/nope"), 404, "not_found")


async def test_wrong_method_uses_the_error_shape(client: httpx.AsyncClient) -> None:
    assert_error_shape(await client.delete("/healthz"), 405, "method_not_allowed")


async def test_demo_pages_are_not_mounted_outside_the_demo(client: httpx.AsyncClient) -> None:
    for path in ("/", "/demo/zendesk", "/demo/zendesk/token"):
        error = assert_error_shape(await client.get(path), 404, "not_found")
        assert error["message"] == "Not Found"  # no such route, not a page that refuses


async def test_browsers_get_an_html_error_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/nope", headers={"Accept": "text/html"})
    assert response.status_code == 404
    page = BeautifulSoup(response.text, "html.parser")
    assert page.h1 is not None and page.h1.text == "404"
    assert response.headers["x-correlation-id"] in page.text


async def test_incoming_correlation_id_is_kept_and_bad_ones_replaced(
    client: httpx.AsyncClient,
) -> None:
    kept = await client.get("/healthz", headers={"X-Correlation-ID": "zendesk-req-12345"})
    assert kept.headers["x-correlation-id"] == "zendesk-req-12345"
    replaced = await client.get("/healthz", headers={"X-Correlation-ID": "<script>"})
    assert replaced.headers["x-correlation-id"].startswith("cc-")


async def test_unexpected_errors_answer_500_without_a_traceback() -> None:
    app = create_app(
        make_settings(), http=httpx.AsyncClient(transport=httpx.MockTransport(Upstream()))
    )

    async def boom(request: Any) -> Any:
        raise RuntimeError("secret internals: not-a-real-secret")

    app.router.routes.append(Route("/boom", boom))
    async with app_client(app) as client:
        response = await client.get("/boom")
        html = await client.get("/boom", headers={"Accept": "text/html"})
    error = assert_error_shape(response, 500, "internal_error")
    assert "secret internals" not in response.text and "Traceback" not in response.text
    assert error["message"] == "Something went wrong on our side."
    assert html.status_code == 500 and "secret internals" not in html.text
    assert error["correlation_id"] in html.text  # the page renders, with its reference
    for answer in (response, html):
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in answer.headers["content-security-policy"]


async def test_readyz_when_redis_is_down() -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Upstream()))
    settings = make_settings(cache_backend="redis", redis_url="redis://127.0.0.1:1/0")
    async with app_client(create_app(settings, http=http)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503 and int(response.headers["retry-after"]) >= 1
    checks = response.json()["checks"]
    assert checks == {"config": "ok", "cache": "cache_unavailable", "commercetools": "ok"}


EVENTS_SECRET = "events-secret-for-tests-0123456789"


def payment_event(event_id: str = "m-1") -> dict[str, Any]:
    return {
        "notificationType": "Message",
        "id": event_id,
        "type": "PaymentTransactionAdded",
        "resource": {"typeId": "payment", "id": "pay-1"},
        "resourceVersion": 2,
    }


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [
        (
            httpx.Response(400, json={"errors": [{"code": "InvalidInput", "message": "x"}]}),
            502,
            "upstream_rejected",
        ),
        (httpx.Response(200, text="<html>upstream internals</html>"), 502, "upstream_error"),
        (httpx.Response(503, text="overloaded"), 503, "upstream_unavailable"),
    ],
)
async def test_5xx_answers_say_nothing_the_upstream_said(
    answer: httpx.Response, status: int, code: str
) -> None:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Upstream(answer)))
    settings = make_settings(ct_max_retries=0, events_secret=EVENTS_SECRET)
    async with app_client(create_app(settings, http=http)) as client:
        response = await client.post(
            "/commercetools/events",
            json=payment_event(),
            headers={"Authorization": f"Bearer {EVENTS_SECRET}"},
        )
    error = assert_error_shape(response, status, code)
    for upstream_text in ("InvalidInput", "HTTP", "not JSON", "upstream internals"):
        assert upstream_text not in error["message"]
    assert error["correlation_id"]  # the reference an operator finds the log line by
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1


async def test_start_up_freezes_the_long_lived_heap_once_per_process() -> None:
    import gc

    async with service(Upstream()) as c:
        assert (await c.get("/healthz")).status_code == 200
        frozen = gc.get_freeze_count()
        assert frozen > 10_000  # the modules, templates and clients start-up made
    async with service(Upstream()) as c:  # a second app in this process freezes nothing more
        assert (await c.get("/healthz")).status_code == 200
        # (Frozen objects still die by reference count, so the count may only go down.)
        assert gc.get_freeze_count() <= frozen
