"""A fake Tidio (OpenAPI and widget), served over real HTTP, for the test suite, benchmarks and
the demo.

This is a **test and demo stand-in**, never used in production. It follows Tidio's documented
contract (developers.tidio.com: authorization, versioning, rate limiting, contacts; the widget
SDK's `document.tidioIdentify`, `tidioChatApi` and the `tidioChat-ready` event);
tests/test_fake_tidio.py checks it against the documented examples.

OpenAPI (`https://api.tidio.com` in production):

* Every call needs `X-Tidio-Openapi-Client-Id` (`ci_…`) and `X-Tidio-Openapi-Client-Secret`
  (`cs_…`), else 401 `unauthorized`; and `Accept: application/json; version=1`, else 406
  `missing_api_version`.
* Errors are `{"errors": [{"code", "message"}]}`.
* Rate limit: `limit_per_minute` requests per project per window (`window` seconds); every
  answer carries `x-ratelimit-limit` and `x-ratelimit-remaining`; beyond the limit the answer is
  the documented 429 `too_many_requests` ("You have reached the limit of allowed attempts"),
  without Retry-After (Tidio documents none).
* `GET /contact-properties` — `{"properties": [{"name", "type"}]}` (text, email, number, phone,
  url); definitions are made in the panel, here by `define()`.
* `GET /contacts?cursor=&email=` — `{"contacts": [...], "meta": {"cursor", "limit"}}`, pages of
  `page_size`, the email filter exact (case-insensitive).
* `GET /contacts/{id}` — the contact or 404 `not_found`.
* `POST /contacts` — 201 `{"id"}`; needs one of email, first_name, last_name, phone; always
  creates (no de-duplication, as documented).
* `PATCH /contacts/{id}` — 204; only the fields given change, `null` clears; a property that is
  not defined, a value of the wrong type (number, email, url, phone), a value over 1000
  characters, a name over 128, a distinct_id over 55 or first/last name over 127 answer 422
  `validation_error` and change nothing.
* `PATCH /contacts/batch` — `{"contacts": [{"id", ...same fields...}]}`, 1 to 100, 204; all or
  nothing: one invalid contact (or an unknown id) fails the whole request with one 422 that
  does not say which contact (Tidio's error body has no field pointer).

Widget stand-in (not part of Tidio's API; it plays the part of `//code.tidio.co/<key>.js`):

* `GET /widget/<public_key>.js` — a script that records what the page does: the
  `document.tidioIdentify` it finds when it loads, and every `tidioChatApi` call
  (`setContactProperties`, `track`, `setVisitorData`, `addVisitorTags`, …) in
  `window.__tidioFake`; it registers the visitor with the fake (a visitor id kept in
  localStorage, like Tidio's own cookie), then fires `tidioChat-ready` (and `on("ready")`).
* `POST /widget/<public_key>/visitors` and `/widget/<public_key>/calls` — what the script
  reports. A visitor is one contact with one conversation; a `distinct_id` given later (the
  shopper logged in) is added to the same contact, so the chat continues; one already known
  from another visitor joins this visitor to that contact. New contacts and new distinct_ids
  send `contact.created` / `contact.updated` webhooks to `webhook_url` when set, signed as Tidio
  signs (`x-tidio-signature: t=…,s=…`). Changes made through the OpenAPI send none (as
  documented).
* `GET /agent` — a plain page listing contacts and their properties (the demo's simulated
  Tidio agent view).

Fault injection (`inject()`): the next N requests answer 429 (with or without Retry-After),
503, or are delayed. `requests` logs (method, path) of every OpenAPI request; `batch_sizes`
the size of every accepted or refused batch.

Limits (what it does NOT do): no conversations API, tickets, operators or Lyro; anonymous
visitors are contacts here (in Tidio a visitor becomes a contact once identified); no phone
format beyond digits, spaces and a leading +; cursors are offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import html
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from .faults import Faults, answer

__all__ = [
    "DEFAULT_PROPERTIES",
    "FakeTidio",
    "serve_fake_tidio",
    "widget_script",
]

MAX_BATCH = 100
MAX_VALUE = 1000
MAX_NAME = 128
MAX_DISTINCT_ID = 55
MAX_PERSON_NAME = 127
MAX_PHONE = 155
TYPES = ("text", "email", "number", "phone", "url")
_EMAIL = re.compile(r"^[^\s@]+@[^\s@]+\.[A-Za-z]{2,}$")
_URL = re.compile(r"^https?://[^\s/]+\S*$")
_PHONE = re.compile(r"^\+?[0-9][0-9 ()-]{2,}$")
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PATCH_FIELDS = frozenset(
    {"email", "phone", "first_name", "last_name", "email_consent", "distinct_id", "properties"}
)
# What a new Tidio project defines out of the box (custom ones are added in the panel).
DEFAULT_PROPERTIES: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "first_name": "text",
    "last_name": "text",
}
TOO_MANY = {
    "errors": [
        {"code": "too_many_requests", "message": "You have reached the limit of allowed attempts"}
    ]
}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"code": code, "message": message}]}, status_code=status)


class _Invalid(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class FakeTidio:
    """In-memory Tidio project. Serve `self` (an ASGI app) with uvicorn."""

    client_id: str = "ci_fake0client0id"
    client_secret: str = "cs_fake0client0secret"  # noqa: S105 - obviously fake
    public_key: str = "fakepublickey0000000000000000000"
    limit_per_minute: int = 60
    window: float = 60.0
    page_size: int = 25
    clock: Callable[[], float] = time.monotonic
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    properties: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROPERTIES))

    def __post_init__(self) -> None:
        self.contacts: dict[str, dict[str, Any]] = {}
        self.visitors: dict[str, str] = {}  # widget visitor id -> contact id
        self.widget_calls: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.batch_sizes: list[int] = []
        self.throttled = 0
        self.webhooks_sent: list[dict[str, Any]] = []
        self._faults = Faults()  # kinds: "429", "429-retry-after", "503", "latency"
        self._window_start = self.clock()
        self._window_count = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._router = Starlette(routes=self._routes())

    # -- test and demo helpers -----------------------------------------------------------------

    def define(self, name: str, kind: str = "text") -> None:
        """A contact property definition, as made in the Tidio panel (Settings → Contact
        properties)."""
        if kind not in TYPES:
            raise ValueError(f"unknown property type {kind!r}")
        self.properties[name] = kind

    def add_contact(self, **fields: Any) -> str:
        contact_id = str(uuid.uuid4())
        self.contacts[contact_id] = self._new_contact(contact_id, fields)
        return contact_id

    def contact_by_distinct_id(self, distinct_id: str) -> dict[str, Any] | None:
        for contact in self.contacts.values():
            if contact.get("distinct_id") == distinct_id:
                return contact
        return None

    def property(self, contact_id: str, name: str) -> str | None:
        for prop in self.contacts[contact_id]["properties"]:
            if prop["name"] == name:
                return str(prop["value"])
        return None

    def inject(self, kind: str, count: int = 1, seconds: float = 1.0) -> None:
        self._faults.add(kind, count, seconds)

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p in self.requests if m == method and p == path)

    async def idle(self) -> None:
        """Wait until every webhook in flight was delivered."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- ASGI ------------------------------------------------------------------------------------

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not _is_api(scope["path"]):
            await self._router(scope, receive, send)
            return
        self.requests.append((scope["method"], scope["path"]))
        early = await self._guard(scope)
        await answer(self._router, early, self._rate_headers(), scope, receive, send)

    async def _guard(self, scope: Any) -> Response | None:
        """Faults, authentication, versioning and the rate limit, in that order."""
        fault = self._faults.next()
        if fault is not None:
            if fault.kind == "latency":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "503":
                return _error(503, "service_unavailable", "Service unavailable")
            else:
                self.throttled += 1
                response = JSONResponse(TOO_MANY, status_code=429)
                if fault.kind == "429-retry-after":
                    response.headers["Retry-After"] = str(math.ceil(fault.seconds))
                return response
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-tidio-openapi-client-id", "")
        given_secret = headers.get("x-tidio-openapi-client-secret", "")
        if not (
            hmac.compare_digest(given_id.encode(), self.client_id.encode())
            and hmac.compare_digest(given_secret.encode(), self.client_secret.encode())
        ):
            return _error(401, "unauthorized", "Invalid or missing OpenAPI credentials")
        accept = headers.get("accept", "")
        if not re.search(r"application/json\s*;\s*version=1\b", accept):
            return _error(
                406,
                "missing_api_version",
                "Specify the API version in the Accept header: application/json; version=1",
            )
        now = self.clock()
        if now - self._window_start >= self.window:
            self._window_start, self._window_count = now, 0
        if self._window_count >= self.limit_per_minute:
            self.throttled += 1
            return JSONResponse(TOO_MANY, status_code=429)
        self._window_count += 1
        return None

    def _rate_headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit_per_minute),
            "x-ratelimit-remaining": str(max(0, self.limit_per_minute - self._window_count)),
        }

    # -- routes ----------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        return [
            Route("/contact-properties", self._contact_properties, methods=["GET"]),
            Route("/contacts", self._list_contacts, methods=["GET"]),
            Route("/contacts", self._create_contact, methods=["POST"]),
            Route("/contacts/batch", self._update_batch, methods=["PATCH"]),
            Route("/contacts/{contact_id}", self._get_contact, methods=["GET"]),
            Route("/contacts/{contact_id}", self._update_contact, methods=["PATCH"]),
            Route("/widget/{script}", self._widget_script, methods=["GET"]),
            Route("/widget/{key}/visitors", self._widget_visitor, methods=["POST", "OPTIONS"]),
            Route("/widget/{key}/calls", self._widget_call, methods=["POST", "OPTIONS"]),
            Route("/agent", self._agent, methods=["GET"]),
            Route("/agent/contacts", self._agent_contacts, methods=["GET"]),
        ]

    async def _contact_properties(self, request: Request) -> Response:
        return JSONResponse(
            {"properties": [{"name": n, "type": t} for n, t in self.properties.items()]}
        )

    async def _list_contacts(self, request: Request) -> Response:
        cursor = request.query_params.get("cursor")
        email = request.query_params.get("email")
        start = 0
        if cursor not in (None, "", "null"):
            if not str(cursor).isdigit():
                return _error(400, "invalid_cursor", "Invalid cursor")
            start = int(str(cursor))
        found = [
            c
            for c in self.contacts.values()
            if email is None or (c.get("email") or "").lower() == email.strip().lower()
        ]
        page = found[start : start + self.page_size]
        following = start + self.page_size
        return JSONResponse(
            {
                "contacts": [_public(c) for c in page],
                "meta": {
                    "cursor": str(following) if following < len(found) else None,
                    "limit": self.page_size,
                },
            }
        )

    async def _get_contact(self, request: Request) -> Response:
        contact = self.contacts.get(request.path_params["contact_id"])
        if contact is None:
            return _error(404, "not_found", "Contact not found")
        return JSONResponse(_public(contact))

    async def _create_contact(self, request: Request) -> Response:
        body = await _json(request)
        if not isinstance(body, dict):
            return _error(400, "bad_request", "The body must be a JSON object")
        if not any(body.get(k) for k in ("email", "first_name", "last_name", "phone")):
            return _error(
                422,
                "validation_error",
                "Provide at least one of email, first_name, last_name or phone",
            )
        try:
            changes = self._validate(body)
        except _Invalid as exc:
            return _error(422, "validation_error", exc.message)
        contact_id = str(uuid.uuid4())
        contact = self._new_contact(contact_id, {})
        _apply(contact, changes)
        self.contacts[contact_id] = contact
        return JSONResponse({"id": contact_id}, status_code=201)

    async def _update_contact(self, request: Request) -> Response:
        contact = self.contacts.get(request.path_params["contact_id"])
        if contact is None:
            return _error(404, "not_found", "Contact not found")
        body = await _json(request)
        if not isinstance(body, dict):
            return _error(400, "bad_request", "The body must be a JSON object")
        try:
            changes = self._validate(body)
        except _Invalid as exc:
            return _error(422, "validation_error", exc.message)
        _apply(contact, changes)
        return Response(status_code=204)

    async def _update_batch(self, request: Request) -> Response:
        body = await _json(request)
        items = body.get("contacts") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(422, "validation_error", "contacts must be a list of 1 to 100 contacts")
        self.batch_sizes.append(len(items))
        if len(items) > MAX_BATCH:
            return _error(
                422, "validation_error", f"At most {MAX_BATCH} contacts can be updated at once"
            )
        planned: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for item in items:
            if not isinstance(item, dict):
                return _error(422, "validation_error", "Validation failed")
            contact = self.contacts.get(str(item.get("id")))
            try:
                if contact is None:
                    raise _Invalid("Validation failed")
                planned.append(
                    (contact, self._validate({k: v for k, v in item.items() if k != "id"}))
                )
            except _Invalid:
                # All or nothing, and (as in Tidio) no pointer to the contact at fault.
                return _error(422, "validation_error", "Validation failed")
        for contact, changes in planned:
            _apply(contact, changes)
        return Response(status_code=204)

    def _validate(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The changes a PATCH body asks for; _Invalid (nothing applied) otherwise."""
        unknown = set(body) - _PATCH_FIELDS
        if unknown:
            raise _Invalid(f"Unknown field {sorted(unknown)[0]}")
        changes: dict[str, Any] = {}
        for name in ("first_name", "last_name"):
            if name in body:
                changes[name] = _string(body[name], name, MAX_PERSON_NAME)
        if "phone" in body:
            phone = _string(body["phone"], "phone", MAX_PHONE)
            if phone is not None and not _PHONE.match(phone):
                raise _Invalid("phone is not a phone number")
            changes["phone"] = phone
        if "email" in body:
            email = _string(body["email"], "email", 254)
            if email is not None and not _EMAIL.match(email):
                raise _Invalid("email is not a valid email address")
            changes["email"] = email
        if "distinct_id" in body:
            value = body["distinct_id"]
            if isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            changes["distinct_id"] = _string(value, "distinct_id", MAX_DISTINCT_ID)
        if "email_consent" in body:
            if body["email_consent"] not in ("subscribed", "unsubscribed"):
                raise _Invalid("email_consent must be subscribed or unsubscribed")
            changes["email_consent"] = body["email_consent"]
        if "properties" in body:
            changes["properties"] = self._validate_properties(body["properties"])
        return changes

    def _validate_properties(self, props: object) -> dict[str, str | None]:
        if not isinstance(props, list):
            raise _Invalid("properties must be a list")
        values: dict[str, str | None] = {}
        for prop in props:
            if not isinstance(prop, dict) or not isinstance(prop.get("name"), str):
                raise _Invalid("each property needs a name and a value")
            name = prop["name"]
            if len(name) > MAX_NAME:
                raise _Invalid(f"property name longer than {MAX_NAME} characters")
            kind = self.properties.get(name)
            if kind is None:
                raise _Invalid(f"Contact property {name} does not exist")
            values[name] = _property_value(prop.get("value"), name, kind)
        return values

    def _new_contact(self, contact_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        contact: dict[str, Any] = {
            "id": contact_id,
            "distinct_id": None,
            "first_name": None,
            "last_name": None,
            "email": None,
            "phone": None,
            "language": None,
            "country": None,
            "city": None,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "email_consent": "unsubscribed",
            "properties": [],
            "conversation_id": uuid.uuid4().hex,  # the fake's own: one chat per contact
        }
        for name, value in fields.items():
            if name == "properties":
                _apply(contact, {"properties": dict(value)})
            else:
                contact[name] = value
        return contact

    # -- the widget stand-in ---------------------------------------------------------------------

    async def _widget_script(self, request: Request) -> Response:
        script = request.path_params["script"]
        if script != f"{self.public_key}.js":
            return Response("not found", status_code=404)
        base = str(request.base_url).rstrip("/")
        return Response(
            widget_script(base, self.public_key),
            media_type="application/javascript",
            headers={"Cache-Control": "no-store", "Access-Control-Allow-Origin": "*"},
        )

    def _cors(self, response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type"
        return response

    async def _widget_visitor(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._cors(Response(status_code=204))
        if request.path_params["key"] != self.public_key:
            return self._cors(_error(404, "not_found", "Unknown project"))
        body = await _json(request)
        if not isinstance(body, dict) or not _KEY.match(str(body.get("visitor") or "")):
            return self._cors(_error(400, "bad_request", "visitor is required"))
        visitor = str(body["visitor"])
        given = body.get("identify")
        identify: dict[str, Any] = given if isinstance(given, dict) else {}
        raw = identify.get("distinct_id")
        distinct = str(raw)[:MAX_DISTINCT_ID] if raw not in (None, "") else None
        contact_id = self.visitors.get(visitor)
        topic = None
        if contact_id is None:
            known = self.contact_by_distinct_id(distinct) if distinct else None
            if known is not None:
                contact_id = known["id"]
            else:
                contact_id = self.add_contact(distinct_id=distinct)
                topic = "contact.created"
            self.visitors[visitor] = contact_id
        elif distinct and self.contacts[contact_id].get("distinct_id") != distinct:
            known = self.contact_by_distinct_id(distinct)
            if known is not None and known["id"] != contact_id:
                # The shopper chatted before on another device: Tidio merges the conversations.
                self.visitors[visitor] = contact_id = known["id"]
            else:
                self.contacts[contact_id]["distinct_id"] = distinct
                topic = "contact.updated"
        contact = self.contacts[contact_id]
        for name in ("email", "first_name", "last_name", "phone"):
            value = identify.get(name)
            if isinstance(value, str) and value and contact.get(name) != value:
                contact[name] = value
                topic = topic or "contact.updated"
        if topic is not None:
            self._send_webhook(topic, contact)
        return self._cors(
            JSONResponse({"contact_id": contact_id, "conversation_id": contact["conversation_id"]})
        )

    async def _widget_call(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            return self._cors(Response(status_code=204))
        body = await _json(request)
        if not isinstance(body, dict) or request.path_params["key"] != self.public_key:
            return self._cors(_error(400, "bad_request", "bad call"))
        contact_id = self.visitors.get(str(body.get("visitor")))
        self.widget_calls.append(
            {"visitor": body.get("visitor"), "method": body.get("method"), "args": body.get("args")}
        )
        if contact_id is not None and body.get("method") == "setContactProperties":
            props = body.get("args")
            props = props[0] if isinstance(props, list) and props else {}
            if isinstance(props, dict):
                # The widget keeps what is defined and valid, and drops the rest silently.
                values: dict[str, str | None] = {}
                for name, value in props.items():
                    kind = self.properties.get(str(name))
                    if kind is None:
                        continue
                    with contextlib.suppress(_Invalid):
                        values[str(name)] = _property_value(value, str(name), kind)
                _apply(self.contacts[contact_id], {"properties": values})
        return self._cors(JSONResponse({"ok": True}))

    def _send_webhook(self, topic: str, contact: Mapping[str, Any]) -> None:
        envelope = {
            "created_at": int(time.time()),
            "project_public_key": self.public_key,
            "topic": topic,
            "version": 1,
            "webhook_id": str(uuid.uuid4()),
            "content": {
                k: contact.get(k)
                for k in (
                    "id", "email", "phone", "first_name", "last_name", "distinct_id", "properties"
                )
            },
        }  # fmt: skip
        self.webhooks_sent.append(envelope)
        if not self.webhook_url or not self.webhook_secret:
            return
        body = json.dumps(envelope, separators=(",", ":")).encode()
        t = str(int(time.time()))
        signature = hmac.new(
            self.webhook_secret.encode(), body + b"_" + t.encode(), hashlib.sha256
        ).hexdigest()

        async def deliver() -> None:
            async with httpx.AsyncClient(timeout=4.0) as client:
                with contextlib.suppress(httpx.HTTPError):
                    await client.post(
                        str(self.webhook_url),
                        content=body,
                        headers={
                            "content-type": "application/json",
                            "user-agent": "Tidio Webhook",
                            "x-tidio-signature": f"t={t},s={signature}",
                        },
                    )

        task = asyncio.ensure_future(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _agent(self, request: Request) -> Response:
        """The simulated Tidio agent view: contacts, their properties, links clickable."""
        rows = []
        for contact in reversed(list(self.contacts.values())):
            props = "".join(
                f"<tr><th>{html.escape(p['name'])}</th><td>{_cell(p['value'])}</td></tr>"
                for p in contact["properties"]
            )
            title = html.escape(
                contact.get("email") or contact.get("distinct_id") or "Anonymous visitor"
            )
            rows.append(
                f'<section class="contact" data-contact="{html.escape(contact["id"])}">'
                f"<h2>{title}</h2><p>distinct_id: <code>"
                f"{html.escape(str(contact.get('distinct_id') or '—'))}</code>"
                f" · chat <code>{contact['conversation_id'][:8]}</code></p>"
                f"<table>{props or '<tr><td>no properties yet</td></tr>'}</table></section>"
            )
        page = (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<title>Tidio (simulated) — contacts</title><style>body{font:14px system-ui;"
            "margin:1.5rem;max-width:56rem}section{border:1px solid #ccd;border-radius:8px;"
            "padding:.5rem 1rem;margin:.75rem 0}th{text-align:left;padding-right:1rem;"
            "font-weight:500;color:#445}</style></head><body>"
            "<h1>Tidio (simulated agent view)</h1><p>Contacts as a Tidio agent sees them: the "
            "properties the storefront snippet and the backend set. Reload to refresh.</p>"
            + ("".join(rows) or "<p>No contacts yet: open the storefront and accept cookies.</p>")
            + "</body></html>"
        )
        return HTMLResponse(page, headers={"Cache-Control": "no-store"})

    async def _agent_contacts(self, request: Request) -> Response:
        return JSONResponse({"contacts": [_public(c) for c in self.contacts.values()]})


def _is_api(path: str) -> bool:
    return path.startswith(("/contacts", "/contact-properties"))


def _cell(value: object) -> str:
    text = html.escape(str(value))
    if isinstance(value, str) and _URL.match(value):
        return f'<a href="{text}" target="_blank" rel="noopener noreferrer">{text}</a>'
    return text


def _public(contact: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in contact.items() if k != "conversation_id"}


def _string(value: object, name: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{name} must be a string")
    if len(value) > limit:
        raise _Invalid(f"{name} is longer than {limit} characters")
    return value


def _property_value(value: object, name: str, kind: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid(f"Contact property {name} has a value of the wrong type")
    text = str(value)
    if len(text) > MAX_VALUE:
        raise _Invalid(f"Contact property {name} is longer than {MAX_VALUE} characters")
    checks = {"number": _NUMBER, "email": _EMAIL, "url": _URL, "phone": _PHONE}
    pattern = checks.get(kind)
    if pattern is not None and not pattern.match(text):
        raise _Invalid(f"Contact property {name} must be of type {kind}")
    return text


def _apply(contact: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for name, value in changes.items():
        if name != "properties":
            contact[name] = value
            continue
        current = {p["name"]: p["value"] for p in contact["properties"]}
        for prop, prop_value in value.items():
            if prop_value is None:
                current.pop(prop, None)
            else:
                current[prop] = prop_value
        contact["properties"] = [{"name": n, "value": v} for n, v in current.items()]


async def _json(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def widget_script(base: str, public_key: str) -> str:
    """The widget stand-in served as `<public_key>.js` (see the module docstring)."""
    return _WIDGET_JS.replace("__BASE__", json.dumps(base)).replace(
        "__KEY__", json.dumps(public_key)
    )


_WIDGET_JS = """/* Tidio widget stand-in (commerce-context tests and demo; not Tidio's code). */
(function () {
  "use strict";
  var base = __BASE__, key = __KEY__;
  var rec = window.__tidioFake = window.__tidioFake || {loads: 0, calls: [], identify: null};
  rec.loads += 1;
  rec.identify = document.tidioIdentify ? JSON.parse(JSON.stringify(document.tidioIdentify)) : null;
  var visitor = null;
  try { visitor = window.localStorage.getItem("tidio_fake_visitor"); } catch (e) {}
  if (!visitor) {
    visitor = "v" + Math.random().toString(36).slice(2) + Date.now().toString(36);
    try { window.localStorage.setItem("tidio_fake_visitor", visitor); } catch (e) {}
  }
  rec.visitor = visitor;
  function post(path, body) {
    return fetch(base + "/widget/" + key + path, {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)
    }).then(function (r) { return r.json(); });
  }
  var listeners = {}, ready = false, queue = [];
  function call(method, args) {
    var copy = JSON.parse(JSON.stringify(args));
    rec.calls.push({method: method, args: copy});
    var sent = post("/calls", {visitor: visitor, method: method, args: copy});
    rec.pending = (rec.pending || 0) + 1;
    sent.then(function () { rec.pending -= 1; rec.delivered = (rec.delivered || 0) + 1; },
              function () { rec.pending -= 1; });
    return sent;
  }
  function recorder(method) {
    return function () {
      var args = Array.prototype.slice.call(arguments);
      var cb = typeof args[args.length - 1] === "function" ? args.pop() : null;
      var run = function () { call(method, args).then(function () { if (cb) cb(); }); };
      if (ready) run(); else queue.push(run);
    };
  }
  var api = {
    on: function (name, cb) {
      (listeners[name] = listeners[name] || []).push(cb);
      if (name === "ready" && ready) cb();
    },
    trigger: function (name) { document.dispatchEvent(new Event("tidioChat-" + name)); }
  };
  ["setContactProperties", "track", "setVisitorData", "addVisitorTags", "setVisitorCurrency",
   "open", "close", "show", "hide", "display", "messageFromVisitor", "messageFromOperator"
  ].forEach(function (m) { api[m] = recorder(m); });
  window.tidioChatApi = api;
  post("/visitors", {visitor: visitor, identify: rec.identify}).then(function (answer) {
    rec.contact = answer.contact_id;
    rec.conversation = answer.conversation_id;
    ready = true;
    rec.ready = true;
    queue.splice(0).forEach(function (run) { run(); });
    (listeners.ready || []).forEach(function (cb) { cb(); });
    document.dispatchEvent(new Event("tidioChat-ready"));
  });
})();
"""


@contextlib.asynccontextmanager
async def serve_fake_tidio(fake: FakeTidio | None = None) -> AsyncIterator[tuple[FakeTidio, str]]:
    """Serve a fake project on a free loopback port; yields it and its base URL."""
    from .harness import serve

    fake = fake or FakeTidio()
    async with serve(fake) as url:
        try:
            yield fake, url
        finally:
            await fake.idle()
