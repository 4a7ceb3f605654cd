"""The Messages API poller against the bridge's Messages API, with its state in real SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from commerce_context import queries
from commerce_context.cache import Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.emulator.harness import Harness
from commerce_context.policy import Policy
from commerce_context.poller import CURSOR, MessagesPoller
from commerce_context.resolution import detail_views
from commerce_context.settings import Settings
from commerce_context.state import StateFile
from commerce_context.stores import MemoryStore

pytestmark = pytest.mark.emulator


class Rig:
    def __init__(self, client: CommercetoolsClient, state_path: Path) -> None:
        self.client = client
        self.reader = Reader(client, Policy(), MemoryStore(8 << 20), namespace="poll")
        self.state = StateFile(state_path)

    def poller(self, now: datetime | None = None) -> MessagesPoller:
        return MessagesPoller(
            self.client,
            self.reader,
            self.state,
            interval=1,
            overlap=60,
            now=(lambda: now) if now else lambda: datetime.now(UTC),
        )


@pytest_asyncio.fixture(loop_scope="session")
async def rig(ct_settings: Settings, tmp_path: Path) -> AsyncIterator[Rig]:
    async with httpx.AsyncClient() as http:
        yield Rig(CommercetoolsClient(ct_settings, http), tmp_path / "state.sqlite3")


def order_read(number: str) -> list[queries.Read]:
    return [queries.order_by_number(number, detail_views(("internalNote",)), key="order")]


async def test_a_polled_change_evicts_the_cached_order(rig: Rig, harness: Harness) -> None:
    poller = rig.poller()
    await poller.poll_once()  # catch up with whatever the seed wrote
    first = await rig.reader.fetch(order_read("US-3001"))
    order = first.found["order"]
    await rig.client.update(
        "orders",
        order["id"],
        order["version"],
        [{"action": "setCustomField", "name": "internalNote", "value": uuid.uuid4().hex}],
    )
    assert await poller.poll_once() >= 1
    after = await rig.reader.fetch(order_read("US-3001"))
    assert after.upstream_requests == 2  # versions, then the evicted order
    assert after.found["order"]["version"] > order["version"]
    assert await poller.poll_once() == 0  # nothing new: seen ids are skipped


async def test_position_survives_a_restart_and_late_messages_are_caught(
    rig: Rig, harness: Harness
) -> None:
    await rig.poller().poll_once()
    cursor = await StateFile(rig.state.path).get(CURSOR)
    assert cursor is not None
    at = datetime.fromisoformat(cursor.replace("Z", "+00:00"))
    order = harness.demo.orders["DE-1004"]
    # A message that became visible late: created 30 s before the stored position.
    late = harness.messages.record(
        "OrderStateChanged",
        {"typeId": "order", "id": order.id},
        10_000,
        {"orderState": "Complete", "oldOrderState": "Confirmed"},
        created_at=at - timedelta(seconds=30),
    )
    await rig.reader.fetch(order_read("DE-1004"))
    restarted = Rig(rig.client, rig.state.path)
    restarted.reader = rig.reader
    assert await restarted.poller().poll_once() == 1  # exactly the late message
    assert await restarted.poller().poll_once() == 0
    assert late["resourceVersion"] == 10_000
    again = await rig.reader.fetch(order_read("DE-1004"))
    assert again.upstream_requests == 2


async def test_first_run_does_not_replay_history(rig: Rig, harness: Harness) -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    assert await rig.poller(now=future).poll_once() == 0
    stored = await rig.state.get(CURSOR)
    assert stored is not None and stored.startswith(future.strftime("%Y-%m-%dT%H"))


async def test_the_app_runs_the_poller_in_its_lifespan(harness: Harness, tmp_path: Path) -> None:
    import asyncio

    from commerce_context.app import create_app
    from commerce_context.emulator.harness import demo_settings
    from tests.asgi import app_client

    path = tmp_path / "app-state.sqlite3"
    settings = demo_settings(harness, messages_poll_interval=0.05, state_path=path)
    async with app_client(create_app(settings)):
        for _ in range(100):
            if path.exists() and await StateFile(path).get(CURSOR):
                break
            await asyncio.sleep(0.05)
        assert await StateFile(path).get(CURSOR) is not None


class FlakyStore:
    """A cache store that fails (as Redis does when it is down) while `broken` is set."""

    def __init__(self) -> None:
        self.inner = MemoryStore(8 << 20)
        self.broken = False

    def __getattr__(self, name: str) -> object:
        method = getattr(self.inner, name)

        async def call(*args: object, **kwargs: object) -> object:
            if self.broken:
                from commerce_context.exceptions import CacheUnavailable

                raise CacheUnavailable("the cache's Redis does not answer")
            return await method(*args, **kwargs)

        return call


async def test_a_message_whose_apply_failed_is_applied_by_the_next_poll(
    rig: Rig, harness: Harness
) -> None:
    """Messages are recorded as seen only after they were applied (and their sync jobs
    enqueued): a failure part-way leaves them for the next poll instead of losing them."""
    store = FlakyStore()
    reader = Reader(rig.client, Policy(), store, namespace="flaky")  # type: ignore[arg-type]
    poller = MessagesPoller(rig.client, reader, rig.state, interval=1, overlap=60)
    await poller.poll_once()  # catch up with whatever the seed and other tests wrote
    order = (await reader.fetch(order_read("US-3001"))).found["order"]
    await rig.client.update(
        "orders",
        order["id"],
        order["version"],
        [{"action": "setCustomField", "name": "internalNote", "value": uuid.uuid4().hex}],
    )
    store.broken = True
    with pytest.raises(Exception, match="does not answer"):
        await poller.poll_once()
    store.broken = False
    assert await poller.poll_once() >= 1  # the same message, applied this time
    after = await reader.fetch(order_read("US-3001"))
    assert after.found["order"]["version"] > order["version"]
    assert await poller.poll_once() == 0
