"""The demo's simulated Zendesk account for the outbound sync (`make run` only, never production).

`demo_account(harness, tickets)` serves the fake Zendesk (emulator/zendesk.py) on loopback, makes
one fake ticket per demo ticket, and gives the settings that point the Zendesk API at it (with a
mapping file that is the demo's plus a `[zendesk_sync]` section, and an events secret).
`DemoAccount.start(settings)` then enqueues the backfill of every demo customer and the routing
job of every ticket, as the ticket-created webhook would; the service's in-process worker runs
them, so the demo customers appear as Zendesk users and the tickets get their routing fields.

Pages (mounted in demo mode only):

* `GET /demo/zendesk/account`: the simulated account's users and tickets with their fields;
* `POST /demo/zendesk/ship` (form: `order_number`): moves the order to its next shipment state
  through the emulator's REST API, then posts the resulting Message to
  `POST /commercetools/events` as a merchant's queue bridge would; the worker then updates the
  order's tickets. Answers with a redirect back to the account page.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from . import queries
from .commercetools import CommercetoolsClient
from .emulator.messages import platform_payload
from .emulator.zendesk import FakeZendesk, serve_fake_zendesk
from .exceptions import BadRequest, NotFound
from .settings import Settings
from .views import View
from .worker import open_engine
from .zendesk_sync import backfill_customers, enqueue_ticket_created

__all__ = ["FIELDS", "DemoAccount", "demo_account", "routes"]

ORDER_FIELD = 360000001  # the demo's order-number field (harness.DEMO_ORDER_FIELD_ID)
# The sync's ticket fields in the simulated account: id -> (what, label).
FIELDS = {
    360000010: ("order_state", "Order state"),
    360000011: ("shipment_state", "Shipment state"),
    360000012: ("payment_state", "Payment state"),
    360000013: ("store", "Store"),
    360000014: ("channel", "Channel"),
    360000015: ("currency", "Currency"),
    360000016: ("locale", "Locale"),
    360000017: ("market", "Market"),
}
SYNC_FIELDS = "".join(f"{what} = {field_id}\n" for field_id, (what, _) in FIELDS.items())
SYNC_CONFIG = (
    """
# The demo's simulated Zendesk account (demo_sync.py): customers to users, order state to
# ticket fields.
[zendesk_sync]
customers = true
orders = true
other_ids_field = "cc_other_ids"
batch_window = 1
job_poll_interval = 0.1

[zendesk_sync.user_fields]
cc_store = "store"
cc_locale = "locale"
cc_orders = "order_count"
cc_spent = "total_spent"

[zendesk_sync.ticket_fields]
order_number = 360000001
"""
    + SYNC_FIELDS
)
SHIPMENT_STEPS = {"Pending": "Ready", "Ready": "Shipped", "Shipped": "Delivered"}
ORDER_STATE = View("demo_ship", "Order", "id version orderNumber shipmentState")


@dataclass
class DemoAccount:
    fake: FakeZendesk
    url: str
    harness: Any  # emulator.harness.Harness: its Messages log makes the events
    tickets: dict[int, dict[str, Any]] = field(default_factory=dict)  # fake id -> demo ticket

    async def start(self, settings: Settings) -> None:
        """Enqueue the backfill of every customer and each ticket's routing fields."""
        async with open_engine(settings) as engine, httpx.AsyncClient(timeout=30) as http:
            commercetools = CommercetoolsClient(settings, http)
            await backfill_customers(
                commercetools, engine.queue, engine.ledger, since=datetime(2000, 1, 1, tzinfo=UTC)
            )
            for fake_id, ticket in self.tickets.items():
                email = (ticket.get("requester") or {}).get("email")
                await enqueue_ticket_created(
                    engine.queue,
                    settings,
                    {
                        "ticket_id": fake_id,
                        "emails": [email] if email else [],
                        "brand_id": (ticket.get("brand") or {}).get("id"),
                        "order_number": ticket.get("order_number"),
                    },
                    invocation=f"demo-start:{fake_id}",
                    source="demo",
                )


