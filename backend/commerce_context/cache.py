"""The per-entity delta cache, request coalescing and stale-on-outage serving.

What is cached (all of it already masked by the field policy):

* **entities** — `order`, `customer`, `cart`, `store` — keyed by kind and id, each entry holding
  the entity's `version`, `lastModifiedAt`, the views it was fetched with and when;
* **read results** — which entity ids a read (an order number, a customer's recent orders, the
  customers of an address, ...) answered, keyed by the read and its store scope, under a
  *generation* that push events bump when lists may have changed (an order was created, an
  address changed). A result of an older generation is no longer fresh, but it is kept: while
  commercetools is down, it is what the "as of" fallback serves.

How a request is answered (`Reader.fetch`):

* everything cached and fresh: no upstream request;
* nothing cached (cold): the composed document, one request;
* otherwise: one request with the same reads selecting only `id version lastModifiedAt`, then,
  only if something changed or is missing, one request for exactly those entities by id.

Concurrent identical requests share one flight (in-process), and instances sharing Redis take
a short lock so only one of them goes upstream while the others wait for its result. When
commercetools fails or the circuit breaker is open, whatever is cached is served, however old
(up to `CC_CACHE_STALE_TTL`), with the time it was fetched so the panel can say "as of".
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import queries, views
from .breaker import CircuitBreaker
from .commercetools import CommercetoolsClient, remaining
from .exceptions import CacheUnavailable, UpstreamUnavailable
from .lru import LRU
from .policy import Policy
from .stores import Store

__all__ = ["Answer", "Freshness", "Reader"]

logger = logging.getLogger(__name__)

Entity = dict[str, Any]
KINDS = {"Order": "order", "Customer": "customer", "Cart": "cart", "Store": "store"}
ROOTS = {"Order": "orders", "Customer": "customers", "Cart": "carts", "Store": "stores"}
# Entities read inside another entity, cached separately and re-attached on the way out.
NESTED = {"Order": {"customer": "Customer"}}
NESTED_VERSION = {
    "Order": views.View("order_customer_version", "Order", "customer { id version lastModifiedAt }")
}
GENERATION = "generation"
NOT_ANSWERING = "commercetools is not answering, and nothing is cached for this ticket yet."
LATE_RETRY_AFTER = 5.0  # seconds: a hung upstream rarely recovers faster


@dataclass(frozen=True)
class Freshness:
    """Seconds an entry is served without asking upstream, per kind; `lists` for read results."""

    order: float = 30.0
    customer: float = 60.0
    cart: float = 10.0
    store: float = 3600.0
    lists: float = 30.0
    stale: float = 86400.0  # how long entries are kept to serve during an outage

    def of(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass
class Answer:
    found: dict[str, Any]
    as_of: float | None = None  # epoch seconds of the oldest entry, when served stale
    upstream_requests: int = 0
    fingerprint: tuple[bytes, ...] | None = None  # set when served from fresh cache entries


@dataclass
class _Entry:
    version: int
    modified: str
    views: frozenset[str]
    fetched: float
    data: Entity
    nested: dict[str, str | None] = field(default_factory=dict)  # field -> nested entity id


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
        self._policy = policy
        self._store = store
        self._fresh = freshness or Freshness()
        self._breaker = breaker or CircuitBreaker()
        # Entries masked under another policy must never be served: the policy is in the key.
        # Short: the prefix is repeated in every key of every entry.
        self._ns = _digest([namespace, sorted(policy.overrides.items())])[:10] + ":"
        self._lock_wait = lock_wait
        self._clock = clock
        self._flights: dict[str, asyncio.Task[Answer]] = {}
        self._decoded = _Decoded()
        self.upstream_requests = 0

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
        flight = self._flights.get(key)
        if flight is None:
            # A task of its own: a view that stops waiting (budget spent, client gone) does
            # not cancel the work the other views, and the cache, wait for.
            flight = asyncio.create_task(self._fly(key, reads, refresh, name), name="cache-flight")
            self._flights[key] = flight
            flight.add_done_callback(functools.partial(self._landed, key))
        try:
            return await asyncio.wait_for(asyncio.shield(flight), remaining())
        except TimeoutError:
            return await self._late(reads)

    async def _fly(
        self, key: str, reads: Sequence[queries.Read], refresh: bool, name: str
    ) -> Answer:
        try:
            return await self._coordinated(key, reads, refresh, name)
        except CacheUnavailable as exc:
            # Better uncached than nothing: the panels still come, one request each.
            logger.warning("cache unavailable, reading through: %s", exc.message)
            return await self._uncached(reads, name)

    def _landed(self, key: str, flight: asyncio.Task[Answer]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: the waiters (if any are left) re-raise it

    async def _late(self, reads: Sequence[queries.Read]) -> Answer:
        """The budget is spent and commercetools has not answered: the cache, however old."""
        try:
            snapshot = await self._snapshot(reads)
        except CacheUnavailable:
            snapshot = None
        if snapshot is not None and snapshot.complete(reads, None, self._fresh):
            logger.warning("commercetools is slow: serving cached entries")
            return Answer(snapshot.assemble(reads), as_of=snapshot.oldest(reads))
        raise UpstreamUnavailable(NOT_ANSWERING, retry_after=LATE_RETRY_AFTER)

    async def close(self) -> None:
        """Cancel the flights still under way (at shutdown: nobody waits for them)."""
        flights = list(self._flights.values())
        for flight in flights:
            flight.cancel()
        await asyncio.gather(*flights, return_exceptions=True)

    async def invalidate(self, kind: str, entity_id: str, version: int | None = None) -> bool:
        """Drop a cached entity unless the cache already holds `version` or newer."""
        key = self._entity_key(kind, entity_id)
        if version is not None:
            current = self._decode_entry((await self._store.get_many([key]))[0])
            if current is None or current.version >= version:
                return False
        await self._store.delete([key])
        return True

    async def invalidate_payment(self, payment_id: str) -> int:
        """Evict the cached orders holding a payment (payments are read through their order,
        and a payment's changes do not change the order's version). Asks commercetools which
        orders those are: one small request per payment event, rather than an index per order."""
        read = queries.orders_with_payment(payment_id, [views.VERSION], key="holders")
        found = await self._upstream(queries.compose([read], "PaymentHolders"))
        holders = _entities(found.get("holders"))
        if holders:
            await self._store.delete([self._entity_key("order", o["id"]) for o in holders])
        return len(holders)

    async def seen(self, keys: Sequence[str]) -> list[bool]:
        """Whether each key was marked by `mark_seen` (and has not expired); shared with
        replicas."""
        values = await self._store.get_many([self._ns + "seen:" + k for k in keys])
        return [v is not None for v in values]

    async def mark_seen(self, keys: Sequence[str], ttl: float) -> None:
        await self._store.set_many({self._ns + "seen:" + k: b"1" for k in keys}, ttl)

    async def check_store(self) -> None:
        """Raises UpstreamUnavailable when the cache's store (Redis) does not answer."""
        await self._store.get_many([self._ns + "ready"])

    async def invalidate_lists(self) -> None:
        """Forget every cached read result (lists may have gained or lost members)."""
        await self._store.incr(self._ns + GENERATION)

    # -- coordination ---------------------------------------------------------------------------

    async def _coordinated(
        self, key: str, reads: Sequence[queries.Read], refresh: bool, name: str
    ) -> Answer:
        answer = await self._from_cache(reads, refresh)
        if answer is not None:
            return answer
        lock = self._ns + "lock:" + key
        deadline = self._clock() + self._lock_wait
        while (owner := await self._store.acquire(lock, self._lock_wait)) is None:
            # Another instance is fetching the same thing: wait for its result.
            if self._clock() > deadline:
                break
            await asyncio.sleep(0.02)
            answer = await self._from_cache(reads, refresh=False)
            if answer is not None:
                return answer
        try:
            return await self._from_upstream(reads, refresh, name)
        finally:
            if owner is not None:
                await self._store.release(lock, owner)

    # -- the three ways to answer -----------------------------------------------------------------

    async def _from_cache(self, reads: Sequence[queries.Read], refresh: bool) -> Answer | None:
        if refresh:
            return None
        snapshot = await self._snapshot(reads)
        now = self._clock()
        if snapshot.complete(reads, now, self._fresh):
            return Answer(snapshot.assemble(reads), fingerprint=snapshot.fingerprint())
        return None

    async def _from_upstream(
        self, reads: Sequence[queries.Read], refresh: bool, name: str
    ) -> Answer:
        snapshot = await self._snapshot(reads)
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
        snapshot = _Snapshot({}, {}, self)
        for read in reads:
            entities = _entities(found.get(read.key))
            for entity in entities:
                self._admit(read.type, entity, read.views, self._clock(), {}, snapshot)
            snapshot.results[read.key] = _result(read, entities, self._clock())
        return Answer(snapshot.assemble(reads), upstream_requests=1)

    async def _cold(self, reads: Sequence[queries.Read], name: str, generation: int) -> Answer:
        document = queries.compose(reads, name)
        found = await self._upstream(document)
        now = self._clock()
        # Entities may be cached from other reads: merge rather than overwrite their views.
        snapshot = _Snapshot({}, {}, self, generation)
        await snapshot.load_ids(self, _ids_in(reads, found))
        writes: dict[str, bytes] = {}
        for read in reads:
            entities = _entities(found.get(read.key))
            for entity in entities:
                self._admit(read.type, entity, read.views, now, writes, snapshot)
            # The generation read before asking: lists changed meanwhile stay not fresh.
            snapshot.results[read.key] = _result(read, entities, now, generation)
            writes[self._read_key(read)] = _pack(snapshot.results[read.key])
        await self._store.set_many(writes, self._fresh.stale)
        # Assembled from the entries, so a cold answer is exactly what a warm one will be.
        return Answer(snapshot.assemble(reads), upstream_requests=1)

    async def _delta(self, reads: Sequence[queries.Read], snapshot: _Snapshot, name: str) -> Answer:
        version_reads = [
            queries.Read(
                r.key,
                r.root,
                r.type,
                r.args,
                _version_views(r),
                r.many,
                r.store,
            )
            for r in reads
        ]
        found = await self._upstream(queries.compose(version_reads, name + "Versions"))
        requests = 1
        now = self._clock()
        generation = snapshot.generation
        writes: dict[str, bytes] = {}
        needs: dict[str, dict[str, set[views.View]]] = {}  # type -> id -> views
        versions: dict[tuple[str, str], int] = {}
        results: dict[str, dict[str, Any]] = {}
        for read in reads:
            results[read.key] = _result(read, _entities(found.get(read.key)), now, generation)
            writes[self._read_key(read)] = _pack(results[read.key])
        # New members of lists may be cached already (from other reads): load before planning.
        await snapshot.load_ids(self, _ids_in(reads, found))
        for read in reads:
            for entity in _entities(found.get(read.key)):
                self._plan_refetch(read.type, entity, read.views, snapshot, needs, versions)
        fetched: dict[tuple[str, str], Entity] = {}
        wanted = {t: ids for t, ids in needs.items() if ids}
        if wanted:
            by_id = [
                queries.by_ids(
                    ROOTS[t],
                    t,
                    sorted(ids),
                    sorted({v for vs in ids.values() for v in vs}, key=lambda v: v.name),
                    key=f"n{i}",
                )
                for i, (t, ids) in enumerate(sorted(wanted.items()))
            ]
            more = await self._upstream(queries.compose(by_id, name + "Changes"))
            requests += 1
            for read in by_id:
                for entity in more.get(read.key) or []:
                    view_set = needs[read.type][entity["id"]]
                    self._admit(read.type, entity, view_set, now, writes, snapshot)
                    fetched[(read.type, entity["id"])] = entity
        for (type_, entity_id), version in versions.items():
            entry = snapshot.entities.get((type_, entity_id))
            if entry is not None and entry.version == version and (type_, entity_id) not in fetched:
                entry.fetched = now  # confirmed current: fresh again
                writes[self._entity_key(KINDS[type_], entity_id)] = _encode_entry(entry)
        await self._store.set_many(writes, self._fresh.stale)
        # Only now: had the second request failed, stale serving needed the old lists.
        snapshot.results.update(results)
        return Answer(snapshot.assemble(reads), upstream_requests=requests)

    # -- helpers --------------------------------------------------------------------------------

    def _plan_refetch(
        self,
        type_: str,
        entity: Entity,
        wanted: Iterable[views.View],
        snapshot: _Snapshot,
        needs: dict[str, dict[str, set[views.View]]],
        versions: dict[tuple[str, str], int],
    ) -> None:
        wanted = set(wanted)
        versions[(type_, entity["id"])] = int(entity["version"])
        cached = snapshot.entities.get((type_, entity["id"]))
        names = {v.name for v in wanted if v.name != views.ORDER_CUSTOMER.name}
        if cached is None or cached.version != int(entity["version"]) or not names <= cached.views:
            # One entity may be in several reads with different views (the order in detail and
            # in the list): it is refetched once, with all of them.
            needs.setdefault(type_, {}).setdefault(entity["id"], set()).update(wanted)
        for field_name, nested_type in NESTED.get(type_, {}).items():
            nested = entity.get(field_name)
            if views.ORDER_CUSTOMER in wanted and nested:
                self._plan_refetch(nested_type, nested, [views.CUSTOMER], snapshot, needs, versions)
                if cached is not None:
                    cached.nested[field_name] = nested["id"]

    def _admit(
        self,
        type_: str,
        entity: Entity,
        view_set: Iterable[views.View],
        now: float,
        writes: dict[str, bytes],
        snapshot: _Snapshot | None = None,
    ) -> Entity:
        """Mask an upstream entity, merge it into its cache entry, queue the write."""
        kind = KINDS[type_]
        names = {v.name for v in view_set}
        nested: dict[str, str | None] = {}
        raw = dict(entity)
        masked_nested: dict[str, Entity | None] = {}
        for field_name, nested_type in NESTED.get(type_, {}).items():
            if field_name in raw:
                child = raw.pop(field_name)
                nested[field_name] = child["id"] if child else None
                masked_nested[field_name] = (
                    self._admit(nested_type, child, [views.CUSTOMER], now, writes, snapshot)
                    if child
                    else None
                )
        masked = self._policy.apply(kind, raw) or {}
        previous = snapshot.entities.get((type_, masked["id"])) if snapshot else None
        version = int(masked.get("version", 0))
        if previous is not None and previous.version == version:
            data = _deep_merge(previous.data, masked)
            names |= previous.views
            nested = {**previous.nested, **nested}
        else:
            data = masked
        entry = _Entry(
            version, str(masked.get("lastModifiedAt", "")), frozenset(names), now, data, nested
        )
        writes[self._entity_key(kind, masked["id"])] = _encode_entry(entry)
        if snapshot is not None:
            snapshot.entities[(type_, masked["id"])] = entry
        out = dict(masked)
        out.update(masked_nested)
        return out

    async def _upstream(self, document: queries.Document) -> dict[str, Any]:
        self.upstream_requests += 1
        return await self._breaker.call(lambda: self._client.fetch(document))

    async def _generation(self) -> int:
        return await self._store.get_int(self._ns + GENERATION)

    async def _snapshot(self, reads: Sequence[queries.Read]) -> _Snapshot:
        generation = await self._generation()
        keys = [self._read_key(r) for r in reads]
        results = {
            r.key: value
            for r, value in zip(reads, await self._store.get_many(keys), strict=True)
            if value is not None
        }
        snapshot = _Snapshot(
            {k: self._decoded(v) for k, v in results.items()}, {}, self, generation
        )
        snapshot.raw.extend(results.values())
        wanted: dict[str, dict[str, set[views.View]]] = {}
        for read in reads:
            result = snapshot.results.get(read.key)
            if result is None:
                continue
            ids = result["ids"] if read.many else ([result["ids"]] if result["ids"] else [])
            for entity_id in ids:
                wanted.setdefault(read.type, {})[entity_id] = set()
        await snapshot.load_ids(self, wanted)
        # Nested entities (an order's customer) come second: their ids are in the first.
        nested: dict[str, dict[str, set[views.View]]] = {}
        for (type_, _), entry in list(snapshot.entities.items()):
            for field_name, child_id in entry.nested.items():
                if child_id:
                    nested.setdefault(NESTED[type_][field_name], {})[child_id] = set()
        await snapshot.load_ids(self, nested)
        return snapshot

    def _entity_key(self, kind: str, entity_id: str) -> str:
        return f"{self._ns}e:{kind}:{entity_id}"

    def _read_key(self, read: queries.Read) -> str:
        return f"{self._ns}r:{read.identity}"

    def _decode_entry(self, raw: bytes | None) -> _Entry | None:
        if raw is None:
            return None
        value = self._decoded(raw)
        return _Entry(
            value["v"],
            value["m"],
            frozenset(value["w"]),
            value["t"],
            value["d"],
            dict(value.get("n", {})),
        )


