"""Request bodies are bounded in size and in time, and JSON bodies parsed without surprises.

* `BodyLimit` (pure ASGI middleware, outermost but one) holds every request to a byte limit
  (per path, or `CC_MAX_BODY_BYTES`), declared or chunked, and to a deadline for each piece of
  the body (`CC_BODY_TIMEOUT`): a client that sends slowly or never finishes is answered 408
  rather than holding a connection and a worker open. The errors are raised from `receive`, so
  the route's reading of the body fails with `PayloadTooLarge` / `RequestTimeout` and the
  usual error shape answers.
* `read_body` reads a body with a route's own, tighter limit.
* `parse_json` turns any body into a value or a 400: invalid UTF-8, invalid JSON, nesting too
  deep for the parser (RecursionError) and lone UTF-16 surrogates (which no response or
  upstream request could encode) are all the caller's fault, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .exceptions import BadRequest, PayloadTooLarge, RequestTimeout

__all__ = ["BodyLimit", "parse_json", "read_body"]

# A JSON escape of a UTF-16 surrogate; raw surrogate bytes are invalid UTF-8 and fail to parse.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request is too large; at most {limit} bytes are accepted.")


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        timeout: float,
        paths: Mapping[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = min(self.paths.get(scope["path"], self.max_bytes), self.max_bytes)
        declared = _content_length(scope)
        received = 0
        done = False

        async def bounded() -> Message:
            nonlocal received, done
            if done:
                return await receive()  # the body is complete: waiting for a disconnect
            if declared is not None and declared > limit:
                raise _too_large(limit)
            try:
                # A timer on this task, not a new task per read (as wait_for makes in 3.11).
                async with asyncio.timeout(self.timeout):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"The request body did not arrive within {self.timeout:g} seconds."
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
                done = not message.get("more_body", False)
            else:
                done = True
            return message

        await self.app(scope, bounded, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None  # malformed: read_body says so
    return None


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("The Content-Length header is not a number.")
        if int(declared) > limit:
            raise _too_large(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def parse_json(body: bytes) -> Any:
    """The JSON value of `body`; BadRequest for anything a JSON endpoint cannot use."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("The request body is not valid JSON.") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply.") from None
    if not _SURROGATE_ESCAPE.search(body):
        return value  # surrogates can only come from \uD800 to \uDFFF escapes
    try:
        # Lone surrogates ("\ud800") parse, but nothing downstream can encode them.
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest("The request body holds text that is not valid Unicode.") from None
    except RecursionError:
        raise BadRequest("The request body is nested too deeply.") from None
    return value
