"""Zendesk signed-URL and secure-request JWTs, the app's public key, our own sessions.

RSA keys are generated here, at test time. The app's public key is served by a fake Zendesk
over real HTTP on loopback, shaped like the documented endpoint: an anonymous
`GET /api/v2/apps/{app_id}/public_key.pem` answering a PEM body, or 404 "Not Found".
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import logging
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from commerce_context.emulator.harness import serve
from commerce_context.exceptions import (
    ConfigError,
    Unauthorized,
    UpstreamError,
    UpstreamUnavailable,
)
from commerce_context.settings import Settings, load_settings
from commerce_context.stores import MemoryStore, RedisStore, Store
from commerce_context.tokens import (
    ALLOWED_LOCATIONS,
    SESSION_AUDIENCE,
    SESSION_ISSUER,
    VerifiedSessions,
    ZendeskIdentity,
    ZendeskKeys,
    accept_once,
    bearer,
    issue_session,
    public_key_url,
    verify_secure_request_token,
    verify_session,
    verify_signed_url_token,
)

SUBDOMAIN = "acme"
APP_ID = 42
INSTALLATION_ID = 7001
AUDIENCE = f"https://{SUBDOMAIN}.zendesk.com/api/v2/apps/installations/{INSTALLATION_ID}.json"
ISSUER = f"{SUBDOMAIN}.zendesk.com"
# Obviously fake values, long enough for HS256.
SESSION_SECRET = "test-session-secret-not-real-0123456789"
SHARED_SECRET = "test-shared-secret-not-real-9876543210"
CT: dict[str, Any] = {
    "ct_project_key": "proj",
    "ct_client_id": "client-id",
    "ct_client_secret": "not-a-real-secret",
    "ct_region": "europe-west1.gcp",
}
ZENDESK: dict[str, Any] = {
    "zendesk_subdomain": SUBDOMAIN,
    "zendesk_app_id": APP_ID,
    "zendesk_installation_id": INSTALLATION_ID,
    "session_secret": SESSION_SECRET,
}
pytestmark = pytest.mark.usefixtures("clean_environment")
DROP = object()  # a claim override that removes the claim


def make_settings(**overrides: Any) -> Settings:
    values = {k: v for k, v in {**CT, **ZENDESK, **overrides}.items() if v is not None}
    return load_settings(_env_file=None, **values)


# -- keys and tokens ----------------------------------------------------------------------------


@functools.cache
def private_key(name: str) -> rsa.RSAPrivateKey:
    """One fresh 2048-bit key per name, per test run: 'zendesk', 'rotated', 'attacker'."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_pem(name: str) -> str:
    return (
        private_key(name)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "sub": "381626101",
        "qsh": "opaque",
        "context": {"product": "support", "location": "ticket_sidebar"},
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not DROP}


def signed(key: str = "zendesk", **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), private_key(key), algorithm="RS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def raw_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    head = b64(json.dumps(header).encode()) + "." + b64(json.dumps(payload).encode())
    return head + "." + b64(signature)


def hs256_by_hand(payload: dict[str, Any], secret: bytes) -> str:
    """HS256 built without PyJWT, which refuses PEM keys as HMAC secrets."""
    head = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps(payload).encode())
    return head + "." + b64(hmac.new(secret, head.encode(), hashlib.sha256).digest())


def with_payload(token: str, **changes: Any) -> str:
    """The same header and signature around an edited payload."""
    header, payload, signature = token.split(".")
    body = json.loads(unb64(payload))
    body.update(changes)
    return ".".join([header, b64(json.dumps(body).encode()), signature])