@dataclass
class _Snapshot:
    """What the cache holds for one request's reads."""

    results: dict[str, dict[str, Any]]
    entities: dict[tuple[str, str], _Entry]
    reader: Reader
    generation: int = 0  # of the lists when the snapshot was taken
    raw: list[bytes] = field(default_factory=list)  # every entry as stored, for fingerprints

    def fingerprint(self) -> tuple[bytes, ...]:
        """Identifies exactly these entries: equal fingerprints, equal answers.

        The entries themselves, not a digest of them: comparing is exact (no collision can
        show one shopper's panels for another's) and cheap (bytes cache their hash, and the
        memory store hands out the very objects it holds)."""
        return tuple(self.raw)

    async def load_ids(self, reader: Reader, wanted: Mapping[str, Mapping[str, object]]) -> None:
        pairs = [(t, i) for t, ids in wanted.items() for i in ids if (t, i) not in self.entities]
        if not pairs:
            return
        raw = await reader._store.get_many([reader._entity_key(KINDS[t], i) for t, i in pairs])
        for pair, value in zip(pairs, raw, strict=True):
            entry = reader._decode_entry(value)
            if entry is not None:
                self.entities[pair] = entry
                self.raw.append(value)  # type: ignore[arg-type]

    def any_results(self) -> bool:
        return bool(self.results)

    def complete(self, reads: Sequence[queries.Read], now: float | None, fresh: Freshness) -> bool:
        """Every read and entity is cached with the views it needs (and fresh, unless now=None)."""
        for read in reads:
            result = self.results.get(read.key)
            if result is None:
                return False
            if now is not None and (
                now - result["t"] >= fresh.lists or result.get("g", 0) != self.generation
            ):
                return False
            for entity_id in self._ids(read, result):
                if not self._entity_ok(read.type, entity_id, read.views, now, fresh):
                    return False
        return True

    def _entity_ok(
        self,
        type_: str,
        entity_id: str,
        wanted: Iterable[views.View],
        now: float | None,
        fresh: Freshness,
    ) -> bool:
        entry = self.entities.get((type_, entity_id))
        if entry is None:
            return False
        if now is not None and now - entry.fetched >= fresh.of(KINDS[type_]):
            return False
        wanted = list(wanted)
        names = {v.name for v in wanted if v.name != views.ORDER_CUSTOMER.name}
        if not names <= entry.views:
            return False
        if views.ORDER_CUSTOMER in wanted:
            for field_name, nested_type in NESTED.get(type_, {}).items():
                if field_name not in entry.nested:
                    return False
                child = entry.nested[field_name]
                if child and not self._entity_ok(nested_type, child, [views.CUSTOMER], now, fresh):
                    return False
        return True

    def oldest(self, reads: Sequence[queries.Read]) -> float:
        times = [self.results[r.key]["t"] for r in reads if r.key in self.results]
        for read in reads:
            for entity_id in self._ids(read, self.results.get(read.key)):
                entry = self.entities.get((read.type, entity_id))
                if entry is not None:
                    times.append(entry.fetched)
        return min(times) if times else time.time()

    def assemble(self, reads: Sequence[queries.Read]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for read in reads:
            entities = [
                self._materialise(read.type, i, read.views)
                for i in self._ids(read, self.results.get(read.key))
                if (read.type, i) in self.entities
            ]
            out[read.key] = entities if read.many else (entities[0] if entities else None)
        return out

    def _materialise(self, type_: str, entity_id: str, wanted: Sequence[views.View]) -> Entity:
        entry = self.entities[(type_, entity_id)]
        data: Entity = dict(entry.data)  # shallow: the nested values are shared, read-only
        if views.ORDER_CUSTOMER in wanted:
            for field_name, nested_type in NESTED.get(type_, {}).items():
                child = entry.nested.get(field_name)
                data[field_name] = (
                    self.entities[(nested_type, child)].data
                    if child and (nested_type, child) in self.entities
                    else None
                )
        return data

    @staticmethod
    def _ids(read: queries.Read, result: Mapping[str, Any] | None) -> list[str]:
        if result is None:
            return []
        ids = result["ids"]
        if read.many:
            return list(ids)
        return [ids] if ids else []


def _result(
    read: queries.Read, entities: list[Entity], now: float, generation: int = 0
) -> dict[str, Any]:
    """A read result entry: when, which ids (a list, or one id or None), of which generation."""
    ids = [e["id"] for e in entities]
    return {"t": now, "ids": ids if read.many else (ids[0] if ids else None), "g": generation}


def _entities(value: Any) -> list[Entity]:
    if isinstance(value, list):
        return [e for e in value if e]
    return [value] if value else []


def _ids_in(
    reads: Sequence[queries.Read], found: Mapping[str, Any]
) -> dict[str, dict[str, set[views.View]]]:
    """Every (type, id) in an answer, nested entities included."""
    out: dict[str, dict[str, set[views.View]]] = {}
    for read in reads:
        for entity in _entities(found.get(read.key)):
            out.setdefault(read.type, {})[entity["id"]] = set()
            for field_name, nested_type in NESTED.get(read.type, {}).items():
                child = entity.get(field_name)
                if isinstance(child, Mapping) and child.get("id"):
                    out.setdefault(nested_type, {})[child["id"]] = set()
    return out


def _version_views(read: queries.Read) -> tuple[views.View, ...]:
    extra = (NESTED_VERSION[read.type],) if views.ORDER_CUSTOMER in read.views else ()
    return (views.VERSION, *extra)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _pack(value: object) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)


def _unpack(raw: bytes) -> Any:
    return json.loads(zlib.decompress(raw))


class _Decoded:
    """Recently decoded entries by their bytes: a warm view decodes nothing twice.

    The decoded values are shared, so everything built from them is read-only by convention
    (answers are shared between concurrent views anyway)."""

    def __init__(self, size: int = 8192) -> None:
        self._values: LRU[bytes, Any] = LRU(size)

    def __call__(self, raw: bytes) -> Any:
        value = self._values.get(raw)
        if value is None:
            value = _unpack(raw)
            self._values.put(raw, value)
        return value


def _encode_entry(entry: _Entry) -> bytes:
    return _pack(
        {
            "v": entry.version,
            "m": entry.modified,
            "w": sorted(entry.views),
            "t": entry.fetched,
            "d": entry.data,
            "n": entry.nested,
        }
    )


def _deep_merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> Entity:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
