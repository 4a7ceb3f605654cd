"""The Tidio OpenAPI client used by the outbound sync (contact properties).

Created once in the app lifespan around the one shared `httpx.AsyncClient` (injected; tests hand
in a client pointed at the fake Tidio of `emulator/tidio.py`).

* Every call carries Tidio's two credentials (`X-Tidio-Openapi-Client-Id: ci_…`,
  `X-Tidio-Openapi-Client-Secret: cs_…`, from `CC_TIDIO_CLIENT_ID` / `CC_TIDIO_CLIENT_SECRET`),
  the mandatory `Accept: application/json; version=1`, and `X-Correlation-ID`.
* Rate limit: Tidio allows 60 (Plus) or 120 (Premium) requests a minute per project and reports
  `x-ratelimit-limit` / `x-ratelimit-remaining`. The job engine keeps us under the configured
  limit (destination `tidio`); a 429 anyway raises `UpstreamUnavailable(retry_after=...)` with
  the Retry-After Tidio sent or, as Tidio documents none, `CC_TIDIO_FALLBACK_BACKOFF`, so the
  engine pauses the destination for every worker. The client never sleeps and never retries,
  so a write is never sent twice behind the queue's back.
* 5xx answers, timeouts and connection failures raise `UpstreamUnavailable` (the queue retries
  with backoff). 401/403 raise `UpstreamAuthError`, 404 `UpstreamNotFound`, 406
  (`missing_api_version`) and other 4xx (a validation error: an undefined property, a value of
  the wrong type) `UpstreamRejected` carrying Tidio's error codes. Tidio's messages can quote
  values (emails, phone numbers), so only its codes and a masked, shortened message reach ours.
* `PATCH /contacts/batch` takes at most 100 contacts and is all-or-nothing: `update_contacts`
  refuses more, and says nothing about which contact was bad (Tidio does not); the sync splits
  a refused batch to find it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from . import correlation
from .commercetools import retry_after_seconds
from .exceptions import (
    ConfigError,
    UpstreamAuthError,
    UpstreamNotFound,
    UpstreamRejected,
    UpstreamUnavailable,
)
from .scrub import sanitise
from .settings import Settings

__all__ = ["ACCEPT", "MAX_BATCH", "MAX_VALUE", "RateLimit", "TidioClient"]

logger = logging.getLogger(__name__)

ACCEPT = "application/json; version=1"
MAX_BATCH = 100  # PATCH /contacts/batch
MAX_VALUE = 1000  # characters of a contact property value
MAX_NAME = 128  # characters of a contact property name
MAX_DISTINCT_ID = 55
MAX_PAGES = 20  # contacts by email: more pages than this is not one shopper
_CONTACT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_CODE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class RateLimit:
    """The project's budget as Tidio last reported it."""

    limit: int | None
    remaining: int | None


