"""Each app's retention in the SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime

from insights_common.retention import (
    Retention,
    check_days,
)
from insights_common.sqlite.database import SqliteDatabase

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS app_retention (
    app_id TEXT PRIMARY KEY,
    days INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def _retention(row: sqlite3.Row) -> Retention:
    return Retention(row["app_id"], row["days"], datetime.fromisoformat(row["updated_at"]))


class SqliteRetentionSettings:
    """Implements RetentionSettings in the data dir's SQLite file.

    One process serves a data dir; a CLI pass beside it may overlap its own, which is harmless:
    each chunk is one write transaction, and SQLite has one writer.
    """

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        self._lock = asyncio.Lock()
        db.migrate(SQLITE_SCHEMA)

    async def get(self, app_id: str) -> Retention | None:
        def select(conn: sqlite3.Connection) -> Retention | None:
            row = conn.execute(
                "SELECT app_id, days, updated_at FROM app_retention WHERE app_id = ?", (app_id,)
            ).fetchone()
            return _retention(row) if row else None

        return await self._db.read(select)

    async def set(self, app_id: str, days: int | None, *, now: datetime) -> None:
        if days is not None:
            check_days(days)

        def change(conn: sqlite3.Connection) -> None:
            if days is None:
                conn.execute("DELETE FROM app_retention WHERE app_id = ?", (app_id,))
                return
            conn.execute(
                "INSERT INTO app_retention (app_id, days, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (app_id) DO UPDATE SET days = excluded.days,"
                " updated_at = excluded.updated_at",
                (app_id, days, now.isoformat()),
            )

        await self._db.write(change)

    async def every(self) -> list[Retention]:
        def select(conn: sqlite3.Connection) -> list[Retention]:
            rows = conn.execute(
                "SELECT app_id, days, updated_at FROM app_retention ORDER BY app_id"
            ).fetchall()
            return [_retention(row) for row in rows]

        return await self._db.read(select)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[bool]:
        if self._lock.locked():
            yield False
            return
        async with self._lock:
            yield True
