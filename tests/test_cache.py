"""The delta cache against the seeded emulator, on both stores (Redis: the real server).

Upstream requests are counted at the HTTP layer, so "0 / 1 / 2 requests" means requests that
really left the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from redis.asyncio import Redis

from commerce_context import queries, views
from commerce_context.breaker import CircuitBreaker
from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.emulator.harness import Harness
from commerce_context.exceptions import CacheUnavailable, UpstreamUnavailable
from commerce_context.policy import Policy
from commerce_context.resolution import detail_views
from commerce_context.settings import Settings
from commerce_context.stores import MemoryStore, RedisStore, Store

pytestmark = pytest.mark.emulator

REDIS_URL = "redis://127.0.0.1:6379/15"
FIELDS = ("supportStatus", "internalNote")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    """A transport that forwards to the network until it is switched off (an outage)."""

    def __init__(self) -> None:
        self.down = False
        self.api_calls = 0
        self._real = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/oauth/token":
            self.api_calls += 1
        if self.down:
            raise httpx.ConnectError("upstream switched off", request=request)
        return await self._real.handle_async_request(request)

    async def aclose(self) -> None:
        await self._real.aclose()


@pytest_asyncio.fixture(loop_scope="session", params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Callable[[], Store]]:
    """A factory: several calls give several instances sharing one backend (like replicas)."""
    if request.param == "memory":
        memory = MemoryStore(8 * 1024 * 1024)
        yield lambda: memory
        return
    prefix = f"cc-test-{uuid.uuid4().hex[:8]}:"
    made: list[RedisStore] = []

    def factory() -> Store:
        made.append(RedisStore.from_url(REDIS_URL, prefix=prefix))
        return made[-1]

    yield factory
    admin = Redis.from_url(REDIS_URL)
    keys = [k async for k in admin.scan_iter(match=prefix + "*")]
    if keys:
        await admin.delete(*keys)
    await admin.aclose()
    for s in made:
        await s.close()


class Rig:
    def __init__(self, settings: Settings, store: Store, clock: Clock, **kw: Any) -> None:
        self.switch = Switch()
        self.http = httpx.AsyncClient(transport=self.switch)
        client = CommercetoolsClient(settings, self.http)
        self.reader = Reader(
            client, Policy(), store, clock=clock, namespace="test", freshness=Freshness(), **kw
        )


@pytest_asyncio.fixture(loop_scope="session")
async def rig(
    ct_settings: Settings, store: Callable[[], Store]
) -> AsyncIterator[Callable[..., Rig]]:
    clock = Clock()
    made: list[Rig] = []

    def make(**kw: Any) -> Rig:
        made.append(Rig(ct_settings.model_copy(update={"ct_max_retries": 0}), store(), clock, **kw))
        return made[-1]

    make.clock = clock  # type: ignore[attr-defined]
    yield make
    for r in made:
        await r.http.aclose()


def ticket_reads(harness: Harness, customer: str = "anna-schmidt") -> list[queries.Read]:
    info = harness.demo.customers[customer]
    return [
        queries.customers_by_email(info.email, [views.CUSTOMER], key="e0"),
        queries.orders_by_email([info.email], [views.ORDER_SUMMARY], key="eo"),
        queries.orders_by_email([info.email], detail_views(FIELDS), limit=1, key="el"),
    ]


async def set_note(ct: CommercetoolsClient, order_id: str, value: str) -> None:
    read = queries.order_by_id(order_id, [views.VERSION])
    version = (await ct.fetch(queries.compose([read])))["order"]["version"]
    await ct.update(
        "orders",
        order_id,
        version,
        [{"action": "setCustomField", "name": "internalNote", "value": value}],
    )


async def test_cold_warm_and_unchanged_views(rig: Callable[..., Rig], harness: Harness) -> None:
    r = rig()
    reads = ticket_reads(harness)
    cold = await r.reader.fetch(reads)
    assert (cold.upstream_requests, r.switch.api_calls) == (1, 1)
    assert cold.found["e0"][0]["firstName"] == "Anna"
    warm = await r.reader.fetch(reads)
    assert (warm.upstream_requests, r.switch.api_calls) == (0, 1)
    assert warm.found == cold.found
    rig.clock.now += 3600  # type: ignore[attr-defined]  # everything past freshness
    checked = await r.reader.fetch(reads)
    assert checked.upstream_requests == 1  # only the version check: nothing changed
    assert checked.found == cold.found
    again = await r.reader.fetch(reads)
    assert again.upstream_requests == 0  # confirmed entries are fresh again


async def test_changed_view_costs_at_most_two_requests(
    rig: Callable[..., Rig], harness: Harness, ct: CommercetoolsClient
) -> None:
    r = rig()
    reads = ticket_reads(harness, "emily-johnson")
    first = await r.reader.fetch(reads)
    latest = first.found["el"][0]
    note = f"Changed while cached {uuid.uuid4().hex[:6]}"
    await set_note(ct, latest["id"], note)
    rig.clock.now += 3600  # type: ignore[attr-defined]
    changed = await r.reader.fetch(reads)
    assert changed.upstream_requests == 2
    fields = {f["name"]: f["value"] for f in changed.found["el"][0]["custom"]["customFieldsRaw"]}
    assert fields["internalNote"] == note
    assert changed.found["el"][0]["version"] > latest["version"]
    # Unchanged entities kept their cached data.
    assert changed.found["e0"] == first.found["e0"]


async def test_refresh_bypasses_freshness(
    rig: Callable[..., Rig], harness: Harness, ct: CommercetoolsClient
) -> None:
    r = rig()
    reads = ticket_reads(harness, "james-taylor")
    first = await r.reader.fetch(reads)
    value = f"Seen on refresh {uuid.uuid4().hex[:6]}"
    await set_note(ct, first.found["el"][0]["id"], value)
    stale = await r.reader.fetch(reads)  # still fresh: the change is not seen
    assert stale.upstream_requests == 0
    refreshed = await r.reader.fetch(reads, refresh=True)
    assert refreshed.upstream_requests == 2
    note = {f["name"]: f["value"] for f in refreshed.found["el"][0]["custom"]["customFieldsRaw"]}
    assert note["internalNote"] == value


async def test_a_warm_answer_follows_entries_another_instance_rewrote(
    rig: Callable[..., Rig], harness: Harness, ct: CommercetoolsClient
) -> None:
    here, there = rig(), rig()  # two instances sharing one store
    reads = ticket_reads(harness, "emily-johnson")
    await here.reader.fetch(reads)
    warm = await here.reader.fetch(reads)
    assert (await here.reader.fetch(reads)) is warm  # the same entries: the same answer
    note = f"Rewritten elsewhere {uuid.uuid4().hex[:6]}"
    await set_note(ct, warm.found["el"][0]["id"], note)
    await there.reader.fetch(reads, refresh=True)  # writes the changed order to the store
    seen = await here.reader.fetch(reads)
    assert seen.upstream_requests == 0 and here.switch.api_calls == 1
    fields = {f["name"]: f["value"] for f in seen.found["el"][0]["custom"]["customFieldsRaw"]}
    assert fields["internalNote"] == note


async def test_push_invalidation_evicts_and_ignores_older_versions(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    reads = ticket_reads(harness)
    first = await r.reader.fetch(reads)
    order = first.found["el"][0]
    assert not await r.reader.invalidate("order", order["id"], version=order["version"])
    assert not await r.reader.invalidate("order", order["id"], version=order["version"] - 1)
    assert (await r.reader.fetch(reads)).upstream_requests == 0
    assert await r.reader.invalidate("order", order["id"], version=order["version"] + 1)
    after = await r.reader.fetch(reads)
    assert after.upstream_requests == 2  # versions, then the evicted order
    assert after.found["el"][0]["id"] == order["id"]


async def test_list_invalidation_rereads_lists(rig: Callable[..., Rig], harness: Harness) -> None:
    r = rig()
    reads = ticket_reads(harness)
    await r.reader.fetch(reads)
    await r.reader.invalidate_lists()
    again = await r.reader.fetch(reads)
    assert again.upstream_requests == 1  # lists re-read as a cold view; entities merged


async def test_concurrent_cold_views_make_one_request(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    reads = ticket_reads(harness, "alex-morgan-berlin")
    answers = await asyncio.gather(*(r.reader.fetch(reads) for _ in range(100)))
    assert r.switch.api_calls == 1
    assert all(a.found == answers[0].found for a in answers)


async def test_instances_sharing_a_store_coalesce(
    rig: Callable[..., Rig], harness: Harness, store: Any
) -> None:
    replicas = [rig() for _ in range(4)]
    reads = ticket_reads(harness, "alex-morgan-london")
    await asyncio.gather(*(x.reader.fetch(reads) for x in replicas for _ in range(10)))
    assert sum(x.switch.api_calls for x in replicas) == 1


async def test_outage_serves_stale_entries_with_their_age(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    reads = ticket_reads(harness)
    first = await r.reader.fetch(reads)
    fetched_at = rig.clock.now  # type: ignore[attr-defined]
    rig.clock.now += 3600  # type: ignore[attr-defined]
    r.switch.down = True
    stale = await r.reader.fetch(reads)
    assert stale.found == first.found
    assert stale.as_of == fetched_at


async def test_outage_without_cache_is_an_error(rig: Callable[..., Rig], harness: Harness) -> None:
    r = rig()
    r.switch.down = True
    with pytest.raises(UpstreamUnavailable):
        await r.reader.fetch(ticket_reads(harness, "emily-johnson"))


async def test_breaker_stops_calling_a_failing_upstream_and_recovers(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    clock = rig.clock  # type: ignore[attr-defined]
    r = rig(breaker=CircuitBreaker(threshold=2, cooldown=30, clock=clock))
    reads = ticket_reads(harness)
    await r.reader.fetch(reads)
    clock.now += 3600
    r.switch.down = True
    for _ in range(5):
        answer = await r.reader.fetch(reads)
        assert answer.as_of is not None
    assert r.switch.api_calls == 1 + 2  # cold + two failures; then the circuit is open
    r.switch.down = False
    clock.now += 31  # half-open: one trial goes through and closes the circuit
    recovered = await r.reader.fetch(reads)
    assert recovered.as_of is None and recovered.upstream_requests == 1


async def test_entities_are_masked_before_caching(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    anna = harness.demo.customers["anna-schmidt"]
    answer = await r.reader.fetch(ticket_reads(harness))
    assert answer.found["e0"][0]["email"] != anna.email
    assert "***" in answer.found["e0"][0]["email"]
    warm = await r.reader.fetch(ticket_reads(harness))
    assert warm.found["e0"][0]["email"] == answer.found["e0"][0]["email"]


async def test_order_with_nested_customer_round_trips(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    read = queries.order_by_number(
        "DE-1003", [*detail_views(FIELDS), views.ORDER_CUSTOMER], key="order"
    )
    cold = await r.reader.fetch([read])
    assert cold.found["order"]["customer"]["id"] == harness.demo.customers["alex-morgan-berlin"].id
    warm = await r.reader.fetch([read])
    assert warm.upstream_requests == 0 and warm.found == cold.found
    rig.clock.now += 3600  # type: ignore[attr-defined]
    checked = await r.reader.fetch([read])
    assert checked.upstream_requests == 1 and checked.found == cold.found


async def test_memory_store_is_bounded_by_bytes() -> None:
    store = MemoryStore(1024 * 1024)
    for i in range(3000):
        await store.set_many({f"k{i}": b"x" * 1000}, ttl=60)
    assert store.size_bytes <= 1024 * 1024
    assert (await store.get_many(["k0"]))[0] is None  # least recently used went first
    assert (await store.get_many(["k2999"]))[0] == b"x" * 1000


async def test_memory_store_expires_entries() -> None:
    clock = Clock()
    store = MemoryStore(1024 * 1024, clock=clock)
    await store.set_many({"a": b"1"}, ttl=10)
    assert (await store.get_many(["a"]))[0] == b"1"
    clock.now += 11
    assert (await store.get_many(["a"]))[0] is None


async def test_redis_outage_is_a_cache_error() -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0")
    with pytest.raises(CacheUnavailable, match="redis"):
        await dead.get_many(["a"])
    await dead.close()


class PrivateRedis:
    """A redis-server of the test's own (a free port, no persistence), to restart at will."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
            "--appendonly", "no", stdout=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await self.process.wait()