class TidioClient:
    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        if not settings.tidio_api_enabled or settings.tidio_client_secret is None:
            raise ConfigError(
                "the Tidio OpenAPI client needs CC_TIDIO_CLIENT_ID and CC_TIDIO_CLIENT_SECRET"
            )
        self._http = http
        self._base = settings.tidio_api_base
        self._timeout = settings.tidio_timeout
        self._fallback = settings.tidio_fallback_backoff
        self._headers = {
            "X-Tidio-Openapi-Client-Id": str(settings.tidio_client_id),
            "X-Tidio-Openapi-Client-Secret": settings.tidio_client_secret.get_secret_value(),
            "Accept": ACCEPT,
        }
        self.rate_limit = RateLimit(None, None)
        self.requests = 0  # sent requests, observable in tests and benchmarks
        self.throttled = 0  # 429 answers received

    def __repr__(self) -> str:  # no credentials
        return f"<TidioClient {self._base}>"

    # -- contact properties ----------------------------------------------------------------------

    async def contact_properties(self) -> dict[str, str]:
        """The defined contact properties: internal name -> type (text, number, url, …)."""
        body = await self._json("GET", "/contact-properties")
        found = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(found, list):
            raise UpstreamUnavailable("Tidio sent an unexpected contact-properties answer.")
        return {
            str(p["name"]): str(p.get("type") or "text")
            for p in found
            if isinstance(p, dict) and isinstance(p.get("name"), str)
        }

    # -- contacts --------------------------------------------------------------------------------

    async def get_contact(self, contact_id: str) -> dict[str, Any]:
        body = await self._json("GET", f"/contacts/{_contact_id(contact_id)}")
        if not isinstance(body, dict):
            raise UpstreamUnavailable("Tidio sent an unexpected contact answer.")
        return body

    async def contacts_by_email(self, email: str) -> list[dict[str, Any]]:
        """Every contact with this email (Tidio filters contacts by email only)."""
        if "@" not in email or len(email) > 254:
            raise ValueError("not an email address")
        found: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            params = {"email": email}
            if cursor is not None:
                params["cursor"] = cursor
            body = await self._json("GET", "/contacts", params=params)
            page = body.get("contacts") if isinstance(body, dict) else None
            if not isinstance(page, list):
                raise UpstreamUnavailable("Tidio sent an unexpected contacts answer.")
            found.extend(c for c in page if isinstance(c, dict))
            meta = body.get("meta") if isinstance(body, dict) else None
            cursor = meta.get("cursor") if isinstance(meta, dict) else None
            if not cursor:
                break
        return found

    async def update_contact(self, contact_id: str, changes: Mapping[str, Any]) -> None:
        """PATCH one contact: only the fields given change; `None` clears."""
        await self._send("PATCH", f"/contacts/{_contact_id(contact_id)}", json=dict(changes))

    async def update_contacts(self, contacts: Sequence[Mapping[str, Any]]) -> None:
        """PATCH up to 100 contacts (each with its `id`), all or nothing."""
        if not contacts:
            raise ValueError("no contacts to update")
        if len(contacts) > MAX_BATCH:
            raise ValueError(f"at most {MAX_BATCH} contacts per batch, got {len(contacts)}")
        for contact in contacts:
            _contact_id(str(contact.get("id")))
        await self._send("PATCH", "/contacts/batch", json={"contacts": [dict(c) for c in contacts]})

    # -- transport -------------------------------------------------------------------------------

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable("Tidio sent a response that is not JSON.") from None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(self._headers)
        cid = correlation.current()
        if cid:
            headers["X-Correlation-ID"] = cid
        self.requests += 1
        try:
            response = await self._http.request(
                method, self._base + path, headers=headers, timeout=self._timeout, **kwargs
            )
        except httpx.TimeoutException:
            raise UpstreamUnavailable("Tidio did not answer in time.") from None
        except httpx.HTTPError:
            raise UpstreamUnavailable("Tidio could not be reached.") from None
        self._note_rate_limit(response)
        status = response.status_code
        if 200 <= status < 300:
            return response
        codes, message = _errors(response)
        what = f"Tidio answered HTTP {status} to {method} {_route(path)}"
        detail = f" ({', '.join(codes)}{': ' + message if message else ''})" if codes else ""
        if status == 429:
            self.throttled += 1
            retry_after = _retry_after(response) or self._fallback
            logger.warning("tidio: 429 on %s %s, pausing %.0fs", method, _route(path), retry_after)
            raise UpstreamUnavailable(f"{what}: too many requests", retry_after=retry_after)
        if status >= 500:
            raise UpstreamUnavailable(what + detail)
        if status in (401, 403):
            raise UpstreamAuthError(
                f"{what}{detail}: check CC_TIDIO_CLIENT_ID and CC_TIDIO_CLIENT_SECRET, and that "
                "the plan includes the OpenAPI"
            )
        if status == 404:
            raise UpstreamNotFound(what + detail)
        raise UpstreamRejected(what + detail, status=status, errors=codes)

    def _note_rate_limit(self, response: httpx.Response) -> None:
        limit = _int(response.headers.get("x-ratelimit-limit"))
        remaining = _int(response.headers.get("x-ratelimit-remaining"))
        if limit is not None or remaining is not None:
            self.rate_limit = RateLimit(limit, remaining)


def _contact_id(value: str) -> str:
    if not _CONTACT_ID.match(value):
        raise ValueError("not a Tidio contact id")
    return value


def _route(path: str) -> str:
    """The path with contact ids elided, for messages and logs."""
    return re.sub(r"^/contacts/(?!batch$)[^/]+", "/contacts/{id}", path)


def _errors(response: httpx.Response) -> tuple[list[str], str | None]:
    """Tidio's error codes and its first message, masked and shortened."""
    try:
        body = response.json()
    except ValueError:
        return [], None
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return [], None
    codes: list[str] = []
    message: str | None = None
    for error in errors[:5]:
        if not isinstance(error, dict):
            continue
        code = error.get("code")
        if isinstance(code, str) and _CODE.match(code):
            codes.append(code)
        text = error.get("message")
        if message is None and isinstance(text, str):
            message = sanitise(text, 160)
    return codes, message


def _retry_after(response: httpx.Response) -> float | None:
    # Tidio documents no Retry-After: trust only a positive value up to an hour.
    seconds = retry_after_seconds(response.headers.get("retry-after"))
    return seconds if seconds is not None and 0 < seconds <= 3600 else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
