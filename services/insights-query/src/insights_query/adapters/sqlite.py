"""The embedded store: raw events per message and per user, and rows recomputed from them.

Tables are prefixed q_ in the SQLite file the services share. A batch is applied in one
transaction: its events are stored (deduplicated by (app_id, event_id)), then every message and
user it touches is recomputed from all of its stored events with the pure domain rules. Lists
of ids go to SQLite as one JSON array (json_each), so every statement is a fixed string.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from functools import lru_cache
from typing import TypeVar

from pydantic import TypeAdapter

from insights_common.sqlite import SqliteDatabase
from insights_contracts import (
    AnyEvent,
    Channel,
    ChannelContent,
    MessageEvent,
    VariableSpec,
)
from insights_contracts.events import NotificationEvent
from insights_query.domain.projection import (
    MessageChange,
    MessageKey,
    StoredMessage,
    StoredUser,
    TemplateKey,
    UserChange,
    UserKey,
    fold_messages,
    fold_templates,
    fold_users,
    keys_of,
    recount_users,
)
from insights_query.domain.queries import (
    ActivityPosition,
    MessageFilter,
    MessagePosition,
    SearchPosition,
)
from insights_query.domain.retention import RemovedChunk
from insights_query.domain.search import Rank, SearchQuery, nickname_tokens, phone_digits
from insights_query.domain.stats import Counts, DayCounts, StatsRows
from insights_query.domain.templates import TemplateVersion
from insights_query.domain.time import Window, from_ts_key, ts_key
from insights_query.domain.users import ActivitySpan, UserFact, UserProfile
from insights_query.domain.views import (
    BriefStats,
    MessageDetail,
    TemplateDetail,
    TemplateSummary,
    TemplateVersionView,
)

T = TypeVar("T")

# Rows in arrival order, under a rowid: keyed by their random event ids, each new event landed on
# a page of its own, and a batch rewrote a page per event (two and a half times the cost per row
# at 100k events, growing with the table).
_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS q_message_events (
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    payload TEXT NOT NULL
)"""

SCHEMA = f"""
{_EVENTS_TABLE};
CREATE UNIQUE INDEX IF NOT EXISTS q_message_events_id ON q_message_events (app_id, event_id);
CREATE INDEX IF NOT EXISTS q_message_events_message ON q_message_events (app_id, message_id);

CREATE TABLE IF NOT EXISTS q_messages (
    app_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    template_key TEXT NOT NULL,
    template_version INTEGER NOT NULL,
    status TEXT NOT NULL,
    delivered INTEGER NOT NULL,
    read INTEGER NOT NULL,
    clicked INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    responded INTEGER NOT NULL,
    sent_at TEXT NOT NULL,
    last_engaged_at TEXT,
    first_event_at TEXT NOT NULL,
    last_event_at TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (app_id, message_id)
);
CREATE INDEX IF NOT EXISTS q_messages_user_sent
    ON q_messages (app_id, user_id, sent_at, message_id);
CREATE INDEX IF NOT EXISTS q_messages_template
    ON q_messages (app_id, template_key, template_version);

CREATE TABLE IF NOT EXISTS q_user_events (
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    phone_number TEXT,
    nickname TEXT,
    source TEXT NOT NULL,
    PRIMARY KEY (app_id, event_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS q_user_events_user ON q_user_events (app_id, user_id);

CREATE TABLE IF NOT EXISTS q_users (
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    user_id_lc TEXT NOT NULL,
    nickname TEXT,
    phone_number TEXT,
    phone_digits TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    last_activity_at TEXT NOT NULL,
    imports TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);
CREATE INDEX IF NOT EXISTS q_users_id_lc ON q_users (app_id, user_id_lc);
CREATE INDEX IF NOT EXISTS q_users_phone ON q_users (app_id, phone_digits);
CREATE INDEX IF NOT EXISTS q_users_activity ON q_users (app_id, last_activity_at, user_id);

-- Normalized nickname words (lowercase, no accents); prefix search is a range scan on token.
CREATE TABLE IF NOT EXISTS q_user_tokens (
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    token TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id, token)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS q_user_tokens_prefix ON q_user_tokens (app_id, token, user_id);

-- When each erased user was erased: their events dated up to then are dropped (domain.erasure).
CREATE TABLE IF NOT EXISTS q_erased_users (
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    erased_at TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;

-- origin orders the sources of a version: a template.upserted beats a sent snapshot, and a later
-- event beats an earlier one, so the row is the same whatever order the events came in.
CREATE TABLE IF NOT EXISTS q_template_versions (
    app_id TEXT NOT NULL,
    template_key TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    channels TEXT NOT NULL,
    variable_schema TEXT NOT NULL,
    origin TEXT NOT NULL,
    PRIMARY KEY (app_id, template_key, version)
);
"""

