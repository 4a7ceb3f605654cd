"""Property: no request body, however odd, gets a 5xx from any JSON or form endpoint (signed
ones signed with test keys, so that the bodies reach past the signature check).

Hypothesis draws the bodies (JSON of any shape with any text, lone UTF-16 surrogates included;
ticket contexts and commercetools events close to the real shapes; deep nesting; raw bytes)
with a fixed seed (`derandomize=True`) and a bounded number of examples, so every run sends the
same requests. The requests themselves are async and go to the service against the seeded
emulator, so Hypothesis only generates here (a synchronous collecting pass) and the test
sends them afterwards; a failure names the body that caused it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
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
from commerce_context.tidio import sign_webhook
from commerce_context.webhooks import expected_signature
from tests.asgi import app_client

pytestmark = pytest.mark.emulator

EXAMPLES = 120
SECRET = "events-secret-for-fuzz-tests-0123456789"
# Obviously fake keys of the signed endpoints, so that drawn bodies reach past the signatures.
ZENDESK_HOOK = "zendesk-webhook-secret-for-fuzz-tests"
TIDIO_HOOK = "tidio-webhook-secret-for-fuzz-tests-0123"
API_KEY = "storefront-api-key-for-fuzz-tests-0123456789"
LYRO = "lyro-token-for-fuzz-tests-0123456789abcdef"

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
        zendesk_webhook_secret=ZENDESK_HOOK,
        link_keys="fz:" + "f" * 40,
        tidio_identity_secret="identity-secret-for-fuzz-tests-0123456789",
        tidio_storefront_api_key=API_KEY,
        tidio_webhook_secrets=TIDIO_HOOK,
        tidio_lyro_token=LYRO,
        tidio_lyro_per_ip=100_000,
        tidio_lyro_per_visitor=1000,
        public_url="https://cc.example.com",
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


async def zendesk_webhook(service: Service, body: bytes) -> httpx.Response:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return await service.client.post(
        "/zendesk/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Invocation-Id": uuid.uuid4().hex,
            "X-Zendesk-Webhook-Signature-Timestamp": stamp,
            "X-Zendesk-Webhook-Signature": expected_signature(ZENDESK_HOOK, stamp, body),
        },
    )


async def tidio_webhook(service: Service, body: bytes) -> httpx.Response:
    t = int(time.time())
    return await service.client.post(
        "/tidio/webhooks",
        content=body,
        headers={
            "Content-Type": "application/json",
            "x-tidio-signature": f"t={t},s={sign_webhook(TIDIO_HOOK, body, t)}",
        },
    )


def _json_post(path: str, headers: Callable[[Service], dict[str, str]]) -> Sender:
    async def send(service: Service, body: bytes) -> httpx.Response:
        return await service.client.post(
            path, content=body, headers={"Content-Type": "application/json", **headers(service)}
        )

    return send


actions = _json_post("/zendesk/actions", lambda s: {"Authorization": f"Bearer {s.session}"})
order_links = _json_post("/links/order", lambda s: {"Authorization": f"Bearer {s.session}"})
identify = _json_post("/tidio/identify", lambda s: {"X-Api-Key": API_KEY})
lyro = _json_post("/tidio/lyro/order-status", lambda s: {"Authorization": f"Bearer {LYRO}"})
cart = _json_post("/tidio/cart", lambda s: {})


@pytest.mark.parametrize(
    ("send", "strategy", "some_accepted"),
    [
        (panels, JSON_BODIES, True),
        (events, EVENT_BODIES, True),
        (sidebar_form, FORM_BODIES, False),  # no drawn token is signed by Zendesk
        (zendesk_webhook, JSON_BODIES, None),
        (tidio_webhook, JSON_BODIES, None),
        (actions, JSON_BODIES, False),  # no drawn body names a real order and request id
        (order_links, JSON_BODIES, None),
        (identify, JSON_BODIES, None),
        (lyro, JSON_BODIES, None),
        (cart, JSON_BODIES, False),  # no drawn visitor token is signed
    ],
    ids=[
        "panels",
        "events",
        "sidebar-form",
        "zendesk-webhooks",
        "tidio-webhooks",
        "actions",
        "order-links",
        "tidio-identify",
        "lyro",
        "tidio-cart",
    ],
)
async def test_no_body_gets_a_5xx(
    service: Service,
    send: Sender,
    strategy: st.SearchStrategy[bytes],
    some_accepted: bool | None,
) -> None:
    bodies = drawn(strategy)
    assert len(bodies) == EXAMPLES
    statuses: set[int] = set()
    for body in bodies:
        response = await send(service, body)
        assert response.status_code < 500, (body[:300], response.status_code, response.text[:300])
        statuses.add(response.status_code)
    # The bodies reach past the parser: accepted ones are among them where any can be.
    if some_accepted is not None:  # None: whether a drawn body is accepted is not the point
        assert any(s < 300 for s in statuses) == some_accepted
    assert any(400 <= s < 500 for s in statuses)
