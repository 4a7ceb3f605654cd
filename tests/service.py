"""The whole service (create_app, lifespan, in-process worker) against the emulator, with a
signed-in sidebar session: for the webhook and action endpoint tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from bs4 import BeautifulSoup

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness
from commerce_context.settings import Settings
from tests.asgi import app_client
from tests.orders import Api
from tests.writepath import write_settings


@dataclass
class Service:
    client: httpx.AsyncClient
    settings: Settings
    zendesk: DemoZendesk
    api: Api
    session: str = ""

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.session}"}


def service_settings(
    harness: Harness, tmp_path: Path, zendesk: DemoZendesk, **overrides: Any
) -> Settings:
    return write_settings(harness, tmp_path, **zendesk.settings(),
                          zendesk_order_field_id=360000001, **overrides)  # fmt: skip


@contextlib.asynccontextmanager
async def service(
    settings: Settings, harness: Harness, zendesk: DemoZendesk
) -> AsyncIterator[Service]:
    async with (
        httpx.AsyncClient() as http,
        httpx.AsyncClient(timeout=10) as plain,
        app_client(create_app(settings, http=http), raise_errors=True) as client,
    ):
        page = await client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=abc-123",
            data={"token": zendesk.token(sub="9001")},
        )
        app = BeautifulSoup(page.text, "html.parser").select_one("#app")
        assert app is not None, page.text
        yield Service(client, settings, zendesk, Api(plain, harness), str(app["data-session"]))
