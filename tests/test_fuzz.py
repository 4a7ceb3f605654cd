"""Property: no request body, however odd, gets a 5xx from the JSON and form endpoints.

Hypothesis draws the bodies (JSON of any shape with any text, lone UTF-16 surrogates included;
ticket contexts and commercetools events close to the real shapes; deep nesting; raw bytes)
with a fixed seed (`derandomize=True`) and a bounded number of examples, so every run sends the
same requests. The requests themselves are async and go to the service against the seeded
emulator, so Hypothesis only generates here (a synchronous collecting pass) and the test
sends them afterwards; a failure names the body that caused it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from commerce_context.app import create_app
from commerce_context.demo import DemoZendesk
from commerce_context.emulator.harness import Harness, demo_settings
from tests.asgi import app_client

pytestmark = pytest.mark.emulator

EXAMPLES = 120
SECRET = "events-secret-for-fuzz-tests-0123456789"

# Any text, lone surrogates (category Cs) included: json.dumps escapes them as \udXXX.
TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=25,
)


def near(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A valid value most of the time, anything at all otherwise."""
    return st.one_of(valid, valid, JSON)


EMAIL = st.sampled_from(["anna.schmidt@example.com", "nobody@example.net", "A@B.CO"]) | TEXT
CONTEXT = st.fixed_dictionaries(
    {},
    optional={
        "ticket_id": near(st.integers(min_value=0)),
        "emails": near(st.lists(EMAIL, max_size=4)),
        "external_id": near(TEXT),
        "order_number": near(st.sampled_from(["DE-1001", "UK-2003", "XX-1"]) | TEXT),
        "order_id": near(st.uuids().map(str)),
        "brand_id": near(st.sampled_from([1001, 1002, 1003]) | st.integers()),
        "ui_locale": near(st.sampled_from(["en", "de", "de-DE"]) | TEXT),
        "refresh": near(st.booleans()),
    },
)
RESOURCE = st.fixed_dictionaries(
    {"typeId": near(st.sampled_from(["order", "customer", "payment", "product"])), "id": TEXT}
)
MESSAGE = st.fixed_dictionaries(
    {
        "notificationType": near(st.sampled_from(["Message", "ResourceUpdated", "Weird"])),
        "id": near(st.uuids().map(str)),
        "type": near(st.sampled_from(["OrderCreated", "OrderStateChanged", "CustomerCreated"])),
        "resource": near(RESOURCE),
        "resourceVersion": near(st.integers()),
        "version": near(st.integers()),
    }
)
CLOUD_EVENT = st.fixed_dictionaries(
    {"specversion": near(st.just("1.0")), "id": TEXT, "data": near(MESSAGE)}
)
NESTED = st.integers(min_value=1, max_value=20_000).map(lambda n: "[" * n + "]" * n)


def as_body(value: Any) -> bytes:
    return value.encode() if isinstance(value, str) else json.dumps(value).encode()


JSON_BODIES = st.one_of(
    CONTEXT.map(as_body),
    JSON.map(as_body),
    NESTED.map(as_body),
    st.binary(max_size=200),
)
EVENT_BODIES = st.one_of(
    MESSAGE.map(as_body),
    st.lists(MESSAGE | CLOUD_EVENT, max_size=4).map(as_body),
    CLOUD_EVENT.map(as_body),
    JSON.map(as_body),
    NESTED.map(as_body),
    st.binary(max_size=200),
)
FORM_BODIES = st.one_of(
    TEXT.map(lambda t: b"token=" + t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=300),
    st.lists(st.tuples(TEXT, TEXT), max_size=30).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")
    ),
)


def drawn(strategy: st.SearchStrategy[bytes]) -> list[bytes]:
    """The examples Hypothesis draws from `strategy`: the same ones on every run."""
    bodies: list[bytes] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(body: bytes) -> None:
        bodies.append(body)

    collect()
    return bodies


class Service:
    def __init__(self, client: httpx.AsyncClient, session: str) -> None:
        self.client = client
        self.session = session


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def service(harness: Harness) -> AsyncIterator[Service]:
    zendesk = DemoZendesk.generate()
    config = demo_settings(
        harness,
        zendesk,
        events_secret=SECRET,
        ct_backoff_base=0.01,
        ct_backoff_max=0.1,
        # Every body reaches the resolution, not the lookup limit.
        lookups_per_session=10**6,
        lookups_per_agent=10**6,
    )
    # raise_errors=False: a 500 must show up as a status the property catches.
    async with app_client(create_app(config)) as client:
        page = await client.post(
            "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=fuzz",
            data={"token": zendesk.token()},
        )
        app = BeautifulSoup(page.text, "html.parser").select_one("#app")
        assert app is not None
        yield Service(client, str(app["data-session"]))


Sender = Callable[[Service, bytes], Any]


async def panels(service: Service, body: bytes) -> httpx.Response:
    return await service.client.post(
        "/zendesk/panels",
        content=body,
        headers={"Authorization": f"Bearer {service.session}", "Content-Type": "application/json"},
    )


async def events(service: Service, body: bytes) -> httpx.Response:
    return await service.client.post(
        "/commercetools/events",
        content=body,
        headers={"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"},
    )


async def sidebar_form(service: Service, body: bytes) -> httpx.Response:
    return await service.client.post(
        "/zendesk/sidebar?origin=https://demo.zendesk.com&app_guid=fuzz",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )


@pytest.mark.parametrize(
    ("send", "strategy", "some_accepted"),
    [
        (panels, JSON_BODIES, True),
        (events, EVENT_BODIES, True),
        (sidebar_form, FORM_BODIES, False),  # no drawn token is signed by Zendesk
    ],
    ids=["panels", "events", "sidebar-form"],
)
async def test_no_body_gets_a_5xx(
    service: Service, send: Sender, strategy: st.SearchStrategy[bytes], some_accepted: bool
) -> None:
    bodies = drawn(strategy)
    assert len(bodies) == EXAMPLES
    statuses: set[int] = set()
    for body in bodies:
        response = await send(service, body)
        assert response.status_code < 500, (body[:300], response.status_code, response.text[:300])
        statuses.add(response.status_code)
    # The bodies reach past the parser: accepted ones are among them where any can be.
    assert any(s < 300 for s in statuses) == some_accepted
    assert any(400 <= s < 500 for s in statuses)
