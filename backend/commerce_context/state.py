"""Durable state of one instance in SQLite: small key/values and seen message ids.

Used by the Messages API poller for its position and its de-duplication window, so a restart
resumes where it stopped instead of re-reading or skipping messages. SQLite calls run in a
worker thread; the connection is opened per call (the poller writes a few rows a minute).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterable
from pathlib import Path

__all__ = ["StateFile"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
"""


class StateFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
        return connection

    def _run(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        connection = self._connect()
        try:
            return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    async def get(self, key: str) -> str | None:
        rows = await asyncio.to_thread(self._run, "SELECT value FROM kv WHERE key = ?", key)
        return str(rows[0][0]) if rows else None

    async def set(self, key: str, value: str) -> None:
        await asyncio.to_thread(
            self._run,
            "INSERT INTO kv (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            value,
        )

    async def new_ids(self, ids: Iterable[str]) -> list[str]:
        """The ids not recorded yet, in order (nothing is recorded: see `unseen`)."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return []

        def work() -> list[str]:
            connection = self._connect()
            try:
                known: set[object] = set()
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start : start + 500]
                    marks = ", ".join("?" * len(chunk))
                    rows = connection.execute(
                        f"SELECT id FROM seen WHERE id IN ({marks})",  # noqa: S608
                        chunk,
                    ).fetchall()
                    known.update(row[0] for row in rows)
                return [i for i in wanted if i not in known]
            finally:
                connection.close()

        return await asyncio.to_thread(work)

    async def unseen(self, items: Iterable[tuple[str, str]]) -> list[str]:
        """Record (id, createdAt) pairs; returns the ids not recorded before, in order."""
        pairs = list(items)

        def work() -> list[str]:
            connection = self._connect()
            try:
                fresh = []
                connection.execute("BEGIN")
                for message_id, at in pairs:
                    cursor = connection.execute(
                        "INSERT OR IGNORE INTO seen (id, at) VALUES (?, ?)", (message_id, at)
                    )
                    if cursor.rowcount:
                        fresh.append(message_id)
                connection.execute("COMMIT")
                return fresh
            finally:
                connection.close()

        return await asyncio.to_thread(work)

    async def forget_before(self, at: str) -> None:
        await asyncio.to_thread(self._run, "DELETE FROM seen WHERE at < ?", at)