def rejected(caught: pytest.ExceptionInfo[Unauthorized], token: str, reason: str) -> None:
    assert caught.value.message == reason
    assert caught.value.status_code == 401
    if len(token) >= 8:
        assert token not in caught.value.message
        assert token not in repr(caught.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- a fake Zendesk serving the app's public key --------------------------------------------------


class FakeZendesk:
    def __init__(self) -> None:
        self.url = ""
        self.reset()

    def reset(self) -> None:
        self.keys: dict[int, str] = {}
        self.hits = 0
        self.status: int | None = None  # force an error answer
        self.retry_after: str | None = None  # with this Retry-After header
        self.body: str | None = None  # force a 200 body
        self.delay = 0.0

    def key_url(self, app_id: int = APP_ID) -> str:
        return f"{self.url}/api/v2/apps/{app_id}/public_key.pem"

    def app(self) -> Starlette:
        async def public_key(request: Request) -> Response:
            self.hits += 1
            assert "authorization" not in request.headers  # anonymous, as documented
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status is not None:
                headers = {"Retry-After": self.retry_after} if self.retry_after else None
                return PlainTextResponse(
                    "Service Unavailable", status_code=self.status, headers=headers
                )
            if self.body is not None:
                return PlainTextResponse(self.body)
            pem = self.keys.get(request.path_params["app_id"])
            if pem is None:
                return PlainTextResponse("Not Found", status_code=404)
            return Response(pem, media_type="application/x-pem-file")

        return Starlette(
            routes=[
                Route("/api/v2/apps/{app_id:int}/public_key.pem", public_key),
                Route("/api/v2/apps/{app_id:int}/public_key", public_key),
            ]
        )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fake_zendesk() -> AsyncIterator[FakeZendesk]:
    fake = FakeZendesk()
    async with serve(fake.app()) as url:
        fake.url = url
        yield fake


@pytest.fixture
def zendesk(fake_zendesk: FakeZendesk) -> FakeZendesk:
    fake_zendesk.reset()
    fake_zendesk.keys[APP_ID] = public_pem("zendesk")
    return fake_zendesk


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def configured() -> Settings:
    """The public key given as PEM: no fetch at all."""
    return make_settings(zendesk_public_key=public_pem("zendesk"))


@pytest.fixture
def configured_keys(configured: Settings) -> ZendeskKeys:
    return ZendeskKeys(configured)


@pytest.fixture
def fetched(zendesk: FakeZendesk) -> Settings:
    """The public key fetched from the fake Zendesk."""
    return make_settings(zendesk_key_url=zendesk.key_url())


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fetched_keys(fetched: Settings, http: httpx.AsyncClient, clock: Clock) -> ZendeskKeys:
    return ZendeskKeys(fetched, http, clock=clock)


# -- signed URLs: the happy path ------------------------------------------------------------------


async def test_valid_signed_url_token(configured: Settings, configured_keys: ZendeskKeys) -> None:
    now = int(time.time())
    token = signed(iat=now, exp=now + 300)
    identity = await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    assert identity == ZendeskIdentity(
        subdomain=SUBDOMAIN,
        installation_id=INSTALLATION_ID,
        user_id="381626101",
        location="ticket_sidebar",
        issued_at=datetime.fromtimestamp(now, UTC),
        expires_at=datetime.fromtimestamp(now + 300, UTC),
        source="signed_url",
    )
    assert {"ticket_sidebar"} == ALLOWED_LOCATIONS


@pytest.mark.parametrize(
    ("overrides", "user_id"),
    [({"sub": DROP}, None), ({"sub": 381626101}, "381626101"), ({"nbf": DROP}, "381626101")],
)
async def test_optional_claims(
    configured: Settings, configured_keys: ZendeskKeys, overrides: dict[str, Any], user_id: Any
) -> None:
    identity = await verify_signed_url_token(
        signed(**overrides), settings=configured, keys=configured_keys
    )
    assert identity.user_id == user_id


async def test_clock_skew_within_leeway_is_tolerated(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    now = int(time.time())
    for token in (signed(exp=now - 10), signed(iat=now + 20, nbf=now + 20)):
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)


# -- signed URLs: rejections ----------------------------------------------------------------------

NOW = int(time.time())


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": NOW - 120, "iat": NOW - 600, "nbf": NOW - 600}, "token expired"),
        ({"nbf": NOW + 600}, "token not yet valid"),
        ({"iat": NOW + 600, "nbf": DROP}, "token not yet valid"),
        ({"aud": AUDIENCE.replace("7001", "7002")}, "wrong audience"),
        ({"aud": AUDIENCE.replace("acme", "evil")}, "wrong audience"),
        ({"aud": f"https://{SUBDOMAIN}.zendesk.com"}, "wrong audience"),
        ({"iss": "evil.zendesk.com"}, "wrong issuer"),
        ({"iss": f"https://{SUBDOMAIN}.zendesk.com"}, "wrong issuer"),
        ({"exp": DROP}, "token has no exp claim"),
        ({"iat": DROP}, "token has no iat claim"),
        ({"iss": DROP}, "token has no iss claim"),
        ({"aud": DROP}, "token has no aud claim"),
        ({"exp": "tomorrow"}, "malformed token"),
        (
            {"context": {"product": "chat", "location": "ticket_sidebar"}},
            "unexpected Zendesk product",
        ),
        ({"context": {"location": "ticket_sidebar"}}, "unexpected Zendesk product"),
        (
            {"context": {"product": ["support"], "location": "ticket_sidebar"}},
            "unexpected Zendesk product",
        ),
        ({"context": {"product": {}, "location": "ticket_sidebar"}}, "unexpected Zendesk product"),
        (
            {"context": {"product": "support", "location": "user_sidebar"}},
            "unexpected Zendesk location",
        ),
        (
            {"context": {"product": "support", "location": "new_ticket_sidebar"}},
            "unexpected Zendesk location",
        ),
        ({"context": {"product": "support"}}, "unexpected Zendesk location"),
        (
            {"context": {"product": "support", "location": ["ticket_sidebar"]}},
            "unexpected Zendesk location",
        ),
        ({"context": DROP}, "token has no Zendesk context"),
        ({"context": "support/ticket_sidebar"}, "token has no Zendesk context"),
        ({"sub": True}, "malformed token"),
        ({"sub": {"id": 1}}, "malformed token"),
    ],
)
async def test_claims_are_checked(
    configured: Settings, configured_keys: ZendeskKeys, overrides: dict[str, Any], reason: str
) -> None:
    token = signed(**overrides)
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    rejected(caught, token, reason)


async def test_alg_none_is_rejected(configured: Settings, configured_keys: ZendeskKeys) -> None:
    for alg in ("none", "None", "NONE"):
        token = raw_token({"alg": alg, "typ": "JWT"}, claims())
        with pytest.raises(Unauthorized) as caught:
            await verify_signed_url_token(token, settings=configured, keys=configured_keys)
        rejected(caught, token, "unexpected signing algorithm")
    # The same with the signature of a real token left in place.
    real_signature = signed().split(".")[2]
    token = raw_token({"alg": "none"}, claims()) + real_signature
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    rejected(caught, token, "unexpected signing algorithm")