@contextlib.asynccontextmanager
async def demo_account(
    harness: Any, tickets: Sequence[dict[str, Any]]
) -> AsyncIterator[tuple[DemoAccount, dict[str, Any]]]:
    """The fake Zendesk on loopback with the demo's tickets, and the settings pointing at it."""
    fake = FakeZendesk(email="demo-sync@example.com", api_token=secrets.token_urlsafe(16))
    with tempfile.TemporaryDirectory(prefix="cc-demo-zendesk-") as tmp:
        config = Path(tmp) / "demo-sync.toml"
        config.write_text((files("commerce_context") / "demo.toml").read_text() + SYNC_CONFIG)
        async with serve_fake_zendesk(fake) as (_, url):
            account = DemoAccount(fake, url, harness)
            for ticket in tickets:
                number = ticket.get("order_number")
                made = fake.add_ticket(
                    ticket["subject"], custom_fields={ORDER_FIELD: number} if number else None
                )
                account.tickets[made["id"]] = ticket
            settings = {
                "config_file": str(config),
                "zendesk_api_url": url,
                "zendesk_api_email": fake.email,
                "zendesk_api_token": fake.api_token,
                "events_secret": secrets.token_urlsafe(32),
            }
            yield account, settings


def _account(request: Request) -> DemoAccount:
    demo = request.state.demo
    account = getattr(demo, "zendesk_account", None) if demo is not None else None
    if not isinstance(account, DemoAccount):
        raise NotFound("This instance runs without the simulated Zendesk account.")
    return account


async def account_page(request: Request) -> Response:
    account = _account(request)
    fake = account.fake
    organizations = {o["id"]: o["name"] for o in fake.organizations.values()}
    users = [
        {**u, "organization": organizations.get(u.get("organization_id"))}
        for u in sorted(fake.users.values(), key=lambda u: str(u.get("name")))
    ]
    tickets = []
    for ticket in fake.tickets.values():
        demo_ticket = account.tickets.get(ticket["id"], {})
        tickets.append(
            {
                "id": ticket["id"],
                "demo_id": demo_ticket.get("id"),
                "subject": ticket["subject"],
                "status": ticket["status"],
                "order_number": fake.field_value(ticket["id"], ORDER_FIELD),
                "fields": [
                    (label, fake.field_value(ticket["id"], fid))
                    for fid, (_, label) in FIELDS.items()
                ],
                "updated_at": ticket["updated_at"],
            }
        )
    context = {
        "users": users,
        "tickets": tickets,
        "shipped": request.query_params.get("shipped", "")[:40],
    }
    response: Response = request.state.templates.TemplateResponse(
        request, "demo_zendesk_account.html", context, headers={"Cache-Control": "no-store"}
    )
    return response


async def ship(request: Request) -> Response:
    """The order's next shipment state through the emulator's REST API, then its Message to
    the events endpoint, as a merchant's queue bridge forwards it."""
    account = _account(request)
    settings: Settings = request.state.settings
    form = await request.form()
    number = str(form.get("order_number") or "").strip()
    if not number or len(number) > 100:
        raise BadRequest("Send the order_number of a demo order.")
    client: CommercetoolsClient = request.state.commercetools
    read = queries.order_by_number(number, [ORDER_STATE], key="order")
    order = (await client.fetch(queries.compose([read], "DemoShip")))["order"]
    if not isinstance(order, dict):
        raise NotFound(f"The demo has no order {number}.")
    state = SHIPMENT_STEPS.get(str(order.get("shipmentState")), "Pending")
    action = {"action": "changeShipmentState", "shipmentState": state}
    updated = await client.update("orders", order["id"], order["version"], [action])
    messages = [
        m
        for m in account.harness.messages
        if m["resource"]["id"] == order["id"]
        and m["type"] == "OrderShipmentStateChanged"
        and m["resourceVersion"] == updated["version"]
    ]
    if messages and settings.events_secret is not None:
        payload = platform_payload(messages[-1], account.harness.project_key)
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                str(request.base_url).rstrip("/") + "/commercetools/events",
                json=payload,
                headers={"Authorization": f"Bearer {settings.events_secret.get_secret_value()}"},
            )
            response.raise_for_status()
    return RedirectResponse(f"/demo/zendesk/account?shipped={number}", status_code=303)


def routes() -> list[Route]:
    return [
        Route("/demo/zendesk/account", account_page, methods=["GET"]),
        Route("/demo/zendesk/ship", ship, methods=["POST"]),
    ]
