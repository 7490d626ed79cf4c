"""The distributed mode's storage: imports, their row errors and the registry of known users.

The same behaviour as `SqliteImportStore`, in PostgreSQL tables prefixed `imp_`. Bulk data moves
in bulk: row errors by COPY, registry rows by one `unnest` statement, lookups by `= ANY`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import asyncpg

from import_svc.adapters.rows import UNFINISHED_SQL, import_record, update_params
from import_svc.domain.model import (
    FileIssue,
    ImportRecord,
    KnownUser,
    RowError,
)
from import_svc.ports import RegistryEntry, StoredRowError
from insights_common.erasure import UserKey
from insights_common.postgres.database import Connection, PostgresDatabase
from insights_common.postgres.erasure import PostgresErasureMarkers, markers_table

COMPONENT = "import"

# Ids compare bytewise (COLLATE "C") whatever the database's collation: import ids sort by time.
# Row errors have no foreign key to their import: they are only written by `finish`, in the
# transaction that updates the import, and the key's check per row doubled the COPY's time.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE imp_imports (
        app_id text NOT NULL,
        import_id text COLLATE "C" NOT NULL,
        filename text NOT NULL,
        status text NOT NULL,
        mode text NOT NULL,
        on_error text NOT NULL,
        dry_run boolean NOT NULL,
        total_rows integer NOT NULL DEFAULT 0,
        created integer NOT NULL DEFAULT 0,
        updated integer NOT NULL DEFAULT 0,
        unchanged integer NOT NULL DEFAULT 0,
        rejected integer NOT NULL DEFAULT 0,
        progress double precision NOT NULL DEFAULT 0,
        created_at timestamptz NOT NULL,
        finished_at timestamptz,
        errors jsonb NOT NULL DEFAULT '[]',
        warnings jsonb NOT NULL DEFAULT '[]',
        PRIMARY KEY (app_id, import_id)
    );
    CREATE INDEX imp_imports_unfinished ON imp_imports (status)
        WHERE status IN ('queued', 'validating', 'importing');
    CREATE TABLE imp_row_errors (
        app_id text NOT NULL,
        import_id text COLLATE "C" NOT NULL,
        seq integer NOT NULL,
        line integer NOT NULL,
        user_id text,
        column_name text,
        code text NOT NULL,
        message text NOT NULL,
        PRIMARY KEY (app_id, import_id, seq)
    );
    CREATE TABLE imp_users (
        app_id text NOT NULL,
        user_id text NOT NULL,
        phone text,
        nickname text,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (app_id, user_id)
    );
    """,
    # Which replica runs an unfinished import, and when it last said it still does.
    """
    ALTER TABLE imp_imports ADD COLUMN owner text NOT NULL DEFAULT '',
        ADD COLUMN heartbeat_at timestamptz;
    DROP INDEX imp_imports_unfinished;
    CREATE INDEX imp_imports_unfinished ON imp_imports (owner, heartbeat_at)
        WHERE status IN ('queued', 'validating', 'importing');
    """,
    # The running imports of one app, counted before each new one is let in.
    """
    CREATE INDEX imp_imports_running ON imp_imports (app_id)
        WHERE status IN ('queued', 'validating', 'importing');
    """,
    # When an import's users were published, and where; when they all became visible.
    """
    ALTER TABLE imp_imports ADD COLUMN published_at timestamptz,
        ADD COLUMN visible_at timestamptz,
        ADD COLUMN written jsonb NOT NULL DEFAULT '[]';
    """,
    # The rejected rows naming a user, found when the user is erased; when each was erased.
    f"""
    CREATE INDEX imp_row_errors_user ON imp_row_errors (app_id, user_id);
    {markers_table("imp_erased_users")}
    """,
)
# The first key of the advisory lock that lets one new import of an app in at a time.
_ADMISSION_LOCK = 0x1395

_UPDATE_IMPORT = """
UPDATE imp_imports SET status = $1, total_rows = $2, created = $3, updated = $4, unchanged = $5,
    rejected = $6, progress = $7, finished_at = $8, errors = $9::jsonb, warnings = $10::jsonb,
    published_at = $11, visible_at = $12, written = $13::jsonb
WHERE app_id = $14 AND import_id = $15
"""

