"""The commercetools client: OAuth2 tokens, GraphQL reads, REST update actions.

One instance is created in the app lifespan around one shared `httpx.AsyncClient`, which is
injected (tests hand in one bound to the emulator; nothing is patched). Every call:

* has a timeout (`ct_timeout`) and carries `X-Correlation-ID`;
* is retried with full-jitter exponential backoff on 429, 502, 503, 504 and on connect/read
  timeouts — a `Retry-After` longer than `ct_backoff_max` is not waited out in-line but raised
  as `UpstreamUnavailable(retry_after=...)` so a queue can defer the work instead;
* is never retried on any other 4xx;
* inside a `budget()` block (a ticket view's time budget), starts no attempt and sleeps no
  backoff past the block's deadline: the view answers from the cache instead;
* fails with the project's own exceptions (exceptions.py), never raw httpx errors.

Updates send `version` and, on 409 ConcurrentModification, are re-sent with the version the
API reports, a bounded number of times. Only idempotent actions (set a field to a value) may
be re-sent blindly; callers pass `idempotent=False` to get the conflict back instead.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_any,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from . import correlation
from .exceptions import (
    ConcurrentModification,
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .queries import Document, check_response
from .settings import Settings

__all__ = ["CommercetoolsClient", "Resource", "budget", "remaining", "retry_after_seconds"]

logger = logging.getLogger(__name__)

Resource = Literal["orders", "customers", "carts", "payments"]
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
Sleep = Callable[[float], Awaitable[None]]
# The monotonic deadline of the work in progress (a ticket view), inherited by the tasks it
# starts, so a flight shared by several views retries only while its leader may still wait.
_deadline: ContextVar[float | None] = ContextVar("commercetools_deadline", default=None)


@contextmanager
def budget(seconds: float | None) -> Iterator[None]:
    """Calls made inside the block start no attempt and sleep no backoff past `seconds` from
    now (an enclosing, earlier deadline still holds). None: no deadline."""
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left of the current budget; None outside any budget."""
    deadline = _deadline.get()
    return None if deadline is None else max(deadline - time.monotonic(), 0.0)


class _OutOfTime(stop_base):
    """Stop retrying when the next backoff would end past the budget's deadline."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        left = remaining()
        return left is not None and retry_state.upcoming_sleep >= left


class _Transient(Exception):
    """A failure worth another attempt; never leaves this module."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class _Token:
    value: str
    refresh_at: float  # monotonic time after which we fetch a new one