async def test_hs256_signed_with_the_public_key_is_rejected(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    # Algorithm confusion: the public key is public, so an HS256 token keyed with it is forgeable.
    pem = public_pem("zendesk").encode()
    for secret in (pem, pem.strip(), configured.zendesk_public_key.encode()):  # type: ignore[union-attr]
        token = hs256_by_hand(claims(), secret)
        with pytest.raises(Unauthorized) as caught:
            await verify_signed_url_token(token, settings=configured, keys=configured_keys)
        rejected(caught, token, "unexpected signing algorithm")


async def test_other_rsa_algorithms_are_rejected(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    for alg in ("RS512", "PS256"):
        token = jwt.encode(claims(), private_key("zendesk"), algorithm=alg)
        with pytest.raises(Unauthorized) as caught:
            await verify_signed_url_token(token, settings=configured, keys=configured_keys)
        rejected(caught, token, "unexpected signing algorithm")


async def test_token_signed_by_another_key_is_rejected(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    token = signed("attacker")
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    rejected(caught, token, "signature invalid")


@pytest.mark.parametrize(
    "changes",
    [
        {"context": {"product": "support", "location": "ticket_sidebar"}, "sub": "1"},
        {"exp": NOW + 86400},
        {"aud": AUDIENCE, "extra": "x"},
    ],
)
async def test_tampered_payload_is_rejected(
    configured: Settings, configured_keys: ZendeskKeys, changes: dict[str, Any]
) -> None:
    token = with_payload(signed(), **changes)
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    rejected(caught, token, "signature invalid")


async def test_tampered_header_is_rejected(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    _, payload, signature = signed().split(".")
    token = ".".join([b64(b'{"alg":"RS256","typ":"JWT","kid":"x"}'), payload, signature])
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    rejected(caught, token, "signature invalid")


GARBAGE = [
    "",
    "abc",
    "a.b.c",
    "a.b",
    "....",
    "eyJhbGciOiJSUzI1NiJ9",
    "eyJhbGciOiJSUzI1NiJ9.e30",
    "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    "eyJhbGciOiJSUzI1NiJ9.W10.c2ln",  # payload is a JSON list
    "bm90IGpzb24.e30.c2ln",  # header is not JSON
    "W10.e30.c2ln",  # header is a JSON list
    "eyJ0eXAiOiJKV1QifQ.e30.c2ln",  # no alg
    "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
    "é.ü.ñ",
    "x" * 100_000,
    "eyJhbGciOiJSUzI1NiJ9." + "A" * 20_000 + ".c2ln",
]


@pytest.mark.parametrize("token", GARBAGE, ids=range(len(GARBAGE)))
async def test_garbage_is_rejected_without_fetching_a_key(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk, token: str
) -> None:
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(token, settings=fetched, keys=fetched_keys)
    assert caught.value.message in {"malformed token", "unexpected signing algorithm"}
    rejected(caught, token, caught.value.message)
    assert fetched_keys.fetches == 0
    assert zendesk.hits == 0


async def test_garbage_signature_is_rejected(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    header, payload, _ = signed().split(".")
    for signature in ("", "c2ln", "!!!"):
        token = f"{header}.{payload}.{signature}"
        with pytest.raises(Unauthorized) as caught:
            await verify_signed_url_token(token, settings=configured, keys=configured_keys)
        assert caught.value.message in {"signature invalid", "malformed token"}


async def test_not_configured_is_unauthorized() -> None:
    settings = make_settings(
        zendesk_subdomain=None,
        zendesk_app_id=None,
        zendesk_installation_id=None,
        session_secret=None,
    )
    assert not settings.zendesk_enabled
    with pytest.raises(Unauthorized, match=r"^Zendesk signed URLs are not configured$"):
        await verify_signed_url_token(signed(), settings=settings, keys=ZendeskKeys(settings))
    with pytest.raises(Unauthorized, match=r"^secure requests are not configured$"):
        verify_secure_request_token("a.b.c", settings=settings)
    with pytest.raises(Unauthorized, match=r"^sessions are not configured$"):
        verify_session("a.b.c", settings=settings)


async def test_tokens_never_reach_the_logs(
    configured: Settings, configured_keys: ZendeskKeys, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = [signed("attacker"), signed(exp=NOW - 999), with_payload(signed(), sub="2"), "a.b.c"]
    for token in tokens:
        with pytest.raises(Unauthorized):
            await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    assert caplog.records, "rejections are logged, with their reason"
    for token in tokens:
        for part in token.split("."):
            if len(part) > 8:
                assert part not in caplog.text


# -- the public key fetched from Zendesk ----------------------------------------------------------


def test_default_key_url() -> None:
    settings = make_settings()
    assert public_key_url(settings) == "https://acme.zendesk.com/api/v2/apps/42/public_key.pem"
    assert public_key_url(make_settings(zendesk_key_url="http://127.0.0.1:9/k.pem")) == (
        "http://127.0.0.1:9/k.pem"
    )


async def test_key_is_fetched_once_and_cached(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk
) -> None:
    for _ in range(25):
        identity = await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
        assert identity.installation_id == INSTALLATION_ID
    assert fetched_keys.fetches == 1
    assert zendesk.hits == 1


async def test_concurrent_first_use_fetches_once(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk
) -> None:
    zendesk.delay = 0.2
    results = await asyncio.gather(
        *(verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys) for _ in range(30))
    )
    assert len(results) == 30
    assert fetched_keys.fetches == 1
    assert zendesk.hits == 1


async def test_key_rotation_refetches_once(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk
) -> None:
    await verify_signed_url_token(signed("zendesk"), settings=fetched, keys=fetched_keys)
    zendesk.keys[APP_ID] = public_pem("rotated")  # Zendesk rotates the app's key

    identity = await verify_signed_url_token(signed("rotated"), settings=fetched, keys=fetched_keys)
    assert identity.user_id == "381626101"
    assert fetched_keys.fetches == 2
    for _ in range(5):  # the new key is cached
        await verify_signed_url_token(signed("rotated"), settings=fetched, keys=fetched_keys)
    assert fetched_keys.fetches == 2

    # Tokens signed with the old key are now refused, without more fetches (interval).
    with pytest.raises(Unauthorized, match=r"^signature invalid$"):
        await verify_signed_url_token(signed("zendesk"), settings=fetched, keys=fetched_keys)
    assert fetched_keys.fetches == 2


async def test_concurrent_tokens_after_rotation_refetch_once(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk
) -> None:
    await fetched_keys.get()
    zendesk.keys[APP_ID] = public_pem("rotated")
    zendesk.delay = 0.1
    await asyncio.gather(
        *(
            verify_signed_url_token(signed("rotated"), settings=fetched, keys=fetched_keys)
            for _ in range(20)
        )
    )
    assert fetched_keys.fetches == 2


async def test_flood_of_bad_tokens_refetches_at_most_once_per_interval(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk, clock: Clock
) -> None:
    await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
    assert fetched_keys.fetches == 1

    async def forged() -> None:
        with pytest.raises(Unauthorized, match=r"^signature invalid$"):
            await verify_signed_url_token(signed("attacker"), settings=fetched, keys=fetched_keys)

    await asyncio.gather(*(forged() for _ in range(50)))
    for _ in range(50):
        await forged()
    assert fetched_keys.fetches == 2  # the first fetch and one refresh

    clock.advance(30)
    await forged()
    assert fetched_keys.fetches == 2
    clock.advance(31)  # the 60 s interval has passed
    await asyncio.gather(*(forged() for _ in range(20)))
    assert fetched_keys.fetches == 3
    assert zendesk.hits == 3

    # Good tokens are unaffected throughout.
    await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
    assert fetched_keys.fetches == 3


async def test_refresh_failure_keeps_the_cached_key(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk
) -> None:
    await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
    zendesk.status = 503
    # A forged token stays a 401 (not a 503), and the cached key keeps working.
    with pytest.raises(Unauthorized, match=r"^signature invalid$"):
        await verify_signed_url_token(signed("attacker"), settings=fetched, keys=fetched_keys)
    await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
    assert zendesk.hits == 2


async def test_configured_key_is_never_fetched_or_refreshed(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    assert not configured_keys.refreshable
    with pytest.raises(Unauthorized):
        await verify_signed_url_token(signed("rotated"), settings=configured, keys=configured_keys)
    assert configured_keys.fetches == 0


@pytest.mark.parametrize("status", [500, 502, 503, 429])
async def test_key_url_down_is_upstream_unavailable(
    fetched: Settings, http: httpx.AsyncClient, zendesk: FakeZendesk, clock: Clock, status: int
) -> None:
    keys = ZendeskKeys(fetched, http, clock=clock)
    zendesk.status = status
    token = signed()
    with pytest.raises(UpstreamUnavailable) as caught:
        await verify_signed_url_token(token, settings=fetched, keys=keys)
    assert caught.value.status_code == 503
    assert f"HTTP {status}" in caught.value.message
    assert token not in caught.value.message

    # No retry storm: within the retry interval the failure is answered from memory.
    for _ in range(10):
        with pytest.raises(UpstreamUnavailable) as caught:
            await verify_signed_url_token(token, settings=fetched, keys=keys)
        assert caught.value.retry_after is not None
    assert zendesk.hits == 1

    zendesk.status = None
    clock.advance(6)
    await verify_signed_url_token(token, settings=fetched, keys=keys)
    assert zendesk.hits == 2


@pytest.mark.parametrize("header", ["0", "Wed, 21 Oct 2015 07:28:00 GMT"])
async def test_a_retry_after_of_zero_from_zendesk_keeps_the_retry_interval(
    fetched: Settings, http: httpx.AsyncClient, zendesk: FakeZendesk, clock: Clock, header: str
) -> None:
    keys = ZendeskKeys(fetched, http, clock=clock, retry_interval=5.0)
    zendesk.status, zendesk.retry_after = 503, header
    with pytest.raises(UpstreamUnavailable) as caught:
        await verify_signed_url_token(signed(), settings=fetched, keys=keys)
    assert caught.value.retry_after == 5.0
    clock.advance(1)
    with pytest.raises(UpstreamUnavailable):
        await verify_signed_url_token(signed(), settings=fetched, keys=keys)
    assert zendesk.hits == 1  # "0" did not turn the pause off


async def test_a_long_retry_after_from_zendesk_is_honoured(
    fetched: Settings, http: httpx.AsyncClient, zendesk: FakeZendesk, clock: Clock
) -> None:
    keys = ZendeskKeys(fetched, http, clock=clock, retry_interval=5.0)
    zendesk.status, zendesk.retry_after = 429, "30"
    with pytest.raises(UpstreamUnavailable):
        await verify_signed_url_token(signed(), settings=fetched, keys=keys)
    zendesk.status = None
    clock.advance(10)  # past our interval, not past Zendesk's
    with pytest.raises(UpstreamUnavailable):
        await verify_signed_url_token(signed(), settings=fetched, keys=keys)
    assert zendesk.hits == 1
    clock.advance(21)
    await verify_signed_url_token(signed(), settings=fetched, keys=keys)
    assert zendesk.hits == 2


async def test_key_url_unreachable_is_upstream_unavailable(http: httpx.AsyncClient) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = make_settings(
        zendesk_key_url=f"http://127.0.0.1:{port}/api/v2/apps/42/public_key.pem"
    )
    with pytest.raises(UpstreamUnavailable, match="could not reach Zendesk") as caught:
        await verify_signed_url_token(signed(), settings=settings, keys=ZendeskKeys(settings, http))
    assert caught.value.status_code == 503


async def test_key_url_timeout_is_upstream_unavailable(
    fetched: Settings, http: httpx.AsyncClient, zendesk: FakeZendesk
) -> None:
    zendesk.delay = 1.0
    keys = ZendeskKeys(fetched, http, timeout=0.1)
    with pytest.raises(UpstreamUnavailable, match="in time"):
        await verify_signed_url_token(signed(), settings=fetched, keys=keys)


async def test_unknown_app_is_an_upstream_error_naming_the_setting(
    zendesk: FakeZendesk, http: httpx.AsyncClient
) -> None:
    settings = make_settings(zendesk_app_id=999, zendesk_key_url=zendesk.key_url(999))
    async with httpx.AsyncClient() as client:
        answer = await client.get(zendesk.key_url(999))
    assert (answer.status_code, answer.text) == (404, "Not Found")  # the fake is faithful
    with pytest.raises(UpstreamError) as caught:
        await verify_signed_url_token(signed(), settings=settings, keys=ZendeskKeys(settings, http))
    assert caught.value.status_code == 502
    assert "CC_ZENDESK_APP_ID" in caught.value.message
    assert "999" in caught.value.message


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html>maintenance</html>", "is not a PEM public key"),
        ("", "is not a PEM public key"),
        (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "is a PEM public key, but not an RSA one",
        ),
        (
            rsa.generate_private_key(public_exponent=65537, key_size=1024)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "1024-bit RSA key; at least 2048 bits",
        ),
    ],
)
async def test_unusable_key_body_is_an_upstream_error(
    fetched: Settings, fetched_keys: ZendeskKeys, zendesk: FakeZendesk, body: str, expected: str
) -> None:
    zendesk.body = body
    with pytest.raises(UpstreamError, match=expected) as caught:
        await verify_signed_url_token(signed(), settings=fetched, keys=fetched_keys)
    assert caught.value.status_code == 502


# -- ZAF secure requests (HS256 with the shared secret) -------------------------------------------


@pytest.fixture
def secure() -> Settings:
    return make_settings(zendesk_shared_secret=SHARED_SECRET)


def zaf_token(secret: str = SHARED_SECRET, **overrides: Any) -> str:
    now = int(time.time())
    # What Zendesk's proxy mints: iat/exp from `expiry`, plus whatever browser code put in claims.
    values: dict[str, Any] = {"iat": now, "exp": now + 3600, "ticket_id": 123}
    values.update(overrides)
    values = {k: v for k, v in values.items() if v is not DROP}
    return jwt.encode(values, secret, algorithm="HS256")


def test_secure_request_token_is_accepted(secure: Settings) -> None:
    identity = verify_secure_request_token(zaf_token(), settings=secure)
    assert identity.source == "secure_request"
    assert (identity.subdomain, identity.installation_id) == (SUBDOMAIN, INSTALLATION_ID)
    assert identity.user_id is None and identity.location is None


def test_secure_request_claims_are_not_identity(secure: Settings) -> None:
    # Browser code wrote these; they must neither break verification nor become identity.
    token = zaf_token(sub="1", iss="someone", aud="anything", user_id=99, subdomain="evil")
    identity = verify_secure_request_token(token, settings=secure)
    assert identity.user_id is None
    assert identity.subdomain == SUBDOMAIN


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: zaf_token("another-shared-secret-0123456789-abcdef"), "signature invalid"),
        (lambda: signed(), "unexpected signing algorithm"),
        (
            lambda: jwt.encode({"iat": NOW, "exp": NOW + 60}, private_key("zendesk"), "RS256"),
            "unexpected signing algorithm",
        ),
        (
            lambda: raw_token({"alg": "none"}, {"iat": NOW, "exp": NOW + 60}),
            "unexpected signing algorithm",
        ),
        (lambda: zaf_token(exp=NOW - 120), "token expired"),
        (lambda: zaf_token(exp=DROP), "token has no exp claim"),
        (lambda: zaf_token(iat=DROP), "token has no iat claim"),
        (lambda: zaf_token(nbf=NOW + 600), "token not yet valid"),
        (lambda: with_payload(zaf_token(), ticket_id=124), "signature invalid"),
        (lambda: "a.b.c", "malformed token"),
        (lambda: "", "malformed token"),
    ],
)
def test_secure_request_rejections(secure: Settings, token: Any, reason: str) -> None:
    value = token()
    with pytest.raises(Unauthorized) as caught:
        verify_secure_request_token(value, settings=secure)
    rejected(caught, value, reason)


def test_secure_requests_not_configured() -> None:
    settings = make_settings()
    with pytest.raises(Unauthorized) as caught:
        verify_secure_request_token(zaf_token(), settings=settings)
    assert caught.value.message == "secure requests are not configured"


# -- our own sessions -----------------------------------------------------------------------------


def identity(**changes: Any) -> ZendeskIdentity:
    now = datetime.now(UTC).replace(microsecond=0)
    base = ZendeskIdentity(
        subdomain=SUBDOMAIN,
        installation_id=INSTALLATION_ID,
        user_id="381626101",
        location="ticket_sidebar",
        issued_at=now,
        expires_at=now + timedelta(minutes=5),
    )
    return replace(base, **changes)


def test_session_round_trip() -> None:
    settings = make_settings()
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    token = issue_session(identity(), settings=settings, now=now)
    session = verify_session(token, settings=settings, now=now + timedelta(seconds=899))
    assert (session.subdomain, session.installation_id) == (SUBDOMAIN, INSTALLATION_ID)
    assert (session.user_id, session.location, session.source) == (
        "381626101",
        "ticket_sidebar",
        "signed_url",
    )
    assert session.issued_at == now
    assert session.expires_at == now + timedelta(seconds=900)
    assert session.subject == f"zendesk:{SUBDOMAIN}:{INSTALLATION_ID}"

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == SESSION_ISSUER == "commerce-context"
    assert claims["aud"] == SESSION_AUDIENCE == "commerce-context/session"
    assert claims["sub"] == "zendesk:acme:7001"
    assert jwt.get_unverified_header(token)["alg"] == "HS256"

    other = issue_session(identity(), settings=settings, now=now)
    assert verify_session(other, settings=settings, now=now).session_id != session.session_id


def test_session_with_default_clock_and_secure_request_identity() -> None:
    settings = make_settings(zendesk_shared_secret=SHARED_SECRET)
    who = verify_secure_request_token(zaf_token(), settings=settings)
    session = verify_session(issue_session(who, settings=settings), settings=settings)
    assert (session.source, session.user_id, session.location) == ("secure_request", None, None)


def test_session_ttl_is_configurable() -> None:
    settings = make_settings(session_ttl=60)
    now = datetime(2026, 3, 1, tzinfo=UTC)
    token = issue_session(identity(), settings=settings, now=now)
    verify_session(token, settings=settings, now=now + timedelta(seconds=59))
    with pytest.raises(Unauthorized, match=r"^session expired$"):
        verify_session(token, settings=settings, now=now + timedelta(seconds=60))


def test_session_expired() -> None:
    settings = make_settings()
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    token = issue_session(identity(), settings=settings, now=now)
    with pytest.raises(Unauthorized) as caught:
        verify_session(token, settings=settings, now=now + timedelta(seconds=901))
    rejected(caught, token, "session expired")
    with pytest.raises(Unauthorized) as caught:
        verify_session(token, settings=settings, now=now - timedelta(hours=1))
    rejected(caught, token, "session not yet valid")
    with pytest.raises(Unauthorized, match=r"^session expired$"):
        verify_session(token, settings=settings)  # real clock: long past


def test_session_wrong_secret() -> None:
    token = issue_session(identity(), settings=make_settings())
    other = make_settings(session_secret="another-session-secret-0123456789-xyz")
    with pytest.raises(Unauthorized) as caught:
        verify_session(token, settings=other)
    rejected(caught, token, "signature invalid")


@pytest.mark.parametrize(
    "changes",
    [
        {"installation_id": 7002},
        {"sub": "zendesk:acme:7002", "installation_id": 7002},
        {"user_id": "1"},
        {"exp": NOW + 10**6},
        {"aud": "commerce-context/other"},
    ],
)
def test_session_tampered(changes: dict[str, Any]) -> None:
    settings = make_settings()
    token = with_payload(issue_session(identity(), settings=settings), **changes)
    with pytest.raises(Unauthorized) as caught:
        verify_session(token, settings=settings)
    rejected(caught, token, "signature invalid")


def test_session_bound_to_installation_and_account() -> None:
    settings = make_settings()
    token = issue_session(identity(), settings=settings)
    for other in (
        make_settings(zendesk_installation_id=7002),
        make_settings(zendesk_subdomain="other"),
    ):
        with pytest.raises(Unauthorized) as caught:
            verify_session(token, settings=other)
        rejected(caught, token, "session is for another Zendesk installation")
    # Nor does it issue one for an identity of another installation.
    with pytest.raises(Unauthorized, match="another Zendesk installation"):
        issue_session(identity(installation_id=7002), settings=settings)


def session_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "sub": f"zendesk:{SUBDOMAIN}:{INSTALLATION_ID}",
        "subdomain": SUBDOMAIN,
        "installation_id": INSTALLATION_ID,
        "user_id": "1",
        "location": "ticket_sidebar",
        "src": "signed_url",
        "iat": now,
        "exp": now + 60,
        "jti": "abc",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not DROP}


