"""Logging configuration, applied only by the entry points (cli.py).

Every handler runs `policy.RedactingFilter` (e-mail addresses, phone numbers, card numbers,
payment secrets) and `QueryStringFilter`; the latter also sits on the `uvicorn.access` logger
itself, so an access line never carries the value of a token- or secret-like query parameter
(`?token=…`, `?jwt=…`, `?client_secret=…`), whichever handler ends up writing it.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

from .policy import redact

__all__ = ["JsonFormatter", "QueryStringFilter", "configure", "log_config", "redact_query"]

#: Query parameters whose values are never logged (compared without case, `-` as `_`).
SECRET_PARAMETERS: Final = frozenset(
    {
        "t",
        "token",
        "jwt",
        "code",
        "key",
        "sig",
        "signature",
        "session",
        "secret",
        "password",
        "pass",
        "auth",
        "authorization",
        "assertion",
        "state",
        "nonce",
        "otp",
        "hmac",
        "apikey",
    }
)
# A parameter is secret-like when its name holds one of these, too (`access_token`, `api_key`).
_SECRET_PARTS: Final = ("token", "secret", "passw", "signature", "session", "jwt", "_key", "auth")
# One `name=value` pair of a query string (also inside a whole logged URL or request line).
_PAIR: Final = re.compile(r"(?<=[?&;])([^=&;\s\"'#?]+)=([^&;\s\"'#]*)")
FILL: Final = "•••"


def _secret_name(name: str) -> bool:
    name = unquote(name).strip().lower().replace("-", "_")
    return name in SECRET_PARAMETERS or any(part in name for part in _SECRET_PARTS)


def _pair(match: re.Match[str]) -> str:
    name, value = match.groups()
    if value and _secret_name(name):
        return f"{name}={FILL}"
    return match.group()


def redact_query(text: str) -> str:
    """`text` with the values of token- and secret-like query parameters replaced by `•••`."""
    if "=" not in text:
        return text
    return _PAIR.sub(_pair, text)


class QueryStringFilter(logging.Filter):
    """Hides secret-like query-string values in a log record: its arguments (uvicorn's access
    log passes the request path as one) and its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(_redact_arg(a) for a in args)
        elif isinstance(args, dict):
            record.args = {k: _redact_arg(v) for k, v in args.items()}
        if isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True


def _redact_arg(value: object) -> object:
    if isinstance(value, str):
        return redact_query(value)
    if value is None or isinstance(value, int | float):
        return value  # may be formatted with %d
    text = str(value)  # an httpx.URL, a Request, ...: redacted as it would be rendered
    redacted = redact_query(text)
    return value if redacted == text else redacted


FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"

# Attributes every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "correlation_id",
    "color_message",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line (`CC_LOG_FORMAT=json`): time, level, logger, message,
    correlation_id, then the record's `extra=` fields (route, status, duration_ms, job_kind,
    outcome, ...) and the traceback as `exception`. It formats what the filters left: the
    redaction runs before it, on the same record."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", None) or "-",
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_") or key in line:
                continue
            if not isinstance(value, str | int | float | bool | None):
                # The redaction filter only sees string extras: render, then redact, the rest.
                value = redact(str(value))
            line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


def log_config(level: str = "info", fmt: str = "plain") -> dict[str, Any]:
    """`fmt`: `plain` (development) or `json` (one object per line, for log pipelines)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "correlation": {"()": "commerce_context.correlation.CorrelationFilter"},
            # Last line of defence: e-mail addresses and phone numbers never reach the logs.
            "redact": {"()": "commerce_context.policy.RedactingFilter"},
            "query": {"()": "commerce_context.logs.QueryStringFilter"},
        },
        "formatters": {
            "plain": {"format": FORMAT},
            "json": {"()": "commerce_context.logs.JsonFormatter"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json" if fmt == "json" else "plain",
                "filters": ["correlation", "query", "redact"],
            }
        },
        "loggers": {
            "commerce_context": {
                "level": level.upper(),
                "handlers": ["stderr"],
                "propagate": False,
            },
            "uvicorn": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            # On the logger too: whatever handler writes an access line, tokens stay out.
            "uvicorn.access": {
                "level": level.upper(),
                "handlers": ["stderr"],
                "propagate": False,
                "filters": ["query"],
            },
            # httpx logs full URLs, whose query strings may carry customer data.
            "httpx": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }


def configure(level: str = "info", fmt: str = "plain") -> None:
    logging.config.dictConfig(log_config(level, fmt))