class CommercetoolsClient:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = http
        self._sleep = sleep
        self._clock = clock
        self._token: _Token | None = None
        self._token_lock = asyncio.Lock()
        self._project_url = f"{settings.api_url}/{settings.ct_project_key}"
        self.token_fetches = 0  # observable in tests and metrics

    def __repr__(self) -> str:  # no secrets, no token
        return f"<CommercetoolsClient project={self._settings.ct_project_key!r}>"

    # -- reads -----------------------------------------------------------------------------------

    async def fetch(self, document: Document) -> dict[str, Any]:
        """Run a composed document; returns each read's key mapped to its result."""
        body = await self._graphql(document.payload())
        return document.extract(check_response(body))

    async def ping(self) -> None:
        """A token and the cheapest real read; raises if commercetools is not usable."""
        check_response(await self._graphql({"query": "query Ready { orders(limit: 1) { count } }"}))

    async def messages(self, *, after: str, limit: int = 500) -> list[dict[str, Any]]:
        """Messages created after `after` (ISO 8601), oldest first (Messages API, REST)."""
        params = {
            "where": f'createdAt > "{after}"',
            "sort": "createdAt asc",
            "limit": str(limit),
            "withTotal": "false",
        }
        response = await self._send("GET", f"{self._project_url}/messages", params=params)
        if response.status_code != 200:
            raise self._rejected(response)
        body = _json(response)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise UpstreamError("commercetools messages answer has no results")
        return [r for r in results if isinstance(r, dict) and r.get("id") and r.get("createdAt")]

    async def _graphql(self, payload: Mapping[str, Any]) -> Any:
        response = await self._send("POST", f"{self._project_url}/graphql", json=payload)
        if response.status_code != 200:
            raise self._rejected(response)
        return _json(response)

    # -- writes ----------------------------------------------------------------------------------

    async def update(
        self,
        resource: Resource,
        resource_id: str,
        version: int,
        actions: Sequence[Mapping[str, Any]],
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """Apply update actions; returns the updated resource."""
        url = f"{self._project_url}/{resource}/{resource_id}"
        attempts = self._settings.ct_conflict_retries + 1 if idempotent else 1
        for attempt in range(1, attempts + 1):
            response = await self._send(
                "POST", url, json={"version": version, "actions": list(actions)}
            )
            if response.status_code == 200:
                result: dict[str, Any] = _json(response)
                return result
            if response.status_code != 409:
                raise self._rejected(response)
            current = _current_version(response)
            logger.info(
                "commercetools %s/%s: version %s is stale (now %s), attempt %d of %d",
                resource,
                resource_id,
                version,
                current,
                attempt,
                attempts,
            )
            if current is None:
                raise UpstreamError("commercetools answered 409 without a current version")
            if attempt == attempts:
                raise ConcurrentModification(
                    f"{resource} {resource_id} kept changing; gave up after {attempts} attempts",
                    current_version=current,
                )
            version = current
            # Concurrent writers retrying in lockstep would collide again.
            await self._sleep(random.uniform(0, self._settings.ct_backoff_base))  # noqa: S311
        raise AssertionError("unreachable")  # pragma: no cover

    # -- tokens ----------------------------------------------------------------------------------

    async def access_token(self) -> str:
        token = self._token
        if token is not None and self._clock() < token.refresh_at:
            return token.value
        async with self._token_lock:
            # Another task may have refreshed while we waited: many callers, one fetch.
            token = self._token
            if token is not None and self._clock() < token.refresh_at:
                return token.value
            self._token = await self._fetch_token()
            return self._token.value

    def forget_token(self) -> None:
        self._token = None

    async def _fetch_token(self) -> _Token:
        settings = self._settings
        response = await self._send(
            "POST",
            f"{settings.auth_url}/oauth/token",
            data={"grant_type": "client_credentials", "scope": settings.scopes},
            auth=(settings.ct_client_id, settings.ct_client_secret.get_secret_value()),
            authenticate=False,
        )
        if response.status_code != 200:
            raise UpstreamAuthError(
                f"commercetools refused the API client credentials "
                f"(HTTP {response.status_code}{_suffix(_error_code(response))})"
            )
        body = _json(response)
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise UpstreamAuthError("commercetools token response has no access_token")
        expires_in = float(body.get("expires_in") or 3600)
        # Refresh early, but never later than half-way through a short-lived token.
        margin = min(settings.ct_token_refresh_margin, expires_in / 2)
        self.token_fetches += 1
        return _Token(value, self._clock() + expires_in - margin)

    # -- transport -------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str,
        *,
        authenticate: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        """One logical call: retries transient failures, refreshes a rejected token once."""
        settings = self._settings
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_any(stop_after_attempt(settings.ct_max_retries + 1), _OutOfTime()),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    number = attempt.retry_state.attempt_number
                    response = await self._attempt(method, url, authenticate, number, kwargs)
                    if response.status_code == 401 and authenticate:
                        # A revoked or expired token: fetch a new one and try again at once.
                        self.forget_token()
                        response = await self._attempt(method, url, True, number, kwargs)
                        if response.status_code == 401:
                            raise UpstreamAuthError(
                                "commercetools rejected a freshly issued access token"
                            )
                    return response
        except _Transient as exc:
            raise UpstreamUnavailable(
                f"commercetools is unavailable ({exc.reason})",
                retry_after=exc.retry_after,
                throttled=exc.reason == "HTTP 429",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self, method: str, url: str, authenticate: bool, number: int, kwargs: dict[str, Any]
    ) -> httpx.Response:
        if remaining() == 0.0:
            # The view stopped waiting; a new attempt would only hold a connection.
            raise _Transient("out of time")
        headers = {"X-Correlation-ID": correlation.current(), "Accept": "application/json"}
        if authenticate:
            headers["Authorization"] = f"Bearer {await self.access_token()}"
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method, url, headers=headers, timeout=self._settings.ct_timeout, **kwargs
            )
        except httpx.TimeoutException:
            self._log(method, url, "timeout", started, number)
            raise _Transient("timed out") from None
        except httpx.TransportError as exc:
            self._log(method, url, type(exc).__name__, started, number)
            raise _Transient("connection failed") from None
        self._log(method, url, str(response.status_code), started, number)
        if response.status_code in RETRYABLE_STATUS:
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None and retry_after > self._settings.ct_backoff_max:
                # Too long to hold a request open: let the caller (or the queue) defer.
                raise UpstreamUnavailable(
                    f"commercetools asked us to wait {retry_after:.0f} s (HTTP "
                    f"{response.status_code})",
                    retry_after=retry_after,
                    throttled=response.status_code == 429,
                )
            raise _Transient(f"HTTP {response.status_code}", retry_after)
        return response

    def _wait(self, state: RetryCallState) -> float:
        settings = self._settings
        backoff = wait_random_exponential(
            multiplier=settings.ct_backoff_base, max=settings.ct_backoff_max
        )(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            # Never less than our own backoff: "Retry-After: 0" (or a date in the past) from
            # an overloaded upstream must not turn into a tight retry loop.
            return max(exc.retry_after, float(backoff))
        return float(backoff)

    def _log(self, method: str, url: str, outcome: str, started: float, attempt: int) -> None:
        # The path only: query strings may hold predicates with customer data.
        path = httpx.URL(url).path
        logger.info(
            "commercetools %s %s -> %s in %.0f ms (attempt %d)",
            method,
            path,
            outcome,
            (time.perf_counter() - started) * 1000,
            attempt,
        )

    def _rejected(self, response: httpx.Response) -> UpstreamError:
        code = _error_code(response)
        if response.status_code == 404:
            return UpstreamNotFound(f"commercetools has no such resource{_suffix(code)}")
        errors = [code] if code else []
        return UpstreamRejected(
            f"commercetools rejected the request (HTTP {response.status_code}{_suffix(code)})",
            status=response.status_code,
            errors=errors,
        )


def _suffix(code: str | None) -> str:
    return f" {code}" if code else ""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise UpstreamError(
            f"commercetools answered HTTP {response.status_code} with a body that is not JSON"
        ) from None


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        code = errors[0].get("code") or (errors[0].get("extensions") or {}).get("code")
        return str(code) if code else None
    error = body.get("error")
    return str(error) if isinstance(error, str) else None


def _current_version(response: httpx.Response) -> int | None:
    try:
        body = response.json()
    except ValueError:
        return None
    for error in body.get("errors", []) if isinstance(body, dict) else []:
        if isinstance(error, dict) and error.get("code") == "ConcurrentModification":
            version = error.get("currentVersion")
            return int(version) if isinstance(version, int) else None
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds or an HTTP date) as seconds from now, at least 0; None
    when absent or unreadable. The one parser for every upstream (commercetools, Zendesk)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
