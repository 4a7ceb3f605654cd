"""GET /metrics: access control, the Prometheus text format, and each family measuring what it
says, against the seeded emulator, the real job database and real HTTP on a metrics port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from starlette.applications import Starlette

from commerce_context import metrics
from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.exceptions import ConfigError, UpstreamUnavailable
from commerce_context.settings import Settings, load_settings
from tests.asgi import app_client
from tests.conftest import Recorder
from tests.engine import reaches
from tests.test_app import assert_error_shape
from tests.test_commercetools import Upstream, make_settings
from tests.test_sidebar import Sidebar

TOKEN = "metrics-" + "m" * 40
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVENTS_SECRET = "events-" + "e" * 40

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return parse(response.text)


def mock_app(**overrides: Any) -> Starlette:
    http = httpx.AsyncClient(transport=httpx.MockTransport(Upstream()))
    settings = make_settings(ct_max_retries=0, **{"metrics_token": TOKEN, **overrides})
    return create_app(settings, http=http)


def mock_service(**overrides: Any) -> Any:
    return app_client(mock_app(**overrides))


# -- access -------------------------------------------------------------------------------------


async def test_metrics_need_the_bearer_token() -> None:
    async with mock_service() as client:
        assert_error_shape(await client.get("/metrics"), 401, "unauthorized")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 48})
        assert_error_shape(wrong, 401, "unauthorized")
        basic = await client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"})
        assert_error_shape(basic, 401, "unauthorized")
        assert TOKEN not in wrong.text
        assert (await client.get("/metrics", headers=AUTH)).status_code == 200


async def test_without_a_token_there_is_no_metrics_route() -> None:
    async with mock_service(metrics_token=None) as client:
        assert_error_shape(await client.get("/metrics", headers=AUTH), 404, "not_found")


def test_metrics_settings_are_checked(clean_environment: None) -> None:
    base = {"ct_project_key": "p", "ct_client_id": "c", "ct_client_secret": "s"}
    base["ct_region"] = "europe-west1.gcp"
    with pytest.raises(ConfigError, match="CC_METRICS_TOKEN"):
        load_settings(_env_file=None, metrics_token="short", **base)
    with pytest.raises(ConfigError, match="CC_METRICS_PORT must differ from CC_PORT"):
        load_settings(_env_file=None, port=9100, metrics_port=9100, **base)
    with pytest.raises(ConfigError, match="CC_LOG_FORMAT"):
        load_settings(_env_file=None, log_format="xml", **base)


# -- requests -------------------------------------------------------------------------------------


async def test_request_latency_is_kept_per_route_template_not_per_path() -> None:
    async with mock_service() as client:
        before = await scrape(client)
        for _ in range(3):
            assert (await client.get("/healthz?token=abc")).status_code == 200
        job = f"job-{uuid.uuid4()}"
        await client.get(f"/zendesk/actions/{job}")
        await client.get(f"/no/such/{uuid.uuid4()}")
        after = await scrape(client)
        text = (await client.get("/metrics", headers=AUTH)).text
    count = "cc_http_request_duration_seconds_count"
    healthz = {"route": "/healthz", "method": "GET", "status": "200"}
    assert value(after, count, **healthz) - value(before, count, **healthz) == 3
    routes = {dict(labels).get("route") for (name, labels) in after if name == count}
    assert "/zendesk/actions/{job_id}" in routes
    assert "unmatched" in routes
    assert job not in text and "token=abc" not in text and "/no/such" not in text
    # Histogram buckets are cumulative and end at +Inf with the count.
    inf = value(after, "cc_http_request_duration_seconds_bucket", **healthz, le="+Inf")
    assert inf == value(after, count, **healthz)


async def test_webhook_deliveries_refused_with_401_are_counted() -> None:
    async with mock_service(events_secret=EVENTS_SECRET) as client:
        before = await scrape(client)
        for secret in ("wrong", ""):
            response = await client.post(
                "/commercetools/events", json={}, headers={"Authorization": f"Bearer {secret}"}
            )
            assert response.status_code == 401
        after = await scrape(client)
    name = "cc_webhook_verification_failures_total"
    assert (
        value(after, name, source="commercetools") - value(before, name, source="commercetools")
        == 2
    )
    assert value(after, name, source="zendesk") == value(before, name, source="zendesk")


# -- state read at scrape time ------------------------------------------------------------------


async def test_queue_depth_age_dead_jobs_and_pauses_come_from_the_job_database() -> None:
    app = mock_app(worker_in_process=False)
    async with app_client(app) as client:
        queue = app.state.metrics.sources.queue
        destination = f"dest-{uuid.uuid4().hex[:8]}"
        for n in range(3):
            await queue.enqueue("noop", {"n": n}, key=f"{destination}-{n}", destination=destination)
        claimed = await queue.claim(1, worker="test", lease=60)
        assert len(claimed) == 1
        await queue.kill(claimed[0], "test: given up")
        await queue.pause(destination, time.time() + 120)
        samples = await scrape(client)
    assert value(samples, "cc_database_up") == 1
    assert value(samples, "cc_job_queue_depth", destination=destination) == 2
    assert value(samples, "cc_jobs_dead", destination=destination) == 1
    assert value(samples, "cc_jobs_running", destination=destination) == 0
    age = value(samples, "cc_job_queue_oldest_age_seconds", destination=destination)
    assert 0 <= age < 120
    assert 100 < value(samples, "cc_rate_limit_pause_seconds", destination=destination) <= 120
    assert value(samples, "cc_rate_limit_strikes", destination=destination) == 1
    # Every configured destination has a series, even before its first job.
    assert ("cc_job_queue_depth", frozenset({("destination", "zendesk:tickets")})) in samples


async def test_the_circuit_breaker_state_is_reported() -> None:
    app = mock_app(breaker_threshold=1)
    async with app_client(app) as client:
        closed = await scrape(client)
        breaker = app.state.metrics.sources.breaker

        async def failing() -> None:
            raise UpstreamUnavailable("test outage")

        with pytest.raises(UpstreamUnavailable):
            await breaker.call(failing)
        opened = await scrape(client)
    assert value(closed, "cc_circuit_breaker_state", state="closed") == 1
    assert value(closed, "cc_circuit_breaker_state", state="open") == 0
    assert value(opened, "cc_circuit_breaker_state", state="open") == 1
    assert value(opened, "cc_circuit_breaker_state", state="closed") == 0


async def test_a_job_run_is_counted_by_kind_destination_and_outcome() -> None:
    app = mock_app(jobs_poll_interval=0.05)
    async with app_client(app) as client:
        queue = app.state.metrics.sources.queue
        before = await scrape(client)
        kind = f"unknown-{uuid.uuid4().hex[:6]}"
        job = await queue.enqueue(kind, {}, key=kind, destination="zendesk")
        # A bounded wait for the in-process worker to settle the job.
        await reaches(queue, job, "dead")
        after = await scrape(client)
    settled = {"kind": kind, "destination": "zendesk", "outcome": "dead"}
    assert value(before, "cc_jobs_settled_total", **settled) == 0
    assert value(after, "cc_jobs_settled_total", **settled) == 1
    assert value(after, "cc_job_duration_seconds_count", kind=kind) == 1


async def test_process_figures_are_included() -> None:
    async with mock_service() as client:
        samples = await scrape(client)
    assert value(samples, "process_resident_memory_bytes") > 0


# -- against the emulator: upstream requests, tokens, cache outcomes ------------------------------


@pytest.fixture(scope="module")
def zendesk() -> DemoZendesk:
    return DemoZendesk.generate()


@pytest_asyncio.fixture(loop_scope="session")
async def live(harness: Harness, zendesk: DemoZendesk) -> AsyncIterator[Sidebar]:
    settings = demo_settings(
        harness, zendesk, metrics_token=TOKEN, lookups_per_session=1000, lookups_per_agent=1000
    )
    # No injected client: the app's own, whose transport counts upstream requests.
    async with app_client(create_app(settings), raise_errors=True) as client:
        yield Sidebar(client, zendesk, Recorder())


@pytest.mark.emulator
async def test_upstream_requests_tokens_and_cache_outcomes(live: Sidebar, harness: Harness) -> None:
    before = await scrape(live.client)
    await live.page(order_number="DE-1002")  # cold: token + one GraphQL document
    middle = await scrape(live.client)
    await live.page(order_number="DE-1002")  # warm: from the cache
    after = await scrape(live.client)

    def delta(a: Samples, b: Samples, name: str, **labels: str) -> float:
        return value(b, name, **labels) - value(a, name, **labels)

    ok = {"destination": "commercetools", "outcome": "ok"}
    assert delta(before, middle, "cc_upstream_requests_total", **ok) >= 1
    assert delta(middle, after, "cc_upstream_requests_total", **ok) == 0
    assert value(after, "cc_token_fetches_total", issuer="commercetools") == 1
    assert delta(before, middle, "cc_commercetools_reads_total") == 1
    assert delta(middle, after, "cc_commercetools_reads_total") == 0
    latency = "cc_upstream_request_duration_seconds_count"
    assert delta(before, after, latency, destination="commercetools") == delta(
        before, after, "cc_upstream_requests_total", **ok
    )
    assert delta(before, middle, "cc_cache_reads_total", kind="Order", outcome="miss") >= 1
    assert delta(middle, after, "cc_cache_reads_total", kind="Order", outcome="hit") >= 1
    assert delta(middle, after, "cc_cache_reads_total", kind="Order", outcome="miss") == 0


# -- the separate port ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_metrics_on_a_port_of_their_own_need_no_token() -> None:
    port = free_port()
    async with (
        mock_service(metrics_token=None, metrics_port=port) as client,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as scraper,
    ):
        await client.get("/healthz")
        response = await scraper.get("/metrics")
        assert response.status_code == 200
        samples = parse(response.text)
        assert (
            value(
                samples,
                "cc_http_request_duration_seconds_count",
                route="/healthz",
                method="GET",
                status="200",
            )
            >= 1
        )
        assert (await scraper.get("/other")).status_code == 404
        # A request head over 8 KiB gets no answer, just a closed connection.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n")
        await writer.drain()
        with contextlib.suppress(ConnectionResetError):  # closed with unread bytes: a reset
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert (await scraper.post("/metrics")).status_code == 404
        # The main port does not serve them.
        assert (await client.get("/metrics", headers=AUTH)).status_code == 404
    with pytest.raises(httpx.ConnectError):  # closed with the app
        async with httpx.AsyncClient() as after:
            await after.get(f"http://127.0.0.1:{port}/metrics")


def test_two_apps_in_one_process_have_their_own_registries() -> None:
    settings: Settings = make_settings(metrics_token=SecretStr(TOKEN))
    first, second = create_app(settings), create_app(settings)
    assert first.state.metrics.registry is not second.state.metrics.registry
    for app in (first, second):  # the process-wide counters are in each
        text = generate_latest(app.state.metrics.registry).decode()
        assert "# TYPE cc_jobs_settled_total counter" in text
        assert "# TYPE cc_cache_reads_total counter" in text


async def test_upstream_requests_are_named_by_destination_and_outcome() -> None:
    settings = make_settings(
        metrics_token=TOKEN,
        zendesk_subdomain="acme",
        zendesk_installation_id=1,
        zendesk_app_id=2,
        session_secret="s" * 40,
        zendesk_api_url="http://127.0.0.1:8401",
        tidio_api_url="http://127.0.0.1:8402",
    )
    names = metrics.destinations(settings)
    assert names["127.0.0.1:8401"] == "zendesk" and names["acme.zendesk.com"] == "zendesk"
    assert names["127.0.0.1:8402"] == "tidio"
    assert names["api.europe-west1.gcp.commercetools.com"] == "commercetools"
    assert names["auth.europe-west1.gcp.commercetools.com"] == "commercetools"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused")
        return httpx.Response(int(request.url.path.strip("/")))

    registry = metrics.Metrics(settings)
    transport = metrics.MeteredTransport(httpx.MockTransport(answer), registry, names)
    async with httpx.AsyncClient(transport=transport) as client:
        for target in (
            "http://127.0.0.1:8401/200",
            "http://127.0.0.1:8401/429",
            "http://127.0.0.1:8402/503",
            "http://127.0.0.1:8402/422",
            "http://elsewhere.example/204",
        ):
            await client.get(target)
        with pytest.raises(httpx.ConnectError):
            await client.get("https://acme.zendesk.com/down")
    samples = parse(generate_latest(registry.registry).decode())
    count = "cc_upstream_requests_total"
    assert value(samples, count, destination="zendesk", outcome="ok") == 1
    assert value(samples, count, destination="zendesk", outcome="throttled") == 1
    assert value(samples, count, destination="zendesk", outcome="error") == 1
    assert value(samples, count, destination="tidio", outcome="server_error") == 1
    assert value(samples, count, destination="tidio", outcome="client_error") == 1
    assert value(samples, count, destination="other", outcome="ok") == 1
    latency = "cc_upstream_request_duration_seconds_count"
    assert value(samples, latency, destination="zendesk") == 3
    assert value(samples, latency, destination="tidio") == 2
