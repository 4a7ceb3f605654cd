"""Correlation ids: one per unit of work, carried through logs, upstream calls, jobs and audit.

An incoming `X-Correlation-ID` (if well formed) is kept so a trace can start at the caller;
otherwise a new one is made. The id lives in a ContextVar, so code deep in the call stack
reads it without threading it through every signature.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HEADER", "CorrelationMiddleware", "current", "new", "use"]

HEADER = "X-Correlation-ID"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)


def new() -> str:
    return f"cc-{uuid.uuid4()}"


def current() -> str:
    """The current id, creating one for code that runs outside a request (CLI, jobs)."""
    value = _current.get()
    if value is None:
        value = new()
        _current.set(value)
    return value


def use(value: str | None) -> str:
    """Adopt `value` if it is a well-formed id, else a fresh one; returns the id in force."""
    chosen = value if value and _VALID.match(value) else new()
    _current.set(chosen)
    return chosen


class CorrelationMiddleware:
    """Pure ASGI middleware: sets the id for the request and echoes it on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", ()):
            if name == b"x-correlation-id":
                incoming = value.decode("latin-1")
                break
        token = _current.set(None)
        correlation_id = use(incoming)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-correlation-id", correlation_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


class CorrelationFilter(logging.Filter):
    """Adds `correlation_id` to every log record so formats can print it."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _current.get() or "-"
        return True
