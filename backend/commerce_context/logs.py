"""Logging configuration, applied only by the entry points (cli.py)."""

from __future__ import annotations

import logging.config
from typing import Any

__all__ = ["configure", "log_config"]

FORMAT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s"


def log_config(level: str = "info") -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "correlation": {"()": "commerce_context.correlation.CorrelationFilter"},
            # Last line of defence: e-mail addresses and phone numbers never reach the logs.
            "redact": {"()": "commerce_context.policy.RedactingFilter"},
        },
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["correlation", "redact"],
            }
        },
        "loggers": {
            "commerce_context": {
                "level": level.upper(),
                "handlers": ["stderr"],
                "propagate": False,
            },
            "uvicorn": {"level": level.upper(), "handlers": ["stderr"], "propagate": False},
            # httpx logs full URLs, whose query strings may carry customer data.
            "httpx": {"level": "WARNING", "handlers": ["stderr"], "propagate": False},
        },
    }


def configure(level: str = "info") -> None:
    logging.config.dictConfig(log_config(level))
