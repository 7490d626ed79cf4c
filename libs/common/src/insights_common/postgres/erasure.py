"""ErasureMarkers in PostgreSQL (`insights_common.erasure`): a table per consumer, created by
that consumer's own migrations (`markers_table`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from insights_common.erasure import UserKey
from insights_common.postgres.database import PostgresDatabase


def markers_table(table: str) -> str:
    return (
        f"CREATE TABLE {table} (app_id text NOT NULL, user_id text NOT NULL,"
        " erased_at timestamptz NOT NULL, PRIMARY KEY (app_id, user_id));"
    )


class PostgresErasureMarkers:
    def __init__(self, db: PostgresDatabase, table: str) -> None:
        self._db = db
        self._table = table

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        if not users:
            return {}
        ordered = sorted(users)
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT m.app_id, m.user_id, m.erased_at FROM {self._table} m"  # noqa: S608
                " JOIN unnest($1::text[], $2::text[]) AS u(app_id, user_id)"
                " ON m.app_id = u.app_id AND m.user_id = u.user_id",
                [app_id for app_id, _ in ordered],
                [user_id for _, user_id in ordered],
            )
        return {(r["app_id"], r["user_id"]): r["erased_at"] for r in rows}

    async def mark(self, erasures: Mapping[UserKey, datetime]) -> None:
        if not erasures:
            return
        async with self._db.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self._table} AS m (app_id, user_id, erased_at)"  # noqa: S608
                " SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])"
                " ON CONFLICT (app_id, user_id) DO UPDATE SET erased_at = excluded.erased_at"
                " WHERE excluded.erased_at > m.erased_at",
                [app_id for app_id, _ in erasures],
                [user_id for _, user_id in erasures],
                list(erasures.values()),
            )
