"""The q_ tables of the embedded store and the migration of an older events table."""

from __future__ import annotations

import sqlite3

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
