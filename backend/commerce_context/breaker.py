"""A circuit breaker for commercetools: stop hammering a failing upstream, recover on its own.

Closed: calls pass. After `threshold` consecutive failures (UpstreamUnavailable: timeouts, 5xx,
429 after retries) it opens: calls fail at once for `cooldown` seconds, so panels fall back to
cached entries without waiting on timeouts. Then one trial call is let through (half-open):
success closes the breaker, failure opens it for another cooldown. Other errors (4xx) say
nothing about availability and do not count.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from .exceptions import UpstreamUnavailable

__all__ = ["CircuitBreaker"]

T = TypeVar("T")
State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 5,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown:
            return "half-open"
        return "open"

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        state = self.state
        if state == "open" or (state == "half-open" and self._trial):
            raise UpstreamUnavailable(
                "commercetools is failing; not calling it for a while (circuit open)",
                retry_after=max(self.cooldown - (self._clock() - (self._opened_at or 0)), 0),
            )
        if state == "half-open":
            self._trial = True  # exactly one trial call at a time
        try:
            result = await fn()
        except UpstreamUnavailable:
            self._failed()
            raise
        finally:
            self._trial = False
        self._failures = 0
        self._opened_at = None
        return result

    def _failed(self) -> None:
        self._failures += 1
        if self._opened_at is not None or self._failures >= self.threshold:
            self._opened_at = self._clock()
