"""The write path: load what a batch touches, fold it, save the changed rows in place."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from insights_contracts import AnyEvent, MessageEvent
from insights_query.adapters.sqlite.rows import (
    _by_app,
    _chunks,
    _imports_json,
    _message_event_list,
    _profile,
)
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
)
from insights_query.domain.search import nickname_tokens, phone_digits
from insights_query.domain.templates import TemplateVersion
from insights_query.domain.time import from_ts_key, ts_key
from insights_query.domain.users import ActivitySpan, UserFact

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
