"""The Messages API poller: change detection without subscriptions.

Every `CC_MESSAGES_POLL_INTERVAL` seconds it reads messages created after its position minus
`CC_MESSAGES_OVERLAP` (messages can become visible late, so a strict cursor would miss some),
skips the ids it has seen, applies the rest like pushed events, and stores its new position.
Position and seen ids live in SQLite (`CC_STATE_PATH`), so restarts resume. The first run
starts from "now minus the overlap": history is not replayed into an empty cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from .cache import Reader
from .commercetools import CommercetoolsClient
from .events import apply_events, parse_payload
from .exceptions import BadRequest, CommerceContextError
from .jobs import Queue
from .settings import Settings
from .state import StateFile
from .tidio_sync import enqueue_for_events as enqueue_tidio
from .zendesk_sync import enqueue_for_events as enqueue_zendesk

__all__ = ["MessagesPoller"]

logger = logging.getLogger(__name__)
CURSOR = "messages.cursor"
PAGE = 500


class MessagesPoller:
    def __init__(
        self,
        client: CommercetoolsClient,
        reader: Reader,
        state: StateFile,
        *,
        interval: float,
        overlap: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        queue: Queue | None = None,
        settings: Settings | None = None,
    ) -> None:
        self._client = client
        self._reader = reader
        self._state = state
        self._interval = interval
        self._overlap = timedelta(seconds=overlap)
        self._now = now
        self._queue, self._settings = queue, settings  # for the outbound sync jobs

    async def poll_once(self) -> int:
        """One poll; returns how many new messages were applied."""
        stored = await self._state.get(CURSOR)
        cursor = _parse(stored) if stored else self._now() - self._overlap
        since = cursor - self._overlap
        applied = 0
        while True:
            page = await self._client.messages(after=_format(since), limit=PAGE)
            # Recorded as seen only once applied and enqueued: a failure (the job database
            # down) leaves them unseen, so the next poll, re-reading the overlap, tries again.
            fresh = set(await self._state.new_ids(m["id"] for m in page))
            events = []
            for message in page:
                if message["id"] not in fresh:
                    continue
                try:
                    events.append(parse_payload({"notificationType": "Message", **message}))
                except BadRequest as exc:
                    logger.warning("skipping message %s: %s", message.get("id"), exc.message)
            if events:
                if self._queue is not None and self._settings is not None:
                    await enqueue_zendesk(self._queue, self._settings, events)
                    await enqueue_tidio(self._queue, self._settings, events)
                await apply_events(self._reader, events)
                applied += len(events)
            await self._state.unseen((m["id"], m["createdAt"]) for m in page if m["id"] in fresh)
            if page:
                cursor = max(cursor, max(_parse(m["createdAt"]) for m in page))
            if len(page) < PAGE:
                break
            # A full page: continue from its last message (ids de-duplicate the boundary).
            since = _parse(page[-1]["createdAt"])
        await self._state.set(CURSOR, _format(cursor))
        await self._state.forget_before(_format(cursor - 4 * self._overlap))
        return applied

    async def run(self) -> None:
        """Poll forever (a lifespan task); failures are logged and retried next interval."""
        while True:
            try:
                applied = await self.poll_once()
                if applied:
                    logger.info("messages poll: %d new message(s) applied", applied)
            except CommerceContextError as exc:
                logger.warning("messages poll failed: %s", exc.message)
            await asyncio.sleep(self._interval)


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _format(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )
