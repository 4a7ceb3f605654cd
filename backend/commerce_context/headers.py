"""Security headers on every response (pure ASGI middleware).

`X-Content-Type-Options: nosniff` everywhere, and a Content-Security-Policy on every response
that does not set its own: our own scripts and styles only, calls to ourselves only, framed
only by the Zendesk account (and `CC_ZENDESK_FRAME_ANCESTORS`). Error pages and panels get the
same policy as the sidebar page. The demo's simulated ticket page (`/demo/…`, mounted only in
demo mode) has inline script and style and keeps without one.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "content_security_policy"]

EXEMPT_PREFIXES = ("/demo/",)


def content_security_policy(frame_ancestors: Sequence[str]) -> str:
    return "; ".join(
        (
            "default-src 'self'",
            "img-src 'self' data:",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors " + (" ".join(frame_ancestors) or "'none'"),
        )
    )


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, frame_ancestors: Sequence[str]) -> None:
        self.app = app
        self.csp = content_security_policy(frame_ancestors)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        exempt = scope["path"].startswith(EXEMPT_PREFIXES)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if not exempt:
                    headers.setdefault("Content-Security-Policy", self.csp)
            await send(message)

        await self.app(scope, receive, with_headers)
