"""PostgreSQL for the distributed mode: one asyncpg pool per process, migrations per component.

Each component (auth, import, ingest) owns its tables and its list of migration steps; step N of a
component is version N. `migrate` applies the steps a database has not seen yet, all in one
transaction under an advisory lock, so replicas that start together apply each step exactly once
and a failing step leaves the database as it was.

An outage is `DependencyUnavailable`: a connection refused, lost or not had from the pool within
the timeout, or a server starting up or shutting down. The pool drops a connection that a
restarted server closed and opens a new one at the next `acquire`, so service resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    CrashShutdownError,
    PostgresConnectionError,
)

from insights_common.outage import DEFAULT_TIMEOUT, DependencyUnavailable, bounded
from insights_common.postgres.traces import StatementSpans

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

# asyncpg's classes are generic only in its stubs, hence the quotes.
Connection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
OwnConnection: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

# What PostgreSQL (or the way to it) says while it is down, starting or stopping: an outage, not
# a fault of the statement. A lost connection is a PostgresConnectionError or a ConnectionError.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    PostgresConnectionError,
    CannotConnectNowError,
    AdminShutdownError,
    CrashShutdownError,
)

# What a failed reset of a connection given back raises (asyncpg closed it already).
RELEASE_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    *OUTAGE_ERRORS,
)

LOST_CONNECTION_ERRORS = (
    PostgresConnectionError,
    ConnectionError,
    AdminShutdownError,
    CrashShutdownError,
)

# The first key of pg_advisory_xact_lock(int, int): "migrations of this project" (the second key
# is the schema), so two deployments in two schemas of one database migrate independently.
_MIGRATION_LOCK = 0x1F5A_0001

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    component text NOT NULL,
    version integer NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (component, version)
)
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lost(conn: Connection) -> bool:
    """Whether a connection held by this process was closed under it (then the pool detached it
    from its proxy, which answers InterfaceError even to `is_closed`)."""
    try:
        return conn.is_closed()
    except asyncpg.InterfaceError:
        return True


class MigrationError(Exception):
    def __init__(self, component: str, version: int, cause: Exception) -> None:
        super().__init__(f"migration {component} #{version} failed, nothing was applied: {cause}")
        self.component = component
        self.version = version


class PostgresDatabase:
    """Owns the pool. Build it with `await PostgresDatabase.connect(dsn)`; close it at shutdown."""

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        *,
        schema: str | None,
        acquire_timeout: float = DEFAULT_TIMEOUT,
        connect: Callable[[], Awaitable[OwnConnection]] | None = None,
    ) -> None:
        self._pool = pool
        self.schema = schema
        self.acquire_timeout = acquire_timeout
        self._connect = connect
        self._dedicated: list[DedicatedConnection] = []

    @classmethod
    async def connect(
        cls,
        dsn: str,
        *,
        schema: str | None = None,
        min_size: int = 1,
        max_size: int = 10,
        command_timeout: float = 60.0,
        acquire_timeout: float = DEFAULT_TIMEOUT,
        tracer_provider: TracerProvider | None = None,
    ) -> PostgresDatabase:
        """Open the pool. `schema` becomes the search_path (created by `migrate` if missing).

        `acquire_timeout`: the longest wait for a connection (from the pool, or a new one) before
        `DependencyUnavailable`; statements have `command_timeout`. With a tracer provider, each
        statement made within a trace is a span (`insights_common.postgres.traces`).
        """
        server_settings = {
            "application_name": "user-insights",
            # asyncpg prepares every statement, and after five executions PostgreSQL may keep
            # one generic plan for it, costed on the tables as they were then. Statements that
            # join a batch's keys to a table that was nearly empty at that point (a new
            # deployment's dedup ids, phone directory or registry) would go on scanning the
            # whole table once it has grown, so a run of batches costs quadratically, until
            # autovacuum's next analyze. Planned for each execution's own values, they look each
            # key up in its index; a plan costs tens of microseconds, a batch's statements a few.
            "plan_cache_mode": "force_custom_plan",
        }
        if schema is not None:
            # A startup parameter, not a SET: the pool's RESET ALL on release keeps it.
            server_settings["search_path"] = quote_ident(schema)
        spans = StatementSpans(tracer_provider) if tracer_provider else None
        pool = await asyncpg.create_pool(
            dsn,
            min_size=min_size,
            max_size=max_size,
            command_timeout=command_timeout,
            # Recycle idle connections so a restarted server or a load balancer's idle cut does
            # not hand out dead ones.
            max_inactive_connection_lifetime=300.0,
            server_settings=server_settings,
            init=spans.watch if spans else None,
        )

        async def connect() -> OwnConnection:
            conn = await asyncpg.connect(
                dsn,
                command_timeout=command_timeout,
                timeout=acquire_timeout,
                server_settings=server_settings,
            )
            if spans:
                await spans.watch(conn)
            return conn

        return cls(pool, schema=schema, acquire_timeout=acquire_timeout, connect=connect)

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        return self._pool

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A pooled connection; an outage, then or in the body, is `DependencyUnavailable`.

        A lost connection means the server restarted or went: the pool's other connections
        are replaced at their next use, so a restart costs one refused call, not one for each
        connection the pool holds (asyncpg notices a closed socket only once the event loop
        has read it, and would hand the dead ones out meanwhile).
        """
        try:
            async with bounded("PostgreSQL", None, passing=OUTAGE_ERRORS):
                conn = await self._pool.acquire(timeout=self.acquire_timeout)
                try:
                    yield conn
                except asyncpg.InterfaceError as error:
                    # A server gone between two statements: asyncpg closes the connection and
                    # its pool takes it back, so the next statement is an InterfaceError ("is
                    # closed", "released back to the pool"), the loss of PostgreSQL, not a fault
                    # of the statement. Any other misuse of a live connection stays a bug.
                    if lost(conn):
                        raise ConnectionResetError(f"connection lost: {error}") from error
                    raise
                except asyncpg.InternalClientError as error:
                    # A connection a server restart left in a state its protocol cannot leave
                    # ("cannot switch to state ..."): it is dropped, not given out again.
                    if not lost(conn):
                        conn.terminate()
                    raise ConnectionResetError(f"connection broken: {error}") from error
                finally:
                    # Not under the acquire timeout (asyncpg would apply it to the reset too):
                    # a slow release on a busy machine is no outage.
                    await self._release(conn)
        except DependencyUnavailable as outage:
            if isinstance(outage.__cause__, LOST_CONNECTION_ERRORS):
                await self._pool.expire_connections()
            raise

    async def _release(self, conn: Connection) -> None:
        """Give the connection back. When its reset fails (a server restart left it in a state
        its protocol cannot leave: asyncpg's InternalClientError, "cannot switch to state"),
        asyncpg has closed it: what the body did stands (a transaction committed or rolled back
        before), so the caller is not failed for it, and the pool's other connections, likely
        broken by the same restart, are replaced at their next use."""
        try:
            await self._pool.release(conn)
        except RELEASE_ERRORS as error:
            log.warning("a PostgreSQL connection failed its reset and was closed: %s", error)
            await self._pool.expire_connections()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        """A connection inside a transaction, committed on exit, rolled back if the body raises."""
        async with self.acquire() as conn, conn.transaction():
            yield conn

    async def migrate(self, component: str, steps: Sequence[str]) -> None:
        """Apply the steps of `component` not applied yet, in order, in one transaction.

        Steps are append-only: step N is version N forever. A database ahead of this code (a newer
        replica migrated first during a rolling deploy) is left alone.
        """
        async with self.transaction() as conn:
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))",
                _MIGRATION_LOCK,
                self.schema or "",
            )
            if self.schema is not None:
                await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(self.schema)}")
            await conn.execute(_MIGRATIONS_TABLE)
            rows = await conn.fetch(
                "SELECT version FROM schema_migrations WHERE component = $1", component
            )
            applied = {int(row["version"]) for row in rows}
            for version, step in enumerate(steps, start=1):
                if version in applied:
                    continue
                try:
                    await conn.execute(step)
                except asyncpg.PostgresError as error:
                    raise MigrationError(component, version, error) from error
                await conn.execute(
                    "INSERT INTO schema_migrations (component, version) VALUES ($1, $2)",
                    component,
                    version,
                )

    async def applied_versions(self, component: str) -> list[int]:
        async with self.acquire() as conn:
            exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
            if not exists:
                return []
            rows = await conn.fetch(
                "SELECT version FROM schema_migrations WHERE component = $1 ORDER BY version",
                component,
            )
        return [int(row["version"]) for row in rows]

    async def ping(self) -> bool:
        """True when a pooled connection answers a query (for readiness probes)."""
        try:
            async with self._pool.acquire(timeout=5.0) as conn:
                return bool(await conn.fetchval("SELECT true", timeout=5.0))
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False

    def dedicated(self) -> DedicatedConnection:
        """A connection of the caller's own, outside the pool, for statements that go one at a
        time anyway (the audit trail's appends); closed with the database."""
        if self._connect is None:
            raise RuntimeError("this database was not opened by PostgresDatabase.connect")
        own = DedicatedConnection(self._connect)
        self._dedicated.append(own)
        return own

    async def close(self) -> None:
        for own in self._dedicated:
            await own.close()
        await self._pool.close()


