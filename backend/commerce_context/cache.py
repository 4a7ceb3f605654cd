"""The per-entity delta cache, request coalescing and stale-on-outage serving.

`Reader.fetch` answers a view's reads, masked, from the cache where it can:

* everything cached and fresh: no upstream request;
* nothing cached (cold): the composed document, one request;
* otherwise: one request with the same reads selecting only `id version lastModifiedAt`, then,
  only if something changed or is missing, one request for exactly those entities by id.

When commercetools fails, the circuit breaker is open, or the view's time budget runs out,
whatever is cached is served, however old (up to `CC_CACHE_STALE_TTL`), with the time it was
fetched so the panel can say "as of". List-changing events bump a generation: results read
under an older one are no longer fresh, but they are kept for that fallback.

The parts, each doing one thing:

* `entries.py` — the entity store: keys, encoding, masking on the way in (the field policy),
  the decoded-entry memo, and the `Snapshot` of what is cached for a request;
* `delta.py` — the delta planner: version reads, and what to fetch again;
* `flights.py` — coalescing: one flight per identical request in this process (shielded, so
  a late answer still fills the cache), one instance per request across instances sharing
  Redis (a lock released only by its owner);
* this module — the `Reader`, which decides how to answer and keeps the cache coherent with
  invalidations from events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from . import queries, views
from .breaker import CircuitBreaker
from .commercetools import CommercetoolsClient
from .delta import Plan, version_reads
from .entries import (
    KINDS,
    Entity,
    Entries,
    Freshness,
    Snapshot,
    encode_entry,
    entities_of,
    ids_in,
    result_of,
)
from .exceptions import CacheUnavailable, UpstreamUnavailable
from .flights import Flights, across_instances
from .lru import LRU
from .policy import Policy
from .stores import Store

__all__ = ["Answer", "Freshness", "Reader"]

logger = logging.getLogger(__name__)

NOT_ANSWERING = "commercetools is not answering, and nothing is cached for this ticket yet."
LATE_RETRY_AFTER = 5.0  # seconds: a hung upstream rarely recovers faster
OWNERS = 10_000  # address → customer hints kept (about 200 bytes each)
HITS = 1024  # recent fresh answers kept, by their reads (the entries are shared with the store)


@dataclass
class Answer:
    found: dict[str, Any]
    as_of: float | None = None  # epoch seconds of the oldest entry, when served stale
    upstream_requests: int = 0
    fingerprint: tuple[bytes, ...] | None = None  # set when served from fresh cache entries


@dataclass(frozen=True)
class _Hit:
    """A fresh answer from the cache, and exactly what it was made from."""

    keys: list[str]
    raw: list[bytes]
    generation: int
    until: float  # when its first entry stops being fresh
    answer: Answer


class Reader:
    """Reads through the cache. One per process, created in the app lifespan."""

    def __init__(
        self,
        client: CommercetoolsClient,
        policy: Policy,
        store: Store,
        *,
        freshness: Freshness | None = None,
        breaker: CircuitBreaker | None = None,
        namespace: str = "",
        lock_wait: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self.entries = Entries(store, policy, namespace)
        self._fresh = freshness or Freshness()
        self._breaker = breaker or CircuitBreaker()
        self._lock_wait = lock_wait
        self._clock = clock
        self._flights: Flights[Answer] = Flights()
        self.upstream_requests = 0
        # Which customer a ticket's addresses resolved to (`resolution.owner_key`): a hint that
        # lets the next view of them read that customer's orders by id in its first request.
        self.owners: LRU[Any, str] = LRU(OWNERS)
        self._hits: LRU[tuple[str, ...], _Hit] = LRU(HITS)

    # -- public ---------------------------------------------------------------------------------

    async def fetch(
        self, reads: Sequence[queries.Read], *, refresh: bool = False, name: str = "TicketView"
    ) -> Answer:
        """The answer to `reads`, masked, from the cache where it can be.

        Inside a time budget (`commercetools.budget`, a ticket view's) it answers by the
        deadline: from the flight if it has landed, else from the cache however old (with
        `as_of`), else `UpstreamUnavailable`. The flight goes on in the background, so the
        cache still fills when commercetools answers late."""
        if not refresh:
            try:
                answer = await self._from_cache(reads, refresh=False)
            except CacheUnavailable:
                answer = None  # the flight reads through
            if answer is not None:
                return answer
        key = "|".join(["flight", str(refresh), name, *(r.key + "=" + r.identity for r in reads)])
        try:
            return await self._flights.join(key, lambda: self._fly(key, reads, refresh, name))
        except TimeoutError:
            return await self._late(reads)

    async def close(self) -> None:
        """Cancel the flights still under way (at shutdown: nobody waits for them)."""
        await self._flights.close()

    async def invalidate(self, kind: str, entity_id: str, version: int | None = None) -> bool:
        """Drop a cached entity unless the cache already holds `version` or newer."""
        if version is not None:
            current = await self.entries.entry(kind, entity_id)
            if current is None or current.version >= version:
                return False
        await self.entries.delete(kind, [entity_id])
        return True

    async def invalidate_payment(self, payment_id: str) -> int:
        """Evict the cached orders holding a payment (payments are read through their order,
        and a payment's changes do not change the order's version). Asks commercetools which
        orders those are: one small request per payment event, rather than an index per order."""
        read = queries.orders_with_payment(payment_id, [views.VERSION], key="holders")
        found = await self._upstream(queries.compose([read], "PaymentHolders"))
        holders = entities_of(found.get("holders"))
        if holders:
            await self.entries.delete("order", [o["id"] for o in holders])
        return len(holders)

    async def invalidate_lists(self) -> None:
        """Make every cached read result not fresh (lists may have gained or lost members);
        they stay cached for serving during an outage."""
        await self.entries.next_generation()

    async def seen(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was marked by `mark_seen` (and has not expired); shared with
        replicas."""
        store, ns = self.entries.store, self.entries.ns
        return [v is not None for v in await store.get_many([ns + "seen:" + k for k in keys])]

    async def mark_seen(self, keys: Sequence[str], ttl: float) -> None:
        store, ns = self.entries.store, self.entries.ns
        await store.set_many({ns + "seen:" + k: b"1" for k in keys}, ttl)

    async def check_store(self) -> None:
        """Raises UpstreamUnavailable when the cache's store (Redis) does not answer."""
        await self.entries.store.get_many([self.entries.ns + "ready"])

    # -- coordination ---------------------------------------------------------------------------

    async def _fly(
        self, key: str, reads: Sequence[queries.Read], refresh: bool, name: str
    ) -> Answer:
        try:
            answer = await self._from_cache(reads, refresh)
            if answer is not None:
                return answer
            return await across_instances(
                self.entries.store,
                self.entries.ns + "lock:" + key,
                wait=self._lock_wait,
                clock=self._clock,
                landed=lambda: self._from_cache(reads, refresh=False),
                work=lambda: self._from_upstream(reads, name),
            )
        except CacheUnavailable as exc:
            # Better uncached than nothing: the panels still come, one request each.
            logger.warning("cache unavailable, reading through: %s", exc.message)
            return await self._uncached(reads, name)

    async def _late(self, reads: Sequence[queries.Read]) -> Answer:
        """The budget is spent and commercetools has not answered: the cache, however old."""
        try:
            snapshot = await self.entries.snapshot(reads)
        except CacheUnavailable:
            snapshot = None
        if snapshot is not None and snapshot.complete(reads, None, self._fresh):
            logger.warning("commercetools is slow: serving cached entries")
            return Answer(snapshot.assemble(reads), as_of=snapshot.oldest(reads))
        raise UpstreamUnavailable(NOT_ANSWERING, retry_after=LATE_RETRY_AFTER)

    # -- the ways to answer ---------------------------------------------------------------------

    async def _from_cache(self, reads: Sequence[queries.Read], refresh: bool) -> Answer | None:
        if refresh:
            return None
        now = self._clock()
        key = tuple(r.identity for r in reads)
        hit = self._hits.get(key)
        if hit is not None and now < hit.until:
            # The same entries as last time (the very bytes), under the same list generation:
            # the same answer. One store read instead of a snapshot, check and assembly.
            generation = await self.entries.generation()
            values = await self.entries.store.get_many(hit.keys)
            if generation == hit.generation and values == hit.raw:
                return hit.answer
        snapshot = await self.entries.snapshot(reads)
        if snapshot.complete(reads, now, self._fresh):
            answer = Answer(snapshot.assemble(reads), fingerprint=snapshot.fingerprint())
            made = _Hit(
                snapshot.keys,
                snapshot.raw,
                snapshot.generation,
                snapshot.fresh_until(self._fresh),
                answer,
            )
            self._hits.put(key, made)
            return answer
        return None

    async def _from_upstream(self, reads: Sequence[queries.Read], name: str) -> Answer:
        snapshot = await self.entries.snapshot(reads)
        try:
            if not snapshot.any_results():
                return await self._cold(reads, name, snapshot.generation)
            return await self._delta(reads, snapshot, name)
        except CacheUnavailable:
            raise
        except UpstreamUnavailable:
            if snapshot.complete(reads, None, self._fresh):
                logger.warning("commercetools unavailable: serving cached entries")
                return Answer(snapshot.assemble(reads), as_of=snapshot.oldest(reads))
            raise

    async def _uncached(self, reads: Sequence[queries.Read], name: str) -> Answer:
        found = await self._upstream(queries.compose(reads, name))
        snapshot = Snapshot({}, {})
        for read in reads:
            entities = entities_of(found.get(read.key))
            for entity in entities:
                self.entries.admit(read.type, entity, read.views, self._clock(), {}, snapshot)
            snapshot.results[read.key] = result_of(read, entities, self._clock())
        return Answer(snapshot.assemble(reads), upstream_requests=1)

    async def _cold(self, reads: Sequence[queries.Read], name: str, generation: int) -> Answer:
        found = await self._upstream(queries.compose(reads, name))
        now = self._clock()
        # Entities may be cached from other reads: merge rather than overwrite their views.
        snapshot = Snapshot({}, {}, generation)
        await self.entries.load(snapshot, ids_in(reads, found))
        writes: dict[str, bytes] = {}
        for read in reads:
            entities = entities_of(found.get(read.key))
            for entity in entities:
                self.entries.admit(read.type, entity, read.views, now, writes, snapshot)
            # The generation read before asking: lists changed meanwhile stay not fresh.
            snapshot.results[read.key] = result_of(read, entities, now, generation)
            self.entries.queue_result(read, snapshot.results[read.key], writes)
        await self.entries.write(writes, self._fresh.stale)
        # Assembled from the entries, so a cold answer is exactly what a warm one will be.
        return Answer(snapshot.assemble(reads), upstream_requests=1)

    async def _delta(self, reads: Sequence[queries.Read], snapshot: Snapshot, name: str) -> Answer:
        found = await self._upstream(queries.compose(version_reads(reads), name + "Versions"))
        requests = 1
        now = self._clock()
        writes: dict[str, bytes] = {}
        results: dict[str, dict[str, Any]] = {}
        for read in reads:
            entities = entities_of(found.get(read.key))
            results[read.key] = result_of(read, entities, now, snapshot.generation)
            self.entries.queue_result(read, results[read.key], writes)
        # New members of lists may be cached already (from other reads): load before planning.
        await self.entries.load(snapshot, ids_in(reads, found))
        plan = Plan.of(reads, found, snapshot)
        fetched: dict[tuple[str, str], Entity] = {}
        changes = plan.changes()
        if changes:
            more = await self._upstream(queries.compose(changes, name + "Changes"))
            requests += 1
            for read in changes:
                for entity in more.get(read.key) or []:
                    view_set = plan.needs[read.type][entity["id"]]
                    self.entries.admit(read.type, entity, view_set, now, writes, snapshot)
                    fetched[(read.type, entity["id"])] = entity
        for (type_, entity_id), version in plan.versions.items():
            entry = snapshot.entities.get((type_, entity_id))
            if entry is not None and entry.version == version and (type_, entity_id) not in fetched:
                entry = replace(entry, fetched=now)  # confirmed current: fresh again
                snapshot.entities[(type_, entity_id)] = entry
                writes[self.entries.entity_key(KINDS[type_], entity_id)] = encode_entry(entry)
        await self.entries.write(writes, self._fresh.stale)
        # Only now: had the second request failed, stale serving needed the old lists.
        snapshot.results.update(results)
        return Answer(snapshot.assemble(reads), upstream_requests=requests)

    async def _upstream(self, document: queries.Document) -> dict[str, Any]:
        self.upstream_requests += 1
        return await self._breaker.call(lambda: self._client.fetch(document))
