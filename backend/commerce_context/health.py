"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from .cache import Reader
from .commercetools import CommercetoolsClient
from .exceptions import UpstreamError

__all__ = ["healthz", "readyz"]

logger = logging.getLogger(__name__)


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving. Touches nothing else."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Config loaded (or we would not be running), commercetools answers a real read, and the
    cache's store answers (Redis, when configured)."""
    client: CommercetoolsClient = request.state.commercetools
    reader: Reader = request.state.reader
    checks = {"config": "ok", "commercetools": "ok", "cache": "ok"}
    for name, check in (("commercetools", client.ping), ("cache", reader.check_store)):
        try:
            await check()
        except UpstreamError as exc:
            logger.warning("not ready: %s", exc.message)
            checks[name] = exc.message
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
    )
