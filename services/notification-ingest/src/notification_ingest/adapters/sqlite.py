"""Embedded-mode dedup store: the event ids each app has sent, in the shared SQLite file."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from functools import partial

from insights_common.clock import sortable, utc_now
from insights_common.erasure import UserKey
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.erasure import SqliteErasureMarkers
from notification_ingest.domain.directory import PhoneEntry
from notification_ingest.ports import KeptCallback

FORGET_CHUNK = 5_000
"""Ids looked at in one write transaction while forgetting: the writer is shared by the whole
embedded process, so each turn holds it only for milliseconds."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS ing_seen_events (
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at TEXT NOT NULL,
    PRIMARY KEY (app_id, event_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ing_phone_directory (
    app_id TEXT NOT NULL,
    phone TEXT NOT NULL,
    user_id TEXT NOT NULL,
    PRIMARY KEY (app_id, phone)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ing_phone_directory_user ON ing_phone_directory (app_id, user_id);
CREATE TABLE IF NOT EXISTS ing_pending_callbacks (
    id INTEGER PRIMARY KEY,
    app_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    phone TEXT NOT NULL,
    digest TEXT NOT NULL,
    callback BLOB NOT NULL,
    kept_at TEXT NOT NULL,
    UNIQUE (app_id, platform, digest)
);
CREATE INDEX IF NOT EXISTS ing_pending_callbacks_phone ON ing_pending_callbacks (app_id, phone);
"""


class SqliteDedupStore:
    def __init__(
        self,
        db: SqliteDatabase,
        *,
        clock: Callable[[], datetime] = utc_now,
        forget_chunk: int = FORGET_CHUNK,
    ) -> None:
        self._db = db
        self._clock = clock
        self._forget_chunk = forget_chunk
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
        seen_at = sortable(self._clock())
        rows = [(app_id, event_id, seen_at) for event_id in event_ids]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO ing_seen_events (app_id, event_id, seen_at)"
                " VALUES (?, ?, ?)",
                rows,
            )

        await self._db.write(insert)

    async def forget(self, *, before: datetime) -> int:
        # No index on seen_at, which would be one more b-tree for every insert of the embedded
        # mode's single writer to update: walk the table in key order, a chunk per transaction,
        # and drop the old ids of each.
        chunk = self._forget_chunk
        cutoff = sortable(before)
        total = 0
        after: tuple[str, str] | None = None
        while True:
            turn = partial(_forget_turn, cutoff=cutoff, after=after, chunk=chunk)
            dropped, after = await self._db.write(turn)
            total += dropped
            if after is None:
                return total


def _forget_turn(
    conn: sqlite3.Connection, cutoff: str, after: tuple[str, str] | None, chunk: int
) -> tuple[int, tuple[str, str] | None]:
    """Drop the ids seen before `cutoff` among the next `chunk` keys after `after`; answer how
    many went and the last key looked at (None once the table is walked)."""
    if after is None:
        rows = conn.execute(
            "SELECT app_id, event_id, seen_at FROM ing_seen_events"
            " ORDER BY app_id, event_id LIMIT ?",
            (chunk,),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT app_id, event_id, seen_at FROM ing_seen_events"
            " WHERE (app_id, event_id) > (?, ?) ORDER BY app_id, event_id LIMIT ?",
            (*after, chunk),
        ).fetchall()
    old = [(row["app_id"], row["event_id"]) for row in rows if row["seen_at"] < cutoff]
    conn.executemany("DELETE FROM ing_seen_events WHERE app_id = ? AND event_id = ?", old)
    if len(rows) < chunk:
        return len(old), None
    return len(old), (rows[-1]["app_id"], rows[-1]["event_id"])


class SqlitePhoneDirectory:
    """Implements PhoneDirectory in the shared SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.migrate(SCHEMA)
        self._erased = SqliteErasureMarkers(db, "ing_erased_users")

    async def record(self, entries: Sequence[PhoneEntry]) -> None:
        if not entries:
            return

        def write(conn: sqlite3.Connection) -> None:
            # A user's older number goes first; the entries name each user once.
            conn.executemany(
                "DELETE FROM ing_phone_directory WHERE app_id = ? AND user_id = ?",
                [(entry.app_id, entry.user_id) for entry in entries],
            )
            conn.executemany(
                "INSERT INTO ing_phone_directory (app_id, phone, user_id) VALUES (?, ?, ?)"
                " ON CONFLICT (app_id, phone) DO UPDATE SET user_id = excluded.user_id",
                [(entry.app_id, entry.phone, entry.user_id) for entry in entries],
            )

        await self._db.write(write)

    async def users_by_phone(self, app_id: str, phones: Sequence[str]) -> dict[str, str]:
        if not phones:
            return {}

        def read(conn: sqlite3.Connection) -> dict[str, str]:
            rows = conn.execute(
                "SELECT phone, user_id FROM ing_phone_directory"
                " WHERE app_id = ? AND phone IN (SELECT value FROM json_each(?))",
                (app_id, json.dumps(list(phones))),
            )
            return {str(row["phone"]): str(row["user_id"]) for row in rows}

        return await self._db.read(read)

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        return await self._erased.erased(users)

    async def erase(self, app_id: str, user_id: str, *, at: datetime) -> list[str]:
        await self._erased.mark({(app_id, user_id): at})

        def forget(conn: sqlite3.Connection) -> list[str]:
            phones = [
                str(row["phone"])
                for row in conn.execute(
                    "SELECT phone FROM ing_phone_directory WHERE app_id = ? AND user_id = ?",
                    (app_id, user_id),
                )
            ]
            conn.execute(
                "DELETE FROM ing_phone_directory WHERE app_id = ? AND user_id = ?",
                (app_id, user_id),
            )
            return phones

        return await self._db.erase(forget)


class SqlitePendingCallbacks:
    """Implements PendingCallbacks in the shared SQLite file."""

    def __init__(self, db: SqliteDatabase, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock
        db.migrate(SCHEMA)

    async def erase(self, app_id: str, phones: Sequence[str]) -> None:
        if not phones:
            return
        await self._db.erase(
            lambda conn: conn.execute(
                "DELETE FROM ing_pending_callbacks"
                " WHERE app_id = ? AND phone IN (SELECT value FROM json_each(?))",
                (app_id, json.dumps(list(phones))),
            )
        )

    async def keep(
        self, app_id: str, platform: str, callbacks: Sequence[tuple[str, bytes]]
    ) -> None:
        if not callbacks:
            return
        now = sortable(self._clock())
        rows = [
            (app_id, platform, phone, hashlib.sha256(body).hexdigest(), body, now)
            for phone, body in callbacks
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO ing_pending_callbacks"
                " (app_id, platform, phone, digest, callback, kept_at) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (app_id, platform, digest) DO NOTHING",
                rows,
            )

        await self._db.write(write)

    async def waiting(self, app_id: str, phones: Sequence[str]) -> list[tuple[int, str, bytes]]:
        if not phones:
            return []

        def read(conn: sqlite3.Connection) -> list[tuple[int, str, bytes]]:
            rows = conn.execute(
                "SELECT id, platform, callback FROM ing_pending_callbacks"
                " WHERE app_id = ? AND phone IN (SELECT value FROM json_each(?)) ORDER BY id",
                (app_id, json.dumps(list(phones))),
            )
            return [(int(r["id"]), str(r["platform"]), bytes(r["callback"])) for r in rows]

        return await self._db.read(read)

    async def drop(self, ids: Sequence[int]) -> None:
        if not ids:
            return

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany("DELETE FROM ing_pending_callbacks WHERE id = ?", [(i,) for i in ids])

        await self._db.write(write)

    async def forget(self, *, before: datetime) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM ing_pending_callbacks WHERE kept_at < ?", (sortable(before),)
            )
            return cursor.rowcount

        return await self._db.write(delete)

    async def kept(
        self, *, ids: Sequence[int] | None, limit: int
    ) -> tuple[list[KeptCallback], int]:

        def read(conn: sqlite3.Connection) -> tuple[list[KeptCallback], int]:
            if ids is None:
                rows = conn.execute(
                    "SELECT * FROM (SELECT id, app_id, platform, phone, kept_at, callback"
                    " FROM ing_pending_callbacks"
                    " ORDER BY id DESC LIMIT ?) ORDER BY id",
                    (limit,),
                ).fetchall()
            else:
                rows = conn.execute(
                    "SELECT id, app_id, platform, phone, kept_at, callback"
                    " FROM ing_pending_callbacks"
                    " WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id LIMIT ?",
                    (json.dumps(list(ids)), limit),
                ).fetchall()
            total = conn.execute("SELECT count(*) FROM ing_pending_callbacks").fetchone()[0]
            return [
                KeptCallback(
                    id=int(r["id"]),
                    app_id=str(r["app_id"]),
                    platform=str(r["platform"]),
                    phone=str(r["phone"]),
                    kept_at=datetime.fromisoformat(str(r["kept_at"])),
                    callback=bytes(r["callback"]),
                )
                for r in rows
            ], int(total)

        return await self._db.read(read)
