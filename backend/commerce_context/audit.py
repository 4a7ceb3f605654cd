"""The audit log: who did what to which ticket, order and customer, and how it ended.

Every job, writeback, agent action and ticket-to-order association is one row: timestamp,
correlation id, source (`zendesk:webhook`, `sidebar`, `worker`, ...), target
(`commercetools:order`, ...), action, outcome, the ids involved (ticket, order id and number,
customer, agent, job) and a small `detail` object. Ids and masked values only: `detail` is
passed through `scrub()`, which masks values whose key names personal data (emails, phones,
names, addresses, free text) and shortens long strings, so a careless caller cannot store PII in
clear. Rows older than the retention (`CC_AUDIT_RETENTION_DAYS`) are purged by the workers.

Sidebar lookups (one row per panels request: agent, ticket, how the shopper was found, the
customer and orders shown) happen on the hot path, where a database write per view would cost
more than the cached view itself: `note()` only appends to a bounded in-memory buffer, and
`flusher()` (a lifespan task) writes the buffer in one transaction every `FLUSH_INTERVAL`
seconds and at shutdown. A crash can lose the last fraction of a second of lookup rows; jobs,
writebacks and actions are recorded synchronously, in their own transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Required, TypedDict, Unpack

from .database import Database, Row, Transaction
from .exceptions import BadRequest, CommerceContextError
from .policy import mask_email, mask_phone, mask_text

__all__ = ["Audit", "AuditEntry", "scrub"]

logger = logging.getLogger(__name__)

_LONGEST = 200
FLUSH_INTERVAL = 0.5  # seconds between writes of noted rows
BUFFER_ROWS = 10_000  # noted rows kept while the database does not answer
_MAX_ROWS = 1000
# Substrings of detail keys whose values are personal data; checked in this order.
_MASKS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("email", mask_email),
    ("phone", mask_phone),
    ("mobile", mask_phone),
    ("name", mask_text),
    ("address", mask_text),
    ("street", mask_text),
    ("city", mask_text),
    ("note", mask_text),
    ("comment", mask_text),
    ("text", mask_text),
    ("body", mask_text),
    ("message", mask_text),
)


def scrub(value: Any, key: str = "") -> Any:
    """`value` safe to keep: personal data masked by key, long strings cut, depth bounded."""
    lowered = key.lower()
    if isinstance(value, dict):
        return {str(k): scrub(v, str(k)) for k, v in list(value.items())[:50]}
    if isinstance(value, list | tuple):
        return [scrub(v, key) for v in list(value)[:50]]
    if isinstance(value, str):
        for needle, masker in _MASKS:
            if needle in lowered:
                return masker(value)
        return value if len(value) <= _LONGEST else value[:_LONGEST] + "…"
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(type(value).__name__)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    correlation_id: str | None
    source: str
    target: str
    action: str
    outcome: str
    ticket_id: str | None
    order_id: str | None
    order_number: str | None
    customer_id: str | None
    agent_id: str | None
    job_id: str | None
    detail: dict[str, Any]

    @classmethod
    def from_row(cls, row: Row) -> AuditEntry:
        return cls(**{**row, "id": int(row["id"]), "detail": json.loads(row["detail"])})

    @property
    def when(self) -> str:
        return datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "when": self.when}


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


class AuditFields(TypedDict, total=False):
    """An audit row's fields, as `record()` and `note()` take them."""

    action: Required[str]
    source: Required[str]
    target: Required[str]
    outcome: Required[str]
    correlation_id: str | None
    ticket_id: object
    order_id: object
    order_number: object
    customer_id: object
    agent_id: object
    job_id: str | None
    detail: dict[str, Any] | None


