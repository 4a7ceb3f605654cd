"""Zendesk webhooks: the signature recipe (with Zendesk's documented worked example), the replay
window, both payload shapes, and the endpoint (202 fast, de-duplicated by invocation id,
401/400/404 for bad input, never a 5xx)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.database import Database
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness
from commerce_context.exceptions import BadRequest, Unauthorized
from commerce_context.jobs import Queue
from commerce_context.webhooks import (
    MAX_BODY_BYTES,
    TicketEvent,
    expected_signature,
    parse_event,
    sign,
    verify_signature,
)
from tests.service import Service, service, service_settings

# The worked example of Zendesk's (older) "verifying webhooks" page.
DOC_SECRET = "HRkRd4BeOAoUkfZr-mhauJT64rvBASlJRoIyPsd3zeA="
DOC_BODY = b'{"say": "hello"}'
DOC_TIMESTAMP = "2021-07-25T10:00:00Z"
DOC_SIGNATURE = "tRDSF7URY8BLCDlaBcQ7FHu051Zk+aAB0NKMP53teMw="
DOC_NOW = datetime(2021, 7, 25, 10, 1, tzinfo=UTC)


def test_documented_example_fixes_the_key_encoding() -> None:
    # The page's example reproduces with the secret's raw UTF-8 bytes as the key (not its
    # base64 decoding), with the message written body first, as that older page wrote it.
    assert sign(DOC_SECRET, DOC_BODY + DOC_TIMESTAMP.encode()) == DOC_SIGNATURE
    decoded_key = base64.urlsafe_b64decode(DOC_SECRET)
    other = hmac.new(decoded_key, DOC_BODY + DOC_TIMESTAMP.encode(), hashlib.sha256).digest()
    assert base64.b64encode(other).decode() != DOC_SIGNATURE


def test_current_recipe_is_timestamp_then_body() -> None:
    # Current docs and implementations sign timestamp + body; that is what we verify.
    mac = hmac.new(DOC_SECRET.encode(), DOC_TIMESTAMP.encode() + DOC_BODY, hashlib.sha256)
    wanted = base64.b64encode(mac.digest()).decode()
    assert expected_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY) == wanted
    verify_signature(
        DOC_SECRET,
        signature=wanted,
        timestamp=DOC_TIMESTAMP,
        body=DOC_BODY,
        window=300,
        now=DOC_NOW,
    )
    # The old page's order is not accepted.
    with pytest.raises(Unauthorized, match="does not match"):
        verify_signature(
            DOC_SECRET,
            signature=DOC_SIGNATURE,
            timestamp=DOC_TIMESTAMP,
            body=DOC_BODY,
            window=300,
            now=DOC_NOW,
        )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"body": DOC_BODY + b" "}, "does not match"),
        ({"secret": DOC_SECRET + "x"}, "does not match"),
        ({"timestamp": "2021-07-25T10:00:01Z"}, "does not match"),
        ({"signature": "not base64!"}, "not valid base64"),
        ({"signature": ""}, "missing"),
        ({"timestamp": None}, "missing"),
    ],
)
def test_tampering_is_refused(change: dict[str, object], reason: str) -> None:
    args: dict[str, object] = {
        "secret": DOC_SECRET,
        "signature": expected_signature(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY),
        "timestamp": DOC_TIMESTAMP,
        "body": DOC_BODY,
    }
    args.update(change)
    with pytest.raises(Unauthorized, match=reason):
        verify_signature(
            str(args["secret"]),
            signature=args["signature"],  # type: ignore[arg-type]
            timestamp=args["timestamp"],  # type: ignore[arg-type]
            body=args["body"],  # type: ignore[arg-type]
            window=300,
            now=DOC_NOW,
        )


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [(0, True), (299, True), (-299, True), (301, False), (-301, False), (86400, False)],
)
def test_replay_window(offset: int, accepted: bool) -> None:
    sent = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    stamp = sent.strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = expected_signature(DOC_SECRET, stamp, DOC_BODY)
    now = sent + timedelta(seconds=offset)

    def check() -> None:
        verify_signature(
            DOC_SECRET, signature=signature, timestamp=stamp, body=DOC_BODY, window=300, now=now
        )

    if accepted:
        check()
    else:
        with pytest.raises(Unauthorized, match="replay window"):
            check()


def test_a_signed_timestamp_that_is_no_date_is_refused() -> None:
    stamp = "yesterday"
    signature = expected_signature(DOC_SECRET, stamp, DOC_BODY)
    with pytest.raises(Unauthorized, match="ISO 8601"):
        verify_signature(
            DOC_SECRET, signature=signature, timestamp=stamp, body=DOC_BODY, window=300
        )


def test_event_subscription_envelope() -> None:
    body = {
        "account_id": 1,
        "id": "01J0000000000000000000000",
        "subject": "zen:ticket:42",
        "time": "2026-11-29T12:00:00Z",
        "type": "zen:event-type:ticket.created",
        "zendesk_event_version": "2022-11-06",
        "detail": {"id": "42", "brand_id": "1001", "requester_id": "7", "status": "NEW"},
        "event": {},
    }
    event = parse_event(body, order_field_id=None)
    assert event == TicketEvent(kind="created", ticket_id=42, brand_id=1001)
    other = parse_event({**body, "type": "zen:event-type:ticket.brand_changed"}, order_field_id=1)
    assert other.kind == "ticket.brand_changed" and not other.created


def test_trigger_body_with_placeholders_rendered_as_strings() -> None:
    body = {
        "event": "ticket.updated",
        "ticket": {
            "id": "42",
            "requester_email": "anna.schmidt@example.com",
            "brand_id": "1001",
            "fields": {"360000001": "DE-1005", "360000002": "solved", "360000003": ""},
        },
    }
    event = parse_event(body, order_field_id=360000001)
    assert event.ticket_id == 42
    assert event.emails == ("anna.schmidt@example.com",)
    assert event.brand_id == 1001
    assert event.order_number == "DE-1005"  # taken from the order-number field
    assert event.fields == {360000001: "DE-1005", 360000002: "solved", 360000003: ""}
    assert not event.created
    created = parse_event({**body, "event": "ticket.created"}, order_field_id=None)
    assert created.created and created.order_number is None


@pytest.mark.parametrize(
    "body",
    [
        [],
        "hello",
        {"say": "hello"},
        {"ticket": "42"},
        {"ticket": {"id": "forty-two"}},
        {"ticket": {"id": 1, "fields": ["a"]}},
        {"ticket": {"id": 1, "fields": {"5": {"nested": 1}}}},
        {"ticket": {"id": 1}, "event": "ticket.deleted"},
        {"type": "zen:event-type:ticket.created", "detail": "x"},
        {"ticket": {"id": 1, "fields": {str(i): "x" for i in range(51)}}},
    ],
)
def test_malformed_payloads_are_a_400(body: object) -> None:
    with pytest.raises(BadRequest):
        parse_event(json.loads(json.dumps(body)), order_field_id=None)


# -- the endpoint, on the whole service (real worker, emulator) -----------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def svc(harness: Harness, tmp_path: Path) -> AsyncIterator[Service]:
    zendesk = DemoZendesk.generate()
    async with service(service_settings(harness, tmp_path, zendesk), harness, zendesk) as s:
        yield s


def signed(
    svc: Service, body: bytes, *, when: datetime | None = None, invocation: str | None = None
) -> dict[str, str]:
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Invocation-Id": invocation or uuid.uuid4().hex,
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
        "X-Zendesk-Webhook-Signature": expected_signature(svc.zendesk.webhook_secret, stamp, body),
    }


def trigger(order_number: str, status: str) -> bytes:
    body = {
        "event": "ticket.updated",
        "ticket": {
            "id": "501",
            "requester_email": "someone@example.org",
            "brand_id": "1001",
            "fields": {"360000001": order_number, "360000002": status},
        },
    }
    return json.dumps(body).encode()


async def job_state(svc: Service, job_id: str) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        answer = await svc.client.get(f"/zendesk/actions/{job_id}", headers=svc.bearer())
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] != "pending":
            return dict(answer.json())
        assert asyncio.get_running_loop().time() < deadline, "job still pending"
        await asyncio.sleep(0.05)


@pytest.mark.emulator
async def test_a_signed_webhook_is_accepted_and_written_back(svc: Service) -> None:
    order = await svc.api.create_order(custom={"supportStatus": "open"})
    body = trigger(order["orderNumber"], "solved")
    headers = signed(svc, body)
    response = await svc.client.post("/zendesk/webhooks", content=body, headers=headers)
    assert response.status_code == 202, response.text
    [job_id] = response.json()["jobs"]
    # Zendesk retries a delivery with the same invocation id: the same job, nothing new.
    again = await svc.client.post("/zendesk/webhooks", content=body, headers=headers)
    assert (again.status_code, again.json()["jobs"]) == (202, [job_id])
    assert (await job_state(svc, job_id))["state"] == "applied"
    after = await svc.api.order(order["id"])
    assert after["custom"]["fields"]["supportStatus"] == "resolved"
    assert after["version"] == order["version"] + 1


@pytest.mark.emulator
async def test_bad_deliveries_get_clear_4xx(svc: Service) -> None:
    body = trigger("T-NONE", "solved")
    good = signed(svc, body)

    async def post(content: bytes, headers: dict[str, str]) -> httpx.Response:
        return await svc.client.post("/zendesk/webhooks", content=content, headers=headers)

    forged = {
        **good,
        "X-Zendesk-Webhook-Signature": signed(svc, b"{}")["X-Zendesk-Webhook-Signature"],
    }
    stale = signed(svc, body, when=datetime.now(UTC) - timedelta(minutes=10))
    cases = [
        (await post(body, {"Content-Type": "application/json"}), 401),
        (await post(body, forged), 401),
        (await post(body + b" ", good), 401),
        (await post(body, stale), 401),
        (await post(b"{not json", signed(svc, b"{not json")), 400),
        (await post(b"[1, 2]", signed(svc, b"[1, 2]")), 400),
        (await post(b'{"ticket": {"id": "x"}}', signed(svc, b'{"ticket": {"id": "x"}}')), 400),
    ]
    for hostile in (
        b"[" * 100_000 + b"]" * 100_000,
        b'{"ticket": {"id": "1", "requester_email": "\\ud800@example.org"}}',
    ):
        cases.append((await post(hostile, signed(svc, hostile)), 400))
    big = b'{"pad": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    cases.append((await post(big, signed(svc, big)), 413))
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.json()["error"]["status"] == status
    assert (await svc.client.get("/zendesk/webhooks")).status_code == 405


@pytest.mark.emulator
async def test_without_a_secret_the_endpoint_does_not_exist(
    harness: Harness, tmp_path: Path
) -> None:
    zendesk = DemoZendesk.generate()
    settings = service_settings(harness, tmp_path, zendesk).model_copy(
        update={"zendesk_webhook_secret": None}
    )
    async with service(settings, harness, zendesk) as svc:
        body = trigger("T-1", "solved")
        response = await svc.client.post(
            "/zendesk/webhooks", content=body, headers=signed(svc, body)
        )
        assert response.status_code == 404


@pytest.mark.emulator
async def test_a_created_ticket_is_prefetched(svc: Service) -> None:
    email = f"prefetch-{uuid.uuid4().hex[:8]}@example.org"
    await svc.api.create_order(email=email)
    body = json.dumps(
        {"event": "ticket.created", "ticket": {"id": "502", "requester_email": email}}
    ).encode()
    response = await svc.client.post("/zendesk/webhooks", content=body, headers=signed(svc, body))
    assert response.status_code == 202, response.text
    [job_id] = response.json()["jobs"]
    database = Database.from_url(svc.settings.database_location)
    await database.open()
    try:
        queue = Queue(database)
        for _ in range(600):
            job = await queue.get(job_id)
            assert job is not None
            if job.state in ("done", "dead"):
                break
            await asyncio.sleep(0.05)
        assert (job.kind, job.state) == ("zendesk.prefetch", "done")
        assert job.result == {"outcome": "prefetched", "matched_by": "guest_email", "orders": 1}
    finally:
        await database.close()
