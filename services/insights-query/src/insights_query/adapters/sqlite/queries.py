"""The reader's statements, composed once from constant fragments, and how rows become views."""

from __future__ import annotations

import json
import sqlite3

from insights_query.domain.search import Rank, SearchQuery

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
