"""The floor: the least a sidebar panel endpoint can do on this stack.

One Starlette route that verifies an RS256 JWT (PyJWT, the same 2048-bit key size Zendesk uses
and `DemoZendesk` generates, algorithm, audience and issuer pinned) and renders one small
autoescaped Jinja template. No middleware, no cache, no policy. Served by the same uvicorn
configuration as the sidebar, so the difference between the two is the product's own work.
"""

from __future__ import annotations

from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

TEMPLATE = """<section class="panel">
  <h2>{{ title }}</h2>
  <p>Signed in as {{ claims.sub }} on {{ claims.iss }}; token valid until {{ claims.exp }}.</p>
</section>
"""


def create_floor_app(public_pem: str, *, audience: str, issuer: str) -> Starlette:
    key: Any = serialization.load_pem_public_key(public_pem.encode())
    template = Environment(autoescape=True).from_string(TEMPLATE)

    async def floor(request: Request) -> Response:
        _scheme, _, token = request.headers.get("authorization", "").partition(" ")
        await request.body()
        try:
            claims = jwt.decode(token, key, algorithms=["RS256"], audience=audience, issuer=issuer)
        except jwt.PyJWTError:
            return PlainTextResponse("unauthorized", status_code=401)
        return HTMLResponse(template.render(title="Customer", claims=claims))

    return Starlette(routes=[Route("/floor", floor, methods=["POST"])])
