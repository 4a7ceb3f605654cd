"""A fault-injecting HTTP proxy between our commercetools client and the emulator.

`FaultProxy(target, faults)` is an ASGI app (serve it with `emulator.harness.serve`, real HTTP
on loopback). Each request that `applies(method, path)` takes the next scripted fault:

* "429"   answer 429 with `Retry-After: <retry_after>` (nothing forwarded);
* "503"   answer 503 (nothing forwarded);
* "hang"  never answer (the client times out; nothing forwarded);
* "lost"  forward (the upstream applies it), then never answer: the response is lost;
* "ok"    forward.

Once the script is used up every request is forwarded. `log` records (method, path, fault).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import httpx

from commerce_context.emulator.harness import serve

Scope = dict[str, Any]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class FaultProxy:
    def __init__(
        self,
        target: str,
        faults: Iterable[str],
        *,
        applies: Callable[[str, str], bool] = lambda method, path: True,
        retry_after: str = "1",
    ) -> None:
        self.target = target.rstrip("/")
        self.faults = deque(faults)
        self.applies = applies
        self.retry_after = retry_after
        self.log: list[tuple[str, str, str]] = []
        self.closing = asyncio.Event()
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self._client = httpx.AsyncClient(timeout=30)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.closing.set()
                    if self._client is not None:
                        await self._client.aclose()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        fault = "ok"
        if self.faults and self.applies(method, path):
            fault = self.faults.popleft()
        self.log.append((method, path, fault))
        if fault == "429":
            headers = [(b"retry-after", self.retry_after.encode())]
            await _answer(send, 429, b'{"statusCode":429,"message":"Too Many Requests"}', headers)
            return
        if fault == "503":
            await _answer(send, 503, b'{"statusCode":503,"message":"Service Unavailable"}')
            return
        if fault == "hang":
            await self._hang()
            return
        response = await self._forward(scope, method, path, body)
        if fault == "lost":
            await self._hang()
            return
        headers = [
            (k.encode(), v.encode())
            for k, v in response.headers.items()
            if k.lower() not in HOP_BY_HOP | {"content-encoding"}
        ]
        await _answer(send, response.status_code, response.content, headers)

    async def _hang(self) -> None:
        # Long enough for any client timeout; cut short when the proxy shuts down.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.closing.wait(), timeout=60)

    async def _forward(self, scope: Scope, method: str, path: str, body: bytes) -> httpx.Response:
        assert self._client is not None
        headers = {
            k.decode(): v.decode()
            for k, v in scope["headers"]
            if k.decode().lower() not in HOP_BY_HOP
        }
        query = scope.get("query_string", b"").decode()
        url = self.target + path + (f"?{query}" if query else "")
        return await self._client.request(method, url, content=body, headers=headers)


async def _answer(
    send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [h for h in headers or [] if h[0].lower() != b"content-type"]
    headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(proxy: FaultProxy) -> AsyncIterator[str]:
    """Serve the proxy on loopback; hanging requests are released before the server stops."""
    async with serve(proxy) as url:
        try:
            yield url
        finally:
            proxy.closing.set()
