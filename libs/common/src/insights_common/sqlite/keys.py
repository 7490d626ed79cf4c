"""API keys, webhook secrets and the platforms' source secrets in the SQLite file."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from insights_common.auth import (
    SEALED_COLUMNS,
    ApiKeyInfo,
    SecretBox,
    SourceConfig,
    SourceInfo,
    hash_key,
    key_id_of,
    new_api_key,
    new_webhook_secret,
    resealed_per_app,
    resealings,
    scopes_of,
    scopes_text,
    signing_of,
    source_config,
)
from insights_common.clock import utc_now
from insights_common.signatures import WebhookSigning
from insights_common.sqlite.database import SqliteDatabase

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_id ON api_keys (key_id);
CREATE TABLE IF NOT EXISTS webhook_secrets (
    app_id TEXT PRIMARY KEY,
    secret_encrypted TEXT NOT NULL,
    rotated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS source_secrets (
    app_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    secret_encrypted TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (app_id, platform)
);
"""


_SQLITE_WEBHOOK_COLUMNS = (
    ("previous_encrypted", "TEXT"),
    ("previous_until", "TEXT"),
    ("require_timestamp", "INTEGER NOT NULL DEFAULT 0"),
)


_SQLITE_KEY_COLUMNS = (
    ("scopes", "TEXT NOT NULL DEFAULT 'admin'"),
    ("expires_at", "TEXT"),
)


_SQLITE_SOURCE_COLUMNS = (("user_field", "TEXT"),)


def _add_columns(conn: sqlite3.Connection) -> None:
    for table, columns in (
        ("webhook_secrets", _SQLITE_WEBHOOK_COLUMNS),
        ("api_keys", _SQLITE_KEY_COLUMNS),
        ("source_secrets", _SQLITE_SOURCE_COLUMNS),
    ):
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, definition in columns:
            if name not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")


def _sqlite_info(row: sqlite3.Row) -> ApiKeyInfo:
    expires = row["expires_at"]
    return ApiKeyInfo(
        row["app_id"],
        row["key_id"],
        row["created_at"],
        scopes_of(row["scopes"]),
        datetime.fromisoformat(expires) if expires else None,
    )