_INSERT = (
    "INSERT INTO audit (at, correlation_id, source, target, action, outcome, ticket_id, "
    "order_id, order_number, customer_id, agent_id, job_id, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Audit:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._noted: deque[dict[str, Any]] = deque(maxlen=BUFFER_ROWS)
        self.dropped = 0  # noted rows lost to a full buffer (the database down for long)

    def note(self, **row: Unpack[AuditFields]) -> None:
        """An audit row written soon (see the module docstring), without waiting: the same
        fields as `record()`. Costs an append on the caller's path."""
        if len(self._noted) == self._noted.maxlen:
            self.dropped += 1
        self._noted.append({"at": self.clock(), **row})

    async def flush(self) -> int:
        """Writes the noted rows in one transaction; returns how many."""
        batch: list[dict[str, Any]] = []
        while self._noted:
            batch.append(self._noted.popleft())
        if not batch:
            return 0
        try:
            async with self.db.transaction() as tx:
                for row in batch:
                    await tx.execute(_INSERT, self._params(row.pop("at"), **row))
        except CommerceContextError:
            self._noted.extendleft(reversed(batch))  # kept for the next flush, bounded
            raise
        return len(batch)

    async def flusher(self, interval: float = FLUSH_INTERVAL) -> None:
        """Writes noted rows every `interval` seconds until cancelled, then once more."""
        try:
            while True:
                await asyncio.sleep(interval)
                try:
                    await self.flush()
                except CommerceContextError as exc:
                    logger.warning("audit rows not written yet: %s", exc.message)
        finally:
            with contextlib.suppress(CommerceContextError):
                await self.flush()

    def _params(self, at: float, **row: Unpack[AuditFields]) -> tuple[Any, ...]:
        return (
            at,
            row.get("correlation_id"),
            row["source"],
            row["target"],
            row["action"],
            row["outcome"],
            _text(row.get("ticket_id")),
            _text(row.get("order_id")),
            _text(row.get("order_number")),
            _text(row.get("customer_id")),
            _text(row.get("agent_id")),
            row.get("job_id"),
            json.dumps(scrub(row.get("detail") or {}), separators=(",", ":"), sort_keys=True),
        )

    async def record(self, *, tx: Transaction | None = None, **row: Unpack[AuditFields]) -> None:
        """One audit row; inside the caller's transaction when `tx` is given."""
        params = self._params(self.clock(), **row)
        if tx is not None:
            await tx.execute(_INSERT, params)
        else:
            await self.db.execute(_INSERT, params)

    async def query(
        self,
        *,
        ticket: object = None,
        order: object = None,
        customer: object = None,
        correlation_id: str | None = None,
        job_id: str | None = None,
        limit: int = 200,
    ) -> list[AuditEntry]:
        """Rows matching every criterion given (an order matches its id or its number), oldest
        first. At least one criterion is required."""
        where: list[str] = []
        params: list[Any] = []
        if ticket is not None:
            where.append("ticket_id = ?")
            params.append(str(ticket))
        if order is not None:
            where.append("(order_id = ? OR order_number = ?)")
            params.extend((str(order), str(order)))
        if customer is not None:
            where.append("customer_id = ?")
            params.append(str(customer))
        if correlation_id is not None:
            where.append("correlation_id = ?")
            params.append(correlation_id)
        if job_id is not None:
            where.append("job_id = ?")
            params.append(job_id)
        if not where:
            raise BadRequest("give a ticket, an order, a customer, a correlation id or a job id")
        rows = await self.db.fetchall(
            f"SELECT * FROM audit WHERE {' AND '.join(where)} "  # noqa: S608 - fixed clauses
            "ORDER BY at DESC, id DESC LIMIT ?",
            (*params, max(1, min(limit, _MAX_ROWS))),
        )
        return [AuditEntry.from_row(r) for r in reversed(rows)]

    async def recent(self, limit: int = 50) -> list[AuditEntry]:
        rows = await self.db.fetchall(
            "SELECT * FROM audit ORDER BY at DESC, id DESC LIMIT ?", (max(1, min(limit, 1000)),)
        )
        return [AuditEntry.from_row(r) for r in rows]

    async def purge(self, retention_days: float) -> int:
        """Deletes rows older than the retention; returns how many."""
        before = self.clock() - retention_days * 86400
        return await self.db.execute("DELETE FROM audit WHERE at < ?", (before,))
