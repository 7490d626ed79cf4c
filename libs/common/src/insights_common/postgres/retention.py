"""Retention settings in PostgreSQL, for the distributed mode: the rules of `retention.py`.

Replicas of the query service each run the pass on their schedule; a session-level advisory
lock, held on one connection for the whole pass, lets one of them in at a time and the others
skip their turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from insights_common.postgres.database import PostgresDatabase
from insights_common.retention import Retention, check_days

COMPONENT = "retention"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE app_retention (
        app_id text PRIMARY KEY,
        days integer NOT NULL CHECK (days >= 1),
        updated_at timestamptz NOT NULL
    );
    """,
)

# The first key of pg_try_advisory_lock(int, int): "a retention pass" (the second is the schema,
# so two deployments in two schemas of one database do not hold each other up).
_PASS_LOCK = 0x1F5A_0004


def _retention(row: asyncpg.Record) -> Retention:
    return Retention(row["app_id"], row["days"], row["updated_at"])


class PostgresRetentionSettings:
    """Implements `insights_common.retention.RetentionSettings`. Call `await s.migrate()` once."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def get(self, app_id: str) -> Retention | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT app_id, days, updated_at FROM app_retention WHERE app_id = $1", app_id
            )
        return _retention(row) if row else None

    async def set(self, app_id: str, days: int | None, *, now: datetime) -> None:
        async with self._db.acquire() as conn:
            if days is None:
                await conn.execute("DELETE FROM app_retention WHERE app_id = $1", app_id)
                return
            await conn.execute(
                "INSERT INTO app_retention (app_id, days, updated_at) VALUES ($1, $2, $3)"
                " ON CONFLICT (app_id) DO UPDATE SET days = excluded.days,"
                " updated_at = excluded.updated_at",
                app_id,
                check_days(days),
                now,
            )

    async def every(self) -> list[Retention]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                'SELECT app_id, days, updated_at FROM app_retention ORDER BY app_id COLLATE "C"'
            )
        return [_retention(row) for row in rows]

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        schema = self._db.schema or ""
        async with self._db.acquire() as conn:
            taken = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1::int, hashtext($2::text))", _PASS_LOCK, schema
            )
            try:
                yield bool(taken)
            finally:
                if taken:
                    await conn.execute(
                        "SELECT pg_advisory_unlock($1::int, hashtext($2::text))",
                        _PASS_LOCK,
                        schema,
                    )
