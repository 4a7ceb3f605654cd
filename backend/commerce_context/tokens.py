"""Who is calling: Zendesk's app JWTs in, our own short-lived session tokens out.

Two ways in from a Zendesk Support sidebar, both documented by Zendesk's Apps framework:

* **Signed URLs** (the primary one). Zendesk POSTs the app's entry URL with a form field
  `token`: an RS256 JWT signed with the app's private key. `verify_signed_url_token` checks it
  against the app's public key (`ZendeskKeys`: the configured PEM, or fetched once from
  `/api/v2/apps/{app_id}/public_key.pem` and cached), with the algorithm pinned, `aud` bound to
  this installation, `iss` bound to this account, `exp`/`iat`/`nbf` enforced and the ZAF
  context (`support` / `ticket_sidebar`) checked. This is the only *trusted* identity.
* **Secure requests** (bundled-assets mode). `client.request({secure: true, jwt: {algorithm:
  'HS256', secret_key: '{{setting.shared_secret}}', ...}})` makes Zendesk's proxy mint an HS256
  JWT with the installation's shared secret. `verify_secure_request_token` accepts it only as
  proof that the call passed through the Zendesk proxy for this installation: its claims are
  written by browser code (`jwt.claims`), so any agent of the account can set them, and none of
  them (user, ticket, `iss`, `aud`) is read.

The Zendesk JWT arrives once, with the page. After it verifies, `issue_session` mints our own
HS256 token (key `CC_SESSION_SECRET`, lifetime `CC_SESSION_TTL`) that the iframe sends with its
later calls; `verify_session` checks it and that it belongs to the configured account and
installation.

Zendesk's tokens are held to `CC_ZENDESK_TOKEN_MAX_AGE` (default 300 s) after their `iat`,
whatever `exp` they carry: a secure-request token's lifetime is chosen by browser code, and a
leaked signed-URL token should not open the sidebar for an hour. A signed-URL token opens the
sidebar once (`accept_once`): its `jti`, or its digest, is remembered in the cache's store
(shared by replicas through Redis) until it expires.

Every rejection is `Unauthorized` with a short reason ("token expired", "wrong audience", ...).
No message and no log line carries a token. A public key that cannot be fetched is the
upstream's fault, not the caller's: it raises `UpstreamUnavailable` / `UpstreamError`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from . import correlation
from .commercetools import retry_after_seconds
from .exceptions import (
    CacheUnavailable,
    ConfigError,
    Unauthorized,
    UpstreamError,
    UpstreamUnavailable,
)
from .lru import LRU
from .settings import ENV_PREFIX, Settings, load_rsa_public_key
from .stores import Store

__all__ = [
    "ALLOWED_LOCATIONS",
    "ALLOWED_PRODUCTS",
    "SESSION_AUDIENCE",
    "SESSION_ISSUER",
    "Session",
    "ZendeskIdentity",
    "ZendeskKeys",
    "accept_once",
    "bearer",
    "issue_session",
    "public_key_url",
    "signed_url_audience",
    "signed_url_issuer",
    "verify_secure_request_token",
    "verify_session",
    "verify_signed_url_token",
]

logger = logging.getLogger(__name__)

ALLOWED_PRODUCTS = frozenset({"support"})
ALLOWED_LOCATIONS = frozenset({"ticket_sidebar"})
SESSION_ISSUER = "commerce-context"
SESSION_AUDIENCE = "commerce-context/session"
MAX_TOKEN_LENGTH = 16_384  # Zendesk's tokens are about 1 kB; anything this long is not one.
MAX_KEY_BYTES = 16_384
SESSION_CLOCK_SKEW = 5.0  # seconds between our own instances' clocks

Source = Literal["signed_url", "secure_request"]


@dataclass(frozen=True)
class ZendeskIdentity:
    """A verified Zendesk caller. Account and installation are the configured ones."""

    subdomain: str
    installation_id: int
    user_id: str | None  # the signed-URL token's `sub`; None for secure requests
    location: str | None  # e.g. "ticket_sidebar"; None for secure requests (not attested)
    issued_at: datetime
    expires_at: datetime  # at most CC_ZENDESK_TOKEN_MAX_AGE after issued_at
    source: Source = "signed_url"
    token_id: str | None = None  # the token's `jti`, when it has one


@dataclass(frozen=True)
class Session:
    """Our own session, established from a `ZendeskIdentity`."""

    subdomain: str
    installation_id: int
    user_id: str | None
    location: str | None
    source: Source
    session_id: str
    issued_at: datetime
    expires_at: datetime

    @property
    def subject(self) -> str:
        return _session_subject(self.subdomain, self.installation_id)


# -- the app's public key -------------------------------------------------------------------------


def public_key_url(settings: Settings) -> str | None:
    """Where the app's public key is fetched from; None when it cannot be (no app id)."""
    if settings.zendesk_key_url:
        return settings.zendesk_key_url
    if settings.zendesk_subdomain is None or settings.zendesk_app_id is None:
        return None
    return (
        f"https://{settings.zendesk_subdomain}.zendesk.com"
        f"/api/v2/apps/{settings.zendesk_app_id}/public_key.pem"
    )


class ZendeskKeys:
    """The app's RSA public key: configured, or fetched once and cached.

    Concurrent first uses make one request (an `asyncio.Lock`). A failed fetch is not retried
    for `retry_interval` seconds, and `refresh()` (after a signature failure, in case Zendesk
    rotated the key) refetches at most once per `refresh_interval` seconds, so neither an
    outage nor a flood of forged tokens makes us hammer Zendesk.
    """

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient | None = None,
        *,
        timeout: float = 10.0,
        refresh_interval: float = 60.0,
        retry_interval: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._http = http
        self._timeout = timeout
        self._refresh_interval = refresh_interval
        self._retry_interval = retry_interval
        self._clock = clock
        self._lock = asyncio.Lock()
        self._key: RSAPublicKey | None = None
        self._last_refresh: float | None = None
        self._failed: tuple[float, UpstreamError] | None = None
        self._configured = settings.zendesk_public_key is not None
        if settings.zendesk_public_key is not None:
            self._key = _load_public_key(settings.zendesk_public_key, source="configured")
        self.fetches = 0  # requests sent to the key URL; observable in tests and metrics

    def __repr__(self) -> str:
        origin = "configured" if self._configured else public_key_url(self._settings)
        return f"<ZendeskKeys {origin} cached={self._key is not None}>"

    @property
    def refreshable(self) -> bool:
        """True when the key comes from Zendesk and could have been rotated."""
        return not self._configured

    async def get(self) -> RSAPublicKey:
        """The key, fetching it on first use."""
        key = self._key
        if key is not None:
            return key
        async with self._lock:
            if self._key is not None:  # another task fetched it while we waited
                return self._key
            if self._failed is not None:
                failed_at, error = self._failed
                pause = max(getattr(error, "retry_after", None) or 0.0, self._retry_interval)
                wait = failed_at + pause - self._clock()
                if wait > 0:
                    raise _copy(error, retry_after=wait)
            try:
                self._key = await self._fetch()
            except UpstreamError as exc:
                self._failed = (self._clock(), exc)
                raise
            self._failed = None
            return self._key

    async def refresh(self, stale: RSAPublicKey) -> bool:
        """Refetch after `stale` failed to verify a signature; True if the key changed.

        Bounded: a second refresh within `refresh_interval` seconds is refused (False). A
        failed refetch keeps the cached key and returns False.
        """
        if self._configured:
            return False
        async with self._lock:
            current = self._key
            if current is not None and not _same_key(current, stale):
                return True  # another task refreshed while we waited
            now = self._clock()
            if self._last_refresh is not None and now - self._last_refresh < self._refresh_interval:
                return False
            self._last_refresh = now
            try:
                fresh = await self._fetch()
            except UpstreamError as exc:
                logger.warning("Zendesk public key refresh failed: %s", exc.message)
                return False
            if _same_key(fresh, stale):
                return False
            logger.info("Zendesk public key changed; using the new key")
            self._key = fresh
            return True

    async def _fetch(self) -> RSAPublicKey:
        url = public_key_url(self._settings)
        if url is None:
            raise ConfigError(
                f"set {ENV_PREFIX}ZENDESK_APP_ID or {ENV_PREFIX}ZENDESK_PUBLIC_KEY to verify "
                "Zendesk signed URLs"
            )
        if self._http is None:
            raise ConfigError("ZendeskKeys needs an HTTP client to fetch the app's public key")
        self.fetches += 1
        started = time.perf_counter()
        try:
            response = await self._http.get(
                url,
                headers={"Accept": "*/*", correlation.HEADER: correlation.current()},
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            raise UpstreamUnavailable("Zendesk did not send the app's public key in time") from None
        except httpx.TransportError:
            raise UpstreamUnavailable("could not reach Zendesk for the app's public key") from None
        status = response.status_code
        logger.info(
            "Zendesk GET %s -> %d in %.0f ms",
            httpx.URL(url).path,
            status,
            (time.perf_counter() - started) * 1000,
        )
        if status == 404:
            raise UpstreamError(
                f"Zendesk has no public key for app {self._settings.zendesk_app_id} (HTTP 404); "
                f"check {ENV_PREFIX}ZENDESK_APP_ID"
            )
        if status == 429 or status >= 500:
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            raise UpstreamUnavailable(
                f"Zendesk could not send the app's public key (HTTP {status})",
                # "Retry-After: 0" (or a past date) must not turn our own backoff off.
                retry_after=max(asked or 0.0, self._retry_interval),
            )
        if status != 200:
            raise UpstreamError(f"Zendesk refused to send the app's public key (HTTP {status})")
        if len(response.content) > MAX_KEY_BYTES:
            raise UpstreamError("Zendesk sent something too large to be the app's public key")
        return _load_public_key(response.text, source="Zendesk's")


def _load_public_key(pem: str, *, source: str) -> RSAPublicKey:
    try:
        return load_rsa_public_key(pem)
    except ValueError as exc:
        raise UpstreamError(f"{source} app public key is {exc}") from None


def _same_key(a: RSAPublicKey, b: RSAPublicKey) -> bool:
    return a is b or a.public_numbers() == b.public_numbers()


def _copy(error: UpstreamError, *, retry_after: float) -> UpstreamError:
    if isinstance(error, UpstreamUnavailable):
        return UpstreamUnavailable(error.message, retry_after=retry_after)
    return type(error)(error.message)


# -- Zendesk signed URLs (RS256) ------------------------------------------------------------------


def signed_url_audience(settings: Settings) -> str:
    return (
        f"https://{settings.zendesk_subdomain}.zendesk.com"
        f"/api/v2/apps/installations/{settings.zendesk_installation_id}.json"
    )


def signed_url_issuer(settings: Settings) -> str:
    return f"{settings.zendesk_subdomain}.zendesk.com"


async def verify_signed_url_token(
    token: str, *, settings: Settings, keys: ZendeskKeys
) -> ZendeskIdentity:
    """Verify the `token` Zendesk posts to a signed URL; raises `Unauthorized` if it fails.

    Raises `UpstreamUnavailable` / `UpstreamError` only when the public key cannot be fetched.
    """
    subdomain, installation_id = _installation(settings, "Zendesk signed URLs")
    _check_shape(token, "RS256")  # before any key fetch: garbage never reaches Zendesk
    key = await keys.get()
    try:
        claims = _decode_signed_url(token, key, settings)
    except jwt.InvalidSignatureError:
        # Perhaps Zendesk rotated the app's key; refetch (bounded) and try once more.
        if not await keys.refresh(key):
            raise _reject("signature invalid") from None
        try:
            claims = _decode_signed_url(token, await keys.get(), settings)
        except jwt.PyJWTError as exc:
            raise _reject(_reason(exc)) from None
    except jwt.PyJWTError as exc:
        raise _reject(_reason(exc)) from None

    context = claims.get("context")
    if not isinstance(context, Mapping):
        raise _reject("token has no Zendesk context")
    product = context.get("product")
    if not isinstance(product, str) or product not in ALLOWED_PRODUCTS:
        raise _reject("unexpected Zendesk product")
    location = context.get("location")
    if not isinstance(location, str) or location not in ALLOWED_LOCATIONS:
        raise _reject("unexpected Zendesk location")
    subject = claims.get("sub")
    if subject is not None and (
        isinstance(subject, bool) or not isinstance(subject, str | int) or subject == ""
    ):
        raise _reject("malformed token")
    issued_at, expires_at = _capped(*_times(claims), settings)
    jti = claims.get("jti")
    return ZendeskIdentity(
        subdomain=subdomain,
        installation_id=installation_id,
        user_id=None if subject is None else str(subject),
        location=location,
        issued_at=issued_at,
        expires_at=expires_at,
        source="signed_url",
        token_id=jti if isinstance(jti, str) and 0 < len(jti) <= 128 else None,
    )


def _decode_signed_url(token: str, key: RSAPublicKey, settings: Settings) -> dict[str, Any]:
    return jwt.decode(
        token,
        key,
        algorithms=["RS256"],
        audience=signed_url_audience(settings),
        issuer=signed_url_issuer(settings),
        leeway=settings.zendesk_jwt_leeway,
        options={
            "require": ["exp", "iat", "iss", "aud"],
            "verify_sub": False,  # format not documented; checked below
            "verify_jti": False,  # not used
            "enforce_minimum_key_length": True,
        },
    )


async def accept_once(
    token: str,
    identity: ZendeskIdentity,
    *,
    store: Store,
    settings: Settings,
    now: datetime | None = None,
) -> None:
    """Refuse a signed-URL token that was accepted before (a replay of a captured one).

    Remembered until it expires, in the cache's store, so every replica agrees. If the store
    (Redis) does not answer, the token is accepted and a warning logged: the sidebar stays up,
    and the token still expires within `CC_ZENDESK_TOKEN_MAX_AGE`."""
    current = now or datetime.now(UTC)
    ttl = (identity.expires_at - current).total_seconds() + settings.zendesk_jwt_leeway + 1
    name = identity.token_id or hashlib.sha256(token.encode()).hexdigest()[:32]
    key = f"used-token:{identity.subdomain}:{identity.installation_id}:{name}"
    try:
        first = await store.add(key, b"1", max(ttl, 1.0))
    except CacheUnavailable as exc:
        logger.warning("could not record a signed-URL token as used: %s", exc.message)
        return
    if not first:
        raise _reject("token already used; reload the app")


def _capped(
    issued_at: datetime, expires_at: datetime, settings: Settings
) -> tuple[datetime, datetime]:
    """`exp` held to `CC_ZENDESK_TOKEN_MAX_AGE` after `iat`, and checked again."""
    latest = issued_at + timedelta(seconds=settings.zendesk_token_max_age)
    expires_at = min(expires_at, latest)
    if datetime.now(UTC) - expires_at > timedelta(seconds=settings.zendesk_jwt_leeway):
        raise _reject("token expired")
    return issued_at, expires_at


# -- ZAF secure requests (HS256) ------------------------------------------------------------------


def verify_secure_request_token(token: str, *, settings: Settings) -> ZendeskIdentity:
    """Verify a `{{jwt.token}}` minted by Zendesk's proxy for a ZAF secure request.

    Proves only that the request passed through the Zendesk proxy with this installation's
    shared secret. The claims come from browser code, so none is read as identity; `iss` and
    `aud` are not checked because nothing trustworthy sets them.
    """
    secret = settings.zendesk_shared_secret
    if secret is None:
        raise _reject("secure requests are not configured")
    subdomain, installation_id = _installation(settings, "secure requests")
    _check_shape(token, "HS256")
    try:
        claims = jwt.decode(
            token,
            secret.get_secret_value(),
            algorithms=["HS256"],
            leeway=settings.zendesk_jwt_leeway,
            options={
                "require": ["exp", "iat"],
                "verify_aud": False,
                "verify_iss": False,
                "verify_sub": False,
                "verify_jti": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.PyJWTError as exc:
        raise _reject(_reason(exc)) from None
    issued_at, expires_at = _capped(*_times(claims), settings)
    return ZendeskIdentity(
        subdomain=subdomain,
        installation_id=installation_id,
        user_id=None,
        location=None,
        issued_at=issued_at,
        expires_at=expires_at,
        source="secure_request",
    )


# -- our own sessions (HS256) ---------------------------------------------------------------------


def issue_session(
    identity: ZendeskIdentity, *, settings: Settings, now: datetime | None = None
) -> str:
    """A session token for `identity`, valid for `CC_SESSION_TTL` seconds."""
    secret = settings.session_secret
    if secret is None:
        raise ConfigError(f"set {ENV_PREFIX}SESSION_SECRET to issue sessions")
    if (identity.subdomain, identity.installation_id) != (
        settings.zendesk_subdomain,
        settings.zendesk_installation_id,
    ):
        raise _reject("identity is for another Zendesk installation")
    issued = int((now or datetime.now(UTC)).timestamp())
    claims: dict[str, Any] = {
        "iss": SESSION_ISSUER,
        "aud": SESSION_AUDIENCE,
        "sub": _session_subject(identity.subdomain, identity.installation_id),
        "subdomain": identity.subdomain,
        "installation_id": identity.installation_id,
        "user_id": identity.user_id,
        "location": identity.location,
        "src": identity.source,
        "iat": issued,
        "exp": issued + settings.session_ttl,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, secret.get_secret_value(), algorithm="HS256")


def verify_session(token: str, *, settings: Settings, now: datetime | None = None) -> Session:
    """Check a token from `issue_session`; raises `Unauthorized` with a short reason."""
    secret = settings.session_secret
    if secret is None:
        raise _reject("sessions are not configured")
    _check_shape(token, "HS256", what="session")
    try:
        claims = jwt.decode(
            token,
            secret.get_secret_value(),
            algorithms=["HS256"],
            audience=SESSION_AUDIENCE,
            issuer=SESSION_ISSUER,
            options={
                "require": ["exp", "iat", "iss", "aud", "sub", "jti"],
                # Times are checked below against `now`, which tests may set.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "enforce_minimum_key_length": True,
            },
        )
    except jwt.PyJWTError as exc:
        raise _reject(_reason(exc).replace("token", "session")) from None
    issued_at, expires_at = _times(claims, what="session")
    current = now or datetime.now(UTC)
    if expires_at <= current:
        raise _reject("session expired")
    if (issued_at - current).total_seconds() > SESSION_CLOCK_SKEW:
        raise _reject("session not yet valid")

    subdomain = claims.get("subdomain")
    installation_id = claims.get("installation_id")
    user_id = claims.get("user_id")
    location = claims.get("location")
    source = claims.get("src")
    if (
        not isinstance(subdomain, str)
        or type(installation_id) is not int
        or claims["sub"] != _session_subject(subdomain, installation_id)
        or not (user_id is None or isinstance(user_id, str))
        or not (location is None or isinstance(location, str))
        or source not in ("signed_url", "secure_request")
    ):
        raise _reject("malformed session")
    if (subdomain, installation_id) != (
        settings.zendesk_subdomain,
        settings.zendesk_installation_id,
    ):
        raise _reject("session is for another Zendesk installation")
    return Session(
        subdomain=subdomain,
        installation_id=installation_id,
        user_id=user_id,
        location=location,
        source=source,
        session_id=str(claims["jti"]),
        issued_at=issued_at,
        expires_at=expires_at,
    )


class VerifiedSessions:
    """Sessions already verified, by token: the sidebar sends the same one with every call.

    A hit skips the signature check (the token is byte-for-byte the one verified) but never the
    expiry check. Bounded; the oldest entries go first."""

    def __init__(self, size: int = 10_000) -> None:
        self._sessions: LRU[str, Session] = LRU(size)

    def verify(self, token: str, *, settings: Settings, now: datetime | None = None) -> Session:
        moment = now or datetime.now(UTC)
        session = self._sessions.get(token)
        if session is not None and session.expires_at > moment:
            return session
        session = verify_session(token, settings=settings, now=now)
        self._sessions.put(token, session)
        return session


def _session_subject(subdomain: str, installation_id: int) -> str:
    return f"zendesk:{subdomain}:{installation_id}"


# -- shared helpers -------------------------------------------------------------------------------


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when there is none.

    The one parser for every endpoint that takes a bearer token."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _installation(settings: Settings, feature: str) -> tuple[str, int]:
    subdomain, installation_id = settings.zendesk_subdomain, settings.zendesk_installation_id
    if subdomain is None or installation_id is None:
        raise _reject(f"{feature} are not configured")
    return subdomain, installation_id


def _check_shape(token: object, algorithm: str, *, what: str = "token") -> None:
    """Cheap checks that need no key; the signature check pins `algorithm` again."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise _reject(f"malformed {what}")
    try:
        header = jwt.get_unverified_header(token)
        jwt.decode(token, options={"verify_signature": False})  # the payload is a JSON object
    except jwt.PyJWTError:
        raise _reject(f"malformed {what}") from None
    if header.get("alg") != algorithm:
        raise _reject("unexpected signing algorithm")


def _times(claims: Mapping[str, Any], *, what: str = "token") -> tuple[datetime, datetime]:
    try:
        return (
            datetime.fromtimestamp(int(claims["iat"]), UTC),
            datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        raise _reject(f"malformed {what}") from None


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "signature invalid"),
    (jwt.InvalidAlgorithmError, "unexpected signing algorithm"),
    (jwt.InvalidKeyError, "signing key unusable"),
    (jwt.InvalidIssuedAtError, "malformed token"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    """A short, fixed reason: PyJWT's own messages are not shown to anyone."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token has no {exc.claim} claim"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "invalid token"


def _reject(reason: str) -> Unauthorized:
    logger.info("rejected a Zendesk or session token: %s", reason)
    return Unauthorized(reason)
