"""One server under test, in its own process: `python benchmarks/server.py CONFIG_JSON`.

`kind` "sidebar" serves the real app (`create_app`) with its upstream client on a
`LatencyTransport`; "floor" serves the floor endpoint. Both get the same uvicorn configuration on
a loopback TCP socket. The process prints `{"port": N}` once it accepts connections and stops on
SIGTERM.

The sidebar is wrapped in a shim that answers `GET /_bench/traffic` (upstream requests and bytes,
requests in flight and the most seen at once) for the orchestrator; every other request goes to
the app untouched.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from collections import Counter
from typing import Any

import httpx
import uvicorn
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from common import tcp_socket
from floor import create_floor_app
from upstream import LatencyTransport


class Pauses:
    """Garbage-collector pauses in this process (gc.callbacks): the usual cause of tail spikes."""

    def __init__(self) -> None:
        self.started = 0.0
        self.count = [0, 0, 0]
        self.longest = [0.0, 0.0, 0.0]
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        generation = info["generation"]
        self.count[generation] += 1
        pause = time.perf_counter() - self.started
        self.longest[generation] = max(self.longest[generation], pause)

    def take(self) -> dict[str, Any]:
        """Counts and longest pause (ms) per generation since the last take."""
        out = {
            "gc_collections": list(self.count),
            "gc_longest_ms": [round(p * 1000, 2) for p in self.longest],
        }
        self.count, self.longest = [0, 0, 0], [0.0, 0.0, 0.0]
        return out


def heap_census() -> dict[str, Any]:
    """Objects the collector tracks (what a full collection walks) and one timed collection."""
    objects = gc.get_objects()
    # str(): a few types carry a descriptor, not a string, in __module__.
    kinds = Counter(f"{type(o).__module__!s}.{type(o).__qualname__!s}" for o in objects)
    del objects
    started = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - started
    # What a full collection would cost with everything alive now frozen (gc.freeze() after
    # start-up and warm-up moves those objects out of the collector's sight).
    gc.freeze()
    started = time.perf_counter()
    gc.collect()
    frozen = time.perf_counter() - started
    gc.unfreeze()
    return {
        "tracked": sum(kinds.values()),
        "top": kinds.most_common(5),
        "full_collection_ms": full * 1000,
        "frozen_collection_ms": frozen * 1000,
    }


class Shim:
    """Counts /zendesk/panels requests in flight; serves the upstream counters."""

    def __init__(self, app: ASGIApp, transport: LatencyTransport) -> None:
        self.app = app
        self.transport = transport
        self.pauses = Pauses()
        self.in_flight = 0
        self.max_in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/_bench/traffic":
            body = {**self.transport.traffic.as_dict(), "max_in_flight": self.max_in_flight}
            if scope["method"] == "POST":  # reset the high-water mark and the pauses
                self.max_in_flight = 0
                body.update(self.pauses.take())
            await JSONResponse(body)(scope, receive, send)
            return
        if scope["path"] == "/_bench/gc":
            await JSONResponse(heap_census())(scope, receive, send)
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


def build(config: dict[str, Any]) -> ASGIApp:
    if config["kind"] == "floor":
        floor = config["floor"]
        app = create_floor_app(
            floor["public_pem"], audience=floor["audience"], issuer=floor["issuer"]
        )
        return Shim(app, LatencyTransport(0.0))  # no upstream: only the GC pauses matter
    # Imported here so that the floor's process carries none of the product's modules.
    from commerce_context.app import create_app
    from common import settings_from

    settings = settings_from(config["settings"])
    transport = LatencyTransport(float(config["delay"]))
    # Like the lifespan's own client (app.py), on the injected transport.
    http = httpx.AsyncClient(
        transport=transport,
        timeout=settings.ct_timeout,
        headers={"User-Agent": "commerce-context/0.1"},
    )
    return Shim(create_app(settings, http=http), transport)


async def main(config: dict[str, Any]) -> None:
    sock = tcp_socket()
    server = uvicorn.Server(
        uvicorn.Config(build(config), log_level="warning", access_log=False, lifespan="on")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    await task


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as file:
        asyncio.run(main(json.load(file)))
