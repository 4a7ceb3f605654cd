"""What the fake SaaS emulators (Zendesk, Tidio) share: a queue of injected faults, and the
ASGI step that adds their rate-limit headers to every answer, early refusals included."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Fault", "Faults", "answer"]


@dataclass
class Fault:
    """What the next `count` requests suffer; each emulator documents the kinds it knows."""

    kind: str
    count: int = 1
    seconds: float = 1.0  # Retry-After for 429, delay for latency


class Faults:
    """Faults injected by tests, served in order to the next requests."""

    def __init__(self) -> None:
        self._queue: deque[Fault] = deque()

    def add(self, kind: str, count: int = 1, seconds: float = 1.0) -> None:
        self._queue.append(Fault(kind, count, seconds))

    def next(self) -> Fault | None:
        """The fault the current request suffers, if any (one use of it)."""
        if not self._queue:
            return None
        fault = self._queue[0]
        fault.count -= 1
        if fault.count <= 0:
            self._queue.popleft()
        return fault


async def answer(
    app: ASGIApp,
    early: Response | None,
    headers: dict[str, str],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Answer with `early` (a fault or a refusal) or else `app`, adding `headers` to either;
    a header `early` already sets wins."""
    if early is not None:
        for name, value in headers.items():
            early.headers.setdefault(name, value)
        await early(scope, receive, send)
        return

    async def with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            raw = list(message.get("headers", []))
            raw += [(k.encode(), v.encode()) for k, v in headers.items()]
            message = dict(message, headers=raw)
        await send(message)

    await app(scope, receive, with_headers)
