"""Signed, expiring, revocable links: the Tidio contact panel, order deep links for Zendesk
macros and emails, and the visitor token that binds a chat to a shopper.

A link token is `<kid>.<payload>.<mac>`:

* `payload` is base64url(JSON) of the binding (what the link may show: a customer id, an
  anonymous session id, a cart id, an order id, a store key), its kind (`panel`, `order`,
  `visitor`), when it was issued, when it expires, and a random link id (for revocation);
* `mac` is base64url(HMAC-SHA256(key of `kid`, "cc-link-1." + kid + "." + payload)).

Keys rotate without breaking links: `CC_LINK_KEYS` holds several `kid:secret` pairs; the first
signs, every one verifies (a link names its key by `kid`). To rotate, put the new pair first,
keep the old one until the longest-lived link signed with it has expired (`CC_LINK_TTL`, or the
TTL given when an order link was made), then remove it: every link it signed stops working.

Commands (cli.py):

    commerce-context links order ORDER_ID_OR_NUMBER [--ttl SECONDS]   print an order deep link
    commerce-context links revoke LINK_OR_TOKEN                        make a link stop working

What a link shows comes from its binding only, never from other query parameters. A link that
is malformed, tampered with or signed by an unknown key is `Unauthorized` (401); one that
expired or was revoked (the `revoked_links` table, `Revocations`) is `Gone` (410). Either way
the caller learns nothing about what the link would have shown.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qs, urlencode, urlsplit

from .database import Database
from .exceptions import ConfigError, Gone, Unauthorized
from .settings import Settings, load_settings

__all__ = [
    "COMMANDS",
    "Binding",
    "Link",
    "LinkKeys",
    "Revocations",
    "add_commands",
    "order_url",
    "panel_url",
    "parse_keys",
    "run",
]

Kind = Literal["panel", "order", "visitor"]
KINDS: Final = ("panel", "order", "visitor")
_DOMAIN = b"cc-link-1."
_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,256}$")  # commercetools ids, keys, anonymous ids
_MIN_KEY_BYTES = 32
MAX_TOKEN_CHARS = 2048
COMMANDS = ("links",)


def parse_keys(text: str) -> list[tuple[str, bytes]]:
    """`kid:secret[,kid:secret...]` -> [(kid, key)], first first. ValueError names the problem
    (by kid or position), never a secret."""
    keys: list[tuple[str, bytes]] = []
    for position, pair in enumerate(text.split(","), start=1):
        kid, sep, secret = pair.strip().partition(":")
        if not sep or not _KID.match(kid):
            raise ValueError(
                f"pair {position} is not kid:secret (kid: 1-16 letters, digits, _ or -)"
            )
        if len(secret.encode()) < _MIN_KEY_BYTES:
            raise ValueError(f"the secret of key {kid!r} must be at least {_MIN_KEY_BYTES} bytes")
        if any(kid == known for known, _ in keys):
            raise ValueError(f"key id {kid!r} appears twice")
        keys.append((kid, secret.encode()))
    return keys


@dataclass(frozen=True)
class Binding:
    """What a link is allowed to show (or, for a visitor token, who the chat belongs to)."""

    kind: Kind
    customer_id: str | None = None
    anonymous_id: str | None = None
    cart_id: str | None = None
    order_id: str | None = None
    store: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown link kind {self.kind!r}")
        for name in ("customer_id", "anonymous_id", "cart_id", "order_id", "store"):
            value = getattr(self, name)
            if value is not None and not _ID.match(value):
                raise ValueError(f"{name} is not an id")
        if not (self.customer_id or self.anonymous_id or self.cart_id or self.order_id):
            raise ValueError("a link must be bound to a customer, session, cart or order")

    def claims(self) -> dict[str, str]:
        short = {"c": self.customer_id, "a": self.anonymous_id, "r": self.cart_id,
                 "o": self.order_id, "s": self.store}  # fmt: skip
        return {k: v for k, v in short.items() if v is not None}


@dataclass(frozen=True)
class Link:
    """A verified link: its binding, the key that signed it, and its lifetime."""

    binding: Binding
    kid: str
    link_id: str
    issued_at: int
    expires_at: int


class LinkKeys:
    """Signs with the first key of `CC_LINK_KEYS`, verifies with any of them."""

    def __init__(
        self, keys: list[tuple[str, bytes]], *, clock: Callable[[], float] = time.time
    ) -> None:
        if not keys:
            raise ConfigError("CC_LINK_KEYS is not set: signed links are disabled")
        self._keys = dict(keys)
        self._signing = keys[0]
        self._clock = clock

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time
    ) -> LinkKeys | None:
        if settings.link_keys is None:
            return None
        return cls(parse_keys(settings.link_keys.get_secret_value()), clock=clock)

    def __repr__(self) -> str:  # key ids only
        return f"<LinkKeys signing={self._signing[0]!r} verifying={sorted(self._keys)!r}>"

    @property
    def signing_kid(self) -> str:
        return self._signing[0]

    def sign(self, binding: Binding, *, ttl: float) -> str:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "v": 1, "k": binding.kind, **binding.claims(),
            "i": now, "e": now + max(int(ttl), 1), "j": secrets.token_urlsafe(12),
        }  # fmt: skip
        kid, key = self._signing
        payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        return f"{kid}.{payload}.{_b64(_mac(key, kid, payload))}"

    def verify(self, token: str, *, kind: Kind | tuple[Kind, ...]) -> Link:
        """The link's binding; `Unauthorized` (malformed, tampered, unknown key, wrong kind) or
        `Gone` (expired). Revocation is checked by `Revocations.check`."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise Unauthorized("This link is not valid.")
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise Unauthorized("This link is not valid.")
        kid, payload, mac = parts
        key = self._keys.get(kid)
        given = _unb64(mac)
        if key is None or given is None:
            raise Unauthorized("This link is not valid (unknown key or damaged).")
        if not hmac.compare_digest(given, _mac(key, kid, payload)):
            raise Unauthorized("This link is not valid (its signature does not match).")
        claims = _claims(payload)
        wanted = (kind,) if isinstance(kind, str) else kind
        if claims is None or claims.get("k") not in wanted:
            raise Unauthorized("This link is not valid here.")
        try:
            binding = Binding(
                kind=cast(Kind, claims["k"]),
                customer_id=claims.get("c"),
                anonymous_id=claims.get("a"),
                cart_id=claims.get("r"),
                order_id=claims.get("o"),
                store=claims.get("s"),
            )
        except (ValueError, TypeError):
            raise Unauthorized("This link is not valid.") from None
        issued, expires, link_id = claims.get("i"), claims.get("e"), claims.get("j")
        if not isinstance(issued, int) or not isinstance(expires, int):
            raise Unauthorized("This link is not valid.")
        if not isinstance(link_id, str) or not link_id:
            raise Unauthorized("This link is not valid.")
        if self._clock() >= expires:
            raise Gone("This link has expired. Open a fresh one from the conversation.")
        return Link(binding, kid, link_id, issued, expires)


