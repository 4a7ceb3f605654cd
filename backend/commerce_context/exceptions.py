"""The project's exception hierarchy. Every error a caller can see has one of these types.

* CommerceContextError              base; never raised itself
  + ConfigError                     a missing or contradictory setting (start-up, CLI)
  + ClientError                     the caller sent something we cannot accept (4xx)
    - BadRequest                    400
    - Unauthorized                  401 (token missing, invalid, expired)
    - Forbidden                     403
    - NotFound                      404
    - Gone                          410 (a signed link that expired or was revoked)
    - RequestTimeout                408 (the body did not arrive in time)
    - PayloadTooLarge               413
    - TooManyRequests               429 (with retry_after)
  + UpstreamError                   a third-party API failed us (502)
    - UpstreamUnavailable           timeouts, 5xx/429 after retries (503)
      . CacheUnavailable            the cache's Redis does not answer (503)
      . DatabaseUnavailable         the job database is locked or unreachable (503)
    - UpstreamAuthError             we could not authenticate upstream (502)
    - UpstreamNotFound              the upstream said 404 (404)
    - UpstreamRejected              the upstream refused the request (4xx, 502)
    - ConcurrentModification        a version conflict survived its retries (409)

Messages are written for the person reading them and never carry tokens, secrets or PII.
`code` is the machine-readable name used in the JSON error shape (see `errors.py`).
"""

from __future__ import annotations


class CommerceContextError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or self.__class__.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0])


class ConfigError(CommerceContextError):
    """The configuration is invalid."""

    code = "config_error"


class ClientError(CommerceContextError):
    """The request could not be accepted."""

    status_code = 400
    code = "bad_request"


class BadRequest(ClientError):
    """The request is malformed."""


class Unauthorized(ClientError):
    """Authentication is missing or invalid."""

    status_code = 401
    code = "unauthorized"


class Forbidden(ClientError):
    """Not allowed."""

    status_code = 403
    code = "forbidden"


class NotFound(ClientError):
    """Nothing here."""

    status_code = 404
    code = "not_found"


class Gone(ClientError):
    """The resource existed but is no longer available (an expired or revoked link)."""

    status_code = 410
    code = "gone"


class RequestTimeout(ClientError):
    """The request body did not arrive in time."""

    status_code = 408
    code = "request_timeout"


class PayloadTooLarge(ClientError):
    """The request body is too large."""

    status_code = 413
    code = "payload_too_large"


class TooManyRequests(ClientError):
    """Too many requests; try again later."""

    status_code = 429
    code = "too_many_requests"

    def __init__(self, message: str = "", *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(CommerceContextError):
    """An upstream API failed."""

    status_code = 502
    code = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    """The upstream API is unavailable; try again later."""

    status_code = 503
    code = "upstream_unavailable"

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, throttled: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # The upstream said 429: queued work pauses the destination even without Retry-After.
        self.throttled = throttled or retry_after is not None


class CacheUnavailable(UpstreamUnavailable):
    """The cache's store (Redis) is unavailable."""

    code = "cache_unavailable"


class DatabaseUnavailable(UpstreamUnavailable):
    """The job database is unavailable; try again later."""

    code = "database_unavailable"


class UpstreamAuthError(UpstreamError):
    """Authentication with the upstream API failed."""

    code = "upstream_auth_error"


class UpstreamNotFound(UpstreamError):
    """The upstream API has no such resource."""

    status_code = 404
    code = "upstream_not_found"


class UpstreamRejected(UpstreamError):
    """The upstream API rejected the request."""

    code = "upstream_rejected"

    def __init__(self, message: str = "", *, status: int = 400, errors: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = errors or []


class ConcurrentModification(UpstreamError):
    """The resource kept changing while we tried to update it."""

    status_code = 409
    code = "concurrent_modification"

    def __init__(self, message: str = "", *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version
