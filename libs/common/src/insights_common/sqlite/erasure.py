"""Erasure markers in a table of the SQLite file."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from datetime import datetime

from insights_common.clock import sortable
from insights_common.erasure import UserKey
from insights_common.sqlite.database import SqliteDatabase


def sqlite_markers_table(table: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (app_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " erased_at TEXT NOT NULL, PRIMARY KEY (app_id, user_id)) WITHOUT ROWID;"
    )


def read_markers(
    conn: sqlite3.Connection,
    table: str,
    users: Collection[UserKey],
    parse: Callable[[str], datetime],
) -> dict[UserKey, datetime]:
    """The markers of `users` in `table` (app_id, user_id, erased_at), their times `parse`d.

    Erases are rare and a batch names many users: an app with no more markers than the batch
    names of its users has them all read and matched here, which costs a look-up per marker
    instead of one per user (and no JSON of the users).
    """
    wanted: dict[str, set[str]] = defaultdict(set)
    for app_id, user_id in users:
        wanted[app_id].add(user_id)
    found: dict[UserKey, datetime] = {}
    for app_id, user_ids in wanted.items():
        rows = conn.execute(
            f"SELECT user_id, erased_at FROM {table} WHERE app_id = ? LIMIT ?",  # noqa: S608
            (app_id, len(user_ids) + 1),
        ).fetchall()
        if len(rows) > len(user_ids):
            rows = conn.execute(
                f"SELECT user_id, erased_at FROM {table} WHERE app_id = ?"  # noqa: S608
                " AND user_id IN (SELECT value FROM json_each(?))",
                (app_id, json.dumps(list(user_ids))),
            ).fetchall()
        found |= {(app_id, row[0]): parse(row[1]) for row in rows if row[0] in user_ids}
    return found


class SqliteErasureMarkers:
    """ErasureMarkers in a table of the SQLite file (`sqlite_markers_table`, migrated here)."""

    def __init__(self, db: SqliteDatabase, table: str) -> None:
        self._db = db
        self._table = table
        db.migrate(sqlite_markers_table(table))

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        if not users:
            return {}
        table = self._table
        return await self._db.read(
            lambda conn: read_markers(conn, table, users, datetime.fromisoformat)
        )

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
