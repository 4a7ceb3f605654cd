"""The cache's entries: what is stored, under which keys, and how it comes back.

Two kinds of entry, both compressed JSON in the store (`stores.py`):

* **entities** — `order`, `customer`, `cart`, `store` — keyed by kind and id, each holding the
  entity's `version`, `lastModifiedAt`, the views it was fetched with and when, and its data,
  masked by the field policy before it is stored (`Entries.admit`);
* **read results** — which entity ids a read (an order number, a customer's recent orders, the
  customers of an address, ...) answered, when, and under which list *generation*.

`Entries` is the one boundary around the store for entries: keys (namespaced by project and
policy, so entries masked under another policy are never read), encoding, and the memo of
decoded entries (a warm view decodes nothing twice). A `Snapshot` is what the store holds for
one request's reads: whether it is complete and fresh, how old it is, and the answer it
assembles.
"""

from __future__ import annotations

import hashlib
import json
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import queries, views
from .lru import LRU
from .policy import Policy
from .stores import Store

if TYPE_CHECKING:
    from .settings import Settings

__all__ = [
    "KINDS",
    "NESTED",
    "ROOTS",
    "Entity",
    "Entries",
    "Entry",
    "Freshness",
    "Snapshot",
    "entities_of",
    "ids_in",
    "result_of",
]

Entity = dict[str, Any]
KINDS = {"Order": "order", "Customer": "customer", "Cart": "cart", "Store": "store"}
ROOTS = {"Order": "orders", "Customer": "customers", "Cart": "carts", "Store": "stores"}
# Entities read inside another entity, cached separately and re-attached on the way out.
NESTED = {"Order": {"customer": "Customer"}}
_CUSTOMER_VIEW = frozenset({views.CUSTOMER.name})  # what a nested customer must hold
GENERATION = "generation"


@dataclass(frozen=True)
class Freshness:
    """Seconds an entry is served without asking upstream, per kind; `lists` for read results."""

    order: float = 30.0
    customer: float = 60.0
    cart: float = 10.0
    store: float = 3600.0
    lists: float = 30.0
    stale: float = 86400.0  # how long entries are kept to serve during an outage

    @classmethod
    def from_settings(cls, settings: Settings) -> Freshness:
        """The lifetimes CC_CACHE_TTL_* and CC_CACHE_STALE_TTL configure (store keeps its own)."""
        return cls(
            order=settings.cache_ttl_order,
            customer=settings.cache_ttl_customer,
            cart=settings.cache_ttl_cart,
            lists=settings.cache_ttl_lists,
            stale=settings.cache_stale_ttl,
        )

    def of(self, kind: str) -> float:
        return float(getattr(self, kind))


@dataclass(frozen=True)
class Entry:
    """One cached entity. Frozen: decoded entries are shared between views (`_Decoded`)."""

    version: int
    modified: str
    views: frozenset[str]
    fetched: float
    data: Entity
    nested: dict[str, str | None] = field(default_factory=dict)  # field -> nested entity id


