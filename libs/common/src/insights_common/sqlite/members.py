"""Members and their sessions in the SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from insights_common.members import (
    Member,
    SessionInfo,
)
from insights_common.sqlite.database import SqliteDatabase

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    app_id TEXT NOT NULL,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (app_id, email)
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    app_id TEXT NOT NULL,
    email TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_member ON sessions (app_id, email);
"""


class SqliteMemberStore:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.migrate(SQLITE_SCHEMA)

    async def add_member(
        self, app_id: str, email: str, *, role: str, password_hash: str, now: datetime
    ) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT INTO members (app_id, email, role, password_hash, created_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (app_id, email, role, password_hash, now.isoformat()),
            )
            return cursor.rowcount > 0

        return await self._db.write(insert)

    async def password_hash(self, app_id: str, email: str) -> str | None:
        def select(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT password_hash FROM members WHERE app_id = ? AND email = ?", (app_id, email)
            ).fetchone()
            return row["password_hash"] if row else None

        return await self._db.read(select)

    async def is_member(self, app_id: str, email: str) -> bool:
        def select(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM members WHERE app_id = ? AND email = ?", (app_id, email)
            ).fetchone()
            return row is not None

        return await self._db.read(select)

    async def list_members(self, app_id: str) -> list[Member]:
        def select(conn: sqlite3.Connection) -> list[Member]:
            rows = conn.execute(
                "SELECT app_id, email, role, created_at FROM members WHERE app_id = ?"
                " ORDER BY email",
                (app_id,),
            )
            return [
                Member(r["app_id"], r["email"], r["role"], datetime.fromisoformat(r["created_at"]))
                for r in rows
            ]

        return await self._db.read(select)

    async def remove_member(self, app_id: str, email: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM sessions WHERE app_id = ? AND email = ?", (app_id, email))
            cursor = conn.execute(
                "DELETE FROM members WHERE app_id = ? AND email = ?", (app_id, email)
            )
            return cursor.rowcount > 0

        return await self._db.write(delete)

    async def set_role(self, app_id: str, email: str, role: str) -> bool:
        return await self._update("role", role, app_id, email)

    async def set_password(self, app_id: str, email: str, password_hash: str) -> bool:
        return await self._update("password_hash", password_hash, app_id, email)

    async def _update(self, column: str, value: str, app_id: str, email: str) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"UPDATE members SET {column} = ? WHERE app_id = ? AND email = ?",  # noqa: S608
                (value, app_id, email),
            )
            return cursor.rowcount > 0

        return await self._db.write(update)

    async def admins(self, app_id: str) -> int:
        def count(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT count(*) FROM members WHERE app_id = ? AND role = 'admin'", (app_id,)
            ).fetchone()
            return int(row[0])

        return await self._db.read(count)

    async def create_session(
        self, digest: str, *, app_id: str, email: str, csrf_token: str, now: datetime
    ) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO sessions (token_hash, app_id, email, csrf_token, created_at,"
                " last_seen_at) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, app_id, email, csrf_token, now.isoformat(), now.isoformat()),
            )

        await self._db.write(insert)

    async def session(self, digest: str) -> SessionInfo | None:
        def select(conn: sqlite3.Connection) -> SessionInfo | None:
            row = conn.execute(
                "SELECT s.app_id, s.email, m.role, s.csrf_token, s.created_at, s.last_seen_at"
                " FROM sessions s JOIN members m ON m.app_id = s.app_id AND m.email = s.email"
                " WHERE s.token_hash = ?",
                (digest,),
            ).fetchone()
            if row is None:
                return None
            return SessionInfo(
                row["app_id"],
                row["email"],
                row["role"],
                row["csrf_token"],
                datetime.fromisoformat(row["created_at"]),
                datetime.fromisoformat(row["last_seen_at"]),
            )

        return await self._db.read(select)

    async def touch_session(self, digest: str, *, now: datetime) -> None:
        def update(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE sessions SET last_seen_at = ? WHERE token_hash = ?",
                (now.isoformat(), digest),
            )

        await self._db.write(update)

    async def end_session(self, digest: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM sessions WHERE token_hash = ?", (digest,))

        await self._db.write(delete)

    async def end_sessions(self, app_id: str, email: str) -> int:
        def delete(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM sessions WHERE app_id = ? AND email = ?", (app_id, email)
            )
            return cursor.rowcount

        return await self._db.write(delete)
