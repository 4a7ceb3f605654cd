"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from .commercetools import CommercetoolsClient
from .exceptions import UpstreamError

__all__ = ["healthz", "readyz"]

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving. Touches nothing else."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Config loaded (or we would not be running) and commercetools answers a real read."""
    client: CommercetoolsClient = request.state.commercetools
    try:
        await client.ping()
    except UpstreamError as exc:
        logger.warning("not ready: %s", exc.message)
        return JSONResponse(
            {"status": "unavailable", "checks": {"config": "ok", "commercetools": exc.message}},
            status_code=503,
        )
    return JSONResponse({"status": "ok", "checks": {"config": "ok", "commercetools": "ok"}})
