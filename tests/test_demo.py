"""The embedded demo: the page in-process against the harness, and `commerce-context demo` as a
real process the way `make run` starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from bs4 import BeautifulSoup

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, build_demo
from commerce_context.settings import Settings
from tests.asgi import app_client

pytestmark = pytest.mark.emulator


async def test_demo_page_shows_live_data(harness: Harness, ct_settings: Settings) -> None:
    app = create_app(ct_settings, demo=build_demo(harness, DemoZendesk.generate()))
    async with app_client(app) as client:
        response = await client.get("/")
        ready = await client.get("/readyz")
    assert response.status_code == 200
    page = BeautifulSoup(response.text, "html.parser")
    stores = {li["data-store"] for li in page.select("li[data-store]")}
    assert stores >= {"berlin", "london", "newyork"}
    shoppers = page.select("section.shopper")
    assert len(shoppers) == len(harness.demo_emails)
    assert page.select('a[href^="/demo/zendesk?ticket="]')
    assert any("DE-1004" in s.text for s in shoppers)  # a guest order is listed
    assert ready.status_code == 200


async def test_demo_ticket_page_presents_the_agent_in_the_chosen_language(
    harness: Harness, ct_settings: Settings
) -> None:
    app = create_app(ct_settings, demo=build_demo(harness, DemoZendesk.generate()))
    async with app_client(app) as client:
        index = BeautifulSoup((await client.get("/")).text, "html.parser")
        link = index.select_one('a[data-testid="german-agent"]')
        assert link is not None and str(link["href"]).endswith("&locale=de")
        german = await client.get(str(link["href"]))
        english = await client.get("/demo/zendesk?ticket=1")
        regional = await client.get("/demo/zendesk?ticket=4&locale=de_CH")
        bad = [
            await client.get("/demo/zendesk", params={"ticket": "1", "locale": value})
            for value in ("<script>", "", "d", "de-" + "x" * 40)
        ]

    def agent(response: httpx.Response) -> dict[str, object]:
        assert response.status_code == 200, response.text
        page = BeautifulSoup(response.text, "html.parser")
        data = page.select_one("#agent-data")
        assert data is not None
        # the ticket list keeps the agent's language from ticket to ticket
        locale = response.url.params.get("locale")
        links = page.select("nav > a[href^='?ticket=']")
        assert len(links) >= 6
        for a in links:
            assert str(a["href"]).endswith(f"&locale={locale}") == bool(locale), a
        parsed: dict[str, object] = json.loads(data.get_text())
        return parsed

    assert agent(german)["locale"] == "de"
    assert agent(english)["locale"] == "en-US"
    assert agent(regional)["locale"] == "de_CH"
    assert agent(german)["name"] == agent(english)["name"] == "Agent Smith"
    for response in bad:
        assert response.status_code == 400, response.text
        assert "locale must be a language tag" in response.text
        assert "Traceback" not in response.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_command_serves_health_and_demo_page_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CC_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "commerce_context", "demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.stdout.read() if process.stdout else ""
                time.sleep(0.2)
        assert health is not None and health.json() == {"status": "ok"}
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200 and "commerce-context demo" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        # The demo shop's own JSON endpoint answers bad bodies with 400 too, never a 500.
        for body in (b"{not json", b"[" * 2000 + b"]" * 2000, b'{"sku": "\\ud800"}'):
            bad = httpx.post(
                f"http://127.0.0.1:{port}/demo/shop/cart",
                content=body,
                headers={"Content-Type": "application/json"},
                timeout=10,
            )
            assert bad.status_code == 400, (body[:20], bad.status_code)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    assert process.returncode in (0, 130), output
    assert f"open http://127.0.0.1:{port}/" in output
