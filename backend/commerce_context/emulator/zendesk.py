"""A fake Zendesk Support API, served over real HTTP, for the test suite, benchmarks and the demo.

This is a **test and demo stand-in**, never used in production. It follows the documented
contract of the endpoints the outbound sync calls (request and response shapes as in Zendesk's
API reference; tests/test_fake_zendesk.py checks it against the documented examples):

* `POST /api/v2/users/create_or_update_many` — at most 100 users; answers at once with a
  `job_status` (`queued`), then works through the batch in the background (`queued` →
  `working` → `completed`). `results` come back **in request order**, one per user:
  `{"id", "status": "Created"|"Updated", "email"}` or
  `{"status": "Failed", "error", "details"}`. A user is matched by `external_id` (case-insensitive;
  the stored case follows the request), else by any of its email identities, else created
  (`name` required). On update a new `email` is **added as a secondary identity** (the primary
  one is writable only on create), unless another user owns it (then `Failed`).
* `GET /api/v2/job_statuses/{id}` — `id, job_type, url, total, progress, status, message,
  results`.
* `GET /api/v2/users/show_many?ids=|external_ids=[&include=identities]`,
  `GET /api/v2/users/search?external_id=|query=`, `GET /api/v2/users/{id}/identities`,
  `PUT /api/v2/users/{id}/identities/{id}/make_primary`.
* `POST /api/v2/organizations/create_or_update` — matched by `id` or `external_id` (never by
  name); 201 on create, 200 on update; names are unique (422 otherwise).
* `GET/PUT /api/v2/tickets/{id}` — `custom_fields: [{id, value}]` are merged; `safe_update` with
  an `updated_stamp` other than the ticket's `updated_at` answers 409 `UpdateConflict`; closed
  tickets answer 422.
* `GET /api/v2/search?query=` — offset pages of at most 100 with `next_page` links.
* Authentication: HTTP Basic `{email}/token:{token}` or `Bearer {oauth token}`; 401
  `{"error": "Couldn't authenticate you"}` otherwise.
* Errors: `{"error": "RecordNotFound", "description": "Not found"}`, `{"error":
  "RecordInvalid", "description": ..., "details": {...}}`, `{"error": "UpdateConflict", ...}`.
* Rate limit: `limit_per_minute` requests per window (`window` seconds, default 60), shared by
  all callers like Zendesk's account-wide limit. Every answer carries `ratelimit-limit`,
  `ratelimit-remaining`, `ratelimit-reset`, `X-Rate-Limit` and `X-Rate-Limit-Remaining`; beyond
  the limit it answers 429 with `Retry-After`.

Fault injection (`inject()`): the next N requests answer 429 with or without `Retry-After`
(`429-bare`: without any rate-limit header either), or 503, or are delayed; `fail_emails`
makes job results `Failed` for those emails; `edit_after_read[ticket_id] = n` has an "agent"
save the ticket right after each of the next n reads (so a safe update made from that read
gets 409).
`requests` logs every request (method, path) for tests and benchmarks.

Limits (what it does NOT do): no pagination cursors (offset only), no side-loads other than
identities, no triggers, automations, SLAs or ticket audits beyond a minimal `audit` echo, no
user merge, no email verification, no endpoint-specific limits (only the account-wide one), no
search index delay (results are immediate), and a deliberately minimal search syntax:
`type:ticket|user|organization`, `status:X`, `status<X` / `status>X` (new < open < pending <
hold < solved < closed), `fieldvalue:X`, `custom_field_<id>:X`, `email:X`, `external_id:X`;
other words are free text matched against subjects and names, and any other `name:value` filter
answers 400 (so a query the fake cannot honour fails loudly instead of matching too much).
Matching an
unknown `external_id` to a user found by email that already has another external id overwrites
it: the real API does not document that case, and the sync never sends it. `updated_at`
advances by at least one second per change so `updated_stamp` always tells changes apart.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from .faults import Fault, Faults, answer

__all__ = ["FakeZendesk", "Fault", "serve_fake_zendesk"]

_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[A-Za-z]{2,}$")
_FILTER = re.compile(r"^(\w+)[:<>]")
_KNOWN = re.compile(r"^(type|status|fieldvalue|custom_field_\d+|email|external_id)$")
_STATUS_ORDER = ("new", "open", "pending", "hold", "solved", "closed")
_NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
_CONFLICT = {
    "error": "UpdateConflict",
    "description": "Safe Update prevented the update due to outdated ticket data. "
    "Please fetch the latest ticket data and try again.",
}


@dataclass
class _Job:
    id: str
    total: int
    status: str = "queued"
    progress: int = 0
    results: list[dict[str, Any]] | None = None
    message: str | None = None


@dataclass
class FakeZendesk:
    """In-memory Zendesk account. Serve `self` (an ASGI app) with uvicorn."""

    email: str = "sync@example.com"
    api_token: str = "fake-api-token"  # noqa: S105 - obviously fake
    oauth_tokens: frozenset[str] = frozenset({"fake-oauth-token"})
    limit_per_minute: int = 700
    window: float = 60.0
    job_delay: float = 0.02  # seconds spent in each of "queued" and "working"
    fail_emails: set[str] = field(default_factory=set)
    clock: Callable[[], float] = time.monotonic

    def __post_init__(self) -> None:
        self.users: dict[int, dict[str, Any]] = {}
        self.identities: dict[int, dict[str, Any]] = {}
        self.organizations: dict[int, dict[str, Any]] = {}
        self.tickets: dict[int, dict[str, Any]] = {}
        self.jobs: dict[str, _Job] = {}
        self.requests: list[tuple[str, str]] = []
        self.throttled = 0
        self.edit_after_read: dict[int, int] = {}  # ticket id -> edits to make after a read
        self._ids = itertools.count(10_001)
        # kinds: "429", "429-no-retry-after", "429-bare" (neither Retry-After nor rate-limit
        # headers), "503", "latency"
        self._faults = Faults()
        self._window_start = self.clock()
        self._window_count = 0
        self._last_stamp = datetime(2020, 1, 1, tzinfo=UTC)
        self._tasks: set[asyncio.Task[None]] = set()
        self._base = "http://zendesk.invalid"
        self._router = Starlette(routes=self._routes())

    # -- test and demo controls ------------------------------------------------------------------

    def inject(self, kind: str, count: int = 1, seconds: float = 1.0) -> None:
        if kind not in ("429", "429-no-retry-after", "429-bare", "503", "latency"):
            raise ValueError(f"unknown fault {kind!r}")
        self._faults.add(kind, count, seconds)

    def add_user(self, name: str, email: str | None = None, **attributes: Any) -> dict[str, Any]:
        user = self._new_user(name, email)
        self._apply_user(user, attributes)
        return user

    def add_organization(self, name: str, **attributes: Any) -> dict[str, Any]:
        org = self._new_organization(name)
        org.update(attributes)
        return org

    def add_ticket(
        self,
        subject: str = "Help",
        *,
        status: str = "open",
        custom_fields: dict[int, Any] | None = None,
        requester_id: int | None = None,
    ) -> dict[str, Any]:
        ticket_id = next(self._ids)
        stamp = self._stamp()
        ticket = {
            "id": ticket_id,
            "url": f"{self._base}/api/v2/tickets/{ticket_id}.json",
            "subject": subject,
            "status": status,
            "requester_id": requester_id,
            "custom_fields": [{"id": k, "value": v} for k, v in (custom_fields or {}).items()],
            "tags": [],
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.tickets[ticket_id] = ticket
        return ticket

    def touch_ticket(self, ticket_id: int, **changes: Any) -> dict[str, Any]:
        """An agent's change in the Zendesk UI: moves `updated_at`."""
        ticket = self.tickets[ticket_id]
        ticket.update(changes)
        ticket["updated_at"] = self._stamp()
        return ticket

    def user_by_external_id(self, external_id: str) -> dict[str, Any] | None:
        wanted = external_id.lower()
        for user in self.users.values():
            if (user.get("external_id") or "").lower() == wanted:
                return user
        return None

    def user_by_email(self, email: str) -> dict[str, Any] | None:
        wanted = email.lower()
        for identity in self.identities.values():
            if identity["type"] == "email" and identity["value"].lower() == wanted:
                return self.users.get(identity["user_id"])
        return None

    def field_value(self, ticket_id: int, field_id: int) -> Any:
        for item in self.tickets[ticket_id]["custom_fields"]:
            if item["id"] == field_id:
                return item["value"]
        return None

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p.startswith(prefix))

    async def idle(self) -> None:
        """Wait until every queued job has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._router(scope, receive, send)
            return
        path: str = scope["path"]
        if path.endswith(".json"):  # both /api/v2/x and /api/v2/x.json are served
            scope = dict(scope, path=path[: -len(".json")])
        if self._base == "http://zendesk.invalid":
            host = dict(scope["headers"]).get(b"host", b"zendesk.invalid").decode()
            self._base = f"http://{host}"
        self.requests.append((scope["method"], scope["path"]))
        early = await self._guard(scope)
        headers = self._rate_headers()
        if (
            early is not None
            and early.status_code == 429
            and early.headers.get("x-fault") == "bare"
        ):
            del early.headers["x-fault"]
            headers = {}
        await answer(self._router, early, headers, scope, receive, send)

    async def _guard(self, scope: Scope) -> Response | None:
        """Faults, authentication and the rate limit, in that order."""
        fault = self._faults.next()
        if fault is not None:
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "503":
                return JSONResponse({"error": "ServiceUnavailable"}, status_code=503)
            else:
                self.throttled += 1
                response = Response("Too Many Requests", status_code=429)
                if fault.kind == "429":
                    response.headers["Retry-After"] = str(math.ceil(fault.seconds))
                elif fault.kind == "429-bare":
                    response.headers["x-fault"] = "bare"
                return response
        if not self._authenticated(dict(scope["headers"]).get(b"authorization", b"")):
            return JSONResponse({"error": "Couldn't authenticate you"}, status_code=401)
        now = self.clock()
        if now - self._window_start >= self.window:
            self._window_start, self._window_count = now, 0
        if self._window_count >= self.limit_per_minute:
            self.throttled += 1
            response = Response("Too Many Requests", status_code=429)
            response.headers["Retry-After"] = str(max(1, math.ceil(self._reset())))
            return response
        self._window_count += 1
        return None

    def _authenticated(self, header: bytes) -> bool:
        value = header.decode("latin-1")
        if value.startswith("Bearer "):
            return value[len("Bearer ") :] in self.oauth_tokens
        if value.startswith("Basic "):
            try:
                decoded = base64.b64decode(value[len("Basic ") :], validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            return decoded == f"{self.email}/token:{self.api_token}"
        return False

    def _reset(self) -> float:
        return max(0.0, self.window - (self.clock() - self._window_start))

    def _rate_headers(self) -> dict[str, str]:
        remaining = str(max(0, self.limit_per_minute - self._window_count))
        limit = str(self.limit_per_minute)
        return {
            "ratelimit-limit": limit,
            "ratelimit-remaining": remaining,
            "ratelimit-reset": str(math.ceil(self._reset())),
            "X-Rate-Limit": limit,
            "X-Rate-Limit-Remaining": remaining,
        }

    # -- routes ----------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route(
                "/api/v2/users/create_or_update_many", self._create_or_update_many, methods=["POST"]
            ),
            Route("/api/v2/job_statuses/{job_id}", self._job_status, methods=["GET"]),
            Route("/api/v2/users/show_many", self._show_many, methods=["GET"]),
            Route("/api/v2/users/search", self._search_users, methods=["GET"]),
            Route("/api/v2/users/{user_id:int}/identities", self._identities, methods=["GET"]),
            Route(
                "/api/v2/users/{user_id:int}/identities/{identity_id:int}/make_primary",
                self._make_primary,
                methods=["PUT"],
            ),
            Route(
                "/api/v2/organizations/create_or_update",
                self._create_or_update_organization,
                methods=["POST"],
            ),
            Route("/api/v2/tickets/{ticket_id:int}", self._show_ticket, methods=["GET"]),
            Route("/api/v2/tickets/{ticket_id:int}", self._update_ticket, methods=["PUT"]),
            Route("/api/v2/search", self._search, methods=["GET"]),
        ]

    async def _create_or_update_many(self, request: Request) -> Response:
        body = await _body(request)
        users = body.get("users") if isinstance(body, dict) else None
        if not isinstance(users, list) or not users or not all(isinstance(u, dict) for u in users):
            return _invalid("users", "Users: must be a non-empty array of user objects")
        if len(users) > 100:
            return _invalid("users", "Users: too many users in one request (maximum 100)")
        job = _Job(id=uuid.uuid4().hex, total=len(users))
        self.jobs[job.id] = job
        task = asyncio.create_task(self._run_job(job, users))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return JSONResponse({"job_status": self._job_json(job)})

    async def _run_job(self, job: _Job, users: list[dict[str, Any]]) -> None:
        await asyncio.sleep(self.job_delay)
        job.status, job.results = "working", []
        await asyncio.sleep(self.job_delay)
        for payload in users:
            job.results.append(self._upsert_user(payload))
            job.progress += 1
        job.status = "completed"
        job.message = f"Completed at {datetime.now(UTC):%Y-%m-%d %H:%M:%S} +0000"

    def _upsert_user(self, payload: dict[str, Any]) -> dict[str, Any]:
        email = payload.get("email")
        if email is not None and (not isinstance(email, str) or not _EMAIL.match(email)):
            return _failed("UserUpdateError", f"Email: {email} is not properly formatted")
        if isinstance(email, str) and email.lower() in {e.lower() for e in self.fail_emails}:
            return _failed("UserUpdateError", f"Email: {email} could not be saved")
        external_id = payload.get("external_id")
        user = self.user_by_external_id(str(external_id)) if external_id else None
        if user is None and isinstance(email, str):
            user = self.user_by_email(email)
        if user is None:
            name = payload.get("name")
            if not isinstance(name, str) or not name.strip():
                return _failed("UserCreateError", "Name: cannot be blank")
            user = self._new_user(name, email)
            self._apply_user(user, {k: v for k, v in payload.items() if k not in ("name", "email")})
            return {"id": user["id"], "status": "Created", "email": email}
        if isinstance(email, str):
            owner = self.user_by_email(email)
            if owner is not None and owner["id"] != user["id"]:
                return _failed(
                    "UserUpdateError", f"Email: {email} is already being used by another user"
                )
            if owner is None:
                self._add_identity(user, "email", email, primary=False)
        self._apply_user(user, {k: v for k, v in payload.items() if k != "email"})
        return {"id": user["id"], "status": "Updated", "email": email}

    async def _job_status(self, request: Request) -> Response:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        return JSONResponse({"job_status": self._job_json(job)})

    async def _show_many(self, request: Request) -> Response:
        ids, external_ids = (
            request.query_params.get("ids"),
            request.query_params.get("external_ids"),
        )
        if bool(ids) == bool(external_ids):
            return _invalid("ids", "Ids: give ids or external_ids")
        values = (ids or external_ids or "").split(",")
        if len(values) > 100:
            return _invalid("ids", "Ids: at most 100")
        if ids:
            try:
                users = [self.users[int(v)] for v in values if int(v) in self.users]
            except ValueError:
                return _invalid("ids", "Ids: must be integers")
        else:
            found = (self.user_by_external_id(v) for v in values)
            users = [u for u in found if u is not None]
        body: dict[str, Any] = {"users": users}
        if "identities" in (request.query_params.get("include") or "").split(","):
            body["identities"] = [self._identities_of(u["id"]) for u in users]
            body["identities"] = [i for group in body["identities"] for i in group]
        return JSONResponse(body)

    async def _search_users(self, request: Request) -> Response:
        params = request.query_params
        if "external_id" in params:
            user = self.user_by_external_id(params["external_id"])
            return self._page(request, "users", [user] if user else [])
        query = params.get("query")
        if not query:
            return _invalid("query", "Query: give query or external_id")
        return self._page(
            request, "users", [u for u in self.users.values() if self._user_matches(u, query)]
        )

    async def _identities(self, request: Request) -> Response:
        user_id = request.path_params["user_id"]
        if user_id not in self.users:
            return JSONResponse(_NOT_FOUND, status_code=404)
        return self._page(request, "identities", self._identities_of(user_id))

    async def _make_primary(self, request: Request) -> Response:
        user_id, identity_id = request.path_params["user_id"], request.path_params["identity_id"]
        identity = self.identities.get(identity_id)
        if user_id not in self.users or identity is None or identity["user_id"] != user_id:
            return JSONResponse(_NOT_FOUND, status_code=404)
        for other in self._identities_of(user_id):
            if other["type"] == identity["type"]:
                other["primary"] = other["id"] == identity_id
        if identity["type"] == "email":
            self.users[user_id]["email"] = identity["value"]
        self._touch(self.users[user_id])
        return JSONResponse({"identities": self._identities_of(user_id)})

    async def _create_or_update_organization(self, request: Request) -> Response:
        body = await _body(request)
        payload = body.get("organization") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            return _invalid("organization", "Organization: missing")
        org = None
        if payload.get("id") is not None:
            org = self.organizations.get(payload["id"])
        if org is None and payload.get("external_id"):
            wanted = str(payload["external_id"]).lower()
            org = next(
                (
                    o
                    for o in self.organizations.values()
                    if (o.get("external_id") or "").lower() == wanted
                ),
                None,
            )
        name = payload.get("name")
        if isinstance(name, str):
            clash = next(
                (o for o in self.organizations.values() if o["name"].lower() == name.lower()), None
            )
            if clash is not None and (org is None or clash["id"] != org["id"]):
                return _invalid("name", "Name: has already been taken")
        if org is None:
            if not isinstance(name, str) or not name.strip():
                return _invalid("name", "Name: cannot be blank")
            org = self._new_organization(name)
            status = 201
        else:
            status = 200
        for key in ("name", "external_id", "details", "notes", "tags", "domain_names"):
            if key in payload:
                org[key] = payload[key]
        if isinstance(payload.get("organization_fields"), dict):
            org["organization_fields"] = {
                **(org["organization_fields"] or {}),
                **payload["organization_fields"],
            }
        self._touch(org)
        return JSONResponse({"organization": org}, status_code=status)

    async def _show_ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        response = JSONResponse({"ticket": ticket})  # serialised now, before any edit below
        if self.edit_after_read.get(ticket["id"], 0) > 0:
            # An agent saves the ticket right after the caller read it.
            self.edit_after_read[ticket["id"]] -= 1
            self.touch_ticket(ticket["id"])
        return response

    async def _update_ticket(self, request: Request) -> Response:
        ticket = self.tickets.get(request.path_params["ticket_id"])
        if ticket is None:
            return JSONResponse(_NOT_FOUND, status_code=404)
        body = await _body(request)
        payload = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            return _invalid("ticket", "Ticket: missing")
        if ticket["status"] == "closed":
            return _invalid("status", "Status: closed prevents ticket update")
        if (
            payload.get("safe_update") in (True, "true")
            and payload.get("updated_stamp") != ticket["updated_at"]
        ):
            return JSONResponse(_CONFLICT, status_code=409)
        status = payload.get("status")
        if status is not None and status not in _STATUS_ORDER:
            return _invalid("status", f"Status: {status} is not a valid status")
        events: list[dict[str, Any]] = []
        fields = payload.get("custom_fields")
        if fields is not None:
            if not isinstance(fields, list) or not all(
                isinstance(f, dict) and isinstance(f.get("id"), int) for f in fields
            ):
                return _invalid("custom_fields", "Custom fields: each needs an integer id")
            current = {f["id"]: f for f in ticket["custom_fields"]}
            for item in fields:
                before = current.get(item["id"], {}).get("value")
                if before != item.get("value"):
                    events.append(
                        {
                            "type": "Change",
                            "field_name": str(item["id"]),
                            "value": item.get("value"),
                            "previous_value": before,
                        }
                    )
                current[item["id"]] = {"id": item["id"], "value": item.get("value")}
            ticket["custom_fields"] = list(current.values())
        if status is not None and status != ticket["status"]:
            events.append(
                {
                    "type": "Change",
                    "field_name": "status",
                    "value": status,
                    "previous_value": ticket["status"],
                }
            )
            ticket["status"] = status
        if events:
            ticket["updated_at"] = self._stamp()
        return JSONResponse(
            {"ticket": ticket, "audit": {"ticket_id": ticket["id"], "events": events}}
        )

    async def _search(self, request: Request) -> Response:
        query = request.query_params.get("query", "").strip()
        if not query:
            return JSONResponse(
                {"error": "invalid", "description": "Search query is missing"}, status_code=400
            )
        unknown = [
            t for t in query.split() if (m := _FILTER.match(t)) and not _KNOWN.match(m.group(1))
        ]
        if unknown:
            return JSONResponse(
                {"error": "invalid", "description": "The fake does not support this filter"},
                status_code=400,
            )
        kinds = re.findall(r"\btype:(\w+)", query)
        results: list[dict[str, Any]] = []
        if not kinds or "ticket" in kinds:
            results += [
                dict(t, result_type="ticket")
                for t in self.tickets.values()
                if _ticket_matches(t, query)
            ]
        if not kinds or "user" in kinds:
            results += [
                dict(u, result_type="user")
                for u in self.users.values()
                if self._user_matches(u, query)
            ]
        if not kinds or "organization" in kinds:
            results += [
                dict(o, result_type="organization")
                for o in self.organizations.values()
                if _terms(query) and all(t.lower() in o["name"].lower() for t in _terms(query))
            ]
        return self._page(request, "results", results, facets=True)

    # -- helpers ---------------------------------------------------------------------------------

    def _page(
        self, request: Request, key: str, items: list[dict[str, Any]], *, facets: bool = False
    ) -> Response:
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            per_page = min(100, max(1, int(request.query_params.get("per_page", "100"))))
        except ValueError:
            return _invalid("page", "Page: must be an integer")
        start = (page - 1) * per_page
        chunk = items[start : start + per_page]

        def link(number: int) -> str:
            return str(request.url.include_query_params(page=number, per_page=per_page))

        body: dict[str, Any] = {
            key: chunk,
            "next_page": link(page + 1) if start + per_page < len(items) else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(items),
        }
        if facets:
            body["facets"] = None
        return JSONResponse(body)

    def _user_matches(self, user: dict[str, Any], query: str) -> bool:
        emails = [
            i["value"].lower() for i in self._identities_of(user["id"]) if i["type"] == "email"
        ]
        for wanted in re.findall(r"\bemail:(\S+)", query):
            if wanted.strip('"').lower() not in emails:
                return False
        for wanted in re.findall(r"\bexternal_id:(\S+)", query):
            if (user.get("external_id") or "").lower() != wanted.strip('"').lower():
                return False
        text = " ".join([user["name"], *emails]).lower()
        return all(t.lower() in text for t in _terms(query))

    def _new_user(self, name: str, email: str | None) -> dict[str, Any]:
        user_id = next(self._ids)
        stamp = self._stamp()
        user: dict[str, Any] = {
            "id": user_id,
            "url": f"{self._base}/api/v2/users/{user_id}.json",
            "name": name,
            "email": None,
            "external_id": None,
            "role": "end-user",
            "active": True,
            "verified": False,
            "locale": "en-US",
            "organization_id": None,
            "tags": [],
            "user_fields": {},
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.users[user_id] = user
        if email:
            self._add_identity(user, "email", email, primary=True)
        return user

    def _apply_user(self, user: dict[str, Any], attributes: dict[str, Any]) -> None:
        for key in (
            "name",
            "external_id",
            "organization_id",
            "locale",
            "phone",
            "notes",
            "details",
            "tags",
            "role",
        ):
            if key in attributes:
                user[key] = attributes[key]
        if isinstance(attributes.get("user_fields"), dict):
            user["user_fields"] = {**user["user_fields"], **attributes["user_fields"]}
        organization = attributes.get("organization")
        if isinstance(organization, dict) and isinstance(organization.get("name"), str):
            match = next(
                (
                    o
                    for o in self.organizations.values()
                    if o["name"].lower() == organization["name"].lower()
                ),
                None,
            ) or self._new_organization(organization["name"])
            user["organization_id"] = match["id"]
        for identity in attributes.get("identities") or []:
            if isinstance(identity, dict) and identity.get("type") == "email":
                value = identity.get("value")
                if isinstance(value, str) and self.user_by_email(value) is None:
                    self._add_identity(user, "email", value, primary=False)
        self._touch(user)

    def _add_identity(self, user: dict[str, Any], kind: str, value: str, *, primary: bool) -> None:
        identity_id = next(self._ids)
        stamp = self._stamp()
        self.identities[identity_id] = {
            "id": identity_id,
            "url": f"{self._base}/api/v2/users/{user['id']}/identities/{identity_id}.json",
            "user_id": user["id"],
            "type": kind,
            "value": value,
            "verified": False,
            "primary": primary,
            "created_at": stamp,
            "updated_at": stamp,
        }
        if primary and kind == "email":
            user["email"] = value

    def _identities_of(self, user_id: int) -> list[dict[str, Any]]:
        return [i for i in self.identities.values() if i["user_id"] == user_id]

    def _new_organization(self, name: str) -> dict[str, Any]:
        org_id = next(self._ids)
        stamp = self._stamp()
        org: dict[str, Any] = {
            "id": org_id,
            "url": f"{self._base}/api/v2/organizations/{org_id}.json",
            "name": name,
            "external_id": None,
            "details": None,
            "notes": None,
            "domain_names": [],
            "group_id": None,
            "shared_comments": False,
            "shared_tickets": False,
            "organization_fields": None,
            "tags": [],
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.organizations[org_id] = org
        return org

    def _job_json(self, job: _Job) -> dict[str, Any]:
        return {
            "id": job.id,
            "job_type": "bulk_create_or_update_users",
            "url": f"{self._base}/api/v2/job_statuses/{job.id}.json",
            "total": job.total,
            "progress": job.progress,
            "status": job.status,
            "message": job.message,
            "results": job.results,
        }

    def _touch(self, record: dict[str, Any]) -> None:
        record["updated_at"] = self._stamp()

    def _stamp(self) -> str:
        # Whole seconds as Zendesk writes them, but strictly increasing so that an
        # updated_stamp taken before a change never equals the one after it.
        now = datetime.now(UTC).replace(microsecond=0)
        self._last_stamp = max(now, self._last_stamp + timedelta(seconds=1))
        return self._last_stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticket_matches(ticket: dict[str, Any], query: str) -> bool:
    values = {f["id"]: f["value"] for f in ticket["custom_fields"]}
    for op, wanted in re.findall(r"\bstatus([:<>])(\w+)", query):
        if wanted not in _STATUS_ORDER:
            return False
        have, want = _STATUS_ORDER.index(ticket["status"]), _STATUS_ORDER.index(wanted)
        if (
            (op == ":" and have != want)
            or (op == "<" and have >= want)
            or (op == ">" and have <= want)
        ):
            return False
    for wanted in re.findall(r"\bfieldvalue:(\S+)", query):
        if wanted.strip('"') not in {str(v) for v in values.values() if v is not None}:
            return False
    for field_id, wanted in re.findall(r"\bcustom_field_(\d+):(\S+)", query):
        if str(values.get(int(field_id))) != wanted.strip('"'):
            return False
    return all(t.lower() in ticket["subject"].lower() for t in _terms(query))


def _terms(query: str) -> list[str]:
    """Free-text words: everything that is not a `name:value` or `name<value` filter."""
    return [t.strip('"') for t in query.split() if not _FILTER.match(t)]


def _failed(error: str, details: str) -> dict[str, Any]:
    return {"status": "Failed", "error": error, "details": details}


def _invalid(attribute: str, description: str) -> JSONResponse:
    return JSONResponse(
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {attribute: [{"description": description, "error": "InvalidValue"}]},
        },
        status_code=422,
    )


async def _body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


@contextlib.asynccontextmanager
async def serve_fake_zendesk(
    fake: FakeZendesk | None = None,
) -> AsyncIterator[tuple[FakeZendesk, str]]:
    """Serve a fake account on a free loopback port; yields it and its base URL."""
    from .harness import serve

    fake = fake or FakeZendesk()
    async with serve(fake) as url:
        fake._base = url
        try:
            yield fake, url
        finally:
            await fake.idle()