class Entries:
    """The entity store. One per process (inside the `Reader`)."""

    def __init__(self, store: Store, policy: Policy, namespace: str = "") -> None:
        self.store = store
        self._policy = policy
        # Entries masked under another policy (overrides, custom fields, scrub rules and their
        # version) must never be served: the policy's fingerprint is in the key. Short: the
        # prefix is repeated in every key of every entry.
        self.ns = _digest([namespace, policy.fingerprint])[:10] + ":"
        self._decoded = _Decoded()

    # -- keys -----------------------------------------------------------------------------------

    def entity_key(self, kind: str, entity_id: str) -> str:
        return f"{self.ns}e:{kind}:{entity_id}"

    def read_key(self, read: queries.Read) -> str:
        return f"{self.ns}r:{read.identity}"

    # -- the list generation ----------------------------------------------------------------------

    async def generation(self) -> int:
        return await self.store.get_int(self.ns + GENERATION)

    async def next_generation(self) -> None:
        await self.store.incr(self.ns + GENERATION)

    # -- reading --------------------------------------------------------------------------------

    async def entry(self, kind: str, entity_id: str) -> Entry | None:
        return self._decode_entry(
            (await self.store.get_many([self.entity_key(kind, entity_id)]))[0]
        )

    async def snapshot(self, reads: Sequence[queries.Read]) -> Snapshot:
        """What the store holds for `reads`: their results and every entity they name."""
        generation = await self.generation()
        keys = [self.read_key(r) for r in reads]
        snapshot = Snapshot({}, {}, generation)
        for read, key, value in zip(reads, keys, await self.store.get_many(keys), strict=True):
            if value is not None:
                snapshot.results[read.key] = self._decoded(value)
                snapshot.keys.append(key)
                snapshot.raw.append(value)
        wanted: dict[str, dict[str, set[views.View]]] = {}
        for read in reads:
            result = snapshot.results.get(read.key)
            if result is None:
                continue
            ids = result["ids"] if read.many else ([result["ids"]] if result["ids"] else [])
            for entity_id in ids:
                wanted.setdefault(read.type, {})[entity_id] = set()
        await self.load(snapshot, wanted)
        # Nested entities (an order's customer) come second: their ids are in the first.
        nested: dict[str, dict[str, set[views.View]]] = {}
        for (type_, _), entry in list(snapshot.entities.items()):
            for field_name, child_id in entry.nested.items():
                if child_id:
                    nested.setdefault(NESTED[type_][field_name], {})[child_id] = set()
        await self.load(snapshot, nested)
        return snapshot

    async def load(self, snapshot: Snapshot, wanted: Mapping[str, Mapping[str, object]]) -> None:
        """Add the entities `wanted` (type -> ids) to `snapshot`, those it lacks."""
        pairs = [
            (t, i) for t, ids in wanted.items() for i in ids if (t, i) not in snapshot.entities
        ]
        if not pairs:
            return
        keys = [self.entity_key(KINDS[t], i) for t, i in pairs]
        raw = await self.store.get_many(keys)
        for pair, key, value in zip(pairs, keys, raw, strict=True):
            entry = self._decode_entry(value)
            if entry is not None and value is not None:
                snapshot.entities[pair] = entry
                snapshot.keys.append(key)
                snapshot.raw.append(value)

    def _decode_entry(self, raw: bytes | None) -> Entry | None:
        if raw is None:
            return None
        entry: Entry = self._decoded(raw, _entry_of)
        return entry

    # -- writing --------------------------------------------------------------------------------

    def admit(
        self,
        type_: str,
        entity: Entity,
        view_set: Iterable[views.View],
        now: float,
        writes: dict[str, bytes],
        snapshot: Snapshot | None = None,
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
                    self.admit(nested_type, child, [views.CUSTOMER], now, writes, snapshot)
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
        entry = Entry(
            version, str(masked.get("lastModifiedAt", "")), frozenset(names), now, data, nested
        )
        writes[self.entity_key(kind, masked["id"])] = encode_entry(entry)
        if snapshot is not None:
            snapshot.entities[(type_, masked["id"])] = entry
        out = dict(masked)
        out.update(masked_nested)
        return out

    def queue_result(
        self, read: queries.Read, result: Mapping[str, Any], writes: dict[str, bytes]
    ) -> None:
        writes[self.read_key(read)] = _pack(result)

    async def write(self, writes: Mapping[str, bytes], ttl: float) -> None:
        await self.store.set_many(writes, ttl)

    async def delete(self, kind: str, entity_ids: Sequence[str]) -> None:
        await self.store.delete([self.entity_key(kind, i) for i in entity_ids])


@dataclass
class Snapshot:
    """What the cache holds for one request's reads."""

    results: dict[str, dict[str, Any]]
    entities: dict[tuple[str, str], Entry]
    generation: int = 0  # of the lists when the snapshot was taken
    raw: list[bytes] = field(default_factory=list)  # every entry as stored, for fingerprints
    keys: list[str] = field(default_factory=list)  # the store key of each of `raw`

    def fingerprint(self) -> tuple[bytes, ...]:
        """Identifies exactly these entries: equal fingerprints, equal answers.

        The entries themselves, not a digest of them: comparing is exact (no collision can
        show one shopper's panels for another's) and cheap (bytes cache their hash, and the
        memory store hands out the very objects it holds)."""
        return tuple(self.raw)

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
            names, with_customer = read.wants
            for entity_id in self._ids(read, result):
                if not self._entity_ok(read.type, entity_id, names, with_customer, now, fresh):
                    return False
        return True

    def _entity_ok(
        self,
        type_: str,
        entity_id: str,
        names: frozenset[str],
        with_customer: bool,
        now: float | None,
        fresh: Freshness,
    ) -> bool:
        entry = self.entities.get((type_, entity_id))
        if entry is None:
            return False
        if now is not None and now - entry.fetched >= fresh.of(KINDS[type_]):
            return False
        if not names <= entry.views:
            return False
        if with_customer:
            for field_name, nested_type in NESTED.get(type_, {}).items():
                if field_name not in entry.nested:
                    return False
                child = entry.nested[field_name]
                if child and not self._entity_ok(
                    nested_type, child, _CUSTOMER_VIEW, False, now, fresh
                ):
                    return False
        return True

    def fresh_until(self, fresh: Freshness) -> float:
        """When the first of its entries stops being fresh (an epoch time)."""
        times = [r["t"] + fresh.lists for r in self.results.values()]
        times += [e.fetched + fresh.of(KINDS[t]) for (t, _), e in self.entities.items()]
        return min(times, default=0.0)

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
            with_customer = read.wants[1]
            entities = [
                self._materialise(read.type, i, with_customer)
                for i in self._ids(read, self.results.get(read.key))
                if (read.type, i) in self.entities
            ]
            out[read.key] = entities if read.many else (entities[0] if entities else None)
        return out

    def _materialise(self, type_: str, entity_id: str, with_customer: bool) -> Entity:
        entry = self.entities[(type_, entity_id)]
        data: Entity = dict(entry.data)  # shallow: the nested values are shared, read-only
        if with_customer:
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


def result_of(
    read: queries.Read, entities: list[Entity], now: float, generation: int = 0
) -> dict[str, Any]:
    """A read result entry: when, which ids (a list, or one id or None), of which generation."""
    ids = [e["id"] for e in entities]
    return {"t": now, "ids": ids if read.many else (ids[0] if ids else None), "g": generation}


def entities_of(value: Any) -> list[Entity]:
    """A read's answer as a list of entities (a list, one entity, or none)."""
    if isinstance(value, list):
        return [e for e in value if e]
    return [value] if value else []


def ids_in(
    reads: Sequence[queries.Read], found: Mapping[str, Any]
) -> dict[str, dict[str, set[views.View]]]:
    """Every (type, id) in an answer, nested entities included."""
    out: dict[str, dict[str, set[views.View]]] = {}
    for read in reads:
        for entity in entities_of(found.get(read.key)):
            out.setdefault(read.type, {})[entity["id"]] = set()
            for field_name, nested_type in NESTED.get(read.type, {}).items():
                child = entity.get(field_name)
                if isinstance(child, Mapping) and child.get("id"):
                    out.setdefault(nested_type, {})[child["id"]] = set()
    return out


def encode_entry(entry: Entry) -> bytes:
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


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _pack(value: object) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 1)


def _unpack(raw: bytes) -> Any:
    return json.loads(zlib.decompress(raw))


def _entry_of(value: Any) -> Entry:
    return Entry(
        value["v"],
        value["m"],
        frozenset(value["w"]),
        value["t"],
        value["d"],
        dict(value.get("n", {})),
    )


class _Decoded:
    """Recently decoded entries by their bytes: a warm view decodes nothing twice.

    The decoded values (read results, and `Entry` objects) are shared, so everything built
    from them is read-only by convention (answers are shared between concurrent views anyway).
    """

    def __init__(self, size: int = 8192) -> None:
        self._values: LRU[bytes, Any] = LRU(size)

    def __call__(self, raw: bytes, build: Callable[[Any], Any] | None = None) -> Any:
        value = self._values.get(raw)
        if value is None:
            value = _unpack(raw)
            if build is not None:
                value = build(value)
            self._values.put(raw, value)
        return value


def _deep_merge(old: Mapping[str, Any], new: Mapping[str, Any]) -> Entity:
    merged = dict(old)
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
