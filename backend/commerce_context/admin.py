"""The admin page and its JSON API: jobs, dead jobs (with a retry button), the audit trail.

    GET  /admin                          the page (?state=dead, ?ticket=N, ?order=NUMBER_OR_ID)
    GET  /admin/api/jobs                 {"counts": {...}, "jobs": [...]} (?state, ?kind, ?limit)
    GET  /admin/api/jobs/{id}            one job and its audit trail
    GET  /admin/api/audit                ?ticket= | ?order= | ?customer= | ?correlation_id=
    POST /admin/jobs/{id}/retry          a dead job back to the queue (the one write)

Protected by `CC_ADMIN_TOKEN`: `Authorization: Bearer <token>`, or HTTP Basic with the token
as the password (browsers ask for it; any user name). Without the setting every admin path
answers 404. The page's retry form also carries a token derived from the admin credential and
the job id, so another site cannot make a logged-in browser post it (Basic credentials are sent
by the browser on its own). Jobs are shown without their payload values (they may hold free
text such as notes): ids, states, errors and the ids they refer to only.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from . import errors, tokens
from .audit import Audit, AuditEntry
from .exceptions import BadRequest, Forbidden, NotFound
from .jobs import STATES, Queue
from .settings import Settings

__all__ = ["routes"]

_REALM = 'Basic realm="commerce-context admin", charset="UTF-8"'
_NO_STORE = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}


def routes() -> list[BaseRoute]:
    return [
        Route("/admin", page, methods=["GET"], name="admin"),
        Route("/admin/api/jobs", api_jobs, methods=["GET"]),
        Route("/admin/api/jobs/{job_id}", api_job, methods=["GET"]),
        Route("/admin/api/audit", api_audit, methods=["GET"]),
        Route("/admin/jobs/{job_id}/retry", retry, methods=["POST"], name="admin_retry"),
    ]


class _Denied(Exception):
    """Missing or wrong credential: answered with a 401 that asks the browser for it."""


def _credential(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    token = tokens.bearer(header)
    if token is not None:
        return token
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def _authorize(request: Request) -> Settings:
    settings: Settings = request.state.settings
    if settings.admin_token is None:
        raise NotFound()  # the admin surface does not exist unless configured
    given = _credential(request)
    expected = settings.admin_token.get_secret_value()
    if given is None or not hmac.compare_digest(given.encode(), expected.encode()):
        raise _Denied()
    return settings


def _admin(
    endpoint: Callable[[Request, Settings], Awaitable[Response]],
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint behind the admin credential: a 401 asking for it when missing or wrong."""

    @functools.wraps(endpoint)
    async def guarded(request: Request) -> Response:
        try:
            settings = _authorize(request)
        except _Denied:
            return _denied()
        return await endpoint(request, settings)

    return guarded


def _denied() -> Response:
    body = errors.error_body(401, "unauthorized", "The admin credential is missing or wrong.")
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": _REALM, **_NO_STORE})


def _form_token(settings: Settings, job_id: str) -> str:
    assert settings.admin_token is not None
    key = settings.admin_token.get_secret_value().encode()
    return hmac.new(key, f"retry:{job_id}".encode(), hashlib.sha256).hexdigest()


def _limit(request: Request, default: int = 100) -> int:
    raw = request.query_params.get("limit")
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    return int(raw)


def _state(request: Request) -> str | None:
    state = request.query_params.get("state") or None
    if state is not None and state not in STATES:
        raise BadRequest(f"state must be one of {', '.join(STATES)}")
    return state


def _criteria(request: Request) -> dict[str, str]:
    params = request.query_params
    names = (("ticket", "ticket"), ("order", "order"), ("customer", "customer"))
    found = {arg: params[name].strip() for name, arg in names if params.get(name, "").strip()}
    if params.get("correlation_id", "").strip():
        found["correlation_id"] = params["correlation_id"].strip()
    return found


async def _query(audit: Audit, criteria: dict[str, str], limit: int) -> list[AuditEntry]:
    return await audit.query(
        ticket=criteria.get("ticket"),
        order=criteria.get("order"),
        customer=criteria.get("customer"),
        correlation_id=criteria.get("correlation_id"),
        limit=limit,
    )


def _json(data: Any) -> JSONResponse:
    return JSONResponse(data, headers=_NO_STORE)


@_admin
async def api_jobs(request: Request, settings: Settings) -> Response:
    queue: Queue = request.state.queue
    jobs = await queue.list(
        state=_state(request), kind=request.query_params.get("kind") or None, limit=_limit(request)
    )
    return _json({"counts": await queue.counts(), "jobs": [job.summary() for job in jobs]})


@_admin
async def api_job(request: Request, settings: Settings) -> Response:
    queue: Queue = request.state.queue
    audit: Audit = request.state.audit
    job = await queue.get(request.path_params["job_id"])
    if job is None:
        raise NotFound("no such job")
    trail = await audit.query(job_id=job.id)
    return _json({"job": job.summary(), "audit": [entry.to_dict() for entry in trail]})


@_admin
async def api_audit(request: Request, settings: Settings) -> Response:
    audit: Audit = request.state.audit
    criteria = _criteria(request)
    if not criteria:
        raise BadRequest("give ticket, order, customer or correlation_id")
    entries = await _query(audit, criteria, _limit(request, 200))
    return _json({"entries": [entry.to_dict() for entry in entries]})


@_admin
async def retry(request: Request, settings: Settings) -> Response:
    queue: Queue = request.state.queue
    job_id = request.path_params["job_id"]
    from_page = request.headers.get("authorization", "").lower().startswith("basic")
    if from_page:
        form = await request.form()
        token = str(form.get("csrf", ""))
        if not hmac.compare_digest(token.encode(), _form_token(settings, job_id).encode()):
            raise Forbidden("the form has expired; reload the admin page and try again")
    job = await queue.retry(job_id)
    audit: Audit = request.state.audit
    await audit.record(
        action="admin:retry",
        source="admin",
        target=job.destination,
        outcome="queued",
        correlation_id=job.correlation_id,
        job_id=job.id,
        ticket_id=job.refs().get("ticket_id"),
        order_id=job.refs().get("order_id"),
        order_number=job.refs().get("order_number"),
        customer_id=job.refs().get("customer_id"),
    )
    if from_page:
        return RedirectResponse("/admin?state=dead", status_code=303, headers=_NO_STORE)
    return _json({"job": job.summary()})


def _when(at: float | None) -> str:
    if at is None:
        return ""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


@_admin
async def page(request: Request, settings: Settings) -> Response:
    queue: Queue = request.state.queue
    audit: Audit = request.state.audit
    state = _state(request)
    criteria = _criteria(request)
    trail = await _query(audit, criteria, 200) if criteria else await audit.recent(50)
    dead = await queue.list(state="dead", limit=100)
    context = {
        "counts": await queue.counts(),
        "state": state,
        "states": STATES,
        "jobs": await queue.list(state=state, limit=_limit(request, 100)),
        "dead": [(job, _form_token(settings, job.id)) for job in dead],
        "criteria": criteria,
        "trail": trail,
        "when": _when,
    }
    response: Response = request.state.templates.TemplateResponse(
        request, "admin.html", context, headers=_NO_STORE
    )
    return response
