"""Members and sessions in PostgreSQL, for the distributed mode: the rules of `members.py`.

Every service process reads the same sessions, so a member signed in through the gateway is
known to the import service as to the query service.
"""

from __future__ import annotations

from datetime import datetime

from insights_common.members import Member, SessionInfo
from insights_common.postgres.database import PostgresDatabase

COMPONENT = "members"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE members (
        app_id text NOT NULL,
        email text NOT NULL,
        role text NOT NULL,
        password_hash text,
        created_at timestamptz NOT NULL,
        PRIMARY KEY (app_id, email)
    );
    CREATE TABLE sessions (
        token_hash text PRIMARY KEY,
        app_id text NOT NULL,
        email text NOT NULL,
        csrf_token text NOT NULL,
        created_at timestamptz NOT NULL,
        last_seen_at timestamptz NOT NULL
    );
    CREATE INDEX sessions_member ON sessions (app_id, email);
    """,
)


class PostgresMemberStore:
    """Implements `insights_common.members.MemberStore`. Call `await store.migrate()` once."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def add_member(
        self, app_id: str, email: str, *, role: str, password_hash: str, now: datetime
    ) -> bool:
        async with self._db.acquire() as conn:
            inserted = await conn.fetchval(
                "INSERT INTO members (app_id, email, role, password_hash, created_at)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
                app_id,
                email,
                role,
                password_hash,
                now,
            )
        return bool(inserted)

    async def password_hash(self, app_id: str, email: str) -> str | None:
        async with self._db.acquire() as conn:
            value: str | None = await conn.fetchval(
                "SELECT password_hash FROM members WHERE app_id = $1 AND email = $2",
                app_id,
                email,
            )
        return value

    async def is_member(self, app_id: str, email: str) -> bool:
        async with self._db.acquire() as conn:
            found = await conn.fetchval(
                "SELECT true FROM members WHERE app_id = $1 AND email = $2", app_id, email
            )
        return bool(found)

    async def list_members(self, app_id: str) -> list[Member]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT app_id, email, role, created_at FROM members WHERE app_id = $1"
                ' ORDER BY email COLLATE "C"',
                app_id,
            )
        return [Member(r["app_id"], r["email"], r["role"], r["created_at"]) for r in rows]

    async def remove_member(self, app_id: str, email: str) -> bool:
        async with self._db.transaction() as conn:
            await conn.execute(
                "DELETE FROM sessions WHERE app_id = $1 AND email = $2", app_id, email
            )
            deleted = await conn.fetchval(
                "DELETE FROM members WHERE app_id = $1 AND email = $2 RETURNING true",
                app_id,
                email,
            )
        return bool(deleted)

    async def set_role(self, app_id: str, email: str, role: str) -> bool:
        async with self._db.acquire() as conn:
            updated = await conn.fetchval(
                "UPDATE members SET role = $3 WHERE app_id = $1 AND email = $2 RETURNING true",
                app_id,
                email,
                role,
            )
        return bool(updated)

    async def set_password(self, app_id: str, email: str, password_hash: str) -> bool:
        async with self._db.acquire() as conn:
            updated = await conn.fetchval(
                "UPDATE members SET password_hash = $3 WHERE app_id = $1 AND email = $2"
                " RETURNING true",
                app_id,
                email,
                password_hash,
            )
        return bool(updated)

    async def admins(self, app_id: str) -> int:
        async with self._db.acquire() as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM members WHERE app_id = $1 AND role = 'admin'", app_id
            )
        return count

    async def create_session(
        self, digest: str, *, app_id: str, email: str, csrf_token: str, now: datetime
    ) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO sessions (token_hash, app_id, email, csrf_token, created_at,"
                " last_seen_at) VALUES ($1, $2, $3, $4, $5, $5)",
                digest,
                app_id,
                email,
                csrf_token,
                now,
            )

    async def session(self, digest: str) -> SessionInfo | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT s.app_id, s.email, m.role, s.csrf_token, s.created_at, s.last_seen_at"
                " FROM sessions s JOIN members m ON m.app_id = s.app_id AND m.email = s.email"
                " WHERE s.token_hash = $1",
                digest,
            )
        if row is None:
            return None
        return SessionInfo(
            row["app_id"],
            row["email"],
            row["role"],
            row["csrf_token"],
            row["created_at"],
            row["last_seen_at"],
        )

    async def touch_session(self, digest: str, *, now: datetime) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(
                "UPDATE sessions SET last_seen_at = $2 WHERE token_hash = $1", digest, now
            )

    async def end_session(self, digest: str) -> None:
        async with self._db.acquire() as conn:
            await conn.execute("DELETE FROM sessions WHERE token_hash = $1", digest)

    async def end_sessions(self, app_id: str, email: str) -> int:
        async with self._db.acquire() as conn:
            deleted = await conn.fetch(
                "DELETE FROM sessions WHERE app_id = $1 AND email = $2 RETURNING 1", app_id, email
            )
        return len(deleted)
