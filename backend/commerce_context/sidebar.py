"""The Zendesk ticket sidebar: the signed-URL entry page and the panels API.

Flow: Zendesk POSTs the form field `token` (an RS256 JWT) to `/zendesk/sidebar?origin=…&app_guid=…`.
We verify it, issue our own short-lived session bound to the account and installation, and
render the page, which keeps `origin` and `app_guid` in its URL so `ZAFClient.init()` works.
The page then asks `/zendesk/panels` for HTML panels with `Authorization: Bearer <session>`,
or, in the bundled-assets mode, with a ZAF secure-request JWT (`Bearer {{jwt.token}}`).
"""

from __future__ import annotations

import logging
from functools import lru_cache

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from . import correlation, tokens
from .audit import Audit
from .commercetools import budget
from .exceptions import BadRequest, NotFound, Unauthorized
from .limits import parse_json, read_body
from .panels import Rendered, panel_context, ui_language
from .resolution import Resolution, TicketContext, resolve
from .settings import Settings

__all__ = ["panels", "sidebar_get", "sidebar_post"]

logger = logging.getLogger(__name__)

MAX_FORM_BYTES = 16 * 1024
MAX_JSON_BYTES = 16 * 1024
# Zendesk Garden, vendored from npm (scripts/build_assets.mjs): looks native inside Zendesk.
GARDEN_CSS = (
    "css-bedrock-10.0.1.css",
    "css-variables-7.0.0.css",
    "css-buttons-9.0.1.css",
    "css-tables-4.0.19.css",
)
NO_STORE = {"Cache-Control": "no-store"}


def _settings(request: Request) -> Settings:
    settings: Settings = request.state.settings
    if not settings.zendesk_enabled:
        raise NotFound("The Zendesk sidebar is not configured on this instance (CC_ZENDESK_*).")
    return settings


async def sidebar_get(request: Request) -> Response:
    _settings(request)
    raise Unauthorized(
        "Open this app from a Zendesk ticket: Zendesk signs the request that loads it."
    )


async def sidebar_post(request: Request) -> Response:
    settings = _settings(request)
    declared = request.headers.get("content-length")
    if declared is not None and not declared.isdigit():
        raise BadRequest("The Content-Length header is not a number.")
    # Its size (MAX_FORM_BYTES), declared or chunked, and its pace: limits.BodyLimit.
    form = await request.form(max_files=0, max_fields=20)
    token = form.get("token")
    if not isinstance(token, str) or not token:
        raise Unauthorized("Zendesk did not send a signed token. Is signedUrls enabled?")
    identity = await tokens.verify_signed_url_token(
        token, settings=settings, keys=request.state.zendesk_keys
    )
    await tokens.accept_once(token, identity, store=request.state.store, settings=settings)
    session = tokens.issue_session(identity, settings=settings)
    logger.info(
        "sidebar opened: account %s installation %s user %s",
        identity.subdomain,
        identity.installation_id,
        identity.user_id or "-",
    )
    context = {
        "session": session,
        "order_field_id": settings.zendesk_order_field_id,
        "garden_css": GARDEN_CSS,
    }
    headers = {**NO_STORE, "Content-Security-Policy": _csp(settings)}
    response: Response = request.state.templates.TemplateResponse(
        request, "sidebar.html", context, headers=headers
    )
    return response


def _csp(settings: Settings) -> str:
    # Only our own scripts and styles, only calls to ourselves, framed only by Zendesk.
    return "; ".join(
        (
            "default-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors " + " ".join(settings.frame_ancestors),
        )
    )