class SqliteKeyStore:
    def __init__(self, db: SqliteDatabase, box: SecretBox) -> None:
        self._db = db
        self._box = box
        db.migrate(SQLITE_SCHEMA)
        db.write_sync(_add_columns)

    async def create_api_key(
        self,
        app_id: str,
        *,
        scopes: tuple[str, ...] = ("admin",),
        expires_at: datetime | None = None,
    ) -> str:
        now = utc_now().isoformat(timespec="seconds")
        until = expires_at.isoformat() if expires_at else None
        while True:
            key = new_api_key()

            def insert(conn: sqlite3.Connection, key: str = key) -> None:
                conn.execute(
                    "INSERT INTO api_keys (key_hash, key_id, app_id, created_at, scopes,"
                    " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (hash_key(key), key_id_of(key), app_id, now, scopes_text(scopes), until),
                )

            try:
                await self._db.write(insert)
            except sqlite3.IntegrityError:
                continue  # two keys that start alike; draw another
            return key

    async def list_api_keys(self, app_id: str) -> list[ApiKeyInfo]:
        def select(conn: sqlite3.Connection) -> list[ApiKeyInfo]:
            rows = conn.execute(
                "SELECT app_id, key_id, created_at, scopes, expires_at FROM api_keys"
                " WHERE app_id = ? ORDER BY created_at, key_id",
                (app_id,),
            )
            return [_sqlite_info(r) for r in rows]

        return await self._db.read(select)

    async def revoke_api_key(self, app_id: str, key_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM api_keys WHERE app_id = ? AND key_id = ?", (app_id, key_id)
            )
            return cursor.rowcount > 0

        return await self._db.write(delete)

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None:
        digest = hash_key(key)

        def lookup(conn: sqlite3.Connection) -> ApiKeyInfo | None:
            row = conn.execute(
                "SELECT app_id, key_id, created_at, scopes, expires_at FROM api_keys"
                " WHERE key_hash = ?",
                (digest,),
            ).fetchone()
            return _sqlite_info(row) if row else None

        return await self._db.read(lookup)

    async def rotate_webhook_secret(self, app_id: str, *, overlap: timedelta = timedelta(0)) -> str:
        secret = new_webhook_secret()
        token = self._box.encrypt(secret)
        now = utc_now()
        keep = overlap > timedelta(0)
        until = (now + overlap).isoformat() if keep else None

        def upsert(conn: sqlite3.Connection) -> None:
            # SET reads the row as it was, so previous_encrypted takes the replaced secret.
            conn.execute(
                "INSERT INTO webhook_secrets (app_id, secret_encrypted, rotated_at)"
                " VALUES (?, ?, ?) ON CONFLICT (app_id) DO UPDATE SET"
                " previous_encrypted = CASE WHEN ? THEN secret_encrypted END,"
                " previous_until = ?,"
                " secret_encrypted = excluded.secret_encrypted, rotated_at = excluded.rotated_at",
                (app_id, token, now.isoformat(), keep, until),
            )

        await self._db.write(upsert)
        return secret

    async def webhook_secret(self, app_id: str) -> str | None:
        def lookup(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT secret_encrypted FROM webhook_secrets WHERE app_id = ?", (app_id,)
            ).fetchone()
            return str(row["secret_encrypted"]) if row else None

        token = await self._db.read(lookup)
        return self._box.decrypt(token) if token else None

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None:
        def lookup(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                "SELECT secret_encrypted, previous_encrypted, previous_until, require_timestamp"
                " FROM webhook_secrets WHERE app_id = ?",
                (app_id,),
            ).fetchone()
            return row

        row = await self._db.read(lookup)
        if row is None:
            return None
        until = row["previous_until"]
        return signing_of(
            self._box,
            current=row["secret_encrypted"],
            previous=row["previous_encrypted"],
            previous_until=datetime.fromisoformat(until) if until else None,
            require_timestamp=bool(row["require_timestamp"]),
            now=now,
        )

    async def require_webhook_timestamp(self, app_id: str, *, required: bool) -> bool:
        def update(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE webhook_secrets SET require_timestamp = ? WHERE app_id = ?",
                (int(required), app_id),
            )
            return cursor.rowcount > 0

        return await self._db.write(update)

    async def set_source_secret(
        self, app_id: str, platform: str, secret: str, *, user_field: str | None = None
    ) -> None:
        token = self._box.encrypt(secret)
        now = utc_now().isoformat(timespec="seconds")

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO source_secrets (app_id, platform, secret_encrypted, updated_at,"
                " user_field) VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, platform) DO UPDATE SET"
                " secret_encrypted = excluded.secret_encrypted, updated_at = excluded.updated_at,"
                " user_field = excluded.user_field",
                (app_id, platform, token, now, user_field),
            )

        await self._db.write(upsert)

    async def source(self, app_id: str, platform: str) -> SourceConfig | None:
        def lookup(conn: sqlite3.Connection) -> tuple[str, str | None] | None:
            row = conn.execute(
                "SELECT secret_encrypted, user_field FROM source_secrets"
                " WHERE app_id = ? AND platform = ?",
                (app_id, platform),
            ).fetchone()
            return (row["secret_encrypted"], row["user_field"]) if row else None

        found = await self._db.read(lookup)
        return source_config(self._box, *found) if found else None

    async def list_sources(self, app_id: str) -> list[SourceInfo]:
        def select(conn: sqlite3.Connection) -> list[SourceInfo]:
            rows = conn.execute(
                "SELECT app_id, platform, updated_at, user_field FROM source_secrets"
                " WHERE app_id = ? ORDER BY platform",
                (app_id,),
            )
            return [
                SourceInfo(r["app_id"], r["platform"], r["updated_at"], r["user_field"])
                for r in rows
            ]

        return await self._db.read(select)

    async def remove_source(self, app_id: str, platform: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "DELETE FROM source_secrets WHERE app_id = ? AND platform = ?", (app_id, platform)
            )
            return cursor.rowcount > 0

        return await self._db.write(delete)

    async def reseal_secrets(self) -> dict[str, int]:
        def reseal(conn: sqlite3.Connection) -> dict[str, int]:
            found = {
                where: [tuple(row) for row in conn.execute(where.select_sql())]
                for where in SEALED_COLUMNS
            }
            plans = resealings(self._box, found)
            for plan in plans:
                conn.execute(plan.update_sql("?"), plan.params())
            return resealed_per_app(plans)

        return await self._db.write(reseal)
