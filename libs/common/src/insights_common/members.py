"""Members of apps (a person by email, a role per app), their passwords and their sessions.

Passwords are hashed with Argon2id at OWASP's first recommended setting (19 MiB, 2 passes, 1
lane): the library's default (64 MiB, 3 passes, 4 lanes) took 0.6 s of a loaded 2-core machine
per sign-in, so a few wrong passwords a second would occupy the server.

A session is a random 256-bit token in an HttpOnly cookie; the store keeps only its SHA-256,
like API keys, with a CSRF token of its own, and ends it after `idle` without a request or
`absolute` after sign-in, whichever comes first. The member's role is read with the session,
so a changed role or a removed member takes effect on the next request.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from insights_common.sqlite import SqliteDatabase

_HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
# Verified against when the email is unknown, so an unknown member takes as long as a wrong
# password and timing does not tell which emails are members.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
# A session's last request is written at most this often: a read does not cost a write each.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Member:
    app_id: str
    email: str
    role: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SessionInfo:
    app_id: str
    email: str
    role: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class SessionLimits:
    idle: timedelta
    absolute: timedelta


def normal_email(email: str) -> str:
    return email.strip().lower()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    return secrets.token_urlsafe(18)


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_alive(session: SessionInfo, *, now: datetime, limits: SessionLimits) -> bool:
    return now - session.last_seen_at < limits.idle and now - session.created_at < limits.absolute


def needs_touch(session: SessionInfo, *, now: datetime) -> bool:
    return now - session.last_seen_at >= TOUCH_EVERY


class MemberStore(Protocol):
    async def add_member(
        self, app_id: str, email: str, *, role: str, password_hash: str, now: datetime
    ) -> bool:
        """False when the email is already a member of the app."""
        ...

    async def password_hash(self, app_id: str, email: str) -> str | None: ...

    async def is_member(self, app_id: str, email: str) -> bool: ...

    async def list_members(self, app_id: str) -> list[Member]: ...

    async def remove_member(self, app_id: str, email: str) -> bool:
        """Also ends the member's sessions in the app."""
        ...

    async def set_role(self, app_id: str, email: str, role: str) -> bool: ...

    async def set_password(self, app_id: str, email: str, password_hash: str) -> bool: ...

    async def admins(self, app_id: str) -> int: ...

    async def create_session(
        self, digest: str, *, app_id: str, email: str, csrf_token: str, now: datetime
    ) -> None: ...

    async def session(self, digest: str) -> SessionInfo | None:
        """The session with its member's current role; None when it or the member is gone."""
        ...

    async def touch_session(self, digest: str, *, now: datetime) -> None: ...

    async def end_session(self, digest: str) -> None: ...

    async def end_sessions(self, app_id: str, email: str) -> int:
        """End every session of the member in the app ("sign out everywhere")."""
        ...


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
