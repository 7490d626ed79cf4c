"""The embedded mode's storage: imports, their row errors and the registry of known users.

Tables are prefixed `imp_`; every service shares one SQLite file in the embedded mode.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from import_svc.adapters.rows import UNFINISHED_SQL, import_record, update_params
from import_svc.domain.model import (
    FileIssue,
    ImportRecord,
    KnownUser,
    RowError,
)
from import_svc.ports import RegistryEntry, StoredRowError
from insights_common.clock import sortable
from insights_common.erasure import UserKey
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.erasure import SqliteErasureMarkers

SCHEMA = """
CREATE TABLE IF NOT EXISTS imp_imports (
    app_id TEXT NOT NULL,
    import_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    status TEXT NOT NULL,
    mode TEXT NOT NULL,
    on_error TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    total_rows INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    unchanged INTEGER NOT NULL DEFAULT 0,
    rejected INTEGER NOT NULL DEFAULT 0,
    progress REAL NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    errors TEXT NOT NULL DEFAULT '[]',
    warnings TEXT NOT NULL DEFAULT '[]',
    owner TEXT NOT NULL DEFAULT '',
    heartbeat_at TEXT,
    PRIMARY KEY (app_id, import_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS imp_imports_status ON imp_imports (status);
CREATE INDEX IF NOT EXISTS imp_imports_app_status ON imp_imports (app_id, status);
CREATE TABLE IF NOT EXISTS imp_row_errors (
    app_id TEXT NOT NULL,
    import_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    line INTEGER NOT NULL,
    user_id TEXT,
    column_name TEXT,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (app_id, import_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS imp_row_errors_user ON imp_row_errors (app_id, user_id);
CREATE TABLE IF NOT EXISTS imp_users (
    app_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    phone TEXT,
    nickname TEXT,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
) WITHOUT ROWID;
"""

_LOOKUP_BATCH = 10_000

_UPDATE_IMPORT = """
UPDATE imp_imports SET status = ?, total_rows = ?, created = ?, updated = ?, unchanged = ?,
    rejected = ?, progress = ?, finished_at = ?, errors = ?, warnings = ?, published_at = ?,
    visible_at = ?, written = ?
WHERE app_id = ? AND import_id = ?
"""

_STAMP = (
    "UPDATE imp_imports SET heartbeat_at = ? WHERE app_id = ? AND import_id = ?"  # noqa: S608
    f" AND owner = ? AND {UNFINISHED_SQL}"
)
_OWNED_UNFINISHED = (
    f"SELECT * FROM imp_imports WHERE owner = ? AND {UNFINISHED_SQL} ORDER BY import_id"  # noqa: S608
)
_RUNNING = f"SELECT count(*) FROM imp_imports WHERE app_id = ? AND {UNFINISHED_SQL}"  # noqa: S608
_STALE = (
    f"SELECT * FROM imp_imports WHERE {UNFINISHED_SQL}"  # noqa: S608 - constants only
    " AND (heartbeat_at IS NULL OR heartbeat_at < ?)"
)

# A newer write overrides the fields it gives; an older one (events arrive late) only fills
# fields still unknown. Either way an absent (NULL) field keeps what is known.
_MERGE_USER = """
INSERT INTO imp_users (app_id, user_id, phone, nickname, updated_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (app_id, user_id) DO UPDATE SET
    phone = CASE WHEN excluded.updated_at >= imp_users.updated_at
        THEN coalesce(excluded.phone, imp_users.phone)
        ELSE coalesce(imp_users.phone, excluded.phone) END,
    nickname = CASE WHEN excluded.updated_at >= imp_users.updated_at
        THEN coalesce(excluded.nickname, imp_users.nickname)
        ELSE coalesce(imp_users.nickname, excluded.nickname) END,
    updated_at = max(imp_users.updated_at, excluded.updated_at)
"""


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _record(row: sqlite3.Row) -> ImportRecord:
    return import_record(row, to_time=parse_time)


def _update_params(record: ImportRecord) -> tuple[object, ...]:
    return update_params(record, from_time=sortable)


def _merge(conn: sqlite3.Connection, entries: Sequence[RegistryEntry]) -> None:
    conn.executemany(
        _MERGE_USER,
        ((e.app_id, e.user_id, e.phone, e.nickname, sortable(e.at)) for e in entries),
    )


# Columns added since the first release, for data directories made before them.
_ADDED_COLUMNS = (
    ("owner", "TEXT NOT NULL DEFAULT ''"),
    ("heartbeat_at", "TEXT"),
    ("published_at", "TEXT"),
    ("visible_at", "TEXT"),
    ("written", "TEXT NOT NULL DEFAULT '[]'"),
)


def _add_columns(conn: sqlite3.Connection) -> None:
    present = {row[1] for row in conn.execute("PRAGMA table_info(imp_imports)")}
    for name, declaration in _ADDED_COLUMNS:
        if name not in present:
            conn.execute(f"ALTER TABLE imp_imports ADD COLUMN {name} {declaration}")


class SqliteImportStore:
    """Implements ImportStore and UserRegistry on the shared SQLite database."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.migrate(SCHEMA)
        self._erased = SqliteErasureMarkers(db, "imp_erased_users")
        db.write_sync(_add_columns)

    async def create(
        self, record: ImportRecord, *, owner: str, at: datetime, max_running: int | None = None
    ) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            # One writer at a time: the count and the insert cannot interleave with another's.
            if max_running is not None:
                (running,) = conn.execute(_RUNNING, (record.app_id,)).fetchone()
                if running >= max_running:
                    return False
            conn.execute(
                "INSERT INTO imp_imports (app_id, import_id, filename, status, mode, on_error,"
                " dry_run, created_at, owner, heartbeat_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.app_id,
                    record.id,
                    record.filename,
                    record.status.value,
                    record.options.mode.value,
                    record.options.on_error.value,
                    int(record.options.dry_run),
                    sortable(record.created_at),
                    owner,
                    sortable(at),
                ),
            )
            conn.execute(_UPDATE_IMPORT, _update_params(record))
            return True

        return await self._db.write(insert)

    async def update(self, record: ImportRecord) -> None:
        await self._db.write(lambda conn: conn.execute(_UPDATE_IMPORT, _update_params(record)))

    async def finish(
        self,
        record: ImportRecord,
        *,
        errors: Sequence[RowError],
        users: Sequence[RegistryEntry],
    ) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(_UPDATE_IMPORT, _update_params(record))
            conn.execute(
                "DELETE FROM imp_row_errors WHERE app_id = ? AND import_id = ?",
                (record.app_id, record.id),
            )
            conn.executemany(
                "INSERT INTO imp_row_errors (app_id, import_id, seq, line, user_id, column_name,"
                " code, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    (record.app_id, record.id, seq, *error)
                    for seq, error in enumerate(errors, start=1)
                ),
            )
            _merge(conn, users)

        await self._db.write(write)

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None:
        def select(conn: sqlite3.Connection) -> ImportRecord | None:
            row = conn.execute(
                "SELECT * FROM imp_imports WHERE app_id = ? AND import_id = ?", (app_id, import_id)
            ).fetchone()
            return _record(row) if row else None

        return await self._db.read(select)

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> list[ImportRecord]:
        def select(conn: sqlite3.Connection) -> list[ImportRecord]:
            if before_id is None:
                rows = conn.execute(
                    "SELECT * FROM imp_imports WHERE app_id = ? ORDER BY import_id DESC LIMIT ?",
                    (app_id, limit),
                )
            else:
                rows = conn.execute(
                    "SELECT * FROM imp_imports WHERE app_id = ? AND import_id < ?"
                    " ORDER BY import_id DESC LIMIT ?",
                    (app_id, before_id, limit),
                )
            return [_record(row) for row in rows]

        return await self._db.read(select)

    async def row_errors(
        self, app_id: str, import_id: str, *, after_seq: int, limit: int
    ) -> list[StoredRowError]:
        def select(conn: sqlite3.Connection) -> list[StoredRowError]:
            rows = conn.execute(
                "SELECT seq, line, user_id, column_name, code, message FROM imp_row_errors"
                " WHERE app_id = ? AND import_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                (app_id, import_id, after_seq, limit),
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

        return await self._db.read(select)

    async def heartbeat(self, record: ImportRecord, *, owner: str, at: datetime) -> bool:
        def stamp(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                _STAMP,
                (sortable(at), record.app_id, record.id, owner),
            )
            return cursor.rowcount == 1

        return await self._db.write(stamp)

    async def unfinished(self, *, owner: str) -> list[ImportRecord]:
        def select(conn: sqlite3.Connection) -> list[ImportRecord]:
            rows = conn.execute(
                _OWNED_UNFINISHED,
                (owner,),
            )
            return [_record(row) for row in rows]

        return await self._db.read(select)

    async def fail_stale(self, issue: FileIssue, *, before: datetime, at: datetime) -> list[str]:
        def sweep(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                _STALE,
                (sortable(before),),
            ).fetchall()
            failed = [_record(row).failed(issue, at=at) for row in rows]
            conn.executemany(_UPDATE_IMPORT, (_update_params(record) for record in failed))
            return [record.id for record in failed]

        return await self._db.write(sweep)

    async def known_users(self, app_id: str, user_ids: Sequence[str]) -> dict[str, KnownUser]:
        def select(conn: sqlite3.Connection) -> dict[str, KnownUser]:
            known: dict[str, KnownUser] = {}
            for start in range(0, len(user_ids), _LOOKUP_BATCH):
                batch = json.dumps(list(user_ids[start : start + _LOOKUP_BATCH]))
                for row in conn.execute(
                    "SELECT user_id, phone, nickname FROM imp_users WHERE app_id = ?"
                    " AND user_id IN (SELECT value FROM json_each(?))",
                    (app_id, batch),
                ):
                    known[row["user_id"]] = KnownUser(row["user_id"], row["phone"], row["nickname"])
            return known

        if not user_ids:
            return {}
        return await self._db.read(select)

    async def merge(self, entries: Sequence[RegistryEntry]) -> None:
        await self._db.write(lambda conn: _merge(conn, entries))

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        if not erasures:
            return
        await self._erased.mark(erasures)
        users = sorted(erasures)

        def forget(conn: sqlite3.Connection) -> None:
            for table in ("imp_users", "imp_row_errors"):
                conn.executemany(
                    f"DELETE FROM {table} WHERE app_id = ? AND user_id = ?",  # noqa: S608
                    users,
                )

        await self._db.erase(forget)

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        return await self._erased.erased(users)