async def panels(request: Request) -> Response:
    settings = _settings(request)
    agent = authenticate(request, settings)
    await request.state.quota.charge(agent)  # 429 past CC_LOOKUPS_PER_SESSION / _AGENT
    context = _ticket_context(await _json_body(request))
    store = settings.mappings.store_for_brand(context.brand_id)
    # One budget for the whole view, retries and second requests included: past it, the
    # cache answers (marked "as of") or the panel says commercetools is not answering.
    with budget(settings.view_budget):
        resolution = await resolve(
            context,
            reader=request.state.reader,
            store=store,
            custom_fields=settings.mappings.order_custom_fields,
            stores_configured=bool(settings.mappings.stores),
        )
    _log_reveal(agent, context, resolution)
    _note_lookup(request.state.audit, agent, context, resolution)
    rendered: Rendered = request.state.rendered
    key = None
    if resolution.fingerprint and resolution.as_of is None:
        # What the page shows depends on the entries, the keys searched and the store; not on
        # the ticket, so another ticket of the same shopper reuses the render.
        searched = (context.emails, context.external_id, context.order_number, context.order_id)
        # An unmapped brand's number is in a note: then the brand is part of the key.
        brand = context.brand_id if store is None else None
        key = (resolution.fingerprint, searched, store, brand, ui_language(context.ui_locale))
        html = rendered.get(key)
        if html is not None:
            return HTMLResponse(html, headers=NO_STORE)
    html = request.state.templates.get_template("panels.html").render(
        panel_context(resolution, settings)
    )
    if key is not None:
        rendered.put(key, html)
    return HTMLResponse(html, headers=NO_STORE)


def _note_lookup(
    audit: Audit,
    agent: tokens.Session | tokens.ZendeskIdentity,
    context: TicketContext,
    resolution: Resolution,
) -> None:
    """The ticket-to-shopper association this view showed, for the audit trail (ids only)."""
    customer = resolution.customer
    order = resolution.order
    if resolution.empty:
        outcome = "nothing found"
    else:
        outcome = "shown as of cache" if resolution.as_of is not None else "shown"
    audit.note(
        action="lookup",
        source="sidebar",
        target="commercetools",
        outcome=outcome,
        correlation_id=correlation.current(),
        ticket_id=context.ticket_id,
        customer_id=customer.get("id") if customer else None,
        order_id=order.get("id") if order else None,
        order_number=order.get("orderNumber") if order else None,
        agent_id=agent.user_id,
        detail={
            "matched_by": resolution.matched_by,
            "reason": resolution.chosen_reason,
            "store": resolution.store,
            "orders": [o.get("orderNumber") or o.get("id") for o in resolution.orders],
            "revealed": bool(context.order_id),
        },
    )


def _log_reveal(
    agent: tokens.Session | tokens.ZendeskIdentity, context: TicketContext, resolution: Resolution
) -> None:
    """An agent chose to show an order of another store than the brand's: record who (ids only)."""
    order = resolution.order
    if not context.order_id or order is None or resolution.store is None:
        return
    order_store = (order.get("storeRef") or {}).get("key")
    if order_store and order_store != resolution.store:
        logger.info(
            "order revealed: agent %s ticket %s order %s store %s",
            agent.user_id or "-",
            context.ticket_id if context.ticket_id is not None else "-",
            order.get("orderNumber") or order.get("id"),
            order_store,
        )


def authenticate(request: Request, settings: Settings) -> tokens.Session | tokens.ZendeskIdentity:
    """Our session, or (bundled-assets mode) a ZAF secure-request JWT."""
    token = tokens.bearer(request.headers.get("authorization"))
    if token is None:
        raise Unauthorized("Missing session. Reload the app in Zendesk.")
    try:
        sessions: tokens.VerifiedSessions = request.state.sessions
        return sessions.verify(token, settings=settings)
    except Unauthorized as session_error:
        if settings.zendesk_shared_secret is None:
            raise
        try:
            return tokens.verify_secure_request_token(token, settings=settings)
        except Unauthorized:
            raise session_error from None


async def _json_body(request: Request) -> bytes:
    if "json" not in request.headers.get("content-type", ""):
        raise BadRequest("Send the ticket context as application/json.")
    return await read_body(request, MAX_JSON_BYTES)


def _ticket_context(body: bytes) -> TicketContext:
    # The sidebar sends the same few hundred bytes for every view of a ticket.
    return _parsed_context(body) if len(body) <= MEMO_BODY_BYTES else _parse_context(body)


def _parse_context(body: bytes) -> TicketContext:
    return TicketContext.parse(parse_json(body))


MEMO_BODY_BYTES = 2048
_parsed_context = lru_cache(maxsize=4096)(_parse_context)  # bad bodies raise: never kept
