"""Embedded-mode dedup store: the event ids each app has sent, in the shared SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from insights_common.sqlite import SqliteDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS ing_seen_events (
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (app_id, event_id)
) WITHOUT ROWID;
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso_utc(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so stored values sort as text in time order."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


class SqliteDedupStore:
    def __init__(self, db: SqliteDatabase, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock
        db.migrate(SCHEMA)

    async def seen(self, app_id: str, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        # One bound JSON array instead of a placeholder per id: no statement-size limit to chunk
        # around, and no SQL built from strings.
        wanted = json.dumps(list(event_ids))

        def lookup(conn: sqlite3.Connection) -> set[str]:
            rows = conn.execute(
                "SELECT event_id FROM ing_seen_events"
                " WHERE app_id = ? AND event_id IN (SELECT value FROM json_each(?))",
                (app_id, wanted),
            )
            return {str(row["event_id"]) for row in rows}

        return await self._db.read(lookup)

    async def record(self, app_id: str, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        seen_at = iso_utc(self._clock())
        rows = [(app_id, event_id, seen_at) for event_id in event_ids]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO ing_seen_events (app_id, event_id, seen_at)"
                " VALUES (?, ?, ?)",
                rows,
            )

        await self._db.write(insert)
