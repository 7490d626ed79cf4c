"""API keys and webhook secrets in PostgreSQL, for the distributed mode.

Same rules as `SqliteKeyStore`: keys are kept as their SHA-256 only, webhook secrets encrypted
with the master key (`SecretBox`), which never reaches the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from insights_common.auth import (
    SEALED_COLUMNS,
    ApiKeyInfo,
    SecretBox,
    SourceConfig,
    SourceInfo,
    WebhookSigning,
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
from insights_common.postgres.database import PostgresDatabase

COMPONENT = "auth"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE api_keys (
        key_hash text PRIMARY KEY,
        key_id text NOT NULL,
        app_id text NOT NULL,
        created_at timestamptz NOT NULL
    );
    CREATE UNIQUE INDEX api_keys_id ON api_keys (key_id);
    CREATE INDEX api_keys_app ON api_keys (app_id, created_at);
    CREATE TABLE webhook_secrets (
        app_id text PRIMARY KEY,
        secret_encrypted text NOT NULL,
        rotated_at timestamptz NOT NULL
    );
    """,
    # Rotation with an overlap and the timestamped-only switch; existing secrets keep working.
    """
    ALTER TABLE webhook_secrets
        ADD COLUMN previous_encrypted text,
        ADD COLUMN previous_until timestamptz,
        ADD COLUMN require_timestamp boolean NOT NULL DEFAULT false;
    """,
    # The messaging platforms' secrets (docs/sources.md), encrypted like webhook secrets.
    """
    CREATE TABLE source_secrets (
        app_id text NOT NULL,
        platform text NOT NULL,
        secret_encrypted text NOT NULL,
        updated_at timestamptz NOT NULL,
        PRIMARY KEY (app_id, platform)
    );
    """,
    # Scoped keys with an expiry; keys from before are admin keys that do not expire.
    """
    ALTER TABLE api_keys
        ADD COLUMN scopes text NOT NULL DEFAULT 'admin',
        ADD COLUMN expires_at timestamptz;
    """,
    # Which field of a platform's callbacks names the user; NULL reads the platform's default.
    """
    ALTER TABLE source_secrets ADD COLUMN user_field text;
    """,
)


def _info(row: asyncpg.Record) -> ApiKeyInfo:
    created_at: datetime = row["created_at"]
    # The text SqliteKeyStore stores, so both modes show keys alike.
    return ApiKeyInfo(
        row["app_id"],
        row["key_id"],
        created_at.astimezone(UTC).isoformat(timespec="seconds"),
        scopes_of(row["scopes"]),
        row["expires_at"],
    )


