"""Distributed-mode dedup store: the event ids each app has sent, in PostgreSQL.

`seen_at` is indexed so the ids older than the dedup window are found and dropped in chunks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from insights_common.clock import utc_now
from insights_common.erasure import UserKey
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.erasure import PostgresErasureMarkers, markers_table
from notification_ingest.domain.directory import PhoneEntry
from notification_ingest.ports import KeptCallback

COMPONENT = "ingest"
FORGET_CHUNK = 10_000
"""Most ids dropped in one transaction: short enough that ingest's inserts never wait long."""

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE ing_seen_events (
        app_id text NOT NULL,
        event_id text NOT NULL,
        seen_at timestamptz NOT NULL,
        PRIMARY KEY (app_id, event_id)
    );
    CREATE INDEX ing_seen_events_seen_at ON ing_seen_events (seen_at);
    """,
    # Whose phone number is whose, for the platforms' callbacks that name only a number.
    """
    CREATE TABLE ing_phone_directory (
        app_id text NOT NULL,
        phone text NOT NULL,
        user_id text NOT NULL,
        PRIMARY KEY (app_id, phone)
    );
    CREATE INDEX ing_phone_directory_user ON ing_phone_directory (app_id, user_id);
    CREATE TABLE ing_pending_callbacks (
        id bigserial PRIMARY KEY,
        app_id text NOT NULL,
        platform text NOT NULL,
        phone text NOT NULL,
        digest text NOT NULL,
        callback bytea NOT NULL,
        kept_at timestamptz NOT NULL,
        UNIQUE (app_id, platform, digest)
    );
    CREATE INDEX ing_pending_callbacks_phone ON ing_pending_callbacks (app_id, phone);
    """,
    # When each erased user was erased: the users topic's older events about them are dropped.
    markers_table("ing_erased_users"),
)


class PostgresDedupStore:
    """Implements DedupStore. Call `await store.migrate()` once at start."""

    def __init__(
        self,
        db: PostgresDatabase,
        *,
        clock: Callable[[], datetime] = utc_now,
        forget_chunk: int = FORGET_CHUNK,
    ) -> None:
        self._db = db
        self._clock = clock
        self._forget_chunk = forget_chunk

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def seen(self, app_id: str, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT event_id FROM ing_seen_events"
                " WHERE app_id = $1 AND event_id = ANY($2::text[])",
                app_id,
                list(event_ids),
            )
        return {str(row["event_id"]) for row in rows}

    async def record(self, app_id: str, event_ids: Sequence[str]) -> None:
        if not event_ids:
            return
        async with self._db.acquire() as conn:
            # DO NOTHING also covers an id given twice in the batch: the first one stays.
            await conn.execute(
                "INSERT INTO ing_seen_events (app_id, event_id, seen_at)"
                " SELECT $1, event_id, $3 FROM unnest($2::text[]) AS event_id"
                " ON CONFLICT DO NOTHING",
                app_id,
                list(event_ids),
                self._clock(),
            )

    async def forget(self, *, before: datetime) -> int:
        chunk = self._forget_chunk
        total = 0
        while True:
            async with self._db.acquire() as conn:
                # SKIP LOCKED: replicas forgetting at once take different rows, none waits.
                status = await conn.execute(
                    "DELETE FROM ing_seen_events WHERE (app_id, event_id) IN ("
                    " SELECT app_id, event_id FROM ing_seen_events WHERE seen_at < $1"
                    " LIMIT $2 FOR UPDATE SKIP LOCKED)",
                    before,
                    chunk,
                )
            dropped = int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"
            total += dropped
            if dropped < chunk:
                return total


class PostgresPhoneDirectory:
    """Implements PhoneDirectory. Its tables come with the dedup store's migrations."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._erased = PostgresErasureMarkers(db, "ing_erased_users")

    async def record(self, entries: Sequence[PhoneEntry]) -> None:
        if not entries:
            return
        async with self._db.acquire() as conn, conn.transaction():
            # A user's older number goes first; the entries name each user once.
            await conn.execute(
                "DELETE FROM ing_phone_directory AS d USING unnest($1::text[], $2::text[])"
                " AS gone(app_id, user_id)"
                " WHERE d.app_id = gone.app_id AND d.user_id = gone.user_id",
                [entry.app_id for entry in entries],
                [entry.user_id for entry in entries],
            )
            # Two users may name one number in a batch: the later one takes it.
            taken = {(entry.app_id, entry.phone): entry for entry in entries}
            await conn.execute(
                "INSERT INTO ing_phone_directory (app_id, phone, user_id)"
                " SELECT * FROM unnest($1::text[], $2::text[], $3::text[])"
                " ON CONFLICT (app_id, phone) DO UPDATE SET user_id = excluded.user_id",
                [entry.app_id for entry in taken.values()],
                [entry.phone for entry in taken.values()],
                [entry.user_id for entry in taken.values()],
            )

    async def users_by_phone(self, app_id: str, phones: Sequence[str]) -> dict[str, str]:
        if not phones:
            return {}
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT phone, user_id FROM ing_phone_directory"
                " WHERE app_id = $1 AND phone = ANY($2::text[])",
                app_id,
                list(phones),
            )
        return {str(row["phone"]): str(row["user_id"]) for row in rows}

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        return await self._erased.erased(users)

    async def erase(self, app_id: str, user_id: str, *, at: datetime) -> list[str]:
        await self._erased.mark({(app_id, user_id): at})
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "DELETE FROM ing_phone_directory WHERE app_id = $1 AND user_id = $2"
                " RETURNING phone",
                app_id,
                user_id,
            )
        return [str(row["phone"]) for row in rows]


