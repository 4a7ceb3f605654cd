"""The local stand-in for commercetools, shared by the test suite and `make run`.

`running()` starts the third-party emulator (Node), serves the GraphQL bridge in front of it on
a free loopback port (so the backend talks to one API host, GraphQL included, exactly as it
would to commercetools), seeds the demo project, and tears all of it down on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from ..demo import Demo, DemoZendesk
from ..settings import Settings, load_settings
from .bridge import IssuedTokens, create_bridge_app
from .messages import MessageLog
from .process import DEFAULT_PROJECT_KEY, EmulatorProcess
from .seed import DemoData, seed_demo_project

__all__ = ["Harness", "build_demo", "demo_settings", "demo_tickets", "running"]

# Obviously fake: the emulator accepts any client credentials.
DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret-not-real"  # noqa: S105


@dataclass(frozen=True)
class Harness:
    api_url: str  # the bridge: REST proxied to the emulator, GraphQL executed locally
    emulator_url: str
    project_key: str
    demo: DemoData
    messages: MessageLog  # the bridge's Messages API log (our harness extension)
    tokens: IssuedTokens | None = None  # the bridge's issued tokens (introspection)

    @property
    def auth_url(self) -> str:
        return self.api_url

    @property
    def demo_emails(self) -> tuple[str, ...]:
        emails = [c.email for c in self.demo.customers.values()] + [self.demo.guest_email]
        return tuple(dict.fromkeys(emails))


@contextlib.asynccontextmanager
async def running(
    project_key: str = DEFAULT_PROJECT_KEY, *, seed: bool = True
) -> AsyncIterator[Harness]:
    emulator = await asyncio.to_thread(EmulatorProcess(project_key).start)
    try:
        bridge = create_bridge_app(emulator.url)
        async with serve(bridge) as api_url:
            async with httpx.AsyncClient(timeout=30) as http:
                demo = (
                    await seed_demo_project(
                        http, api_url=api_url, auth_url=api_url, project_key=project_key
                    )
                    if seed
                    else None
                )
            messages = bridge.state.messages.project(project_key)
            tokens = bridge.state.tokens
            yield Harness(api_url, emulator.url, project_key, demo, messages, tokens)  # type: ignore[arg-type]
    finally:
        await asyncio.to_thread(emulator.stop)


@contextlib.asynccontextmanager
async def serve(app: object, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free port in this event loop; yields its URL."""
    # IPPROTO_TCP explicitly: asyncio then sets TCP_NODELAY (with proto 0 it does not, and
    # Nagle's algorithm adds ~40 ms to every keep-alive request).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()  # surfaces the start-up error
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


DEMO_ORDER_FIELD_ID = 360000001


def demo_settings(
    harness: Harness, zendesk: DemoZendesk | None = None, **overrides: object
) -> Settings:
    from importlib.resources import files

    values: dict[str, object] = {
        "ct_project_key": harness.project_key,
        "ct_client_id": DEMO_CLIENT_ID,
        "ct_client_secret": DEMO_CLIENT_SECRET,
        "ct_api_url": harness.api_url,
        "ct_auth_url": harness.auth_url,
        "config_file": str(files("commerce_context") / "demo.toml"),
        # The job database of this run only: test sessions and demos never share queued jobs.
        "state_path": Path(tempfile.gettempdir())
        / f"commerce-context-{harness.project_key}-{os.getpid()}.sqlite3",
        # The admin page (jobs, dead jobs, audit trail) of this run; `demo` prints it.
        "admin_token": secrets.token_urlsafe(32),
    }
    if zendesk is not None:
        values.update(
            zendesk.settings(),
            zendesk_order_field_id=DEMO_ORDER_FIELD_ID,
            # The simulated ticket page (the demo itself) and loopback test parents frame it.
            zendesk_frame_ancestors=("'self'", "http://127.0.0.1:*", "http://localhost:*"),
        )
    values.update(overrides)
    return load_settings(_env_file=None, **values)


def demo_tickets(data: DemoData) -> tuple[dict[str, Any], ...]:
    """Zendesk tickets for the simulated ticket page, one per resolution path."""
    anna = data.customers["anna-schmidt"]
    james = data.customers["james-taylor"]

    def requester(name: str, email: str | None, external_id: str | None = None) -> dict[str, Any]:
        identities = [{"type": "email", "value": email}] if email else []
        return {"name": name, "email": email, "externalId": external_id, "identities": identities}

    brands = {
        "berlin": (1001, "Shop Berlin"),
        "london": (1002, "Shop London"),
        "newyork": (1003, "Shop New York"),
    }

    def brand(store: str) -> dict[str, Any]:
        return {"id": brands[store][0], "name": brands[store][1]}

    return (
        {
            "id": 1,
            "subject": "Where is my order?",
            "brand": brand("berlin"),
            "order_number": None,
            "requester": requester("Anna Schmidt", anna.email),
        },
        {
            "id": 2,
            "subject": "Was I charged twice?",
            "brand": brand("london"),
            "order_number": None,
            "requester": requester("Alex Morgan", data.shared_email),
        },
        {
            "id": 3,
            "subject": "Can you cancel this?",
            "brand": brand("newyork"),
            "order_number": None,
            "requester": requester("Sam Lee", data.guest_email),
        },
        {
            "id": 4,
            "subject": "Parcel stuck at the hub",
            "brand": brand("berlin"),
            "order_number": "DE-1003",
            "requester": requester("Alex Morgan", data.shared_email),
        },
        {
            "id": 5,
            "subject": "Change my size please",
            "brand": brand("london"),
            "order_number": None,
            "requester": requester("James Taylor", None, james.id),
        },
        {
            "id": 6,
            "subject": "Question about a gift card",
            "brand": brand("berlin"),
            "order_number": None,
            "requester": requester("Pat Doe", "pat.doe@example.net"),
        },
    )


def build_demo(harness: Harness, zendesk: DemoZendesk) -> Demo:
    return Demo(harness.demo_emails, zendesk, demo_tickets(harness.demo), DEMO_ORDER_FIELD_ID)
