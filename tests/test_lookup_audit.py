"""Each sidebar lookup lands in the audit log: agent, ticket, how the shopper was found, the
customer and orders shown (ids and order numbers only), written in batches off the hot path."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from bs4 import BeautifulSoup

from commerce_context.app import create_app
from commerce_context.audit import Audit
from commerce_context.database import Database
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from tests.asgi import app_client

pytestmark = pytest.mark.emulator
BERLIN = 1001


async def test_each_lookup_is_audited_with_the_agent_ticket_customer_and_orders(
    harness: Harness, tmp_path: Path
) -> None:
    zendesk = DemoZendesk.generate()
    settings = demo_settings(
        harness,
        zendesk,
        state_path=tmp_path / "state.sqlite3",
        lookups_per_session=1000,
        lookups_per_agent=1000,
    )
    anna = harness.demo.customers["anna-schmidt"]
    async with httpx.AsyncClient() as http, app_client(create_app(settings, http=http)) as client:
        page = await client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc",
            data={"token": zendesk.token(sub="agent-77")},
        )
        app = BeautifulSoup(page.text, "html.parser").select_one("#app")
        assert app is not None
        auth = {"Authorization": f"Bearer {app['data-session']}"}
        for _ in range(2):  # cold, then warm (the rendered-panel memo): both are audited
            response = await client.post(
                "/zendesk/panels",
                json={"emails": [anna.email], "brand_id": BERLIN, "ticket_id": 4711},
                headers=auth,
            )
            assert response.status_code == 200
        empty = await client.post(
            "/zendesk/panels",
            json={"emails": ["nobody@example.org"], "ticket_id": 4712},
            headers=auth,
        )
        assert empty.status_code == 200
    # The app has stopped: its flusher wrote the noted rows at shutdown.
    database = Database.from_url(settings.database_location)
    await database.open()
    try:
        rows = await Audit(database).query(ticket="4711")
        assert len(rows) == 2
        for row in rows:
            assert (row.action, row.source, row.outcome) == ("lookup", "sidebar", "shown")
            assert row.agent_id == "agent-77"
            assert row.customer_id == anna.id
            assert row.detail["matched_by"] == "email"
            orders = [o.order_number for o in harness.demo.orders_of("anna-schmidt")]
            assert row.detail["orders"] == orders
            assert row.order_number == orders[0]
            assert anna.email not in str(row.to_dict())
        [nothing] = await Audit(database).query(ticket="4712")
        assert nothing.outcome == "nothing found"
        assert nothing.customer_id is None
    finally:
        await database.close()