class PostgresPendingCallbacks:
    """Implements PendingCallbacks. Its table comes with the dedup store's migrations."""

    def __init__(self, db: PostgresDatabase, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._db = db
        self._clock = clock

    async def keep(
        self, app_id: str, platform: str, callbacks: Sequence[tuple[str, bytes]]
    ) -> None:
        if not callbacks:
            return
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO ing_pending_callbacks"
                " (app_id, platform, phone, digest, callback, kept_at)"
                " SELECT $1, $2, phone, digest, callback, $6"
                " FROM unnest($3::text[], $4::text[], $5::bytea[]) AS c(phone, digest, callback)"
                " ON CONFLICT (app_id, platform, digest) DO NOTHING",
                app_id,
                platform,
                [phone for phone, _ in callbacks],
                [hashlib.sha256(body).hexdigest() for _, body in callbacks],
                [body for _, body in callbacks],
                self._clock(),
            )

    async def waiting(self, app_id: str, phones: Sequence[str]) -> list[tuple[int, str, bytes]]:
        if not phones:
            return []
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT id, platform, callback FROM ing_pending_callbacks"
                " WHERE app_id = $1 AND phone = ANY($2::text[]) ORDER BY id",
                app_id,
                list(phones),
            )
        return [(int(r["id"]), str(r["platform"]), bytes(r["callback"])) for r in rows]

    async def drop(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        async with self._db.acquire() as conn:
            await conn.execute(
                "DELETE FROM ing_pending_callbacks WHERE id = ANY($1::bigint[])", list(ids)
            )

    async def erase(self, app_id: str, phones: Sequence[str]) -> None:
        if not phones:
            return
        async with self._db.acquire() as conn:
            await conn.execute(
                "DELETE FROM ing_pending_callbacks WHERE app_id = $1 AND phone = ANY($2::text[])",
                app_id,
                list(phones),
            )

    async def forget(self, *, before: datetime) -> int:
        async with self._db.acquire() as conn:
            status = await conn.execute(
                "DELETE FROM ing_pending_callbacks WHERE kept_at < $1", before
            )
        return int(status.rsplit(" ", 1)[-1])  # "DELETE <count>"

    async def kept(
        self, *, ids: Sequence[int] | None, limit: int
    ) -> tuple[list[KeptCallback], int]:
        async with self._db.acquire() as conn:
            if ids is None:
                rows = await conn.fetch(
                    "SELECT * FROM (SELECT id, app_id, platform, phone, kept_at, callback"
                    " FROM ing_pending_callbacks"
                    " ORDER BY id DESC LIMIT $1) AS newest ORDER BY id",
                    limit,
                )
            else:
                rows = await conn.fetch(
                    "SELECT id, app_id, platform, phone, kept_at, callback"
                    " FROM ing_pending_callbacks"
                    " WHERE id = ANY($1::bigint[]) ORDER BY id LIMIT $2",
                    list(ids),
                    limit,
                )
            total = await conn.fetchval("SELECT count(*) FROM ing_pending_callbacks")
        return [
            KeptCallback(
                id=int(r["id"]),
                app_id=str(r["app_id"]),
                platform=str(r["platform"]),
                phone=str(r["phone"]),
                kept_at=r["kept_at"],
                callback=bytes(r["callback"]),
            )
            for r in rows
        ], int(total)
