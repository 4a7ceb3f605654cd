"""A small async database layer over SQLite (embedded default) and PostgreSQL (several instances).

    db = Database.from_url("sqlite:///var/lib/cc/state.sqlite3")      # or postgresql://...
                                            # (?busy_timeout=5: seconds to wait for a lock)
    await db.open()                          # connects and runs the migrations
    await db.execute("UPDATE t SET a = ? WHERE id = ?", (1, "x"))
    rows = await db.fetchall("SELECT * FROM t WHERE id = :id", {"id": "x"})
    async with db.transaction() as tx:       # BEGIN IMMEDIATE on SQLite
        await tx.execute(...)

SQL is written once with `?` (or `:name`) parameters and translated for psycopg. Rows come back
as plain dicts. SQLite runs in one worker thread per database (stdlib sqlite3, WAL,
synchronous=FULL so a commit is on disk before `execute` returns, busy_timeout); PostgreSQL uses
psycopg 3 with a psycopg_pool connection pool whose connections are checked before use, so a
dropped connection costs one reconnect instead of a failed job. Operational failures (locked
file, lost server) raise `DatabaseUnavailable`; callers retry later.

Migrations are versioned (`schema_migrations`) and run at `open()` under a lock, so instances
starting together apply each once.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from .exceptions import ConfigError, DatabaseUnavailable

__all__ = ["Database", "Params", "Row", "Transaction"]

Row = dict[str, Any]
Params = Sequence[Any] | Mapping[str, Any]
Dialect = Literal["sqlite", "postgresql"]

_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_SCHEMA = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Versioned migrations. `{real}` is a double-precision float (timestamps are epoch seconds:
# the same arithmetic on both backends), `{serial}` an auto-incrementing integer key.
MIGRATIONS: tuple[tuple[int, str], ...] = (
    (
        1,
        """
        CREATE TABLE jobs (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            destination TEXT NOT NULL,
            payload TEXT NOT NULL,
            key TEXT NOT NULL,
            coalesce_key TEXT,
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            run_at {real} NOT NULL,
            lease_until {real},
            lease_token TEXT,
            worker TEXT,
            last_error TEXT,
            result TEXT,
            correlation_id TEXT,
            source TEXT,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        );
        CREATE INDEX jobs_runnable ON jobs (state, run_at);
        CREATE INDEX jobs_lease ON jobs (state, lease_until);
        CREATE INDEX jobs_updated ON jobs (updated_at);
        CREATE UNIQUE INDEX jobs_coalesce_queued ON jobs (coalesce_key)
            WHERE state = 'queued' AND coalesce_key IS NOT NULL;
        CREATE TABLE job_keys (
            key TEXT PRIMARY KEY,
            job_id TEXT NOT NULL,
            created_at {real} NOT NULL
        );
        CREATE INDEX job_keys_job ON job_keys (job_id);
        CREATE TABLE ledger (
            key TEXT PRIMARY KEY,
            result TEXT NOT NULL,
            at {real} NOT NULL
        );
        CREATE INDEX ledger_at ON ledger (at);
        CREATE TABLE limits (
            destination TEXT PRIMARY KEY,
            tokens {real} NOT NULL,
            refilled_at {real} NOT NULL,
            paused_until {real} NOT NULL DEFAULT 0,
            strikes INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE audit (
            id {serial},
            at {real} NOT NULL,
            correlation_id TEXT,
            source TEXT NOT NULL,
            target TEXT NOT NULL,
            action TEXT NOT NULL,
            outcome TEXT NOT NULL,
            ticket_id TEXT,
            order_id TEXT,
            order_number TEXT,
            customer_id TEXT,
            agent_id TEXT,
            job_id TEXT,
            detail TEXT NOT NULL
        );
        CREATE INDEX audit_at ON audit (at);
        CREATE INDEX audit_ticket ON audit (ticket_id, at);
        CREATE INDEX audit_order ON audit (order_id, at);
        CREATE INDEX audit_order_number ON audit (order_number, at);
        CREATE INDEX audit_customer ON audit (customer_id, at);
        CREATE INDEX audit_correlation ON audit (correlation_id, at);
        CREATE INDEX audit_job ON audit (job_id);
        """,
    ),
    (
        2,
        # Tidio (tidio.py, links.py): revoked signed links until they would have expired
        # anyway, and the Tidio contact id of each distinct_id (learned from webhooks; `at` is
        # the webhook's created_at, so an older delivery arriving late changes nothing).
        """
        CREATE TABLE revoked_links (
            link_id TEXT PRIMARY KEY,
            revoked_at {real} NOT NULL,
            expires_at {real} NOT NULL
        );
        CREATE INDEX revoked_links_expires ON revoked_links (expires_at);
        CREATE TABLE tidio_contacts (
            distinct_id TEXT PRIMARY KEY,
            contact_id TEXT NOT NULL,
            at {real} NOT NULL,
            updated_at {real} NOT NULL
        );
        CREATE INDEX tidio_contacts_contact ON tidio_contacts (contact_id);
        """,
    ),
    (
        3,
        # Tidio (tidio.py): whom each distinct_id stands for, as identify last learned it, so
        # the contact panel's link is made on the server and never handed to a browser.
        """
        CREATE TABLE tidio_visitors (
            distinct_id TEXT PRIMARY KEY,
            customer_id TEXT,
            anonymous_id TEXT,
            cart_id TEXT,
            store TEXT,
            updated_at {real} NOT NULL
        );
        CREATE INDEX tidio_visitors_updated ON tidio_visitors (updated_at);
        """,
    ),
)

_TYPES: dict[Dialect, dict[str, str]] = {
    "sqlite": {"real": "REAL", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"},
    "postgresql": {
        "real": "DOUBLE PRECISION",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    },
}


class Transaction(Protocol):
    dialect: Dialect

    async def execute(self, sql: str, params: Params = ()) -> int: ...
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...
    async def fetchone(self, sql: str, params: Params = ()) -> Row | None: ...


class Database:
    """One of the two backends; see the module docstring."""

    dialect: Dialect

    @staticmethod
    def from_url(url: str, *, schema: str | None = None, pool_size: int = 10) -> Database:
        scheme = url.split(":", 1)[0].lower()
        if scheme == "sqlite":
            path, _, query = url.partition("?")
            options = dict(parse_qsl(query))
            try:
                busy = float(options.get("busy_timeout", 5.0))
            except ValueError:
                raise ConfigError("busy_timeout in a SQLite URL is a number of seconds") from None
            return SQLiteDatabase(_sqlite_path(path), busy_timeout=busy)
        if scheme in ("postgresql", "postgres"):
            if schema is not None and not _SCHEMA.match(schema):
                raise ConfigError(f"{schema!r} is not a valid PostgreSQL schema name")
            return PostgresDatabase(url, schema=schema, pool_size=pool_size)
        raise ConfigError(
            "the database URL must start with sqlite:/// or postgresql:// "
            f"(got a {scheme or 'missing'} scheme)"
        )

    async def open(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        raise NotImplementedError

    async def execute(self, sql: str, params: Params = ()) -> int:
        async with self.transaction() as tx:
            return await tx.execute(sql, params)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        async with self.transaction() as tx:
            return await tx.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def migrate(self) -> None:
        async with self.transaction() as tx:
            if self.dialect == "postgresql":
                # Instances starting at once: one applies the migrations, the others wait.
                await tx.execute("SELECT pg_advisory_xact_lock(4021977)")
            await tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                f"(version INTEGER PRIMARY KEY, applied_at {_TYPES[self.dialect]['real']} NOT NULL)"
            )
            rows = await tx.fetchall("SELECT version FROM schema_migrations")
            done = {row["version"] for row in rows}
            for version, script in MIGRATIONS:
                if version in done:
                    continue
                for statement in script.format(**_TYPES[self.dialect]).split(";"):
                    if statement.strip():
                        await tx.execute(statement)
                await tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (version, time.time()),
                )


def _sqlite_path(url: str) -> Path:
    # sqlite:///relative/or/absolute: three slashes then the path as written
    rest = url.split(":", 1)[1]
    if not rest.startswith("///"):
        raise ConfigError("a SQLite URL has three slashes: sqlite:///path/to/file.sqlite3")
    path = unquote(rest[3:])
    if not path:
        raise ConfigError("the SQLite URL names no file: sqlite:///path/to/file.sqlite3")
    return Path(path)


# -- SQLite -----------------------------------------------------------------------------------


class SQLiteDatabase(Database):
    dialect: Dialect = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._connection: sqlite3.Connection | None = None
        # One thread owns the connection; the lock keeps a transaction's statements together.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SQLiteDatabase({str(self.path)!r})"

    async def open(self) -> None:
        await self._call(self._connect)
        await self.migrate()

    def _connect(self) -> None:
        if self._connection is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        self._connection = connection

    async def close(self) -> None:
        async with self._lock:
            if self._connection is not None:
                await self._call(self._connection.close)
                self._connection = None
        self._executor.shutdown(wait=False)

    async def _call(self, function: Any, *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except sqlite3.OperationalError as exc:
            raise DatabaseUnavailable(f"the SQLite database is unavailable ({exc})") from None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self._lock:
            if self._connection is None:
                raise DatabaseUnavailable("the database is not open")
            connection = self._connection
            await self._call(connection.execute, "BEGIN IMMEDIATE")
            try:
                yield _SQLiteTx(self)
            except BaseException:
                with contextlib.suppress(DatabaseUnavailable, sqlite3.Error):
                    await self._call(connection.rollback)
                raise
            try:
                await self._call(connection.commit)
            except DatabaseUnavailable:
                with contextlib.suppress(DatabaseUnavailable, sqlite3.Error):
                    await self._call(connection.rollback)
                raise

    def _execute(self, sql: str, params: Params) -> tuple[int, list[Row]]:
        assert self._connection is not None
        cursor = self._connection.execute(sql, params)
        rows = [dict(r) for r in cursor.fetchall()]
        return cursor.rowcount, rows


class _SQLiteTx:
    dialect: Dialect = "sqlite"

    def __init__(self, db: SQLiteDatabase) -> None:
        self._db = db

    async def execute(self, sql: str, params: Params = ()) -> int:
        count, _ = await self._db._call(self._db._execute, sql, params)
        return int(count)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        _, rows = await self._db._call(self._db._execute, sql, params)
        return list(rows)

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None


# -- PostgreSQL -------------------------------------------------------------------------------


def _to_psycopg(sql: str, params: Params) -> str:
    if not params:  # psycopg leaves a query without parameters as written
        return sql
    sql = sql.replace("%", "%%")
    if isinstance(params, Mapping):
        return _NAMED.sub(r"%(\1)s", sql)
    return sql.replace("?", "%s")


class PostgresDatabase(Database):
    dialect: Dialect = "postgresql"

    def __init__(self, url: str, *, schema: str | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.schema = schema
        self.pool_size = pool_size
        self._pool: Any = None

    def __repr__(self) -> str:  # never the URL: it may carry a password
        parts = urlsplit(self.url)
        return f"PostgresDatabase(host={parts.hostname!r}, schema={self.schema!r})"

    async def open(self) -> None:
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if self.schema:
            kwargs["options"] = f"-c search_path={self.schema}"
        self._pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs=kwargs,
            open=False,
            check=AsyncConnectionPool.check_connection,
            timeout=10,
            reconnect_timeout=3600,
            name="commerce-context",
        )
        try:
            await self._pool.open(wait=True, timeout=10)
        except Exception as exc:
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL ({type(exc).__name__})"
            ) from None
        if self.schema:
            await self.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await self.migrate()

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        import psycopg

        if self._pool is None:
            raise DatabaseUnavailable("the database is not open")
        try:
            async with self._pool.connection() as connection, connection.transaction():
                yield _PostgresTx(connection)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"PostgreSQL is unavailable ({type(exc).__name__})") from None
        except Exception as exc:
            from psycopg_pool import PoolTimeout

            if isinstance(exc, PoolTimeout):
                raise DatabaseUnavailable("PostgreSQL is unavailable (pool timeout)") from None
            raise


class _PostgresTx:
    dialect: Dialect = "postgresql"

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._connection.execute(_to_psycopg(sql, params), params or None)
        return int(cursor.rowcount)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._connection.execute(_to_psycopg(sql, params), params or None)
        return list(await cursor.fetchall())

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None