# A newer write overrides the fields it gives; an older one (events arrive late) only fills
# fields still unknown. Either way an absent (NULL) field keeps what is known.
_MERGE_USERS = """
INSERT INTO imp_users AS known (app_id, user_id, phone, nickname, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
ON CONFLICT (app_id, user_id) DO UPDATE SET
    phone = CASE WHEN excluded.updated_at >= known.updated_at
        THEN coalesce(excluded.phone, known.phone)
        ELSE coalesce(known.phone, excluded.phone) END,
    nickname = CASE WHEN excluded.updated_at >= known.updated_at
        THEN coalesce(excluded.nickname, known.nickname)
        ELSE coalesce(known.nickname, excluded.nickname) END,
    updated_at = greatest(known.updated_at, excluded.updated_at)
"""

_STAMP = (
    "UPDATE imp_imports SET heartbeat_at = $1 WHERE app_id = $2 AND import_id = $3"  # noqa: S608
    f" AND owner = $4 AND {UNFINISHED_SQL}"
)
_OWNED_UNFINISHED = (
    f"SELECT * FROM imp_imports WHERE owner = $1 AND {UNFINISHED_SQL} ORDER BY import_id"  # noqa: S608
)
_RUNNING = f"SELECT count(*) FROM imp_imports WHERE app_id = $1 AND {UNFINISHED_SQL}"  # noqa: S608
_STALE = (
    f"SELECT * FROM imp_imports WHERE {UNFINISHED_SQL}"  # noqa: S608 - constants only
    " AND (heartbeat_at IS NULL OR heartbeat_at < $1) FOR UPDATE SKIP LOCKED"
)

_ROW_ERROR_COLUMNS = (
    "app_id",
    "import_id",
    "seq",
    "line",
    "user_id",
    "column_name",
    "code",
    "message",
)


def _as_is(value: datetime) -> datetime:
    return value


def _record(row: asyncpg.Record) -> ImportRecord:
    return import_record(row, to_time=_as_is)


def _update_params(record: ImportRecord) -> tuple[object, ...]:
    return update_params(record, from_time=_as_is)


def _in_rounds(entries: Sequence[RegistryEntry]) -> list[list[RegistryEntry]]:
    """Split entries so no round names a user twice, each user's entries in their order.

    One INSERT ... ON CONFLICT may not touch a row twice; applying a user's entries one round
    after another gives what applying them one by one would.
    """
    rounds: list[list[RegistryEntry]] = []
    occurrences: dict[tuple[str, str], int] = {}
    for entry in entries:
        key = (entry.app_id, entry.user_id)
        nth = occurrences.get(key, 0)
        occurrences[key] = nth + 1
        if nth == len(rounds):
            rounds.append([])
        rounds[nth].append(entry)
    return rounds


async def _merge(conn: Connection, entries: Sequence[RegistryEntry]) -> None:
    for batch in _in_rounds(entries):
        await conn.execute(
            _MERGE_USERS,
            [e.app_id for e in batch],
            [e.user_id for e in batch],
            [e.phone for e in batch],
            [e.nickname for e in batch],
            [e.at for e in batch],
        )