def hs(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, SESSION_SECRET, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (
            lambda: raw_token({"alg": "none", "typ": "JWT"}, session_claims()),
            "unexpected signing algorithm",
        ),
        (
            lambda: jwt.encode(session_claims(), private_key("zendesk"), "RS256"),
            "unexpected signing algorithm",
        ),
        (lambda: signed(), "unexpected signing algorithm"),  # a Zendesk token is no session
        (lambda: hs(session_claims(iss="zendesk")), "wrong issuer"),
        (lambda: hs(session_claims(aud="x")), "wrong audience"),
        (lambda: hs(session_claims(jti=DROP)), "session has no jti claim"),
        (lambda: hs(session_claims(sub="zendesk:acme:1")), "malformed session"),
        (lambda: hs(session_claims(installation_id="7001")), "malformed session"),
        (lambda: hs(session_claims(installation_id=True)), "malformed session"),
        (lambda: hs(session_claims(src="admin")), "malformed session"),
        (lambda: "", "malformed session"),
        (lambda: "a.b.c", "malformed session"),
        (lambda: "x" * 50_000, "malformed session"),
    ],
)
def test_session_rejections(token: Any, reason: str) -> None:
    value = token()
    with pytest.raises(Unauthorized) as caught:
        verify_session(value, settings=make_settings())
    rejected(caught, value, reason)


