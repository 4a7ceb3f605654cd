"""The job handlers by kind: the registry that `serve` (in-process workers) and
`commerce-context worker` both run.

A handler is a plain idempotent async function `(ctx: JobContext, payload) -> dict | None`
(see worker.py for what it may raise and what happens then). Register each one here by kind.
"""

from __future__ import annotations

from typing import Any

from . import actions, tidio, tidio_sync, writebacks, zendesk_sync
from .webhooks import PREFETCH, WRITEBACK
from .worker import Handler, JobContext

__all__ = ["HANDLERS", "noop"]


async def noop(ctx: JobContext, payload: dict[str, Any]) -> dict[str, Any] | None:
    """Does nothing; useful to check that a worker runs (`kind="noop"`)."""
    return {"noop": True}


HANDLERS: dict[str, Handler] = {
    "noop": noop,
    WRITEBACK: writebacks.writeback,
    PREFETCH: writebacks.prefetch,
    **actions.HANDLERS,
    **zendesk_sync.HANDLERS,
    **tidio.HANDLERS,
    **tidio_sync.HANDLERS,
}