async def test_a_redis_restart_costs_no_failed_operation_once_it_is_back() -> None:
    redis = PrivateRedis()
    await redis.start()
    store = RedisStore.from_url(f"redis://127.0.0.1:{redis.port}/0")
    try:
        # Several pooled connections, all of which the restart leaves stale.
        await asyncio.gather(*(store.get_many(["a", "b"]) for _ in range(8)))
        await redis.stop()
        with pytest.raises(CacheUnavailable):
            await store.get_many(["a"])  # down: the usual error
        await redis.start()
        operations = [
            lambda: store.get_many(["a"]),
            lambda: store.set_many({"a": b"1"}, 10),
            lambda: store.count("quota:x", 60),
            lambda: store.incr("generation"),
            lambda: store.add("lock:x", b"me", 5),
            lambda: store.delete(["a"]),
        ]
        results = await asyncio.gather(
            *(op() for op in operations for _ in range(4)), return_exceptions=True
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
    finally:
        await store.close()
        await redis.stop()


async def test_reads_go_through_when_the_cache_store_is_down(
    ct_settings: Settings, harness: Harness
) -> None:
    dead = RedisStore.from_url("redis://127.0.0.1:1/0")
    async with httpx.AsyncClient() as http:
        reader = Reader(CommercetoolsClient(ct_settings, http), Policy(), dead)
        for _ in range(2):
            answer = await reader.fetch(ticket_reads(harness))
            assert answer.upstream_requests == 1
            assert answer.found["e0"][0]["firstName"] == "Anna"
            assert "***" in answer.found["e0"][0]["email"]  # still masked
    await dead.close()


async def test_a_cancelled_leader_does_not_fail_the_views_waiting_on_it(
    rig: Callable[..., Rig], harness: Harness
) -> None:
    r = rig()
    reads = ticket_reads(harness, "james-taylor")
    leader = asyncio.create_task(r.reader.fetch(reads))
    await asyncio.sleep(0)  # the leader starts its flight
    followers = [asyncio.create_task(r.reader.fetch(reads)) for _ in range(5)]
    await asyncio.sleep(0)
    leader.cancel()
    answers = await asyncio.gather(*followers)
    assert all(a.found["e0"][0]["firstName"] == "James" for a in answers)
    assert leader.cancelled()


# -- the stores' atomic operations ----------------------------------------------------------------


async def test_a_lock_is_released_only_by_its_owner(store: Callable[[], Store]) -> None:
    one, other = store(), store()  # two replicas
    key = f"lock-{uuid.uuid4().hex}"
    owner = await one.acquire(key, 10)
    assert owner is not None
    assert await other.acquire(key, 10) is None
    await other.release(key, "not-the-owner")
    assert await other.acquire(key, 10) is None  # still held
    await one.release(key, owner)
    assert await other.acquire(key, 10) is not None


async def test_an_expired_lock_taken_over_is_not_released_by_the_late_owner(
    store: Callable[[], Store],
) -> None:
    one, other = store(), store()
    key = f"lock-{uuid.uuid4().hex}"
    late = await one.acquire(key, 0.05)
    assert late is not None
    await asyncio.sleep(0.15)  # the lock expires while its owner is still busy
    taken = await other.acquire(key, 10)
    assert taken is not None
    await one.release(key, late)  # the late owner finishes: it must not free the new lock
    assert await one.acquire(key, 10) is None


async def test_window_counters_and_markers(store: Callable[[], Store]) -> None:
    s = store()
    key = f"count-{uuid.uuid4().hex}"
    counts = [await s.count(key, 0.2) for _ in range(3)]
    assert [n for n, _ in counts] == [1, 2, 3]
    assert all(0 <= left <= 0.2 for _, left in counts)
    assert (await store().count(key, 0.2))[0] == 4  # another replica counts on
    await asyncio.sleep(0.3)
    assert (await s.count(key, 0.2))[0] == 1  # a new window
    marker = f"marker-{uuid.uuid4().hex}"
    assert await s.add(marker, b"x", 10)
    assert not await s.add(marker, b"y", 10)


async def test_the_memory_stores_locks_and_markers_are_bounded() -> None:
    memory = MemoryStore(1024 * 1024)
    for i in range(30_000):
        assert await memory.acquire(f"lock:{i}", 3600) is not None
        assert await memory.add(f"seen:{i}", b"1", 3600)
    assert memory.size_bytes <= memory.max_bytes
    # The oldest gave way to the bound (an evicted lock costs a duplicate request at most).
    assert await memory.acquire("lock:0", 3600) is not None


def test_entries_under_another_scrub_or_custom_field_policy_are_not_shared() -> None:
    """Cache keys carry the whole policy: field overrides, the custom fields shown and the
    scrub patterns. An entry admitted under older rules (a value in clear that a new pattern
    masks) is never served under the new ones."""
    from commerce_context.entries import Entries
    from commerce_context.scrub import Scrubber

    store = MemoryStore(1024 * 1024)
    plain = Entries(store, Policy(), namespace="p")
    patterned = Entries(store, Policy(scrubber=Scrubber((r"INT-\d{6}",))), namespace="p")
    narrower = Entries(store, Policy(custom_fields={"supportStatus": "show"}), namespace="p")
    same = Entries(store, Policy(), namespace="p")
    assert plain.ns == same.ns
    assert len({plain.ns, patterned.ns, narrower.ns}) == 3
    assert plain.entity_key("order", "o1") != patterned.entity_key("order", "o1")
