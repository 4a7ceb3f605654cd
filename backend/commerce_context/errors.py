"""One error shape for every response that is not a success.

JSON: `{"error": {"status": 401, "code": "unauthorized", "message": "...",
"correlation_id": "..."}}`.
Browsers (Accept: text/html) get the same facts rendered by `error.html`. Unexpected exceptions
answer 500 with a generic message and no traceback; Starlette's ServerErrorMiddleware re-raises
them afterwards so the server logs the traceback where operators look for it.

Every 5xx answer carries a fixed message per code (`PUBLIC_MESSAGES`) and the reference id
(`correlation_id`); what the upstream or our own code said goes to the log only, under the same
id. 503 and 429 answers carry `Retry-After` (whole seconds, at least 1).
"""

from __future__ import annotations

import http
import logging
import math
from collections.abc import Sequence
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.templating import Jinja2Templates

from . import correlation
from .exceptions import CommerceContextError
from .headers import content_security_policy

__all__ = ["PUBLIC_MESSAGES", "error_body", "handlers", "retry_after_header"]

logger = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
}
# What a 5xx says, by code: written by us, never by an upstream or an exception.
PUBLIC_MESSAGES = {
    "upstream_unavailable": "commercetools is not answering right now. Try again in a moment.",
    "cache_unavailable": "The cache is not answering right now. Try again in a moment.",
    "database_unavailable": "The job queue is busy right now. Try again in a moment.",
    "upstream_auth_error": (
        "This app could not sign in to commercetools. Ask your administrator to check the "
        "API client."
    ),
    "upstream_error": "commercetools answered with an error. Try again in a moment.",
    "upstream_rejected": "commercetools did not accept the request.",
}
GENERIC_MESSAGE = "Something went wrong on our side."
DEFAULT_RETRY_AFTER = 5.0


def retry_after_header(seconds: float | None) -> str:
    """Whole seconds, at least 1: "0" would invite a client to retry in a tight loop."""
    if seconds is None or not math.isfinite(seconds):
        seconds = DEFAULT_RETRY_AFTER
    return str(max(math.ceil(seconds), 1))


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "status": status,
            "code": code,
            "message": message,
            "correlation_id": correlation.current(),
        }
    }


def handlers(templates: Jinja2Templates, frame_ancestors: Sequence[str] = ()) -> dict[Any, Any]:
    # The 500 answer is sent outside the middleware stack: it carries the headers itself.
    security = {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": content_security_policy(frame_ancestors),
    }

    def render(
        request: Request,
        status: int,
        code: str,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> Response:
        headers = {"Cache-Control": "no-store", **(extra or {})}
        if "text/html" in request.headers.get("accept", ""):
            context = {"error": error_body(status, code, message)["error"]}
            return templates.TemplateResponse(
                request, "error.html", context, status_code=status, headers=headers
            )
        return JSONResponse(error_body(status, code, message), status_code=status, headers=headers)

    async def on_project_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, CommerceContextError)
        level = logging.WARNING if exc.status_code >= 500 else logging.INFO
        logger.log(
            level,
            "%s %s -> %d %s: %s",
            request.method,
            request.url.path,
            exc.status_code,
            exc.code,
            exc.message,
        )
        extra: dict[str, str] = {}
        message = exc.message
        if exc.status_code >= 500:
            message = PUBLIC_MESSAGES.get(exc.code, GENERIC_MESSAGE)
        if exc.status_code in (429, 503):
            extra["Retry-After"] = retry_after_header(getattr(exc, "retry_after", None))
        return render(request, exc.status_code, exc.code, message, extra)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        phrase = http.HTTPStatus(status).phrase
        message = exc.detail if exc.detail and exc.detail != phrase else phrase
        if status >= 500:
            message = phrase
        return render(request, status, _CODES.get(status, "http_error"), message)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Runs outside the other middleware; the traceback is logged by the server when
        # ServerErrorMiddleware re-raises, so the response carries no detail.
        body = error_body(500, "internal_error", GENERIC_MESSAGE)
        headers = {
            "Cache-Control": "no-store",
            "X-Correlation-ID": body["error"]["correlation_id"],
            **security,
        }
        if "text/html" in request.headers.get("accept", ""):
            # With the request: the page's stylesheet link needs `url_for`.
            return templates.TemplateResponse(
                request, "error.html", {"error": body["error"]}, status_code=500, headers=headers
            )
        return JSONResponse(body, status_code=500, headers=headers)

    return {
        CommerceContextError: on_project_error,
        HTTPException: on_http_error,
        500: on_unexpected,
    }
