"""The local stand-in for commercetools, shared by the test suite and `make run`.

`running()` starts the third-party emulator (Node), serves the GraphQL bridge in front of it on
a free loopback port (so the backend talks to one API host, GraphQL included, exactly as it
would to commercetools), seeds the demo project, and tears all of it down on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import uvicorn

from ..settings import Settings, load_settings
from .bridge import create_bridge_app
from .process import DEFAULT_PROJECT_KEY, EmulatorProcess
from .seed import DemoData, seed_demo_project

__all__ = ["Harness", "demo_settings", "running"]

# Obviously fake: the emulator accepts any client credentials.
DEMO_CLIENT_ID = "demo-client"
DEMO_CLIENT_SECRET = "demo-secret-not-real"  # noqa: S105


@dataclass(frozen=True)
class Harness:
    api_url: str  # the bridge: REST proxied to the emulator, GraphQL executed locally
    emulator_url: str
    project_key: str
    demo: DemoData

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
        async with serve(create_bridge_app(emulator.url)) as api_url:
            async with httpx.AsyncClient(timeout=30) as http:
                demo = (
                    await seed_demo_project(
                        http, api_url=api_url, auth_url=api_url, project_key=project_key
                    )
                    if seed
                    else None
                )
            yield Harness(api_url, emulator.url, project_key, demo)  # type: ignore[arg-type]
    finally:
        await asyncio.to_thread(emulator.stop)


@contextlib.asynccontextmanager
async def serve(app: object, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free port in this event loop; yields its URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")  # type: ignore[arg-type]
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


def demo_settings(harness: Harness, **overrides: object) -> Settings:
    from importlib.resources import files

    values: dict[str, object] = {
        "ct_project_key": harness.project_key,
        "ct_client_id": DEMO_CLIENT_ID,
        "ct_client_secret": DEMO_CLIENT_SECRET,
        "ct_api_url": harness.api_url,
        "ct_auth_url": harness.auth_url,
        "config_file": str(files("commerce_context") / "demo.toml"),
    }
    values.update(overrides)
    return load_settings(_env_file=None, **values)