class DedicatedConnection:
    """One connection outside the pool, its statements one at a time, opened at first use and
    again after it was lost or a statement failed on it.

    The pool's release resets each connection it takes back (RESET ALL, CLOSE ALL, UNLISTEN,
    pg_advisory_unlock_all: one more round trip, and one more transaction for PostgreSQL) because
    it cannot know what the last borrower left behind. A connection with one owner, whose
    statements leave no session state behind, needs no reset: a statement that fails closes it
    instead, so nothing it may have left is seen by the next. An outage is
    `DependencyUnavailable`, as with `PostgresDatabase.acquire`.
    """

    def __init__(self, connect: Callable[[], Awaitable[OwnConnection]]) -> None:
        self._connect = connect
        self._conn: OwnConnection | None = None
        self._turn = asyncio.Lock()
        self._closed = False

    @asynccontextmanager
    async def use(self) -> AsyncIterator[OwnConnection]:
        async with self._turn, bounded("PostgreSQL", None, passing=OUTAGE_ERRORS):
            if self._closed:
                raise asyncpg.InterfaceError("the database is closed")
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            conn = self._conn
            try:
                yield conn
            except BaseException as error:
                self._conn = None
                conn.terminate()
                if isinstance(error, asyncpg.InterfaceError | asyncpg.InternalClientError):
                    raise ConnectionResetError(f"connection lost: {error}") from error
                raise

    async def close(self) -> None:
        async with self._turn:
            self._closed = True
            if self._conn is not None:
                await self._conn.close()
                self._conn = None
