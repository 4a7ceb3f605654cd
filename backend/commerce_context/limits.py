"""Request bodies read with a size limit: a 4xx for oversized or malformed input, never a 500
and never an unbounded buffer."""

from __future__ import annotations

from starlette.requests import Request

from .exceptions import BadRequest

__all__ = ["read_body"]


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise BadRequest("The Content-Length header is not a number.")
        if int(declared) > limit:
            raise BadRequest(f"The request is too large; at most {limit} bytes are accepted.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BadRequest(f"The request is too large; at most {limit} bytes are accepted.")
    return bytes(body)
