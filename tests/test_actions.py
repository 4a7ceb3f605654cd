"""Agent actions against the emulator: each job (set status / note, cancel, refund, return) runs
on a real worker; the gates (states, shipped, amounts, quantities), compare-before-write when a
job runs again, lost responses through a fault proxy, a deleted order. Every update payload
sent is checked against the OpenAPI spec. The HTTP endpoints are tested at the end."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.actions import ActionRequest, _payload
from commerce_context.audit import Audit
from commerce_context.database import Database
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness
from commerce_context.jobs import Job
from tests.faults import FaultProxy, serving
from tests.orders import custom_fields
from tests.service import Service, service, service_settings
from tests.writepath import WritePath, write_path, write_settings

pytestmark = pytest.mark.emulator


@pytest_asyncio.fixture(loop_scope="session")
async def wp(harness: Harness, tmp_path: Path) -> AsyncIterator[WritePath]:
    async with write_path(harness, write_settings(harness, tmp_path)) as path:
        yield path


async def act(wp: WritePath, action: str, order: dict[str, Any], **fields: Any) -> Job:
    """Queue an action exactly as POST /zendesk/actions does, and wait for its outcome."""
    wanted = ActionRequest.model_validate(
        {"action": action, "order_id": order["id"], "request_id": uuid.uuid4().hex, **fields}
    )
    payload = {**_payload(wanted, wp.settings), "agent_id": "9001"}
    job = await wp.queue.enqueue(
        f"action.{action}",
        payload,
        key=f"action:test:{wanted.request_id}",
        destination="commercetools",
    )
    return await wp.settled(job, within=60)


def refunds(payment: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in payment["transactions"] if t["type"] == "Refund"]


async def test_set_support_status_and_internal_note(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"})
    status = await act(wp, "set_support_status", order, value="pending")
    note = await act(wp, "set_internal_note", order, value="Promised a call back.")
    again = await act(wp, "set_support_status", order, value="pending")
    assert [j.state for j in (status, note, again)] == ["done"] * 3
    assert [j.result["outcome"] for j in (status, note, again)] == [
        "applied",
        "applied",
        "unchanged",
    ]
    after = await wp.api.order(order["id"])
    assert custom_fields(after) == {
        "supportStatus": "pending",
        "internalNote": "Promised a call back.",
    }
    assert after["version"] == order["version"] + 2
    assert len(wp.updates()) == 2


async def test_cancel_an_open_order_once(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"}, order_state="Confirmed")
    first = await act(wp, "cancel_order", order)
    second = await act(wp, "cancel_order", order)
    assert (first.result["outcome"], second.result["outcome"]) == ("applied", "unchanged")
    after = await wp.api.order(order["id"])
    assert after["orderState"] == "Cancelled"
    assert after["version"] == order["version"] + 1
    [body] = wp.updates()
    assert body["actions"] == [{"action": "changeOrderState", "orderState": "Cancelled"}]
    trail = await wp.engine.audit.query(order=order["id"])
    assert ("action.cancel_order", "applied") in {(e.action, e.outcome) for e in trail}
    assert {e.agent_id for e in trail if e.action == "action.cancel_order"} == {"9001"}


@pytest.mark.parametrize(
    ("state", "shipment", "reason"),
    [
        ("Open", "Shipped", "has shipped; it cannot be cancelled"),
        ("Confirmed", "Delivered", "has shipped; it cannot be cancelled"),
        ("Complete", None, "is Complete; cancelling is allowed only when it is Open or Confirmed"),
    ],
)
async def test_cancel_is_refused_once_shipped_or_in_other_states(
    wp: WritePath, state: str, shipment: str | None, reason: str
) -> None:
    order = await wp.api.create_order(order_state=state, shipment_state=shipment)
    job = await act(wp, "cancel_order", order)
    assert job.state == "dead"
    assert job.last_error == f"order {order['orderNumber']} {reason}"
    after = await wp.api.order(order["id"])
    assert after["orderState"] == state and after["version"] == order["version"]


async def test_refunds_are_requested_up_to_what_was_charged(wp: WritePath) -> None:
    order = await wp.api.create_order()  # charged 69.00 EUR
    payment_id = order["paymentInfo"]["payments"][0]["id"]
    first = await act(wp, "request_refund", order, amount_cents=1000)
    second = await act(wp, "request_refund", order, amount_cents=5900)
    too_much = await act(wp, "request_refund", order, amount_cents=1)
    assert [first.state, second.state, too_much.state] == ["done", "done", "dead"]
    assert too_much.last_error == (
        f"at most 0 cents (EUR) can be refunded on order {order['orderNumber']}; 1 was asked"
    )
    payment = await wp.api.payment(payment_id)
    assert [(t["amount"]["centAmount"], t["state"]) for t in refunds(payment)] == [
        (1000, "Initial"),
        (5900, "Initial"),
    ]
    assert [t["timestamp"] for t in refunds(payment)] == [
        first.payload["requested_at"],
        second.payload["requested_at"],
    ]
    bodies = wp.updates()
    assert [b["actions"][0]["action"] for b in bodies] == ["addTransaction"] * 2
    assert bodies[0]["actions"][0]["transaction"]["state"] == "Initial"


async def test_a_return_for_chosen_lines_and_quantities(wp: WritePath) -> None:
    order = await wp.api.create_order()
    shirts = next(li for li in order["lineItems"] if li["variant"]["sku"] == "TSHIRT-ORG-M")
    one = [{"line_item_id": shirts["id"], "quantity": 1}]
    first = await act(wp, "create_return", order, items=one, comment="Too big")
    too_many = await act(wp, "create_return", order,
                         items=[{"line_item_id": shirts["id"], "quantity": 2}])  # fmt: skip
    unknown = await act(wp, "create_return", order,
                        items=[{"line_item_id": "no-such-line", "quantity": 1}])  # fmt: skip
    assert [first.state, too_many.state, unknown.state] == ["done", "dead", "dead"]
    assert "only 1 of line item" in (too_many.last_error or "")
    assert "has no line item no-such-line" in (unknown.last_error or "")
    after = await wp.api.order(order["id"])
    [info] = after["returnInfo"]
    [item] = info["items"]
    assert (item["lineItemId"], item["quantity"], item["shipmentState"]) == (
        shirts["id"],
        1,
        "Advised",
    )
    assert info["returnDate"] == first.payload["requested_at"]
    [body] = wp.updates()
    assert body["actions"][0]["action"] == "addReturnInfo"


async def test_actions_on_a_deleted_order_are_dead_with_a_clear_reason(wp: WritePath) -> None:
    order = await wp.api.create_order(custom={"supportStatus": "open"})
    await wp.api.delete_order(order["id"])
    for action, fields in (
        ("cancel_order", {}),
        ("set_support_status", {"value": "resolved"}),
        ("request_refund", {"amount_cents": 100}),
    ):
        job = await act(wp, action, order, **fields)
        assert job.state == "dead"
        assert job.last_error == f"order {order['id']} no longer exists in commercetools (deleted?)"


async def test_lost_responses_never_refund_or_return_twice(
    harness: Harness, tmp_path: Path
) -> None:
    # The write lands, its answer is lost: the client re-sends with the old version (409),
    # the job is retried, re-reads, and finds its own transaction / return already there.
    def writes(method: str, path: str) -> bool:
        return method == "POST" and ("/payments/" in path or "/orders/" in path)

    proxy = FaultProxy(harness.api_url, ["lost", "lost", "lost", "lost"], applies=writes)
    settings = write_settings(harness, tmp_path, ct_timeout=0.5, ct_max_retries=1)
    async with serving(proxy) as url, write_path(harness, settings, api_url=url) as wp:
        order = await wp.api.create_order(custom={"supportStatus": "open"})
        shirts = next(li for li in order["lineItems"] if li["variant"]["sku"] == "TSHIRT-ORG-M")
        refund = await act(wp, "request_refund", order, amount_cents=2500)
        ret = await act(wp, "create_return", order,
                        items=[{"line_item_id": shirts["id"], "quantity": 2}])  # fmt: skip
        cancel = await act(wp, "cancel_order", order)
        assert [refund.state, ret.state, cancel.state] == ["done"] * 3, [
            refund.last_error,
            ret.last_error,
            cancel.last_error,
        ]
        assert not proxy.faults
        payment = await wp.api.payment(order["paymentInfo"]["payments"][0]["id"])
        assert [t["amount"]["centAmount"] for t in refunds(payment)] == [2500]
        after = await wp.api.order(order["id"])
        assert len(after["returnInfo"]) == 1
        assert after["orderState"] == "Cancelled"
        assert after["version"] == order["version"] + 2  # one return, one state change


# -- the endpoints, on the whole service (session auth, gates, idempotency, status) -------------


def config_with(tmp_path: Path, actions: str) -> Path:
    """demo.toml with its [actions] section replaced."""
    text = (Path(__file__).parents[1] / "backend/commerce_context/demo.toml").read_text()
    path = tmp_path / "mappings.toml"
    path.write_text(text.split("[actions]")[0] + actions)
    return path


@pytest_asyncio.fixture(loop_scope="session")
async def svc(harness: Harness, tmp_path: Path) -> AsyncIterator[Service]:
    zendesk = DemoZendesk.generate()
    config = config_with(
        tmp_path,
        '[actions]\nenabled = ["set_support_status", "cancel_order", "request_refund"]\n'
        '[actions.roles]\nrequest_refund = ["admin"]\n',
    )
    settings = service_settings(harness, tmp_path, zendesk, config_file=str(config))
    async with service(settings, harness, zendesk) as s:
        yield s


async def post_action(svc: Service, **body: Any) -> httpx.Response:
    return await svc.client.post("/zendesk/actions", json=body, headers=svc.bearer())


async def until_settled(svc: Service, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        answer = await svc.client.get(f"/zendesk/actions/{job_id}", headers=svc.bearer())
        assert answer.status_code == 200, answer.text
        if answer.json()["state"] != "pending":
            return dict(answer.json())
        await asyncio.sleep(0.05)
    raise AssertionError("the action stayed pending")


async def test_an_action_is_queued_once_and_reports_its_state(svc: Service) -> None:
    order = await svc.api.create_order(order_state="Open")
    request_id = uuid.uuid4().hex
    first = await post_action(svc, action="cancel_order", order_id=order["id"],
                              request_id=request_id, ticket_id=31)  # fmt: skip
    double = await post_action(svc, action="cancel_order", order_id=order["id"],
                               request_id=request_id, ticket_id=31)  # fmt: skip
    assert (first.status_code, double.status_code) == (202, 202)
    assert first.json()["state"] == "pending"
    assert double.json()["job_id"] == first.json()["job_id"]  # a double click: the same job
    done = await until_settled(svc, first.json()["job_id"])
    assert (done["state"], done["outcome"], done["label"]) == ("applied", "applied", "Cancel order")
    after = await svc.api.order(order["id"])
    assert (after["orderState"], after["version"]) == ("Cancelled", order["version"] + 1)
    activity = await svc.client.get(
        "/zendesk/activity", params={"order_id": order["id"]}, headers=svc.bearer()
    )
    assert [(i["job_id"], i["state"]) for i in activity.json()["items"]] == [
        (first.json()["job_id"], "applied")
    ]
    database = Database.from_url(svc.settings.database_location)
    await database.open()
    try:
        trail = await Audit(database).query(order=order["id"])
    finally:
        await database.close()
    steps = {(e.action, e.outcome, e.agent_id, e.ticket_id) for e in trail}
    assert ("action.cancel_order", "requested", "9001", "31") in steps
    assert ("action.cancel_order", "applied", "9001", "31") in steps


async def test_a_refused_action_reports_why(svc: Service) -> None:
    order = await svc.api.create_order(order_state="Open", shipment_state="Shipped")
    response = await post_action(svc, action="cancel_order", order_id=order["id"],
                                 request_id=uuid.uuid4().hex)  # fmt: skip
    done = await until_settled(svc, response.json()["job_id"])
    assert done["state"] == "failed"
    assert done["reason"] == f"order {order['orderNumber']} has shipped; it cannot be cancelled"


async def test_gates_configuration_and_roles(svc: Service) -> None:
    order = await svc.api.create_order()
    note = await post_action(svc, action="set_internal_note", order_id=order["id"],
                             request_id=uuid.uuid4().hex, value="x")  # fmt: skip
    assert note.status_code == 403
    assert note.json()["error"]["message"] == "Set internal note is not enabled on this instance."
    refund = {"action": "request_refund", "order_id": order["id"], "amount_cents": 100}
    agent = await post_action(svc, **refund, request_id=uuid.uuid4().hex, role="agent")
    assert agent.status_code == 403
    admin = await post_action(svc, **refund, request_id=uuid.uuid4().hex, role="admin")
    assert admin.status_code == 202
    assert (await until_settled(svc, admin.json()["job_id"]))["state"] == "applied"


@pytest.mark.parametrize(
    "body",
    [
        {"action": "cancel_order", "order_id": "not-an-id", "request_id": "abcdefgh12"},
        {"action": "cancel_order", "order_id": str(uuid.uuid4()), "request_id": "short"},
        {"action": "launch_rocket", "order_id": str(uuid.uuid4()), "request_id": "abcdefgh12"},
        {"action": "set_support_status", "order_id": str(uuid.uuid4()), "request_id": "abcdefgh12"},
        {"action": "set_support_status", "order_id": str(uuid.uuid4()),
         "request_id": "abcdefgh12", "value": "on fire"},
        {"action": "request_refund", "order_id": str(uuid.uuid4()), "request_id": "abcdefgh12",
         "role": "admin"},
        {"action": "cancel_order", "order_id": str(uuid.uuid4()), "request_id": "abcdefgh12",
         "extra": 1},
    ],
)  # fmt: skip
async def test_bad_requests_are_a_400(svc: Service, body: dict[str, Any]) -> None:
    response = await post_action(svc, **body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"action": "cancel_order", "order_id": "\\ud800", "request_id": "abcdefgh12"}',
        b'{"\\udfff": 1}',
    ],
)
async def test_hostile_json_is_a_400(svc: Service, body: bytes) -> None:
    headers = {**svc.bearer(), "Content-Type": "application/json"}
    response = await svc.client.post("/zendesk/actions", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "bad_request"


async def test_the_endpoints_need_the_session(svc: Service) -> None:
    body = {"action": "cancel_order", "order_id": str(uuid.uuid4()), "request_id": "abcdefgh12"}
    assert (await svc.client.post("/zendesk/actions", json=body)).status_code == 401
    forged = {"Authorization": "Bearer " + svc.session[:-4] + "AAAA"}
    assert (await svc.client.post("/zendesk/actions", json=body, headers=forged)).status_code == 401
    assert (await svc.client.get("/zendesk/actions/" + "0" * 32)).status_code == 401
    assert (await svc.client.get("/zendesk/activity?order_id=x")).status_code == 401
    missing = await svc.client.get("/zendesk/actions/" + "0" * 32, headers=svc.bearer())
    assert missing.status_code == 404
    weird = await svc.client.get("/zendesk/actions/..%2Fadmin", headers=svc.bearer())
    assert weird.status_code == 404
