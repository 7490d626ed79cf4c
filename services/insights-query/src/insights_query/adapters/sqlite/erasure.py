"""Erasing users and removing messages past an app's retention, then recounting users."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import datetime

from insights_query.adapters.sqlite.projection import _load_spans, _load_users, _save_users
from insights_query.domain.projection import UserKey, recount_users
from insights_query.domain.retention import RemovedChunk
from insights_query.domain.time import ts_key


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
