"""Every log line the suite produces, written as production writes it: a pytest plugin (loaded by
conftest.py) that formats each record of the service's loggers with the production filters
(correlation id, query-string and PII redaction) and `logs.JsonFormatter`, and checks that the
line is one JSON object of the documented shape and holds none of the seeded shoppers' e-mail
addresses or phone numbers, in any case or spacing. A test during which such a line is written
errors at teardown, with the line.

The service's loggers log at INFO, as production's default `CC_LOG_LEVEL` does, so the lines
checked are the lines production would write. The record is copied before the filters run, so
what other handlers (pytest's `caplog`) see is unchanged."""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Iterator
from typing import Final

import pytest

from commerce_context.correlation import CorrelationFilter
from commerce_context.emulator.seed import CUSTOMER_SPECS, GUEST
from commerce_context.logs import JsonFormatter, QueryStringFilter
from commerce_context.policy import RedactingFilter

#: The loggers production configures (logs.log_config) and the lowest level it writes for each.
AUDITED: Final = {
    "commerce_context": logging.INFO,
    "uvicorn": logging.INFO,
    "httpx": logging.WARNING,
}
BASE_KEYS: Final = ("time", "level", "logger", "message", "correlation_id")


def _canaries() -> tuple[str, ...]:
    found: set[str] = set()
    for spec in (*CUSTOMER_SPECS, GUEST):
        for email in (spec.email, spec.account_email):
            if email:
                found |= {email.lower(), email.lower().replace("@", "%40")}
        digits = re.sub(r"\D", "", spec.phone)
        found |= {spec.phone, digits, digits[-9:]}
    return tuple(sorted(found))


CANARIES: Final = _canaries()


class AuditHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.steps: tuple[logging.Filter, ...] = (
            CorrelationFilter(),
            QueryStringFilter(),
            RedactingFilter(),
        )
        self.json = JsonFormatter()
        self.problems: list[str] = []
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        root = record.name.split(".")[0]
        if record.levelno < AUDITED.get(root, logging.CRITICAL + 1):
            return  # a logger or level production does not write
        line = self.render(copy.copy(record))
        self.lines += 1
        problem = self.check(line)
        if problem:
            self.problems.append(f"{problem}: {line}")

    def render(self, record: logging.LogRecord) -> str:
        for step in self.steps:
            step.filter(record)
        return self.json.format(record)

    @staticmethod
    def check(line: str) -> str | None:
        if "\n" in line:
            return "not one line"
        try:
            parsed = json.loads(line)
        except ValueError:
            return "not JSON"
        if not isinstance(parsed, dict) or not all(
            isinstance(parsed.get(key), str) for key in BASE_KEYS
        ):
            return "not the documented shape"
        folded = line.lower()
        leaked = [canary for canary in CANARIES if canary.lower() in folded]
        return f"PII {leaked}" if leaked else None


_handler = AuditHandler()


def pytest_configure(config: pytest.Config) -> None:
    logging.getLogger().addHandler(_handler)
    for name, level in AUDITED.items():
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)


def pytest_unconfigure(config: pytest.Config) -> None:
    logging.getLogger().removeHandler(_handler)


@pytest.fixture(autouse=True)
def _log_lines_are_json_and_pii_free() -> Iterator[None]:
    start = len(_handler.problems)
    yield
    problems = _handler.problems[start:]
    assert not problems, "log lines production would write:\n" + "\n".join(problems)
