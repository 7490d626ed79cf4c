"""`SqliteInsightsStore`: the projection store's and the reader's methods on the shared file."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime

from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.erasure import read_markers
from insights_contracts import AnyEvent
from insights_query.adapters.sqlite.erasure import _erase, _remove_sent_before
from insights_query.adapters.sqlite.projection import _apply
from insights_query.adapters.sqlite.queries import (
    _BY_CHANNEL_SQL,
    _BY_TEMPLATE_SQL,
    _DAILY_SQL,
    _LIST_MESSAGES_SQL,
    _TOTALS_SQL,
    _search_rank,
)
from insights_query.adapters.sqlite.rows import (
    _AFTER_ALL,
    _channels,
    _counts,
    _opt_ts,
    _profile,
    _variables,
)
from insights_query.adapters.sqlite.schema import SCHEMA, _rebuild_event_table
from insights_query.domain.projection import UserKey
from insights_query.domain.queries import (
    ActivityPosition,
    MessageFilter,
    MessagePosition,
    SearchPosition,
)
from insights_query.domain.retention import RemovedChunk
from insights_query.domain.search import Rank, SearchQuery
from insights_query.domain.stats import DayCounts, StatsRows
from insights_query.domain.time import Window, from_ts_key, ts_key
from insights_query.domain.users import UserProfile
from insights_query.domain.views import (
    BriefStats,
    MessageDetail,
    TemplateDetail,
    TemplateSummary,
    TemplateVersionView,
)


class SqliteInsightsStore:
    """Implements ProjectionStore and InsightsReader on the shared SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.write_sync(_rebuild_event_table)
        db.migrate(SCHEMA)

    # -- projection -----------------------------------------------------------------------

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        if events:
            await self._db.write(lambda conn: _apply(conn, events))

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        if not users:
            return {}

        return await self._db.read(
            lambda conn: read_markers(conn, "q_erased_users", users, from_ts_key)
        )

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        """One transaction whose deleted bytes are zeroed in the file (`SqliteDatabase.erase`)."""
        if erasures:
            await self._db.erase(lambda conn: _erase(conn, erasures))

    async def remove_sent_before(
        self, app_id: str, before: datetime, *, limit: int, after: str | None
    ) -> RemovedChunk:
        """One write transaction per chunk: the projector and readers wait at most for one."""
        cut = ts_key(before)
        return await self._db.write(
            lambda conn: _remove_sent_before(conn, app_id, cut, limit, after or "")
        )

    # -- users ------------------------------------------------------------------------------

    async def get_user(self, app_id: str, user_id: str) -> UserProfile | None:
        def run(conn: sqlite3.Connection) -> UserProfile | None:
            row = conn.execute(
                "SELECT * FROM q_users WHERE app_id = ? AND user_id = ?", (app_id, user_id)
            ).fetchone()
            return _profile(row) if row else None

        return await self._db.read(run)

    async def recent_users(
        self, app_id: str, *, after: ActivityPosition | None, limit: int
    ) -> list[UserProfile]:
        start = (after.at, after.user_id) if after else (_AFTER_ALL, "")

        def run(conn: sqlite3.Connection) -> list[UserProfile]:
            rows = conn.execute(
                "SELECT * FROM q_users WHERE app_id = ? AND (last_activity_at, user_id) < (?, ?)"
                " ORDER BY last_activity_at DESC, user_id DESC LIMIT ?",
                (app_id, *start, limit),
            ).fetchall()
            return [_profile(row) for row in rows]

        return await self._db.read(run)

    async def search_users(
        self, app_id: str, query: SearchQuery, *, after: SearchPosition | None, limit: int
    ) -> list[tuple[Rank, UserProfile]]:
        def run(conn: sqlite3.Connection) -> list[tuple[Rank, UserProfile]]:
            found: list[tuple[Rank, UserProfile]] = []
            for rank in query.ranks():
                if after is not None and rank < after.rank:
                    continue
                start = after.user_id if after is not None and rank == after.rank else ""
                rows = _search_rank(conn, app_id, query, rank, start, limit - len(found))
                found += [(rank, _profile(row)) for row in rows]
                if len(found) >= limit:
                    break
            return found

        return await self._db.read(run)

    async def brief_stats(self, app_id: str, user_ids: Sequence[str]) -> dict[str, BriefStats]:
        def run(conn: sqlite3.Connection) -> dict[str, BriefStats]:
            rows = conn.execute(
                "SELECT user_id, COUNT(*) AS sent, SUM(read) AS read, SUM(clicked) AS clicked,"
                " MAX(sent_at) AS last_sent_at FROM q_messages"
                " WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))"
                " GROUP BY user_id",
                (app_id, json.dumps(list(user_ids))),
            ).fetchall()
            return {
                row["user_id"]: BriefStats(
                    sent=row["sent"],
                    read=row["read"],
                    clicked=row["clicked"],
                    last_sent_at=_opt_ts(row["last_sent_at"]),
                )
                for row in rows
            }

        return await self._db.read(run)

    async def user_stats(self, app_id: str, user_id: str, window: Window) -> StatsRows:
        params = (app_id, user_id, ts_key(window.since), ts_key(window.until))

        def run(conn: sqlite3.Connection) -> StatsRows:
            totals = conn.execute(_TOTALS_SQL, params).fetchone()
            return StatsRows(
                totals=_counts(totals),
                last_sent_at=_opt_ts(totals["last_sent_at"]),
                last_engaged_at=_opt_ts(totals["last_engaged_at"]),
                by_channel=[
                    (row["channel"], _counts(row))
                    for row in conn.execute(_BY_CHANNEL_SQL, params).fetchall()
                ],
                by_template=[
                    (row["template_key"], row["name"] or "", _counts(row))
                    for row in conn.execute(_BY_TEMPLATE_SQL, params).fetchall()
                ],
                daily={
                    date.fromisoformat(row["day"]): DayCounts(
                        sent=row["sent"], read=row["read"], clicked=row["clicked"]
                    )
                    for row in conn.execute(_DAILY_SQL, params).fetchall()
                },
            )

        return await self._db.read(run)

    # -- messages ---------------------------------------------------------------------------

    async def list_messages(
        self,
        app_id: str,
        user_id: str,
        *,
        filters: MessageFilter,
        after: MessagePosition | None,
        limit: int,
    ) -> list[MessageDetail]:
        params = {
            "app": app_id,
            "user": user_id,
            "status": filters.status,
            "channel": filters.channel,
            "template": filters.template,
            "since": ts_key(filters.since) if filters.since else "",
            "until": ts_key(filters.until) if filters.until else _AFTER_ALL,
            "after_sent": after.sent_at if after else _AFTER_ALL,
            "after_id": after.message_id if after else "",
            "limit": limit,
        }

        def run(conn: sqlite3.Connection) -> list[MessageDetail]:
            rows = conn.execute(_LIST_MESSAGES_SQL, params).fetchall()
            return [MessageDetail.model_validate_json(row["doc"]) for row in rows]

        return await self._db.read(run)

    async def get_message(self, app_id: str, message_id: str) -> MessageDetail | None:
        def run(conn: sqlite3.Connection) -> MessageDetail | None:
            row = conn.execute(
                "SELECT doc FROM q_messages WHERE app_id = ? AND message_id = ?",
                (app_id, message_id),
            ).fetchone()
            return MessageDetail.model_validate_json(row["doc"]) if row else None

        return await self._db.read(run)

    # -- templates --------------------------------------------------------------------------

    async def list_templates(
        self, app_id: str, *, after_key: str | None, limit: int
    ) -> list[TemplateSummary]:
        def run(conn: sqlite3.Connection) -> list[TemplateSummary]:
            rows = conn.execute(
                "WITH latest AS ("
                "  SELECT template_key, MAX(version) AS version FROM q_template_versions"
                "  WHERE app_id = :app AND template_key > :after"
                "  GROUP BY template_key ORDER BY template_key LIMIT :limit)"
                " SELECT l.template_key, l.version, v.name,"
                "  (SELECT COUNT(*) FROM q_messages m"
                "   WHERE m.app_id = :app AND m.template_key = l.template_key) AS sent,"
                "  (SELECT COALESCE(SUM(m.read), 0) FROM q_messages m"
                "   WHERE m.app_id = :app AND m.template_key = l.template_key) AS read,"
                "  (SELECT COALESCE(SUM(m.clicked), 0) FROM q_messages m"
                "   WHERE m.app_id = :app AND m.template_key = l.template_key) AS clicked"
                " FROM latest l JOIN q_template_versions v ON v.app_id = :app"
                "  AND v.template_key = l.template_key AND v.version = l.version"
                " ORDER BY l.template_key",
                {"app": app_id, "after": after_key or "", "limit": limit},
            ).fetchall()
            return [
                TemplateSummary(
                    key=row["template_key"],
                    name=row["name"],
                    latest_version=row["version"],
                    sent=row["sent"],
                    read=row["read"],
                    clicked=row["clicked"],
                )
                for row in rows
            ]

        return await self._db.read(run)

    async def get_template(self, app_id: str, key: str) -> TemplateDetail | None:
        def run(conn: sqlite3.Connection) -> TemplateDetail | None:
            versions = conn.execute(
                "SELECT version, name, channels, variable_schema FROM q_template_versions"
                " WHERE app_id = ? AND template_key = ? ORDER BY version DESC",
                (app_id, key),
            ).fetchall()
            if not versions:
                return None
            counts = {
                row["template_version"]: row
                for row in conn.execute(
                    "SELECT template_version, COUNT(*) AS sent, SUM(read) AS read,"
                    " SUM(clicked) AS clicked FROM q_messages"
                    " WHERE app_id = ? AND template_key = ? GROUP BY template_version",
                    (app_id, key),
                ).fetchall()
            }
            views = []
            for row in versions:
                count = counts.get(row["version"])
                views.append(
                    TemplateVersionView(
                        version=row["version"],
                        name=row["name"],
                        channels=_channels.validate_json(row["channels"]),
                        variable_schema=_variables.validate_json(row["variable_schema"]),
                        sent=count["sent"] if count else 0,
                        read=count["read"] if count else 0,
                        clicked=count["clicked"] if count else 0,
                    )
                )
            return TemplateDetail(key=key, name=views[0].name, versions=views)

        return await self._db.read(run)