class PostgresKeyStore:
    """Implements `insights_common.auth.KeyStore`. Call `await store.migrate()` once at start."""

    def __init__(self, db: PostgresDatabase, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def create_api_key(
        self,
        app_id: str,
        *,
        scopes: tuple[str, ...] = ("admin",),
        expires_at: datetime | None = None,
    ) -> str:
        now = utc_now().replace(microsecond=0)
        async with self._db.acquire() as conn:
            while True:
                key = new_api_key()
                inserted = await conn.fetchval(
                    "INSERT INTO api_keys (key_hash, key_id, app_id, created_at, scopes,"
                    " expires_at) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    hash_key(key),
                    key_id_of(key),
                    app_id,
                    now,
                    scopes_text(scopes),
                    expires_at,
                )
                if inserted:
                    return key
                # two keys that start alike; draw another

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT app_id, key_id, created_at, scopes, expires_at FROM api_keys"
                " WHERE key_hash = $1",
                hash_key(key),
            )
        return _info(row) if row is not None else None

    async def list_api_keys(self, app_id: str) -> list[ApiKeyInfo]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT app_id, key_id, created_at, scopes, expires_at FROM api_keys"
                " WHERE app_id = $1"
                ' ORDER BY created_at, key_id COLLATE "C"',
                app_id,
            )
        return [_info(row) for row in rows]

    async def revoke_api_key(self, app_id: str, key_id: str) -> bool:
        async with self._db.acquire() as conn:
            deleted = await conn.fetchval(
                "DELETE FROM api_keys WHERE app_id = $1 AND key_id = $2 RETURNING true",
                app_id,
                key_id,
            )
        return bool(deleted)

    async def rotate_webhook_secret(self, app_id: str, *, overlap: timedelta = timedelta(0)) -> str:
        secret = new_webhook_secret()
        now = utc_now()
        keep = overlap > timedelta(0)
        async with self._db.acquire() as conn:
            # SET reads the row as it was, so previous_encrypted takes the replaced secret.
            await conn.execute(
                "INSERT INTO webhook_secrets (app_id, secret_encrypted, rotated_at)"
                " VALUES ($1, $2, $3) ON CONFLICT (app_id) DO UPDATE SET"
                " previous_encrypted = CASE WHEN $4 THEN webhook_secrets.secret_encrypted END,"
                " previous_until = $5,"
                " secret_encrypted = excluded.secret_encrypted, rotated_at = excluded.rotated_at",
                app_id,
                self._box.encrypt(secret),
                now,
                keep,
                now + overlap if keep else None,
            )
        return secret

    async def webhook_secret(self, app_id: str) -> str | None:
        async with self._db.acquire() as conn:
            token = await conn.fetchval(
                "SELECT secret_encrypted FROM webhook_secrets WHERE app_id = $1", app_id
            )
        return self._box.decrypt(token) if token is not None else None

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT secret_encrypted, previous_encrypted, previous_until, require_timestamp"
                " FROM webhook_secrets WHERE app_id = $1",
                app_id,
            )
        if row is None:
            return None
        return signing_of(
            self._box,
            current=row["secret_encrypted"],
            previous=row["previous_encrypted"],
            previous_until=row["previous_until"],
            require_timestamp=row["require_timestamp"],
            now=now,
        )

    async def require_webhook_timestamp(self, app_id: str, *, required: bool) -> bool:
        async with self._db.acquire() as conn:
            updated = await conn.fetchval(
                "UPDATE webhook_secrets SET require_timestamp = $2 WHERE app_id = $1"
                " RETURNING true",
                app_id,
                required,
            )
        return bool(updated)

    async def set_source_secret(
        self, app_id: str, platform: str, secret: str, *, user_field: str | None = None
    ) -> None:
        async with self._db.acquire() as conn:
            await conn.execute(
                "INSERT INTO source_secrets (app_id, platform, secret_encrypted, updated_at,"
                " user_field) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (app_id, platform) DO UPDATE"
                " SET secret_encrypted = excluded.secret_encrypted,"
                " updated_at = excluded.updated_at, user_field = excluded.user_field",
                app_id,
                platform,
                self._box.encrypt(secret),
                utc_now(),
                user_field,
            )

    async def source(self, app_id: str, platform: str) -> SourceConfig | None:
        async with self._db.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT secret_encrypted, user_field FROM source_secrets"
                " WHERE app_id = $1 AND platform = $2",
                app_id,
                platform,
            )
        if row is None:
            return None
        return source_config(self._box, row["secret_encrypted"], row["user_field"])

    async def list_sources(self, app_id: str) -> list[SourceInfo]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT app_id, platform, updated_at, user_field FROM source_secrets"
                " WHERE app_id = $1 ORDER BY platform",
                app_id,
            )
        return [
            SourceInfo(
                row["app_id"],
                row["platform"],
                row["updated_at"].astimezone(UTC).isoformat(timespec="seconds"),
                row["user_field"],
            )
            for row in rows
        ]

    async def remove_source(self, app_id: str, platform: str) -> bool:
        async with self._db.acquire() as conn:
            removed = await conn.fetchval(
                "DELETE FROM source_secrets WHERE app_id = $1 AND platform = $2 RETURNING true",
                app_id,
                platform,
            )
        return bool(removed)

    async def reseal_secrets(self) -> dict[str, int]:
        async with self._db.transaction() as conn:
            found = {
                where: [tuple(row) for row in await conn.fetch(where.select_sql() + " FOR UPDATE")]
                for where in SEALED_COLUMNS
            }
            plans = resealings(self._box, found)
            for plan in plans:
                await conn.execute(plan.update_sql("$"), *plan.params())
        return resealed_per_app(plans)
