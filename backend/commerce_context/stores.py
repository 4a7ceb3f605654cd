"""Key-value stores behind the entity cache: in-process (default) and Redis (several instances).

Both hold opaque bytes with a time to live and offer the few atomic operations the service
needs: counters (list generations), set-if-absent markers (tokens used once), window counters
(rate limits) and short locks (cross-instance request coalescing) that only their owner can
release. The same behaviour tests run against both (tests/test_cache.py), the Redis ones
against a real server.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from .exceptions import CacheUnavailable

__all__ = ["MemoryStore", "RedisStore", "Store"]


class Store(Protocol):
    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...
    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None: ...
    async def delete(self, keys: Sequence[str]) -> None: ...
    async def incr(self, key: str) -> int: ...
    async def get_int(self, key: str) -> int: ...
    async def add(self, key: str, value: bytes, ttl: float) -> bool: ...
    async def count(self, key: str, ttl: float) -> tuple[int, float]: ...
    async def acquire(self, key: str, ttl: float) -> str | None: ...
    async def release(self, key: str, owner: str) -> None: ...
    async def close(self) -> None: ...


class MemoryStore:
    """Bounded by total bytes: least recently used entries go first, expired ones on sight.

    A plain ordered dict rather than a general-purpose cache: per entry it keeps only the key,
    the value and its expiry, which is most of what an entity costs in memory. Locks, markers
    and window counters are entries too, so the byte bound holds them as well (an evicted lock
    or marker costs at most a duplicate request or a re-applied, idempotent event).
    """

    OVERHEAD = 100  # bytes of bookkeeping counted per entry, besides key and value

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._size = 0
        self._counters: dict[str, int] = {}  # list generations: one per namespace

    @property
    def size_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._entries)

    def _cost(self, key: str, value: bytes) -> int:
        return len(key) + len(value) + self.OVERHEAD

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= self._cost(key, entry[0])

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        now = self._clock()
        out: list[bytes | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None:
                out.append(None)
            elif entry[1] <= now:
                self._drop(key)
                out.append(None)
            else:
                self._entries.move_to_end(key)
                out.append(entry[0])
        return out

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        expires = self._clock() + ttl
        for key, value in items.items():
            cost = self._cost(key, value)
            if cost > self.max_bytes:
                continue
            self._drop(key)
            self._entries[key] = (value, expires)
            self._size += cost
        while self._size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)

    async def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._drop(key)

    async def incr(self, key: str) -> int:
        self._counters[key] = self._counters.get(key, 0) + 1
        return self._counters[key]

    async def get_int(self, key: str) -> int:
        return self._counters.get(key, 0)

    def _live(self, key: str) -> tuple[bytes, float] | None:
        entry = self._entries.get(key)
        if entry is not None and entry[1] <= self._clock():
            self._drop(key)
            return None
        return entry

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        await self.set_many({key: value}, ttl)
        return True

    async def count(self, key: str, ttl: float) -> tuple[int, float]:
        """Count one in the window `key` (which starts now, for `ttl`, unless it is open);
        returns the count and the seconds left in the window."""
        entry = self._live(key)
        if entry is None:
            await self.set_many({key: b"1"}, ttl)
            return 1, ttl
        value = str(int(entry[0]) + 1).encode()
        self._drop(key)
        self._entries[key] = (value, entry[1])  # the window keeps its end
        self._size += self._cost(key, value)
        return int(value), max(entry[1] - self._clock(), 0.0)

    async def acquire(self, key: str, ttl: float) -> str | None:
        owner = secrets.token_hex(8)
        return owner if await self.add(key, owner.encode(), ttl) else None

    async def release(self, key: str, owner: str) -> None:
        entry = self._live(key)
        if entry is not None and entry[0] == owner.encode():
            self._drop(key)

    async def close(self) -> None:
        return None


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class RedisStore:
    """Keys are namespaced by `prefix`; failures surface as CacheUnavailable("redis ...")."""

    def __init__(self, client: Redis, prefix: str = "cc:") -> None:
        self._redis = client
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, prefix: str = "cc:") -> RedisStore:
        return cls(Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2), prefix)

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        names = [self._k(k) for k in keys]
        values = await self._call(lambda: self._redis.mget(names))
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: Mapping[str, bytes], ttl: float) -> None:
        if not items:
            return
        milliseconds = max(int(ttl * 1000), 1)

        async def write() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self._k(key), value, px=milliseconds)
                await pipe.execute()

        await self._call(write)

    async def delete(self, keys: Sequence[str]) -> None:
        if keys:
            names = [self._k(k) for k in keys]
            await self._call(lambda: self._redis.delete(*names))

    async def incr(self, key: str) -> int:
        return int(await self._call(lambda: self._redis.incr(self._k(key))))

    async def get_int(self, key: str) -> int:
        value = await self._call(lambda: self._redis.get(self._k(key)))
        return int(value) if value is not None else 0

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        milliseconds = max(int(ttl * 1000), 1)
        result = await self._call(
            lambda: self._redis.set(self._k(key), value, nx=True, px=milliseconds)
        )
        return bool(result)

    async def count(self, key: str, ttl: float) -> tuple[int, float]:
        async def window() -> list[Any]:
            async with self._redis.pipeline(transaction=True) as pipe:
                # The first request of a window sets its end; INCR keeps the expiry.
                pipe.set(self._k(key), 0, nx=True, px=max(int(ttl * 1000), 1))
                pipe.incr(self._k(key))
                pipe.pttl(self._k(key))
                result: list[Any] = await pipe.execute()
                return result

        _, value, left = await self._call(window)
        return int(value), max(int(left), 0) / 1000

    async def acquire(self, key: str, ttl: float) -> str | None:
        owner = secrets.token_hex(8)
        return owner if await self.add(key, owner.encode(), ttl) else None

    async def release(self, key: str, owner: str) -> None:
        # Only the owner's: a lock that expired and was taken by another instance stays.
        await self._call(lambda: self._redis.eval(_RELEASE, 1, self._k(key), owner))

    async def close(self) -> None:
        await self._redis.aclose()

    async def _call(self, operation: Callable[[], Awaitable[Any]]) -> Any:
        """Run `operation`; on a dropped connection, once more on fresh connections.

        A Redis restart leaves every pooled connection stale, and each fails on its first use
        (redis-py's own retries do not get past it): the pool is emptied and the operation runs
        again. A repeat can at worst count one lookup twice or bump the list generation once
        more. Redis still down: CacheUnavailable, as for every other failure."""
        try:
            try:
                return await operation()
            except RedisConnectionError:
                await self._redis.connection_pool.disconnect()
                return await operation()
        except (TimeoutError, RedisError, OSError) as exc:
            raise CacheUnavailable(f"redis is unavailable ({type(exc).__name__})") from None
