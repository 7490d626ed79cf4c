"""Erasure markers in a table of the SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping
from datetime import datetime

from insights_common.clock import sortable
from insights_common.erasure import UserKey
from insights_common.sqlite.database import SqliteDatabase


def sqlite_markers_table(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (app_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " erased_at TEXT NOT NULL, PRIMARY KEY (app_id, user_id)) WITHOUT ROWID;"
    )


class SqliteErasureMarkers:
    """ErasureMarkers in a table of the SQLite file (`sqlite_markers_table`, migrated here)."""

    def __init__(self, db: SqliteDatabase, table: str) -> None:
        self._db = db
        self._table = table
        db.migrate(sqlite_markers_table(table))

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        if not users:
            return {}
        pairs = json.dumps(sorted(users))

        def read(conn: sqlite3.Connection) -> dict[UserKey, datetime]:
            rows = conn.execute(
                f"SELECT m.app_id, m.user_id, m.erased_at FROM {self._table} m"  # noqa: S608
                " JOIN json_each(?) j ON m.app_id = j.value ->> 0 AND m.user_id = j.value ->> 1",
                (pairs,),
            )
            return {(r[0], r[1]): datetime.fromisoformat(r[2]) for r in rows}

        return await self._db.read(read)

    async def mark(self, erasures: Mapping[UserKey, datetime]) -> None:
        rows = [(app_id, user_id, sortable(at)) for (app_id, user_id), at in erasures.items()]
        await self._db.write(
            lambda conn: conn.executemany(
                f"INSERT INTO {self._table} (app_id, user_id, erased_at)"  # noqa: S608
                " VALUES (?, ?, ?) ON CONFLICT (app_id, user_id) DO UPDATE"
                f" SET erased_at = excluded.erased_at WHERE excluded.erased_at > {self._table}"
                ".erased_at",
                rows,
            )
        )
