"""CC_LOG_FORMAT=json: a representative slice of the service (sidebar entry and panels, errors,
commercetools events, a refused Zendesk webhook, a job run, a logged exception) runs with the
production logging configuration; every line it writes must parse as JSON of the documented
shape, each request has exactly one access line with its correlation id, the job has its
line, and no planted PII canary (e-mail, phone, card number, payment token, query-string
secret, the signed tokens themselves) appears anywhere."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from bs4 import BeautifulSoup

from commerce_context import logs
from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from commerce_context.emulator.seed import CUSTOMER_SPECS
from tests.asgi import app_client
from tests.conftest import Recorder
from tests.engine import reaches
from tests.logcheck import AuditHandler
from tests.test_events import message
from tests.test_sidebar import Sidebar

pytestmark = pytest.mark.emulator

EMAIL = "leak.canary.7731@example.org"
PHONE = "+49 170 5550123"
CARD = "4111 1111 1111 1111"
PAYMENT_TOKEN = "sk_live_Canary7731TokenValue"
QUERY_SECRET = "canary-query-secret-7731"
EVENTS_SECRET = "events-secret-" + "x" * 32
WEBHOOK_SECRET = "zendesk-webhook-secret-" + "w" * 24

CONFIGURED = ("commerce_context", "uvicorn", "uvicorn.access", "httpx")
BASE_KEYS = {"time", "level", "logger", "message", "correlation_id"}


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """The production logging configuration (JSON, debug level), its stream captured; the
    loggers it configures are put back afterwards for the rest of the suite."""
    saved = {}
    for name in CONFIGURED:
        logger = logging.getLogger(name)
        saved[name] = (logger.handlers[:], logger.filters[:], logger.level, logger.propagate)
    logs.configure("debug", "json")
    handler = logging.getLogger("commerce_context").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        for name, (handlers, filters, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.filters[:] = filters
            logger.setLevel(level)
            logger.propagate = propagate


def corr(label: str) -> dict[str, str]:
    return {"X-Correlation-ID": f"test-{label}-{uuid.uuid4().hex[:12]}"}


async def test_every_line_is_json_of_the_documented_shape_and_pii_free(
    harness: Harness, json_lines: io.StringIO
) -> None:
    zendesk = DemoZendesk.generate()
    anna = harness.demo.customers["anna-schmidt"]
    settings = demo_settings(
        harness,
        zendesk,
        events_secret=EVENTS_SECRET,
        zendesk_webhook_secret=WEBHOOK_SECRET,
        jobs_poll_interval=0.05,
    )
    app = create_app(settings)
    requests: list[tuple[str, str, int]] = []  # correlation id, route template, status
    secrets_seen: list[str] = []

    def track(response: Any, route: str) -> None:
        requests.append((response.headers["x-correlation-id"], route, response.status_code))

    async with app_client(app) as client:
        sidebar = Sidebar(client, zendesk, Recorder())
        token = zendesk.token()
        secrets_seen.append(token)
        opened = await client.post(
            f"/zendesk/sidebar?origin=https://demo.zendesk.com&token={QUERY_SECRET}",
            data={"token": token},
            headers={"Accept": "text/html", **corr("open")},
        )
        assert opened.status_code == 200
        track(opened, "/zendesk/sidebar")
        app_node = BeautifulSoup(opened.text, "html.parser").select_one("#app")
        assert app_node is not None
        session = str(app_node["data-session"])
        secrets_seen.append(session)
        sidebar._session = session
        bearer = {"Authorization": f"Bearer {session}"}

        # Panels: a real customer (the seed's PII goes through the cache) and planted canaries.
        for context in (
            {"emails": [anna.email], "brand_id": 1001, "ticket_id": 1},
            {"emails": [EMAIL], "phones": [PHONE], "subject": f"card {CARD} {PAYMENT_TOKEN}"},
        ):
            response = await client.post(
                f"/zendesk/panels?jwt={QUERY_SECRET}", json=context, headers={**bearer, **corr("p")}
            )
            assert response.status_code in (200, 400), response.text
            track(response, "/zendesk/panels")
        # Errors: a malformed body, no session, an unknown path with a secret in it.
        bad = await client.post(
            "/zendesk/panels",
            content=b"{not json " + EMAIL.encode(),
            headers={**bearer, **corr("e")},
        )
        assert bad.status_code == 400
        track(bad, "/zendesk/panels")
        nosession = await client.post("/zendesk/panels", json={}, headers=corr("n"))
        assert nosession.status_code == 401
        track(nosession, "/zendesk/panels")
        missing = await client.get(f"/orders/{EMAIL}?token={QUERY_SECRET}", headers=corr("m"))
        assert missing.status_code == 404
        track(missing, "unmatched")

        # Events: an accepted one, and one with the wrong secret.
        order = harness.demo.orders["DE-1001"]
        event = await client.post(
            "/commercetools/events",
            json=message(order.id, 10_000),
            headers={"Authorization": f"Bearer {EVENTS_SECRET}", **corr("ev")},
        )
        assert event.status_code == 202, event.text
        track(event, "/commercetools/events")
        refused = await client.post(
            "/commercetools/events",
            json={"note": f"{EMAIL} {CARD}"},
            headers={"Authorization": f"Bearer {PAYMENT_TOKEN}", **corr("ev401")},
        )
        assert refused.status_code == 401
        track(refused, "/commercetools/events")
        # A Zendesk webhook whose signature does not verify, PII in its body.
        webhook = await client.post(
            "/zendesk/webhooks",
            json={"detail": {"requester": EMAIL, "phone": PHONE}},
            headers={"X-Zendesk-Webhook-Signature": "bm90IGl0", **corr("wh")},
        )
        assert webhook.status_code == 401
        track(webhook, "/zendesk/webhooks")

        # A job run: no handler for its kind, so it dies at once with a reason.
        queue = app.state.metrics.sources.queue
        kind = f"log-test-{uuid.uuid4().hex[:6]}"
        job_correlation = f"test-job-{uuid.uuid4().hex[:12]}"
        job = await queue.enqueue(
            kind,
            {"email": EMAIL, "card": CARD},
            key=kind,
            destination="zendesk",
            correlation_id=job_correlation,
        )
        # A bounded wait for the in-process worker to settle the job.
        await reaches(queue, job, "dead")

        # A module logging an upstream failure carelessly: redaction still applies.
        try:
            raise RuntimeError(f"upstream said: customer {EMAIL} paid with {CARD}")
        except RuntimeError:
            logging.getLogger("commerce_context.test").exception(
                "lookup of %s failed",
                PHONE,
                extra={"detail": f"token {PAYMENT_TOKEN}", "shopper": {"email": EMAIL}},
            )

    text = json_lines.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert lines

    # The shape of every line.
    for line in lines:
        assert set(line) >= BASE_KEYS, line
        assert line["level"] in {"debug", "info", "warning", "error", "critical"}
        datetime.fromisoformat(line["time"])
        assert all(isinstance(line[key], str) for key in BASE_KEYS)
    # One access line per request, carrying its correlation id, route template and status.
    access = [line for line in lines if line["logger"] == "commerce_context.access"]
    for correlation_id, route, status in requests:
        mine = [line for line in access if line["correlation_id"] == correlation_id]
        assert len(mine) == 1, (correlation_id, mine)
        line = mine[0]
        assert (line["route"], line["status"]) == (route, status)
        assert line["method"] in {"GET", "POST"}
        assert isinstance(line["duration_ms"], int | float) and line["duration_ms"] >= 0
    # The job's line.
    jobs = [line for line in lines if line.get("job_id") == job.id]
    assert len(jobs) == 1
    assert jobs[0]["correlation_id"] == job_correlation
    assert jobs[0]["job_kind"] == kind and jobs[0]["outcome"] == "dead"
    assert jobs[0]["destination"] == "zendesk" and jobs[0]["duration_ms"] >= 0
    # The careless line is there, masked, with its traceback.
    careless = [line for line in lines if line["logger"] == "commerce_context.test"]
    assert len(careless) == 1 and "RuntimeError" in careless[0]["exception"]
    assert careless[0]["detail"].startswith("token sk_live_")
    assert careless[0]["shopper"].startswith("{'email': 'l") and "@" in careless[0]["shopper"]

    # No canary anywhere, in any form.
    canaries = [
        EMAIL,
        PHONE,
        PHONE.replace(" ", ""),
        CARD,
        CARD.replace(" ", ""),
        PAYMENT_TOKEN,
        QUERY_SECRET,
        EVENTS_SECRET,
        WEBHOOK_SECRET,
        anna.email,
        *secrets_seen,
    ]
    for canary in canaries:
        assert canary not in text, canary
        assert canary.lower() not in text.lower(), canary
    assert "?" not in "".join(line["route"] for line in access)


def test_the_suite_wide_audit_catches_what_it_should() -> None:
    """tests/logcheck.py checks every line the suite logs; here, the check itself."""
    email = CUSTOMER_SPECS[0].email
    leaked = {"time": "t", "level": "info", "logger": "x", "message": f"for {email.upper()}"}
    assert AuditHandler.check(json.dumps({**leaked, "correlation_id": "-"})) is not None
    assert AuditHandler.check(json.dumps(leaked)) == "not the documented shape"
    assert AuditHandler.check("plain text") == "not JSON"
    record = logging.LogRecord("commerce_context.x", logging.INFO, "", 0, "to %s", (email,), None)
    handler = AuditHandler()
    handler.handle(record)
    assert handler.lines == 1 and handler.problems == []  # redacted, then checked
    assert record.getMessage() == f"to {email}"  # on a copy: other handlers see the record
    line = handler.render(record)
    assert AuditHandler.check(line) is None and email not in line
    quiet = logging.LogRecord("commerce_context.x", logging.DEBUG, "", 0, email, (), None)
    handler.handle(quiet)  # below production's level: not a line production writes
    assert handler.lines == 1
