"""How long each app keeps its messages: the setting, and who may run a pass at a time.

An app without a setting keeps every message. The setting lives where the app's members and
keys live (the data dir's SQLite file, or PostgreSQL in the distributed mode), so the CLI and
every process read the same value. The pass itself belongs to the query service, which owns the
stores it removes from (`insights_query.retention`).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from insights_common.sqlite import SqliteDatabase

MIN_DAYS = 1
MAX_DAYS = 36_500
"""A hundred years: longer is as good as keeping everything, and keeps the cut-off in range."""


class InvalidRetention(ValueError):
    """A number of days the setting cannot take; the message says what it takes."""


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidRetention(
            f"days must be a whole number from {MIN_DAYS} to {MAX_DAYS} (got {days}); "
            "to keep every message, turn retention off instead"
        )
    return days


@dataclass(frozen=True, slots=True)
class Retention:
    app_id: str
    days: int
    updated_at: datetime


class RetentionSettings(Protocol):
    async def get(self, app_id: str) -> Retention | None:
        """The app's setting; None keeps every message."""
        ...

    async def set(self, app_id: str, days: int | None, *, now: datetime) -> None:
        """Keep the app's messages `days` days; None turns retention off."""
        ...

    async def every(self) -> list[Retention]:
        """Every app with a setting, by app id."""
        ...

    def exclusive(self) -> AbstractAsyncContextManager[bool]:
        """While held (True), no other process runs a retention pass; False when another does."""
        ...


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
