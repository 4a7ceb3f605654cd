"""The Zendesk Support API client used by the outbound sync (users, organizations, tickets).

One instance is created in the app lifespan around the one shared `httpx.AsyncClient`
(injected; tests hand in a client pointed at the fake Zendesk of `emulator/zendesk.py`).

* Authentication comes from settings: an API token (`CC_ZENDESK_API_EMAIL` +
  `CC_ZENDESK_API_TOKEN`, sent as HTTP Basic `{email}/token:{token}`) or an OAuth access token
  (`CC_ZENDESK_OAUTH_TOKEN`, sent as `Bearer`). Every call carries `X-Correlation-ID`.
* Rate limits: the account-wide headers (`ratelimit-limit/remaining/reset`, or the older
  `X-Rate-Limit`/`X-Rate-Limit-Remaining`) are read on every answer. When `remaining` reaches 0
  the client stops sending until the window resets, and a 429 stops it for `Retry-After`
  seconds — or `CC_ZENDESK_FALLBACK_BACKOFF` when Zendesk sends none, which it sometimes does.
  Either way it raises `UpstreamUnavailable(retry_after=...)` at once instead of sleeping, so the
  job queue pauses the whole destination and retries later.
* 5xx answers, timeouts and connection failures raise `UpstreamUnavailable` (the queue retries
  with backoff); the client itself never retries, so a write is never sent twice behind the
  queue's back.
* 4xx answers raise the project's exceptions: 401 `UpstreamAuthError`, 404 `UpstreamNotFound`,
  409 (a `safe_update` whose `updated_stamp` is stale) `ConcurrentModification`, others
  `UpstreamRejected`. Zendesk's error text can quote emails, names or phone numbers, so only its
  error code and a masked, shortened description reach our messages and logs.
* Pagination links (`next_page`) are followed only when they point at the configured account,
  so a forged link can never carry our credentials elsewhere.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from . import correlation
from .commercetools import retry_after_seconds
from .exceptions import (
    ConcurrentModification,
    ConfigError,
    UpstreamAuthError,
    UpstreamError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .scrub import sanitise
from .settings import Settings

__all__ = ["MAX_BATCH", "RateLimit", "ZendeskClient", "sanitise"]

logger = logging.getLogger(__name__)

MAX_BATCH = 100  # create_or_update_many and show_many accept at most 100 items
MAX_PAGES = 10  # search returns at most 1,000 results (10 pages of 100)
_CODE = re.compile(r"^[A-Za-z][A-Za-z0-9_ .-]{0,63}$")


@dataclass(frozen=True)
class RateLimit:
    """The account-wide budget as last reported by Zendesk."""

    limit: int | None
    remaining: int | None
    reset: float | None  # seconds until the window resets


class ZendeskClient:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not settings.zendesk_api_enabled:
            raise ConfigError(
                "the Zendesk API client needs CC_ZENDESK_SUBDOMAIN (or CC_ZENDESK_API_URL) and "
                "CC_ZENDESK_API_EMAIL + CC_ZENDESK_API_TOKEN or CC_ZENDESK_OAUTH_TOKEN"
            )
        self._settings = settings
        self._http = http
        self._clock = clock
        self._base = settings.zendesk_api_base
        self._authorization = _authorization(settings)
        self._blocked_until = 0.0
        self.rate_limit = RateLimit(None, None, None)
        self.requests = 0  # sent requests, observable in tests and benchmarks
        self.throttled = 0  # 429 answers received

    def __repr__(self) -> str:  # no credentials
        return f"<ZendeskClient {self._base}>"

    # -- users -----------------------------------------------------------------------------------

    async def create_or_update_many_users(
        self, users: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Queue a job creating or updating up to 100 users; returns its job_status."""
        if not users:
            raise ValueError("no users to create or update")
        if len(users) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} users per call, got {len(users)}")
        body = await self._json(
            "POST", "/api/v2/users/create_or_update_many", json={"users": list(users)}
        )
        return _object(body, "job_status")

    async def job_status(self, job_id: str) -> dict[str, Any]:
        """The job's status; `results` lists per-item outcomes in request order once done."""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", job_id):
            raise ValueError("not a Zendesk job id")
        body = await self._json("GET", f"/api/v2/job_statuses/{job_id}")
        return _object(body, "job_status")

    async def show_many_users(
        self,
        *,
        ids: Sequence[int] = (),
        external_ids: Sequence[str] = (),
        include_identities: bool = False,
    ) -> dict[str, Any]:
        """Users by Zendesk ids or by external ids (up to 100); `{"users": [...], "identities":
        [...]}` with the identities side-loaded when asked."""
        if bool(ids) == bool(external_ids):
            raise ValueError("give either ids or external_ids")
        values = [str(int(i)) for i in ids] or [str(e) for e in external_ids]
        if len(values) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} users per call, got {len(values)}")
        params = {"ids" if ids else "external_ids": ",".join(values)}
        if include_identities:
            params["include"] = "identities"
        body = await self._json("GET", "/api/v2/users/show_many", params=params)
        return {
            "users": _list(body, "users"),
            "identities": body.get("identities") or [] if isinstance(body, dict) else [],
        }

    async def search_users(
        self, *, external_id: str | None = None, query: str | None = None
    ) -> list[dict[str, Any]]:
        """Users by exact external id, or by Zendesk search syntax (e.g. `email:jane@x.com`)."""
        if (external_id is None) == (query is None):
            raise ValueError("give either external_id or query")
        params = {"external_id": external_id} if external_id is not None else {"query": str(query)}
        return await self._pages("/api/v2/users/search", params, "users")

    async def user_identities(self, user_id: int) -> list[dict[str, Any]]:
        body = await self._json("GET", f"/api/v2/users/{int(user_id)}/identities")
        return _list(body, "identities")

    async def make_identity_primary(self, user_id: int, identity_id: int) -> list[dict[str, Any]]:
        body = await self._json(
            "PUT", f"/api/v2/users/{int(user_id)}/identities/{int(identity_id)}/make_primary"
        )
        return _list(body, "identities")

    # -- organizations ---------------------------------------------------------------------------

    async def create_or_update_organization(
        self, organization: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Create, or update the organization matched by `id` or `external_id` (never by name)."""
        if not organization.get("name"):
            raise ValueError("an organization needs a name")
        body = await self._json(
            "POST",
            "/api/v2/organizations/create_or_update",
            json={"organization": dict(organization)},
        )
        return _object(body, "organization")

    # -- tickets ---------------------------------------------------------------------------------

    async def get_ticket(self, ticket_id: int) -> dict[str, Any]:
        body = await self._json("GET", f"/api/v2/tickets/{int(ticket_id)}")
        return _object(body, "ticket")

    async def update_ticket(
        self,
        ticket_id: int,
        *,
        custom_fields: Mapping[int, Any] | None = None,
        updated_stamp: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set custom field values. With `updated_stamp` (the ticket's `updated_at` as read) the
        update is a `safe_update`: Zendesk answers 409, raised as ConcurrentModification, when
        the ticket changed since."""
        ticket: dict[str, Any] = dict(extra or {})
        if custom_fields:
            ticket["custom_fields"] = [
                {"id": int(field_id), "value": value} for field_id, value in custom_fields.items()
            ]
        if updated_stamp is not None:
            ticket["safe_update"] = True
            ticket["updated_stamp"] = updated_stamp
        if not ticket:
            raise ValueError("nothing to update")
        body = await self._json("PUT", f"/api/v2/tickets/{int(ticket_id)}", json={"ticket": ticket})
        return _object(body, "ticket")

    async def search_tickets(self, query: str) -> list[dict[str, Any]]:
        """Tickets matching a search query (`type:ticket` is added); at most 1,000."""
        if "type:ticket" not in query:
            query = f"type:ticket {query}"
        results = await self._pages("/api/v2/search", {"query": query}, "results")
        return [r for r in results if r.get("result_type", "ticket") == "ticket"]

    # -- transport -------------------------------------------------------------------------------

    async def _pages(self, path: str, params: Mapping[str, str], key: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        url: str | None = self._base + path
        query: Mapping[str, str] | None = params
        for _ in range(MAX_PAGES):
            if url is None:
                break
            body = await self._json("GET", url, params=query)
            items.extend(i for i in _list(body, key) if isinstance(i, dict))
            url = self._own_link(body.get("next_page"))
            query = None  # the link carries the query
        return items

    def _own_link(self, link: object) -> str | None:
        if not isinstance(link, str) or not link:
            return None
        if not link.startswith(self._base + "/api/v2/"):
            logger.warning("zendesk: ignoring a next_page link to another host")
            return None
        return link

    async def _json(self, method: str, path_or_url: str, **kwargs: Any) -> Any:
        response = await self._send(method, path_or_url, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(
                f"Zendesk answered HTTP {response.status_code} with a body that is not JSON"
            ) from None

    async def _send(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        url = path_or_url if path_or_url.startswith("http") else self._base + path_or_url
        path = httpx.URL(url).path
        wait = self._blocked_until - self._clock()
        if wait > 0:
            # The budget is spent: asking anyway would only earn a 429 and count against us.
            raise UpstreamUnavailable(
                f"Zendesk rate limit reached; next call in {wait:.0f} s", retry_after=wait
            )
        headers = {
            "Authorization": self._authorization,
            "Accept": "application/json",
            correlation.HEADER: correlation.current(),
        }
        started = time.perf_counter()
        self.requests += 1
        try:
            response = await self._http.request(
                method, url, headers=headers, timeout=self._settings.zendesk_timeout, **kwargs
            )
        except httpx.TimeoutException:
            self._log(method, path, "timeout", started)
            raise UpstreamUnavailable("Zendesk did not answer in time") from None
        except httpx.TransportError as exc:
            self._log(method, path, type(exc).__name__, started)
            raise UpstreamUnavailable("Zendesk could not be reached") from None
        self._log(method, path, str(response.status_code), started)
        self._observe(response)
        status = response.status_code
        if status < 300:
            return response
        if status == 429:
            self.throttled += 1
            retry_after = _retry_after(response)
            if retry_after is None:
                reset = self.rate_limit.reset
                retry_after = (
                    reset if reset is not None else self._settings.zendesk_fallback_backoff
                )
            self._blocked_until = max(self._blocked_until, self._clock() + retry_after)
            raise UpstreamUnavailable(
                f"Zendesk rate limit exceeded (HTTP 429); retry in {retry_after:.0f} s",
                retry_after=retry_after,
            )
        if status >= 500:
            raise UpstreamUnavailable(
                f"Zendesk is unavailable (HTTP {status})", retry_after=_retry_after(response)
            )
        raise self._rejected(response)

    def _observe(self, response: httpx.Response) -> None:
        headers = response.headers
        limit = _int(headers.get("ratelimit-limit") or headers.get("x-rate-limit"))
        remaining = _int(
            headers.get("ratelimit-remaining") or headers.get("x-rate-limit-remaining")
        )
        reset = _float(headers.get("ratelimit-reset"))
        if limit is None and remaining is None and reset is None:
            return
        self.rate_limit = RateLimit(limit, remaining, reset)
        if remaining is not None and remaining <= 0 and response.status_code != 429:
            pause = reset if reset is not None else self._settings.zendesk_fallback_backoff
            self._blocked_until = max(self._blocked_until, self._clock() + pause)

    def _rejected(self, response: httpx.Response) -> UpstreamError:
        status = response.status_code
        code, description = _error_text(response)
        detail = f" {code}" if code else ""
        detail += f": {description}" if description else ""
        if status == 401:
            return UpstreamAuthError(f"Zendesk refused our credentials (HTTP 401{detail})")
        if status == 404:
            return UpstreamNotFound(f"Zendesk has no such resource (HTTP 404{detail})")
        if status == 409:
            return ConcurrentModification(
                f"the Zendesk record changed since it was read (HTTP 409{detail})"
            )
        return UpstreamRejected(
            f"Zendesk rejected the request (HTTP {status}{detail})",
            status=status,
            errors=[code] if code else [],
        )

    def _log(self, method: str, path: str, outcome: str, started: float) -> None:
        # The path only: query strings carry emails and search terms.
        logger.info(
            "zendesk %s %s -> %s in %.0f ms",
            method,
            path,
            outcome,
            (time.perf_counter() - started) * 1000,
        )


def _error_text(response: httpx.Response) -> tuple[str | None, str | None]:
    """(code, masked description) from either documented error shape."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    error = body.get("error")
    code: object = error
    description: object = body.get("description") or body.get("message")
    if isinstance(error, dict):  # {"error": {"title": ..., "message": ...}}
        code, description = error.get("title"), error.get("message")
    code_text = str(code) if isinstance(code, str) and _CODE.match(code) else None
    text = sanitise(description) if isinstance(description, str) and description else None
    return code_text, text


def _authorization(settings: Settings) -> str:
    if settings.zendesk_oauth_token is not None:
        return f"Bearer {settings.zendesk_oauth_token.get_secret_value()}"
    assert settings.zendesk_api_email is not None and settings.zendesk_api_token is not None
    raw = f"{settings.zendesk_api_email}/token:{settings.zendesk_api_token.get_secret_value()}"
    return "Basic " + base64.b64encode(raw.encode()).decode("ascii")


def _object(body: Any, key: str) -> dict[str, Any]:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, dict):
        raise UpstreamError(f"Zendesk answer has no {key}")
    return value


def _list(body: Any, key: str) -> list[Any]:
    value = body.get(key) if isinstance(body, dict) else None
    if not isinstance(value, list):
        raise UpstreamError(f"Zendesk answer has no {key}")
    return value


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    return retry_after_seconds(response.headers.get("Retry-After"))
