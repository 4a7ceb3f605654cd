"""How many lookups an agent may make: per session and per agent, per minute.

Without a bound, one agent session could probe hundreds of email addresses a minute for
whether they are customers. Each panels request is one lookup, counted in one-minute windows
(each opens with the first lookup after the last one closed) in the cache's store, so replicas
sharing Redis share the count: `CC_LOOKUPS_PER_SESSION` per sidebar session and
`CC_LOOKUPS_PER_AGENT` per Zendesk agent across all of their sessions. Past either, the answer
is 429 with `Retry-After` (the seconds left in the window). A refused lookup still counts, so
hammering does not shorten the wait.

Bundled-assets mode (ZAF secure requests) carries no session and no attested agent, so it is
counted per installation against the agent limit times `INSTALLATION_FACTOR`.

If the store (Redis) does not answer, lookups are let through and a warning is logged: a
limit must not take the sidebar down with the cache.
"""

from __future__ import annotations

import logging

from .exceptions import CacheUnavailable, TooManyRequests
from .stores import Store
from .tokens import Session, ZendeskIdentity

__all__ = ["Quota"]

logger = logging.getLogger(__name__)

WINDOW = 60.0
INSTALLATION_FACTOR = 20


class Quota:
    def __init__(
        self,
        store: Store,
        *,
        per_session: int,
        per_agent: int,
    ) -> None:
        self._store = store
        self._per_session = per_session
        self._per_agent = per_agent

    async def charge(self, caller: Session | ZendeskIdentity) -> None:
        """Count one lookup for `caller`; TooManyRequests when a limit is passed."""
        account = f"{caller.subdomain}:{caller.installation_id}"
        buckets: list[tuple[str, int]] = []
        if isinstance(caller, Session):
            buckets.append((f"session:{caller.session_id}", self._per_session))
            if caller.user_id:
                buckets.append((f"agent:{account}:{caller.user_id}", self._per_agent))
        else:
            buckets.append((f"installation:{account}", self._per_agent * INSTALLATION_FACTOR))
        try:
            for bucket, limit in buckets:
                count, left = await self._store.count(f"quota:{bucket}", WINDOW)
                if count > limit:
                    raise TooManyRequests(
                        "Too many lookups in a short time. Wait a moment and try again.",
                        retry_after=left,
                    )
        except CacheUnavailable as exc:
            logger.warning("lookups not counted: %s", exc.message)