class Revocations:
    """Revoked link ids, kept until the links would have expired anyway."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    async def revoke(self, link: Link) -> None:
        await self.db.execute(
            "INSERT INTO revoked_links (link_id, revoked_at, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (link_id) DO NOTHING",
            (link.link_id, self.clock(), float(link.expires_at)),
        )
        await self.purge()  # the list stays as short as the links that still work

    async def check(self, link: Link) -> None:
        """`Gone` when the link was revoked."""
        row = await self.db.fetchone(
            "SELECT link_id FROM revoked_links WHERE link_id = ?", (link.link_id,)
        )
        if row is not None:
            raise Gone("This link was revoked. Ask for a new one.")

    async def purge(self) -> int:
        """Forget revocations of links that have expired (they are refused as expired)."""
        return await self.db.execute(
            "DELETE FROM revoked_links WHERE expires_at < ?", (self.clock(),)
        )


def panel_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/tidio/panel?{urlencode({'t': token})}"


def order_url(base_url: str, token: str) -> str:
    """The order deep link (Zendesk macros, emails): the same panel page, bound to one order."""
    return f"{base_url.rstrip('/')}/links/order?{urlencode({'t': token})}"


def _mac(key: bytes, kid: str, payload: str) -> bytes:
    message = _DOMAIN + kid.encode() + b"." + payload.encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    if not text or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _claims(payload: str) -> Mapping[str, Any] | None:
    raw = _unb64(payload)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


# -- commands ---------------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Adds `links order` and `links revoke` to cli.py's argparse subparsers."""
    links = commands.add_parser("links", help="make an order deep link, or revoke a signed link")
    actions = links.add_subparsers(dest="links_command", required=True)
    order = actions.add_parser("order", help="print a signed link to one order")
    order.add_argument("order", help="order id or order number")
    order.add_argument("--ttl", type=int, help="seconds the link works (default: CC_LINK_TTL)")
    revoke = actions.add_parser("revoke", help="make a signed link stop working now")
    revoke.add_argument("link", help="the link (its URL) or its token")


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    settings = settings if settings is not None else load_settings()
    keys = LinkKeys.from_settings(settings)
    if keys is None:
        raise ConfigError("CC_LINK_KEYS is not set: signed links are disabled")
    if args.links_command == "order":
        if not settings.public_url:
            raise ConfigError("set CC_PUBLIC_URL: links must say where this service is reached")
        if not _ID.match(args.order or ""):
            raise ConfigError(f"{args.order!r} is not an order id or order number")
        ttl = args.ttl if args.ttl is not None else settings.link_ttl
        if not 60 <= ttl <= 366 * 86400:
            raise ConfigError("--ttl must be between 60 seconds and a year")
        token = keys.sign(Binding("order", order_id=args.order), ttl=ttl)
        print(order_url(settings.public_url, token))
        return 0
    return asyncio.run(_revoke(settings, keys, args.link))


async def _revoke(settings: Settings, keys: LinkKeys, text: str) -> int:
    from .worker import open_engine

    token = text.strip()
    if "?" in token:
        token = (parse_qs(urlsplit(token).query).get("t") or [""])[0]
    try:
        link = keys.verify(token, kind=KINDS)
    except Gone:
        print("This link has already expired; nothing to revoke.")
        return 0
    except Unauthorized as exc:
        raise ConfigError(f"not a link signed by this service: {exc.message}") from None
    async with open_engine(settings) as engine:
        await Revocations(engine.database).revoke(link)
    print(f"Revoked link {link.link_id} ({link.binding.kind}, key {link.kid}).")
    return 0
