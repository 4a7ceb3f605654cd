"""Memory per cached entity: `python benchmarks/memory.py CONFIG_JSON`, prints one JSON object.

A real upstream answer (the ticket view's GraphQL result, fetched by the orchestrator from the
emulator) provides one entity of the wanted kind; it is cloned `n` times with fresh ids (order
numbers and payment ids too, so the per-payment "held" keys are distinct) and admitted the way
`Reader` admits what it fetches: `Reader._admit` (policy masking, merge, `_encode_entry`) into a
`writes` batch, then `Store.set_many` with the stale TTL. Three figures per entity:

* the store's own byte accounting (`MemoryStore.size_bytes`: value length + 100 per entry);
* the process's resident set growth (/proc/self/statm, after a collection);
* the Python heap the filled store keeps alive (tracemalloc, in a second pass).

With `redis_sample` > 0, that many clones are also written through `RedisStore` (a throwaway
key prefix, deleted afterwards) and `MEMORY USAGE` is asked for each key.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
from redis.asyncio import Redis

from commerce_context import queries
from commerce_context.cache import Freshness, Reader
from commerce_context.commercetools import CommercetoolsClient
from commerce_context.policy import Policy
from commerce_context.resolution import TicketContext, plan
from commerce_context.settings import Settings
from commerce_context.stores import MemoryStore, RedisStore, Store
from common import rss_bytes, settings_from

BATCH = 100  # entities per set_many, like one ticket view's writes


def the_read(settings: Settings, config: dict[str, Any]) -> queries.Read:
    reads = plan(TicketContext.parse(config["context"]), settings.mappings.order_custom_fields)
    return next(r for r in reads if r.key == config["read"])


def clones(template: str, n: int) -> Iterator[dict[str, Any]]:
    for index in range(n):
        entity: dict[str, Any] = json.loads(template)
        entity["id"] = str(uuid.uuid4())
        if "orderNumber" in entity:
            entity["orderNumber"] = f"BN-{index:07d}"
        for payment in (entity.get("paymentInfo") or {}).get("payments") or []:
            payment["id"] = str(uuid.uuid4())
        if "email" in entity:
            entity["email"] = f"shopper-{index:07d}@example.com"
        yield entity


async def fill(
    reader: Reader, store: Store, read: queries.Read, template: str, n: int
) -> tuple[float, int]:
    """Admit `n` clones; returns the seconds it took and the bytes of all values written."""
    started = time.perf_counter()
    written = 0
    writes: dict[str, bytes] = {}
    for index, entity in enumerate(clones(template, n), 1):
        reader.entries.admit(read.type, entity, read.views, time.time(), writes, None)
        if index % BATCH == 0:
            written += sum(len(v) for v in writes.values())
            await store.set_many(writes, Freshness().stale)
            writes = {}
    written += sum(len(v) for v in writes.values())
    await store.set_many(writes, Freshness().stale)
    return time.perf_counter() - started, written


def make_reader(settings: Settings, store: Store) -> Reader:
    client = CommercetoolsClient(settings, httpx.AsyncClient())  # never called
    policy = Policy(settings.mappings.field_policy)
    return Reader(client, policy, store, namespace=settings.ct_project_key)


async def measure(config: dict[str, Any]) -> dict[str, Any]:
    settings = settings_from(config["settings"])
    read = the_read(settings, config)
    sample = config["found"][config["read"]]
    entity = sample[0] if isinstance(sample, list) else sample
    template = json.dumps(entity)
    n = int(config["n"])

    # Sizes of one entity on its way in: upstream JSON, masked JSON, cached (compressed) entry.
    probe = MemoryStore(1 << 30)
    reader = make_reader(settings, probe)
    writes: dict[str, bytes] = {}
    masked = reader.entries.admit(
        read.type, json.loads(template), read.views, time.time(), writes, None
    )
    entity_key = next(k for k in writes if ":e:" in k)
    entry_bytes = len(writes[entity_key])
    entries_per_entity = len(writes)
    del probe, reader, writes

    # Pass 1: store accounting and resident memory.
    gc.collect()
    rss_before = rss_bytes()
    store = MemoryStore(1 << 40)
    seconds, written = await fill(make_reader(settings, store), store, read, template, n)
    gc.collect()
    rss_after = rss_bytes()
    accounted = store.size_bytes
    entries = len(store)
    del store
    gc.collect()

    # Pass 2 (tracemalloc slows allocation down a lot, so only when asked): the Python heap
    # the filled store keeps alive.
    traced: float | None = None
    if config.get("traced", True):
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
        store = MemoryStore(1 << 40)
        await fill(make_reader(settings, store), store, read, template, n)
        gc.collect()
        traced = tracemalloc.get_traced_memory()[0] - traced_before
        tracemalloc.stop()
        del store

    result: dict[str, Any] = {
        "kind": config["label"],
        "read": config["read"],
        "n": n,
        "entries": entries,
        "entries_per_entity": entries_per_entity,
        "upstream_json_bytes": len(template),
        "masked_json_bytes": len(json.dumps(masked, separators=(",", ":"))),
        "entry_bytes": entry_bytes,
        "value_per_entity": written / n,  # the clones' values, all their entries
        "accounted_per_entity": accounted / n,
        "rss_per_entity": (rss_after - rss_before) / n,
        "traced_per_entity": None if traced is None else traced / n,
        "admit_us": seconds / n * 1e6,
    }
    if int(config.get("redis_sample", 0)) > 0:
        result["redis_per_entity"] = await redis_usage(
            settings, config, read, template, int(config["redis_sample"])
        )
    return result


async def redis_usage(
    settings: Settings, config: dict[str, Any], read: queries.Read, template: str, n: int
) -> float:
    """Mean `MEMORY USAGE` of all keys one entity adds, through RedisStore."""
    prefix = f"cc-bench-memory-{uuid.uuid4().hex[:8]}:"
    client = Redis.from_url(config["redis_url"])
    store = RedisStore(client, prefix=prefix)
    try:
        await fill(make_reader(settings, store), store, read, template, n)
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        usage = [int(await client.memory_usage(k) or 0) for k in keys]
        return sum(usage) / n if usage else 0.0
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        print(json.dumps(asyncio.run(measure(json.load(file)))))