_CHUNK = 500
_AFTER_ALL = "\U0010ffff"

_message_event_list: TypeAdapter[list[MessageEvent]] = TypeAdapter(list[NotificationEvent])
_channels: TypeAdapter[dict[Channel, ChannelContent]] = TypeAdapter(dict[Channel, ChannelContent])
_variables: TypeAdapter[list[VariableSpec]] = TypeAdapter(list[VariableSpec])


def _chunks(items: Iterable[T], size: int = _CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _by_app(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for app_id, identifier in sorted(keys):
        grouped[app_id].append(identifier)
    return grouped


def _opt_ts(value: str | None) -> datetime | None:
    return from_ts_key(value) if value else None


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

        def run(conn: sqlite3.Connection) -> dict[UserKey, datetime]:
            found: dict[UserKey, datetime] = {}
            for app_id, user_ids in _by_app(users).items():
                for chunk in _chunks(user_ids):
                    for row in conn.execute(
                        "SELECT user_id, erased_at FROM q_erased_users WHERE app_id = ?"
                        " AND user_id IN (SELECT value FROM json_each(?))",
                        (app_id, json.dumps(chunk)),
                    ):
                        found[(app_id, row["user_id"])] = from_ts_key(row["erased_at"])
            return found

        return await self._db.read(run)

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


# -- reading helpers ----------------------------------------------------------------------
# The statements below are composed once, at import, from constant fragments only; every value
# is a bound parameter.

# Keyset pagination: newest first, strictly after the last (sent_at, message_id) shown.
_LIST_MESSAGES_SQL = (
    "SELECT doc FROM q_messages WHERE app_id = :app AND user_id = :user"
    " AND sent_at >= :since AND sent_at <= :until"
    " AND (sent_at, message_id) < (:after_sent, :after_id)"
    " AND (:status IS NULL OR status = :status)"
    " AND (:channel IS NULL OR channel = :channel)"
    " AND (:template IS NULL OR template_key = :template)"
    " ORDER BY sent_at DESC, message_id DESC LIMIT :limit"
)

# A user's messages sent inside a window: (app_id, user_id, since, until).
_WINDOW_SCOPE = (
    "FROM q_messages m WHERE m.app_id = ? AND m.user_id = ? AND m.sent_at BETWEEN ? AND ?"
)
_COUNTS = (
    "COUNT(*) AS sent, COALESCE(SUM(m.delivered), 0) AS delivered,"
    " COALESCE(SUM(m.read), 0) AS read, COALESCE(SUM(m.clicked), 0) AS clicked,"
    " COALESCE(SUM(m.failed), 0) AS failed, COALESCE(SUM(m.responded), 0) AS responded"
)
_TOTALS_SQL = (
    f"SELECT {_COUNTS}, MAX(m.sent_at) AS last_sent_at,"  # noqa: S608
    f" MAX(m.last_engaged_at) AS last_engaged_at {_WINDOW_SCOPE}"
)
_BY_CHANNEL_SQL = f"SELECT m.channel, {_COUNTS} {_WINDOW_SCOPE} GROUP BY m.channel"  # noqa: S608
_BY_TEMPLATE_SQL = (
    f"SELECT m.template_key, {_COUNTS}, (SELECT v.name FROM q_template_versions v"  # noqa: S608
    " WHERE v.app_id = m.app_id AND v.template_key = m.template_key"
    f" ORDER BY v.version DESC LIMIT 1) AS name {_WINDOW_SCOPE} GROUP BY m.template_key"
)
_DAILY_SQL = (
    "SELECT substr(m.sent_at, 1, 10) AS day, COUNT(*) AS sent,"  # noqa: S608
    " COALESCE(SUM(m.read), 0) AS read, COALESCE(SUM(m.clicked), 0) AS clicked"
    f" {_WINDOW_SCOPE} GROUP BY day"
)

# Every word of the query must prefix some token of the user's nickname.
_NAME_MATCH = (
    "(json_array_length(:words) > 0 AND NOT EXISTS ("
    " SELECT 1 FROM json_each(:words) w WHERE NOT EXISTS ("
    "  SELECT 1 FROM q_user_tokens t WHERE t.app_id = u.app_id AND t.user_id = u.user_id"
    "  AND t.token GLOB w.value || '*')))"
)
_ID_MATCH = "(:id_glob IS NOT NULL AND u.user_id_lc GLOB :id_glob)"

# Without statistics SQLite would rather walk an index in ORDER BY order than read a prefix
# range, so these statements pin the range index (INDEXED BY, or '+' to take a column out of
# index selection); tests check the plans.
_RANK_SQL: dict[Rank, str] = {
    Rank.EXACT_ID: (
        "SELECT u.* FROM q_users u INDEXED BY q_users_id_lc"
        " WHERE u.app_id = :app AND u.user_id_lc = :id_lc"
        " AND +u.user_id > :after ORDER BY u.user_id LIMIT :limit"
    ),
    Rank.ID_PREFIX: (
        "SELECT u.* FROM q_users u WHERE u.app_id = :app AND u.user_id_lc GLOB :id_glob"
        " AND u.user_id_lc <> :id_lc AND +u.user_id > :after ORDER BY u.user_id LIMIT :limit"
    ),
    Rank.NICKNAME: (
        "WITH hits AS MATERIALIZED (SELECT DISTINCT user_id"  # noqa: S608
        "  FROM q_user_tokens INDEXED BY q_user_tokens_prefix"
        "  WHERE app_id = :app AND token GLOB :first_glob AND user_id > :after)"
        " SELECT u.* FROM hits JOIN q_users u ON u.app_id = :app AND u.user_id = hits.user_id"
        f" WHERE {_NAME_MATCH} AND NOT {_ID_MATCH} ORDER BY u.user_id LIMIT :limit"
    ),
    Rank.PHONE: (
        "SELECT u.* FROM q_users u INDEXED BY q_users_phone WHERE u.app_id = :app"  # noqa: S608
        " AND u.phone_digits = :phone_digits"
        f" AND +u.user_id > :after AND NOT {_ID_MATCH} AND NOT {_NAME_MATCH}"
        " ORDER BY u.user_id LIMIT :limit"
    ),
}


def _search_rank(
    conn: sqlite3.Connection,
    app_id: str,
    query: SearchQuery,
    rank: Rank,
    after: str,
    limit: int,
) -> list[sqlite3.Row]:
    # Query words and id prefixes hold no GLOB metacharacters (* ? [), so they are safe as
    # literal prefixes.
    params = {
        "app": app_id,
        "id_lc": query.id_prefix,
        "id_glob": f"{query.id_prefix}*" if query.id_prefix else None,
        "words": json.dumps(list(query.name_words)),
        "first_glob": f"{query.name_words[0]}*" if query.name_words else None,
        "phone_digits": query.digits,
        "after": after,
        "limit": limit,
    }
    return conn.execute(_RANK_SQL[rank], params).fetchall()


def _profile(row: sqlite3.Row) -> UserProfile:
    return UserProfile(
        user_id=row["user_id"],
        nickname=row["nickname"],
        phone_number=row["phone_number"],
        created_at=from_ts_key(row["created_at"]),
        updated_at=from_ts_key(row["updated_at"]),
        last_activity_at=from_ts_key(row["last_activity_at"]),
        imports=_imports_of(row["imports"]),
    )


def _counts(row: sqlite3.Row) -> Counts:
    return Counts(
        sent=row["sent"],
        delivered=row["delivered"],
        read=row["read"],
        clicked=row["clicked"],
        failed=row["failed"],
        responded=row["responded"],
    )


# -- projection -----------------------------------------------------------------------------


def _rebuild_event_table(conn: sqlite3.Connection) -> None:
    """Move the events of a data dir made with the table keyed by event id into the new one."""
    row = conn.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'q_message_events'"
    ).fetchone()
    if row is None or "WITHOUT ROWID" not in str(row["sql"]).upper():
        return
    conn.execute("ALTER TABLE q_message_events RENAME TO q_message_events_keyed")
    conn.execute("DROP INDEX IF EXISTS q_message_events_message")
    conn.execute(_EVENTS_TABLE)
    conn.execute(
        "INSERT INTO q_message_events (app_id, event_id, message_id, user_id, event_type,"
        " occurred_at, payload) SELECT app_id, event_id, message_id, user_id, event_type,"
        " occurred_at, payload FROM q_message_events_keyed"
    )
    conn.execute("DROP TABLE q_message_events_keyed")


_UPSERT_MESSAGE = (
    "INSERT INTO q_messages (app_id, message_id, user_id, channel, template_key,"
    " template_version, status, delivered, read, clicked, failed, responded, sent_at,"
    " last_engaged_at, first_event_at, last_event_at, doc)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (app_id, message_id) DO UPDATE SET user_id = excluded.user_id,"
    " channel = excluded.channel, template_key = excluded.template_key,"
    " template_version = excluded.template_version, status = excluded.status,"
    " delivered = excluded.delivered, read = excluded.read, clicked = excluded.clicked,"
    " failed = excluded.failed, responded = excluded.responded, sent_at = excluded.sent_at,"
    " last_engaged_at = excluded.last_engaged_at, first_event_at = excluded.first_event_at,"
    " last_event_at = excluded.last_event_at, doc = excluded.doc"
)
# In place: a row replaced whole would also be taken out of and put back into every index.
_UPSERT_USER = (
    "INSERT INTO q_users (app_id, user_id, user_id_lc, nickname, phone_number, phone_digits,"
    " created_at, updated_at, last_activity_at, imports) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (app_id, user_id) DO UPDATE SET user_id_lc = excluded.user_id_lc,"
    " nickname = excluded.nickname, phone_number = excluded.phone_number,"
    " phone_digits = excluded.phone_digits, created_at = excluded.created_at,"
    " updated_at = excluded.updated_at, last_activity_at = excluded.last_activity_at,"
    " imports = excluded.imports"
)

# SQLite rewrites a row's entry in every index on a column an UPDATE or upsert names, changed or
# not. A row whose user, sent_at and template (a message) or phone (a user) stay is updated
# naming only the columns that may change.
_UPDATE_MESSAGE = (
    "UPDATE q_messages SET channel = ?, status = ?, delivered = ?, read = ?, clicked = ?,"
    " failed = ?, responded = ?, last_engaged_at = ?, first_event_at = ?, last_event_at = ?,"
    " doc = ? WHERE app_id = ? AND message_id = ?"
)
_UPDATE_USER = (
    "UPDATE q_users SET nickname = ?, created_at = ?, updated_at = ?, last_activity_at = ?,"
    " imports = ? WHERE app_id = ? AND user_id = ?"
)

MessagePlace = tuple[str, str, str, int]
"""What a stored message row is indexed by besides its key: user_id, sent_at, template key
and version."""


def _apply(conn: sqlite3.Connection, events: Sequence[AnyEvent]) -> None:
    """Load what the batch touches, fold it (`domain.projection`), save the changes."""
    keys = keys_of(events)
    stored, places = _load_messages(conn, keys.messages)
    messages = fold_messages(events, stored)
    users = _load_users(conn, keys.users | messages.users)
    rest = _load_spans(conn, messages.left, without=keys.messages)
    _save_messages(conn, messages.changes, places)
    _save_users(conn, users, fold_users(events, messages, users, rest))
    _save_templates(conn, fold_templates(events, _load_origins(conn, keys.templates)))


def _erase(conn: sqlite3.Connection, erasures: Mapping[UserKey, datetime]) -> None:
    for (app_id, user_id), at in erasures.items():
        # Every message an event names the user in goes with all of its events: a message is
        # folded from them, and one left behind would name the user again.
        message_ids = json.dumps(
            [
                row["message_id"]
                for row in conn.execute(
                    "SELECT DISTINCT message_id FROM q_message_events WHERE app_id = ?"
                    " AND user_id = ? UNION SELECT message_id FROM q_messages"
                    " WHERE app_id = ? AND user_id = ?",
                    (app_id, user_id, app_id, user_id),
                )
            ]
        )
        for table in ("q_message_events", "q_messages"):
            conn.execute(
                f"DELETE FROM {table} WHERE app_id = ?"  # noqa: S608 - a fixed table name
                " AND message_id IN (SELECT value FROM json_each(?))",
                (app_id, message_ids),
            )
        for table in ("q_user_events", "q_user_tokens", "q_users"):
            conn.execute(
                f"DELETE FROM {table} WHERE app_id = ? AND user_id = ?",  # noqa: S608
                (app_id, user_id),
            )
        conn.execute(
            "INSERT INTO q_erased_users (app_id, user_id, erased_at) VALUES (?, ?, ?)"
            " ON CONFLICT (app_id, user_id) DO UPDATE SET erased_at = excluded.erased_at"
            " WHERE excluded.erased_at > q_erased_users.erased_at",
            (app_id, user_id, ts_key(at)),
        )


def _remove_sent_before(
    conn: sqlite3.Connection, app_id: str, before: str, limit: int, after: str
) -> RemovedChunk:
    # In user order from the last user of the previous chunk (the rest of whose old messages
    # may be left): each user's old messages are the start of its range of the index.
    rows = conn.execute(
        "SELECT message_id, user_id FROM q_messages INDEXED BY q_messages_user_sent"
        " WHERE app_id = ? AND user_id >= ? AND sent_at < ? ORDER BY user_id LIMIT ?",
        (app_id, after, before, limit),
    ).fetchall()
    if not rows:
        return RemovedChunk(messages=0, users=0, resume=None)
    ids = json.dumps([row["message_id"] for row in rows])
    # The events go too: a message is folded from them, and would come back with the next one.
    conn.execute(
        "DELETE FROM q_message_events WHERE app_id = ?"
        " AND message_id IN (SELECT value FROM json_each(?))",
        (app_id, ids),
    )
    conn.execute(
        "DELETE FROM q_messages WHERE app_id = ?"
        " AND message_id IN (SELECT value FROM json_each(?))",
        (app_id, ids),
    )
    users = {(app_id, row["user_id"]) for row in rows}
    stored = _load_users(conn, users)
    _save_users(conn, stored, recount_users(stored, _load_spans(conn, users, without=set())))
    resume = rows[-1]["user_id"] if len(rows) == limit else None
    return RemovedChunk(messages=len(rows), users=len(users), resume=resume)


def _load_messages(
    conn: sqlite3.Connection, keys: Iterable[MessageKey]
) -> tuple[dict[MessageKey, StoredMessage], dict[MessageKey, MessagePlace]]:
    """The stored events of the messages, with the user and span each is listed with; and
    where each listed one is indexed."""
    found: dict[MessageKey, StoredMessage] = {}
    places: dict[MessageKey, MessagePlace] = {}
    for app_id, message_ids in _by_app(keys).items():
        for chunk in _chunks(message_ids):
            ids = json.dumps(chunk)
            rows = conn.execute(
                "SELECT message_id, event_id, payload FROM q_message_events"
                " INDEXED BY q_message_events_message"
                " WHERE app_id = ? AND message_id IN (SELECT value FROM json_each(?))",
                (app_id, ids),
            ).fetchall()
            # The chunk's payloads as one JSON array: one call into pydantic-core, not one a row.
            decoded = _message_event_list.validate_json(
                "[" + ",".join(row["payload"] for row in rows) + "]"
            )
            events: dict[str, dict[str, MessageEvent]] = defaultdict(dict)
            for row, event in zip(rows, decoded, strict=True):
                events[row["message_id"]][row["event_id"]] = event
            listed = {
                row["message_id"]: row
                for row in conn.execute(
                    "SELECT message_id, user_id, sent_at, template_key, template_version,"
                    " first_event_at, last_event_at FROM q_messages"
                    " WHERE app_id = ? AND message_id IN (SELECT value FROM json_each(?))",
                    (app_id, ids),
                )
            }
            for message_id, row in listed.items():
                places[(app_id, message_id)] = (
                    row["user_id"],
                    row["sent_at"],
                    row["template_key"],
                    row["template_version"],
                )
            for message_id, stored in events.items():
                row = listed.get(message_id)
                found[(app_id, message_id)] = StoredMessage(
                    events=stored,
                    user_id=row["user_id"] if row else None,
                    span=ActivitySpan(
                        from_ts_key(row["first_event_at"]), from_ts_key(row["last_event_at"])
                    )
                    if row
                    else None,
                )
    return found, places


def _save_messages(
    conn: sqlite3.Connection,
    changes: Sequence[MessageChange],
    places: Mapping[MessageKey, MessagePlace],
) -> None:
    event_rows = []
    message_rows = []
    moved_rows = []
    for change in changes:
        app_id, message_id = change.key
        event_rows += [
            (
                app_id,
                event.event_id,
                message_id,
                event.user_id,
                event.event_type,
                ts_key(event.occurred_at),
                event.model_dump_json(),
            )
            for event in change.added
        ]
        projection = change.projection
        if projection is None:
            continue
        detail = projection.detail
        sent_at = ts_key(detail.sent_at)
        place = (detail.user_id, sent_at, detail.template.key, detail.template.version)
        folded = (
            detail.status,
            int(projection.delivered),
            int(projection.read),
            int(projection.clicked),
            int(projection.failed),
            int(projection.responded),
        )
        times = (
            ts_key(projection.last_engaged_at) if projection.last_engaged_at else None,
            ts_key(projection.first_event_at),
            ts_key(projection.last_event_at),
        )
        doc = detail.model_dump_json()
        if places.get(change.key) == place:
            message_rows.append((detail.channel, *folded, *times, doc, app_id, message_id))
        else:
            moved_rows.append(
                (
                    app_id,
                    message_id,
                    detail.user_id,
                    detail.channel,
                    detail.template.key,
                    detail.template.version,
                    *folded,
                    sent_at,
                    *times,
                    doc,
                )
            )
    conn.executemany(
        "INSERT INTO q_message_events"
        " (app_id, event_id, message_id, user_id, event_type, occurred_at, payload)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        event_rows,
    )
    conn.executemany(_UPDATE_MESSAGE, message_rows)
    conn.executemany(_UPSERT_MESSAGE, moved_rows)


def _load_users(conn: sqlite3.Connection, keys: Iterable[UserKey]) -> dict[UserKey, StoredUser]:
    """The users' facts, stored profile and the span of their visible messages."""
    found: dict[UserKey, StoredUser] = {}
    for app_id, user_ids in _by_app(keys).items():
        for chunk in _chunks(user_ids):
            ids = json.dumps(chunk)
            facts: dict[str, dict[str, UserFact]] = defaultdict(dict)
            for row in conn.execute(
                "SELECT * FROM q_user_events INDEXED BY q_user_events_user"
                " WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))",
                (app_id, ids),
            ):
                facts[row["user_id"]][row["event_id"]] = UserFact(
                    event_id=row["event_id"],
                    occurred_at=from_ts_key(row["occurred_at"]),
                    phone_number=row["phone_number"],
                    nickname=row["nickname"],
                    source=row["source"],
                )
            spans = _spans(conn, app_id, chunk, ())
            profiles = {
                row["user_id"]: _profile(row)
                for row in conn.execute(
                    "SELECT * FROM q_users"
                    " WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))",
                    (app_id, ids),
                )
            }
            for user_id in chunk:
                found[(app_id, user_id)] = StoredUser(
                    facts=facts.get(user_id, {}),
                    span=spans.get(user_id),
                    profile=profiles.get(user_id),
                )
    return found


def _load_spans(
    conn: sqlite3.Connection, keys: Iterable[UserKey], *, without: set[MessageKey]
) -> dict[UserKey, ActivitySpan | None]:
    """The span of each user's visible messages other than `without`."""
    found: dict[UserKey, ActivitySpan | None] = {}
    for app_id, user_ids in _by_app(keys).items():
        skipped = sorted(message_id for app, message_id in without if app == app_id)
        for chunk in _chunks(user_ids):
            spans = _spans(conn, app_id, chunk, skipped)
            found |= {(app_id, user_id): spans.get(user_id) for user_id in chunk}
    return found


def _spans(
    conn: sqlite3.Connection, app_id: str, user_ids: Sequence[str], without: Sequence[str]
) -> dict[str, ActivitySpan]:
    return {
        row["user_id"]: ActivitySpan(first=from_ts_key(row["first"]), last=from_ts_key(row["last"]))
        for row in conn.execute(
            "SELECT user_id, MIN(first_event_at) AS first, MAX(last_event_at) AS last"
            " FROM q_messages WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))"
            " AND message_id NOT IN (SELECT value FROM json_each(?)) GROUP BY user_id",
            (app_id, json.dumps(list(user_ids)), json.dumps(list(without))),
        )
    }


@lru_cache(maxsize=1024)
def _imports_json(imports: tuple[str, ...]) -> str:
    # An import's users all name the same imports: encoding each list again took a tenth of
    # projecting them.
    return json.dumps(list(imports))


@lru_cache(maxsize=1024)
def _imports_of(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _save_users(
    conn: sqlite3.Connection,
    stored: Mapping[UserKey, StoredUser],
    changes: Sequence[UserChange],
) -> None:
    fact_rows = []
    user_rows = []
    kept_rows = []
    token_rows = []
    untokened: dict[str, list[str]] = defaultdict(list)
    gone: dict[str, list[str]] = defaultdict(list)
    for change in changes:
        app_id, user_id = change.key
        fact_rows += [
            (
                app_id,
                fact.event_id,
                user_id,
                ts_key(fact.occurred_at),
                fact.phone_number,
                fact.nickname,
                fact.source,
            )
            for fact in change.added
        ]
        before = stored[change.key].profile if change.key in stored else None
        profile = change.profile
        if profile is None:
            if before is not None:
                gone[app_id].append(user_id)
                untokened[app_id].append(user_id)
            continue
        # Tokens are rewritten only for a new name: most changes move the activity.
        if before is None or before.nickname != profile.nickname:
            untokened[app_id].append(user_id)
            token_rows += [(app_id, user_id, token) for token in nickname_tokens(profile.nickname)]
        if profile == before:
            continue
        times = (
            ts_key(profile.created_at),
            ts_key(profile.updated_at),
            ts_key(profile.last_activity_at),
            _imports_json(profile.imports),
        )
        if before is not None and before.phone_number == profile.phone_number:
            kept_rows.append((profile.nickname, *times, app_id, user_id))
        else:
            user_rows.append(
                (
                    app_id,
                    user_id,
                    user_id.lower(),
                    profile.nickname,
                    profile.phone_number,
                    phone_digits(profile.phone_number),
                    *times,
                )
            )
    for app_id, user_ids in untokened.items():
        conn.execute(
            "DELETE FROM q_user_tokens"
            " WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))",
            (app_id, json.dumps(user_ids)),
        )
    for app_id, user_ids in gone.items():
        conn.execute(
            "DELETE FROM q_users WHERE app_id = ? AND user_id IN (SELECT value FROM json_each(?))",
            (app_id, json.dumps(user_ids)),
        )
    conn.executemany(_UPDATE_USER, kept_rows)
    conn.executemany(_UPSERT_USER, user_rows)
    conn.executemany(
        "INSERT INTO q_user_tokens (app_id, user_id, token) VALUES (?, ?, ?)", token_rows
    )
    conn.executemany(
        "INSERT INTO q_user_events"
        " (app_id, event_id, user_id, occurred_at, phone_number, nickname, source)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        fact_rows,
    )


def _load_origins(conn: sqlite3.Connection, keys: Iterable[TemplateKey]) -> dict[TemplateKey, str]:
    found: dict[TemplateKey, str] = {}
    for app_id, key, version in keys:
        row = conn.execute(
            "SELECT origin FROM q_template_versions"
            " WHERE app_id = ? AND template_key = ? AND version = ?",
            (app_id, key, version),
        ).fetchone()
        if row is not None:
            found[(app_id, key, version)] = row["origin"]
    return found


def _save_templates(conn: sqlite3.Connection, versions: Sequence[TemplateVersion]) -> None:
    conn.executemany(
        "INSERT INTO q_template_versions"
        " (app_id, template_key, version, name, channels, variable_schema, origin)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (app_id, template_key, version) DO UPDATE SET name = excluded.name,"
        " channels = excluded.channels, variable_schema = excluded.variable_schema,"
        " origin = excluded.origin",
        [
            (
                v.app_id,
                v.key,
                v.version,
                v.name,
                json.dumps(v.channels),
                json.dumps(v.variable_schema),
                v.origin,
            )
            for v in versions
        ],
    )