def test_session_tokens_are_not_zendesk_tokens(secure: Settings) -> None:
    # Different keys: a session is not a secure-request token, and vice versa.
    session = issue_session(identity(), settings=secure)
    with pytest.raises(Unauthorized, match=r"^signature invalid$"):
        verify_secure_request_token(session, settings=secure)
    with pytest.raises(Unauthorized, match=r"^signature invalid$"):
        verify_session(zaf_token(), settings=secure)


# -- settings -------------------------------------------------------------------------------------


def rsa_pem(bits: int) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


EC_PEM = (
    ec.generate_private_key(ec.SECP256R1())
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"zendesk_installation_id": None},
            "invalid settings: CC_ZENDESK_SUBDOMAIN is set, so CC_ZENDESK_INSTALLATION_ID is "
            "required",
        ),
        (
            {"zendesk_app_id": None},
            "invalid settings: CC_ZENDESK_SUBDOMAIN is set, so CC_ZENDESK_APP_ID is required "
            "unless CC_ZENDESK_PUBLIC_KEY is set",
        ),
        (
            {"session_secret": None},
            "invalid settings: CC_ZENDESK_SUBDOMAIN is set, so CC_SESSION_SECRET is required",
        ),
        (
            {"zendesk_subdomain": None},
            "invalid settings: CC_ZENDESK_APP_ID is set but CC_ZENDESK_SUBDOMAIN is not",
        ),
        (
            {"zendesk_subdomain": None, "zendesk_app_id": None},
            "invalid settings: CC_ZENDESK_INSTALLATION_ID is set but CC_ZENDESK_SUBDOMAIN is not",
        ),
        (
            {"zendesk_subdomain": "acme.zendesk.com"},
            "invalid setting CC_ZENDESK_SUBDOMAIN: 'acme.zendesk.com' is not a Zendesk subdomain",
        ),
        ({"zendesk_subdomain": "https://acme"}, "invalid setting CC_ZENDESK_SUBDOMAIN: "),
        ({"zendesk_app_id": 0}, "invalid setting CC_ZENDESK_APP_ID: Input should be greater"),
        ({"zendesk_installation_id": "seven"}, "invalid setting CC_ZENDESK_INSTALLATION_ID: "),
        (
            {"zendesk_public_key": "not a key"},
            "invalid setting CC_ZENDESK_PUBLIC_KEY: not a PEM public key",
        ),
        (
            {"zendesk_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"},
            "invalid setting CC_ZENDESK_PUBLIC_KEY: not a PEM public key",
        ),
        (
            {"zendesk_public_key": EC_PEM},
            "invalid setting CC_ZENDESK_PUBLIC_KEY: a PEM public key, but not an RSA one",
        ),
        (
            {"zendesk_public_key": rsa_pem(1024)},
            "invalid setting CC_ZENDESK_PUBLIC_KEY: a 1024-bit RSA key; at least 2048 bits",
        ),
        (
            {"zendesk_key_url": "ftp://x/key.pem"},
            "invalid setting CC_ZENDESK_KEY_URL: 'ftp://x/key.pem' is not an http(s) URL",
        ),
        (
            {"zendesk_shared_secret": "short-secret-0123456789"},
            "invalid setting CC_ZENDESK_SHARED_SECRET: must be at least 32 bytes long",
        ),
        (
            {"session_secret": "short-session-secret"},
            "invalid setting CC_SESSION_SECRET: must be at least 32 bytes long",
        ),
        (
            {"zendesk_shared_secret": SESSION_SECRET},
            "invalid settings: CC_SESSION_SECRET must differ from CC_ZENDESK_SHARED_SECRET",
        ),
        ({"zendesk_jwt_leeway": -1}, "invalid setting CC_ZENDESK_JWT_LEEWAY: "),
        ({"session_ttl": 0}, "invalid setting CC_SESSION_TTL: "),
    ],
)
def test_bad_zendesk_settings_fail_with_one_line(overrides: dict[str, Any], expected: str) -> None:
    values = {k: v for k, v in {**CT, **ZENDESK, **overrides}.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        load_settings(_env_file=None, **values)
    message = caught.value.message
    assert message.startswith(expected), message
    assert "\n" not in message
    assert "CC_" in message
    assert SESSION_SECRET not in message
    assert "short-s" not in message


def test_zendesk_is_optional_and_off_by_default() -> None:
    settings = load_settings(_env_file=None, **CT)
    assert not settings.zendesk_enabled
    assert settings.zendesk_jwt_leeway == 30
    assert settings.session_ttl == 900


def test_public_key_replaces_app_id() -> None:
    settings = make_settings(zendesk_app_id=None, zendesk_public_key=public_pem("zendesk"))
    assert settings.zendesk_enabled
    assert public_key_url(settings) is None


def test_zendesk_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**CT, **ZENDESK}.items():
        monkeypatch.setenv(f"CC_{name.upper()}", str(value))
    # A PEM in an environment variable, its newlines written as \n.
    monkeypatch.setenv("CC_ZENDESK_PUBLIC_KEY", public_pem("zendesk").replace("\n", "\\n"))
    monkeypatch.setenv("CC_ZENDESK_SHARED_SECRET", SHARED_SECRET)
    monkeypatch.setenv("CC_ZENDESK_SUBDOMAIN", "ACME")
    settings = load_settings(_env_file=None)
    assert settings.zendesk_enabled
    assert settings.zendesk_subdomain == "acme"
    assert settings.zendesk_installation_id == INSTALLATION_ID
    assert settings.zendesk_public_key == public_pem("zendesk")
    ZendeskKeys(settings)  # the PEM loads


