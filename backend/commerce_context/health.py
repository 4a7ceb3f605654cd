"""Liveness and readiness probes for load balancers and orchestrators, and upstream health.

* `/healthz`: the process is up. Touches nothing.
* `/readyz`: this instance can serve: its configuration loaded and its cache's store (Redis,
  when configured) answers. commercetools is checked and reported (`checks.commercetools`), but
  it does not decide readiness: an outage affects every replica alike, and the cache serves
  the last known panels ("as of") through it, so taking the replicas out of rotation would only
  turn a degraded sidebar into none.
* `/healthz/upstream`: commercetools alone, for monitoring: 200 when it answers a real read,
  503 with `Retry-After` when it does not.

Every upstream check is bounded (`CHECK_TIMEOUT`): a hung commercetools makes a probe slow by
that much, never by the client's full timeout.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse

from .cache import Reader
from .commercetools import CommercetoolsClient, budget
from .errors import retry_after_header
from .exceptions import UpstreamError

__all__ = ["healthz", "readyz", "upstream"]

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0


async def healthz(request: Request) -> JSONResponse:
    """The process is up and serving. Touches nothing else."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    reader: Reader = request.state.reader
    checks = {"config": "ok", "cache": "ok"}
    try:
        await asyncio.wait_for(reader.check_store(), CHECK_TIMEOUT)
    except (UpstreamError, TimeoutError) as exc:
        code = exc.code if isinstance(exc, UpstreamError) else "timeout"
        logger.warning("not ready: the cache's store does not answer (%s)", code)
        checks["cache"] = code
    ready = all(value == "ok" for value in checks.values())
    # Reported, not decisive (see the module docstring).
    checks["commercetools"] = await _commercetools(request.state.commercetools)
    headers = {} if ready else {"Retry-After": retry_after_header(None)}
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers=headers,
    )


async def upstream(request: Request) -> JSONResponse:
    state = await _commercetools(request.state.commercetools)
    ok = state == "ok"
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": {"commercetools": state}},
        status_code=200 if ok else 503,
        headers={} if ok else {"Retry-After": retry_after_header(None)},
    )


async def _commercetools(client: CommercetoolsClient) -> str:
    """ "ok", or the error code (`upstream_unavailable`, `upstream_auth_error`, ...)."""
    try:
        with budget(CHECK_TIMEOUT):
            await asyncio.wait_for(client.ping(), CHECK_TIMEOUT)
    except UpstreamError as exc:
        logger.warning("commercetools check failed: %s", exc.message)
        return exc.code
    except TimeoutError:
        logger.warning("commercetools check failed: no answer in %.0f s", CHECK_TIMEOUT)
        return "timeout"
    return "ok"
