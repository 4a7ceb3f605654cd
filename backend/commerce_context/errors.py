"""One error shape for every response that is not a success.

JSON: `{"error": {"status": 401, "code": "unauthorized", "message": "...",
"correlation_id": "..."}}`.
Browsers (Accept: text/html) get the same facts rendered by `error.html`. Unexpected exceptions
answer 500 with a generic message and no traceback; Starlette's ServerErrorMiddleware re-raises
them afterwards so the server logs the traceback where operators look for it.
"""

from __future__ import annotations

import http
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.templating import Jinja2Templates

from . import correlation
from .exceptions import CommerceContextError

__all__ = ["error_body", "handlers"]

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


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "status": status,
            "code": code,
            "message": message,
            "correlation_id": correlation.current(),
        }
    }


def handlers(templates: Jinja2Templates) -> dict[Any, Any]:
    def render(request: Request, status: int, code: str, message: str) -> Response:
        headers = {"Cache-Control": "no-store"}
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
        return render(request, exc.status_code, exc.code, exc.message)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        status = exc.status_code
        phrase = http.HTTPStatus(status).phrase
        message = exc.detail if exc.detail and exc.detail != phrase else phrase
        return render(request, status, _CODES.get(status, "http_error"), message)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        # Runs outside the other middleware; the traceback is logged by the server when
        # ServerErrorMiddleware re-raises, so the response carries no detail.
        body = error_body(500, "internal_error", "Something went wrong on our side.")
        headers = {"Cache-Control": "no-store", "X-Correlation-ID": body["error"]["correlation_id"]}
        if "text/html" in request.headers.get("accept", ""):
            page = templates.get_template("error.html").render(error=body["error"])
            return HTMLResponse(page, status_code=500, headers=headers)
        return JSONResponse(body, status_code=500, headers=headers)

    return {
        CommerceContextError: on_project_error,
        HTTPException: on_http_error,
        500: on_unexpected,
    }
