"""The upstream as the benchmarks see it: injected latency, and requests and bytes counted.

`LatencyTransport` is an httpx transport handed to the app through `create_app(http=...)` (the
same seam the tests use; nothing is monkeypatched). It sleeps `delay` seconds before forwarding
each request, like a commercetools region 50 ms away, and counts what crosses the HTTP layer:
request line + headers + body out, status line + headers + body in (the body as it arrives on the
wire, before any content decoding). OAuth token requests are counted apart from API requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass

import httpx

__all__ = ["LatencyTransport", "Traffic"]


@dataclass
class Traffic:
    api_requests: int = 0
    api_bytes_out: int = 0
    api_bytes_in: int = 0
    oauth_requests: int = 0
    oauth_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def minus(self, other: Traffic) -> Traffic:
        return Traffic(*(a - b for a, b in zip(self.tuple(), other.tuple(), strict=True)))

    def tuple(self) -> tuple[int, int, int, int, int]:
        return (
            self.api_requests,
            self.api_bytes_out,
            self.api_bytes_in,
            self.oauth_requests,
            self.oauth_bytes,
        )

    def copy(self) -> Traffic:
        return Traffic(*self.tuple())


def _head_size(first_line: str, headers: httpx.Headers) -> int:
    return len(first_line) + 2 + sum(len(k) + 2 + len(v) + 2 for k, v in headers.raw) + 2


class _CountingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, traffic: Traffic, oauth: bool) -> None:
        self._inner = inner
        self._traffic = traffic
        self._oauth = oauth

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            if self._oauth:
                self._traffic.oauth_bytes += len(chunk)
            else:
                self._traffic.api_bytes_in += len(chunk)
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class LatencyTransport(httpx.AsyncBaseTransport):
    def __init__(self, delay: float, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.delay = delay
        self.traffic = Traffic()
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        body = await request.aread()
        target = request.url.raw_path.decode()
        out = _head_size(f"{request.method} {target} HTTP/1.1", request.headers) + len(body)
        oauth = request.url.path.endswith("/oauth/token")
        response = await self._inner.handle_async_request(request)
        reason = response.extensions.get("reason_phrase", b"")
        status_line = f"HTTP/1.1 {response.status_code} {reason.decode(errors='replace')}"
        head_in = _head_size(status_line, response.headers)
        if oauth:
            self.traffic.oauth_requests += 1
            self.traffic.oauth_bytes += out + head_in
        else:
            self.traffic.api_requests += 1
            self.traffic.api_bytes_out += out
            self.traffic.api_bytes_in += head_in
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_CountingStream(response.stream, self.traffic, oauth),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