def test_zendesk_secrets_are_hidden() -> None:
    settings = make_settings(zendesk_shared_secret=SHARED_SECRET)
    for text in (repr(settings), str(settings.model_dump())):
        assert SESSION_SECRET not in text
        assert SHARED_SECRET not in text


def test_key_url_without_subdomain_is_a_contradiction() -> None:
    with pytest.raises(ConfigError, match="CC_ZENDESK_KEY_URL is set but CC_ZENDESK_SUBDOMAIN"):
        load_settings(_env_file=None, **CT, zendesk_key_url="http://127.0.0.1:1/k.pem")


def test_issue_session_needs_a_secret() -> None:
    # Unreachable through load_settings (the model requires it); guarded all the same.
    settings = make_settings().model_copy(update={"session_secret": None})
    with pytest.raises(ConfigError, match="CC_SESSION_SECRET"):
        issue_session(identity(), settings=settings)


@pytest.fixture(autouse=True)
def _no_stray_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Belt and braces: nothing here may resolve a real Zendesk host.
    real = socket.getaddrinfo

    def guarded(host: Any, *args: Any, **kwargs: Any) -> Any:
        assert "zendesk.com" not in str(host), f"tried to reach {host}"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)
    yield


def test_verified_sessions_skip_the_signature_but_not_the_expiry() -> None:
    settings = make_settings()
    identity = ZendeskIdentity(
        subdomain=SUBDOMAIN,
        installation_id=INSTALLATION_ID,
        user_id="7",
        location="ticket_sidebar",
        issued_at=datetime.now(UTC),
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    start = datetime.now(UTC)
    token = issue_session(identity, settings=settings, now=start)
    cache = VerifiedSessions(size=2)
    first = cache.verify(token, settings=settings, now=start)
    assert cache.verify(token, settings=settings, now=start) is first
    with pytest.raises(Unauthorized, match="expired"):
        cache.verify(token, settings=settings, now=start + timedelta(seconds=3600))
    tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(Unauthorized):
        cache.verify(tampered, settings=settings, now=start)


# -- lifetimes capped, signed-URL tokens accepted once ---------------------------------------------


async def test_a_signed_url_tokens_lifetime_is_capped_whatever_exp_it_asks(
    configured: Settings, configured_keys: ZendeskKeys
) -> None:
    now = int(time.time())
    long_lived = signed(iat=now, nbf=now, exp=now + 86400)
    identity = await verify_signed_url_token(long_lived, settings=configured, keys=configured_keys)
    assert identity.expires_at == datetime.fromtimestamp(now + 300, UTC)
    old = signed(iat=now - 400, nbf=now - 400, exp=now + 86400)  # unexpired by its own exp
    with pytest.raises(Unauthorized) as caught:
        await verify_signed_url_token(old, settings=configured, keys=configured_keys)
    rejected(caught, old, "token expired")


def test_a_secure_request_tokens_lifetime_is_capped_whatever_expiry_the_browser_asks(
    secure: Settings,
) -> None:
    now = int(time.time())
    identity = verify_secure_request_token(zaf_token(iat=now, exp=now + 3600), settings=secure)
    assert identity.expires_at == datetime.fromtimestamp(now + 300, UTC)
    old = zaf_token(iat=now - 400, exp=now + 3600)
    with pytest.raises(Unauthorized) as caught:
        verify_secure_request_token(old, settings=secure)
    rejected(caught, old, "token expired")


def test_the_lifetime_cap_is_configurable() -> None:
    settings = make_settings(zendesk_shared_secret=SHARED_SECRET, zendesk_token_max_age=600)
    now = int(time.time())
    verify_secure_request_token(zaf_token(iat=now - 400, exp=now + 3600), settings=settings)
    with pytest.raises(ConfigError, match="CC_ZENDESK_TOKEN_MAX_AGE"):
        make_settings(zendesk_token_max_age=86400)


@pytest.fixture(params=["memory", "redis"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Store, Store]]:
    """Two instances' stores sharing one backend."""
    if request.param == "memory":
        memory = MemoryStore(1024 * 1024)
        yield memory, memory
        return
    prefix = f"cc-test-{uuid.uuid4().hex[:8]}:"
    one = RedisStore.from_url("redis://127.0.0.1:6379/15", prefix=prefix)
    two = RedisStore.from_url("redis://127.0.0.1:6379/15", prefix=prefix)
    yield one, two
    keys = [k async for k in one._redis.scan_iter(match=prefix + "*")]
    if keys:
        await one._redis.delete(*keys)
    await one.close()
    await two.close()


@pytest.mark.parametrize("jti", ["load-1", None])
async def test_a_signed_url_token_opens_the_sidebar_once(
    configured: Settings,
    configured_keys: ZendeskKeys,
    replicas: tuple[Store, Store],
    jti: str | None,
) -> None:
    one, two = replicas
    token = signed(jti=jti if jti is not None else DROP)
    identity = await verify_signed_url_token(token, settings=configured, keys=configured_keys)
    assert identity.token_id == jti
    await accept_once(token, identity, store=one, settings=configured)
    with pytest.raises(Unauthorized) as caught:  # a replay, on another replica
        await accept_once(token, identity, store=two, settings=configured)
    rejected(caught, token, "token already used; reload the app")
    other = signed(jti="load-2" if jti else DROP, sub="another-agent")
    await accept_once(
        other,
        await verify_signed_url_token(other, settings=configured, keys=configured_keys),
        store=two,
        settings=configured,
    )


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer   abc ", "abc"),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_parsing(header: str | None, token: str | None) -> None:
    assert bearer(header) == token
