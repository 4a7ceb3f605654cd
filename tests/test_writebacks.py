"""Writebacks against the emulator: a ticket field value reaches the order custom field through
the queue and a real worker; compare-before-write, setCustomType for orders without a custom
type, refusals, association by order number or by the sidebar's resolution, coalescing, a
deleted order, cache eviction. Every update payload sent is checked against the OpenAPI spec."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from commerce_context import actions, queries, writebacks
from commerce_context.emulator.harness import Harness
from commerce_context.jobs import Job
from commerce_context.resolution import TicketContext, detail_views, resolve
from commerce_context.webhooks import TicketEvent, enqueue_event
from tests.engine import PG_URL, drop_schema
from tests.faults import FaultProxy, serving
from tests.orders import custom_fields
from tests.schema import assert_valid_document
from tests.writepath import WritePath, write_path, write_settings

pytestmark = pytest.mark.emulator

STATUS_FIELD, NOTE_FIELD, RMA_FIELD = 360000002, 360000003, 360000004


@pytest_asyncio.fixture(loop_scope="session")
async def wp(harness: Harness, tmp_path: Path) -> AsyncIterator[WritePath]:
    async with write_path(harness, write_settings(harness, tmp_path)) as path:
        yield path


def event(fields: dict[int, str], *, order_number: str | None = None, **kw: object) -> TicketEvent:
    return TicketEvent(
        kind="updated",
        ticket_id=kw.get("ticket_id", 4242),  # type: ignore[arg-type]
        emails=kw.get("emails", ()),  # type: ignore[arg-type]
        brand_id=1001,
        order_number=order_number,
        fields=fields,
    )


async def deliver(wp: WritePath, ticket_event: TicketEvent) -> list[str]:
    return await enqueue_event(wp.queue, ticket_event, uuid.uuid4().hex, wp.settings)


async def run(wp: WritePath, ticket_event: TicketEvent) -> list[Job]:
    """Deliver and wait until every job it made has settled."""
    return [await wp.settled(await wp.job(i)) for i in await deliver(wp, ticket_event)]


async def test_a_ticket_field_change_sets_the_order_custom_field(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open", "rmaStatus": "none"})
    [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"}, order_number=order["orderNumber"]))
    job = await wp.settled(await wp.job(job_id))
    assert job.state == "done", job.last_error
    assert job.result["outcome"] == "applied"
    after = await wp.api.order(order["id"])
    assert custom_fields(after)["supportStatus"] == "resolved"  # through the value map
    assert custom_fields(after)["rmaStatus"] == "none"  # other fields untouched
    assert after["version"] == order["version"] + 1
    [body] = wp.updates()
    assert body["actions"] == [
        {"action": "setCustomField", "name": "supportStatus", "value": "resolved"}
    ]
    trail = await wp.engine.audit.query(order=order["id"])
    assert {(e.action, e.outcome) for e in trail} >= {
        ("association", "order_field"),
        ("writeback", "applied"),
    }


async def test_the_same_value_again_changes_nothing(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"})
    number = order["orderNumber"]
    first = (await run(wp, event({STATUS_FIELD: "pending"}, order_number=number)))[0]
    again = (await run(wp, event({STATUS_FIELD: "pending"}, order_number=number)))[0]
    assert (first.result["outcome"], again.result["outcome"]) == ("applied", "unchanged")
    assert len(wp.updates()) == 1  # compare-before-write: the second sent no update
    assert (await wp.api.order(order["id"]))["version"] == order["version"] + 1


async def test_a_redelivered_webhook_is_the_same_job(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"})
    ticket_event = event({STATUS_FIELD: "solved"}, order_number=order["orderNumber"])
    invocation = uuid.uuid4().hex
    first = await enqueue_event(wp.queue, ticket_event, invocation, wp.settings)
    second = await enqueue_event(wp.queue, ticket_event, invocation, wp.settings)
    assert first == second
    await wp.settled(await wp.job(first[0]))
    assert len(wp.updates()) == 1


async def test_an_order_without_custom_type_gets_the_configured_type(wp: WritePath) -> None:
    order = await wp.api.create_order(custom=None)
    [job_id] = await deliver(wp, event({NOTE_FIELD: "Called the shopper."},
                                       order_number=order["orderNumber"]))  # fmt: skip
    job = await wp.settled(await wp.job(job_id))
    assert job.state == "done", job.last_error
    after = await wp.api.order(order["id"])
    assert after["custom"]["type"]["id"]
    assert custom_fields(after) == {"internalNote": "Called the shopper."}
    [body] = wp.updates()
    assert body["actions"] == [
        {
            "action": "setCustomType",
            "type": {"typeId": "type", "key": "commerce-context-order"},
            "fields": {"internalNote": "Called the shopper."},
        }
    ]
    # Free text never reaches the audit log.
    [row] = [e for e in await wp.engine.audit.query(order=order["id"]) if e.action == "writeback"]
    assert "Called the shopper." not in json.dumps(row.detail)


async def test_a_value_the_mapping_does_not_allow_is_refused(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open", "rmaStatus": "none"})
    ids = await deliver(
        wp,
        event({STATUS_FIELD: "escalated", RMA_FIELD: "lost"}, order_number=order["orderNumber"]),
    )
    jobs = [await wp.settled(await wp.job(i)) for i in ids]
    assert [(j.state, j.result["outcome"]) for j in jobs] == [("done", "refused")] * 2
    assert "does not allow" in jobs[0].result["reason"]
    assert wp.updates() == []
    assert (await wp.api.order(order["id"]))["version"] == order["version"]
    refused = [e for e in await wp.engine.audit.query(ticket=4242) if e.outcome == "refused"]
    assert len(refused) == 2


async def test_without_an_order_number_the_sidebar_resolution_names_the_order(
    wp: WritePath,
) -> None:
    email = f"wb-{uuid.uuid4().hex[:8]}@example.org"
    order = await wp.api.create_order(custom={"supportStatus": "open"}, email=email)
    [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"}, emails=(email,), ticket_id=77))
    job = await wp.settled(await wp.job(job_id))
    assert job.state == "done", job.last_error
    assert custom_fields(await wp.api.order(order["id"]))["supportStatus"] == "resolved"
    association = [e for e in await wp.engine.audit.query(ticket=77) if e.action == "association"]
    assert [(e.outcome, e.order_id) for e in association] == [("resolution", order["id"])]


async def test_a_ticket_without_any_order_is_dead_with_a_reason(wp: WritePath) -> None:
    email = f"nobody-{uuid.uuid4().hex[:8]}@example.org"
    [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"}, emails=(email,)))
    job = await wp.settled(await wp.job(job_id))
    assert job.state == "dead"
    assert "no order found" in (job.last_error or "")


async def test_pending_changes_of_one_field_coalesce_into_the_latest(
    harness: Harness, tmp_path: Path
) -> None:
    settings = write_settings(harness, tmp_path)
    async with write_path(harness, settings, worker=False) as wp:
        order = await wp.api.create_order(custom={"supportStatus": "resolved"})
        number = order["orderNumber"]
        ids = []
        for value in ("open", "pending", "solved", "open", "pending"):
            ids += await deliver(wp, event({STATUS_FIELD: value}, order_number=number))
        assert len(set(ids)) == 1  # one queued job took each new value
    async with write_path(harness, settings) as wp:
        job = await wp.settled(await wp.job(ids[0]))
        assert job.state == "done", job.last_error
        [body] = wp.updates()
        assert body["actions"][0]["value"] == "pending"  # the latest value, written once
        assert custom_fields(await wp.api.order(order["id"]))["supportStatus"] == "pending"


async def test_a_deleted_order_makes_the_job_dead_with_a_clear_reason(
    harness: Harness, tmp_path: Path
) -> None:
    settings = write_settings(harness, tmp_path)
    async with write_path(harness, settings, worker=False) as wp:
        order = await wp.api.create_order(custom={"supportStatus": "open"})
        [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"},
                                           order_number=order["orderNumber"]))  # fmt: skip
        await wp.api.delete_order(order["id"])
    async with write_path(harness, settings) as wp:
        job = await wp.settled(await wp.job(job_id))
        assert job.state == "dead"
        assert (
            job.last_error
            == f"order {order['orderNumber']} no longer exists in commercetools (deleted?)"
        )
        assert wp.updates() == []


async def test_the_cached_order_is_evicted_when_the_write_lands(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"})
    names = wp.settings.mappings.order_custom_fields
    read = [queries.order_by_id(order["id"], detail_views(names), key="order")]

    async def shown() -> object:
        answer = await wp.services.reader.fetch(read, name="Test")
        fields = answer.found["order"]["custom"]["customFieldsRaw"]
        return {f["name"]: f["value"] for f in fields}.get("supportStatus")

    assert await shown() == "open"  # now cached (fresh for CC_CACHE_TTL_ORDER)
    [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"}, order_number=order["orderNumber"]))
    assert (await wp.settled(await wp.job(job_id))).state == "done"
    assert await shown() == "resolved"


# -- faults between the client and commercetools (a real proxy on loopback) -------------------


@contextlib.asynccontextmanager
async def faulty_run(
    harness: Harness, tmp_path: Path, proxy: FaultProxy, count: int = 4
) -> AsyncIterator[tuple[list[dict[str, Any]], list[Job], WritePath]]:
    settings = write_settings(harness, tmp_path, ct_timeout=0.5, ct_max_retries=1)
    async with serving(proxy) as url, write_path(harness, settings, api_url=url) as wp:
        orders = [await wp.api.create_order(custom={"supportStatus": "open"}) for _ in range(count)]
        ids = []
        for order in orders:
            ids += await deliver(wp, event({STATUS_FIELD: "solved"},
                                           order_number=order["orderNumber"]))  # fmt: skip
        jobs = [await wp.settled(await wp.job(i), within=60) for i in ids]
        yield orders, jobs, wp


async def test_429_with_retry_after_503_and_timeouts_every_job_completes_once(
    harness: Harness, tmp_path: Path
) -> None:
    proxy = FaultProxy(harness.api_url, ["429", "503", "hang"] * 4, retry_after="1")
    async with faulty_run(harness, tmp_path, proxy) as (orders, jobs, wp):
        assert not proxy.faults  # every scripted fault was served
        assert [j.state for j in jobs] == ["done"] * len(orders), [j.last_error for j in jobs]
        for order in orders:
            after = await wp.api.order(order["id"])
            assert custom_fields(after)["supportStatus"] == "resolved"
            assert after["version"] == order["version"] + 1  # applied exactly once
        # A 429 with Retry-After paused the destination and re-queued the job.
        outcomes = {e.outcome for e in await wp.engine.audit.query(ticket=4242)}
        assert "throttled" in outcomes and "dead" not in outcomes


async def test_a_lost_response_to_an_update_is_not_applied_twice(
    harness: Harness, tmp_path: Path
) -> None:
    # The update reaches commercetools, but its answer never comes back: the client times out
    # and sends it again with the old version (409), then with the current one.
    def updates(method: str, path: str) -> bool:
        return method == "POST" and "/orders/" in path

    proxy = FaultProxy(harness.api_url, ["lost", "lost", "lost"], applies=updates)
    async with faulty_run(harness, tmp_path, proxy, count=3) as (orders, jobs, wp):
        assert not proxy.faults
        assert [j.state for j in jobs] == ["done"] * 3, [j.last_error for j in jobs]
        for order in orders:
            after = await wp.api.order(order["id"])
            assert custom_fields(after)["supportStatus"] == "resolved"
            assert after["version"] == order["version"] + 1


async def test_after_a_write_the_sidebar_view_has_the_whole_order_again(wp: WritePath) -> None:
    # The sidebar reads the order twice in one document: in detail (by number) and in the
    # requester's order list (summary). Evicted by the write, it must come back whole.
    email = f"view-{uuid.uuid4().hex[:8]}@example.org"
    order = await wp.api.create_order(custom={"supportStatus": "open"}, email=email)
    context = TicketContext(emails=(email,), order_number=order["orderNumber"])
    names = wp.settings.mappings.order_custom_fields

    async def view() -> dict[str, Any]:
        resolution = await resolve(context, reader=wp.services.reader, store=None,
                                   custom_fields=names)  # fmt: skip
        assert resolution.order is not None
        return resolution.order

    before = await view()
    assert len(before["lineItems"]) == 2
    [job_id] = await deliver(wp, event({STATUS_FIELD: "solved"}, order_number=order["orderNumber"]))
    assert (await wp.settled(await wp.job(job_id))).state == "done"
    after = await view()
    assert len(after["lineItems"]) == 2  # not only the list's summary fields
    fields = {f["name"]: f["value"] for f in after["custom"]["customFieldsRaw"]}
    assert fields["supportStatus"] == "resolved"


async def test_the_write_path_on_postgresql(harness: Harness, tmp_path: Path) -> None:
    schema = f"cc_test_{uuid.uuid4().hex[:16]}"
    settings = write_settings(harness, tmp_path, database_url=PG_URL, database_schema=schema)
    try:
        async with write_path(harness, settings) as wp:
            order = await wp.api.create_order(custom=None)
            number = order["orderNumber"]
            jobs = await run(wp, event({STATUS_FIELD: "pending", NOTE_FIELD: "On hold."},
                                       order_number=number))  # fmt: skip
            again = await run(wp, event({STATUS_FIELD: "pending"}, order_number=number))
            assert [j.state for j in jobs + again] == ["done"] * 3, [j.last_error for j in jobs]
            assert sorted(j.result["outcome"] for j in jobs + again) == [
                "applied",
                "applied",
                "unchanged",
            ]
            after = await wp.api.order(order["id"])
            assert custom_fields(after) == {"supportStatus": "pending", "internalNote": "On hold."}
    finally:
        drop_schema(schema)


@pytest.mark.parametrize("by", ["id", "number"])
def test_every_write_path_read_is_valid_against_the_schema(by: str) -> None:
    key = {"order_id": str(uuid.uuid4())} if by == "id" else {"order_number": "DE-1001"}
    combinations: list[tuple[tuple[str, ...], list[Any]]] = [
        ((), []),
        (("supportStatus", 'we"ird'), []),
        ((), [actions.PAYMENTS]),
        ((), [actions.LINES]),
        (("internalNote",), [actions.PAYMENTS, actions.LINES]),
    ]
    for fields, extra in combinations:
        reads = []
        wanted = [writebacks.ORDER_STATE, *extra]
        if fields:
            wanted.append(writebacks._custom_view(fields))
        if by == "id":
            reads.append(queries.order_by_id(key["order_id"], wanted, key="order"))
        else:
            reads.append(queries.order_by_number(key["order_number"], wanted, key="order"))
        assert_valid_document(queries.compose(reads, "OrderForWrite").query)
