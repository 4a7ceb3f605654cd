"""Session fixtures: one emulator + GraphQL bridge + seeded project for the whole run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from commerce_context.commercetools import CommercetoolsClient
from commerce_context.emulator.harness import Harness, demo_settings, running
from commerce_context.settings import Settings

# Every log line the suite produces is checked as production would write it (tests/logcheck.py).
pytest_plugins = ("tests.logcheck",)


@pytest.fixture(scope="session", autouse=True)
def own_state_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Apps built by tests keep their job database (CC_STATE_PATH) in this run's temp dir, never
    in the working directory, where another test run's workers would share its jobs."""
    previous = os.environ.get("CC_STATE_PATH")
    os.environ["CC_STATE_PATH"] = str(tmp_path_factory.mktemp("state") / "state.sqlite3")
    yield
    if previous is None:
        os.environ.pop("CC_STATE_PATH", None)
    else:
        os.environ["CC_STATE_PATH"] = previous


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The developer's shell (or a .env in the cwd) must not change settings tests."""
    for name in list(os.environ):
        if name.startswith("CC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def harness() -> AsyncIterator[Harness]:
    async with running("test-project") as h:
        yield h


@pytest.fixture(scope="session")
def ct_settings(harness: Harness) -> Settings:
    return demo_settings(harness, ct_backoff_base=0.01, ct_backoff_max=0.1)


class Recorder:
    """Counts the requests an httpx client sends (and their sizes)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def __call__(self, request: httpx.Request) -> None:
        self.requests.append(request)

    def api_calls(self) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path != "/oauth/token"]


@pytest_asyncio.fixture(loop_scope="session")
async def recorder() -> Recorder:
    return Recorder()


@pytest_asyncio.fixture(loop_scope="session")
async def ct(ct_settings: Settings, recorder: Recorder) -> AsyncIterator[CommercetoolsClient]:
    async with httpx.AsyncClient(event_hooks={"request": [recorder]}) as http:
        yield CommercetoolsClient(ct_settings, http)


async def rest_get(harness: Harness, settings: Settings, path: str) -> dict[str, Any]:
    """A resource as the emulator holds it now, read through REST (for assertions that must
    follow what other tests, e.g. the storefront's browser test, changed in the shared
    project)."""
    async with httpx.AsyncClient() as http:
        token = await CommercetoolsClient(settings, http).access_token()
        response = await http.get(
            f"{harness.api_url}/{harness.project_key}{path}",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found