class PostgresImportStore:
    """Implements ImportStore and UserRegistry. Call `await store.migrate()` once at start."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._erased = PostgresErasureMarkers(db, "imp_erased_users")

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def create(
        self, record: ImportRecord, *, owner: str, at: datetime, max_running: int | None = None
    ) -> bool:
        async with self._db.transaction() as conn:
            if max_running is not None:
                # Replicas admit imports of one app one at a time, so two cannot both take the
                # last free place.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock($1::int, hashtext($2::text))",
                    _ADMISSION_LOCK,
                    record.app_id,
                )
                if await conn.fetchval(_RUNNING, record.app_id) >= max_running:
                    return False
            await conn.execute(
                "INSERT INTO imp_imports (app_id, import_id, filename, status, mode, on_error,"
                " dry_run, created_at, owner, heartbeat_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                record.app_id,
                record.id,
                record.filename,
                record.status.value,
                record.options.mode.value,
                record.options.on_error.value,
                record.options.dry_run,
                record.created_at,
                owner,
                at,
            )
            await conn.execute(_UPDATE_IMPORT, *_update_params(record))
        return True

    async def update(self, record: ImportRecord) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(_UPDATE_IMPORT, *_update_params(record))

    async def finish(
        self,
        record: ImportRecord,
        *,
        errors: Sequence[RowError],
        users: Sequence[RegistryEntry],
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(_UPDATE_IMPORT, *_update_params(record))
            await conn.execute(
                "DELETE FROM imp_row_errors WHERE app_id = $1 AND import_id = $2",
                record.app_id,
                record.id,
            )
            if errors:
                await conn.copy_records_to_table(
                    "imp_row_errors",
                    records=[
                        (record.app_id, record.id, seq, *error)
                        for seq, error in enumerate(errors, start=1)
                    ],
                    columns=_ROW_ERROR_COLUMNS,
                )
            await _merge(conn, users)

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT * FROM imp_imports WHERE app_id = $1 AND import_id = $2",
                app_id,
                import_id,
            )
        return _record(row) if row is not None else None

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> list[ImportRecord]:
        async with self._db.acquire() as conn:
            if before_id is None:
                rows = await conn.fetch(
                    "SELECT * FROM imp_imports WHERE app_id = $1 ORDER BY import_id DESC LIMIT $2",
                    app_id,
                    limit,
                )
            else:
                rows = await conn.fetch(
                    "SELECT * FROM imp_imports WHERE app_id = $1 AND import_id < $2"
                    " ORDER BY import_id DESC LIMIT $3",
                    app_id,
                    before_id,
                    limit,
                )
        return [_record(row) for row in rows]

    async def row_errors(
        self, app_id: str, import_id: str, *, after_seq: int, limit: int
    ) -> list[StoredRowError]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT seq, line, user_id, column_name, code, message FROM imp_row_errors"
                " WHERE app_id = $1 AND import_id = $2 AND seq > $3 ORDER BY seq LIMIT $4",
                app_id,
                import_id,
                after_seq,
                limit,
            )
        return [
            StoredRowError(
                row["seq"],
                RowError(
                    row["line"], row["user_id"], row["column_name"], row["code"], row["message"]
                ),
            )
            for row in rows
        ]

    async def heartbeat(self, record: ImportRecord, *, owner: str, at: datetime) -> bool:
        async with self._db.acquire() as conn:
            status = await conn.execute(
                _STAMP,
                at,
                record.app_id,
                record.id,
                owner,
            )
        return bool(status == "UPDATE 1")

    async def unfinished(self, *, owner: str) -> list[ImportRecord]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                _OWNED_UNFINISHED,
                owner,
            )
        return [_record(row) for row in rows]

    async def fail_stale(self, issue: FileIssue, *, before: datetime, at: datetime) -> list[str]:
        # FOR UPDATE SKIP LOCKED: replicas sweeping at once each fail an import once, and a row
        # an owner is stamping right now is left for the next sweep.
        async with self._db.transaction() as conn:
            rows = await conn.fetch(
                _STALE,
                before,
            )
            failed = [_record(row).failed(issue, at=at) for row in rows]
            if failed:
                await conn.executemany(
                    _UPDATE_IMPORT, [_update_params(record) for record in failed]
                )
        return [record.id for record in failed]

    async def known_users(self, app_id: str, user_ids: Sequence[str]) -> dict[str, KnownUser]:
        if not user_ids:
            return {}
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT user_id, phone, nickname FROM imp_users"
                " WHERE app_id = $1 AND user_id = ANY($2::text[])",
                app_id,
                list(user_ids),
            )
        return {
            row["user_id"]: KnownUser(row["user_id"], row["phone"], row["nickname"]) for row in rows
        }

    async def merge(self, entries: Sequence[RegistryEntry]) -> None:
        if not entries:
            return
        async with self._db.transaction() as conn:
            await _merge(conn, entries)

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        if not erasures:
            return
        await self._erased.mark(erasures)
        users = sorted(erasures)
        async with self._db.transaction() as conn:
            for table in ("imp_users", "imp_row_errors"):
                await conn.execute(
                    f"DELETE FROM {table} AS t USING unnest($1::text[], $2::text[])"  # noqa: S608
                    " AS e(app_id, user_id) WHERE t.app_id = e.app_id AND t.user_id = e.user_id",
                    [app_id for app_id, _ in users],
                    [user_id for _, user_id in users],
                )

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        return await self._erased.erased(users)
