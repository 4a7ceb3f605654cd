"""The embedded demo (`make run`): a landing page with live data, and a simulated Zendesk ticket
whose sidebar is the real one, loaded through a signed URL minted by a local stand-in for Zendesk.

Nothing here is mounted outside the demo: `create_app(..., demo=None)` in production.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from . import queries, views
from .commercetools import CommercetoolsClient
from .exceptions import BadRequest, NotFound

__all__ = ["Demo", "DemoZendesk", "index", "zendesk_ticket", "zendesk_token"]


@dataclass(frozen=True)
class DemoZendesk:
    """Plays Zendesk's part: an app key pair and signed-URL tokens, all made at start-up."""

    private_key: rsa.RSAPrivateKey
    subdomain: str = "demo"
    app_id: int = 1
    installation_id: int = 1
    session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    # Signs the simulated ticket's webhooks (POST /demo/zendesk/webhook, webhooks.py).
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)

    @classmethod
    def generate(cls) -> DemoZendesk:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def settings(self) -> dict[str, Any]:
        return {
            "zendesk_subdomain": self.subdomain,
            "zendesk_app_id": self.app_id,
            "zendesk_installation_id": self.installation_id,
            "zendesk_public_key": self.public_pem,
            "session_secret": self.session_secret,
            "zendesk_webhook_secret": self.webhook_secret,
        }

    def token(self, *, lifetime: int = 300, **overrides: Any) -> str:
        """A signed-URL token with the claims Zendesk documents for the ones it posts."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": f"{self.subdomain}.zendesk.com",
            "aud": f"https://{self.subdomain}.zendesk.com/api/v2/apps/installations/"
            f"{self.installation_id}.json",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "sub": "demo-agent",
            "context": {"product": "support", "location": "ticket_sidebar"},
            # Signed-URL tokens open the sidebar once (tokens.accept_once): two loads within
            # one second must differ. Without a jti, the token's digest is what is remembered.
            "jti": secrets.token_urlsafe(12),
        }
        claims.update(overrides)
        return jwt.encode(claims, self.private_key, algorithm="RS256")


@dataclass(frozen=True)
class Demo:
    emails: tuple[str, ...]
    zendesk: DemoZendesk
    tickets: tuple[dict[str, Any], ...] = ()
    order_field_id: int = 0
    shop: Any = None  # storefront.DemoShop: the simulated storefront with the Tidio snippet
    zendesk_account: Any = None  # demo_sync.DemoAccount: the simulated Zendesk API account


def _demo(request: Request) -> Demo:
    demo: Demo | None = request.state.demo
    if demo is None:
        raise NotFound("This instance runs without the demo. See README.md for the panels.")
    return demo


async def index(request: Request) -> Response:
    demo = _demo(request)
    client: CommercetoolsClient = request.state.commercetools
    # One upstream request for the whole first screen, composed from the views it shows.
    reads = [queries.stores([views.STORE])]
    for index, email in enumerate(demo.emails):
        reads.append(queries.customers_by_email(email, [views.CUSTOMER], key=f"c{index}"))
        reads.append(queries.guest_orders(email, [views.ORDER_SUMMARY], key=f"g{index}"))
    found = await client.fetch(queries.compose(reads, "DemoIndex"))
    shoppers = [
        {"email": email, "customers": found[f"c{i}"], "guest_orders": found[f"g{i}"]}
        for i, email in enumerate(demo.emails)
    ]
    context = {"stores": found["stores"], "shoppers": shoppers, "tickets": demo.tickets}
    response: Response = request.state.templates.TemplateResponse(request, "demo.html", context)
    return response


# The agent the simulated ticket page presents to the app (ZAF `currentUser`).
DEMO_AGENT = {
    "id": 9001,
    "name": "Agent Smith",
    "email": "agent@example.com",
    "role": "agent",
    "locale": "en-US",
}
_AGENT_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}")


async def zendesk_ticket(request: Request) -> Response:
    """A simulated Zendesk ticket page hosting the real sidebar in an iframe."""
    demo = _demo(request)
    number = request.query_params.get("ticket", "1")
    ticket = next((t for t in demo.tickets if str(t["id"]) == number), None)
    if ticket is None:
        raise NotFound(f"The demo has no ticket {number}.")
    # The simulated agent's Zendesk language (`&locale=de`): the sidebar follows it.
    locale = request.query_params.get("locale")
    if locale is not None and not _AGENT_LOCALE.fullmatch(locale):
        raise BadRequest("locale must be a language tag such as de or en-US.")
    agent = {**DEMO_AGENT, "locale": locale or DEMO_AGENT["locale"]}
    # The ticket as Zendesk's framework exposes it to apps (client.get paths).
    host_ticket = {
        "id": ticket["id"],
        "subject": ticket["subject"],
        "requester": ticket["requester"],
        "brand": ticket["brand"],
        "custom_fields": {str(demo.order_field_id): ticket.get("order_number")},
    }
    context = {
        "ticket": ticket,
        "tickets": demo.tickets,
        "host_ticket": host_ticket,
        "subdomain": demo.zendesk.subdomain,
        "agent": agent,
        "agent_locale": locale,
    }
    response: Response = request.state.templates.TemplateResponse(
        request, "demo_ticket.html", context
    )
    return response


async def zendesk_token(request: Request) -> Response:
    """A fresh signed-URL token, as Zendesk mints one for every sidebar load."""
    demo = _demo(request)
    return JSONResponse({"token": demo.zendesk.token()}, headers={"Cache-Control": "no-store"})
