"""API keys, webhook secrets and the messaging platforms' source secrets.

API keys are random 256-bit tokens, stored as their SHA-256 (a slow hash adds nothing for tokens of
that entropy). Webhook secrets must be read back to verify HMACs, so they are stored encrypted
with a master key that lives outside the database.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from insights_common.signatures import (
    MalformedSignature,
    Signature,
    WebhookSigning,
    parse_signature,
    sign,
    verify_signature,
)
from insights_common.sqlite import SqliteDatabase

__all__ = [
    "MalformedSignature",
    "Signature",
    "WebhookSigning",
    "parse_signature",
    "sign",
    "verify_signature",
]

KEY_PREFIX = "uik_"
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    app_id: str
    key_id: str  # the key's first characters: enough to tell keys apart, useless to call with
    created_at: str = ""
    scopes: tuple[str, ...] = ("admin",)
    """What the key may do (`access.SCOPES`); keys from before scopes are admin keys."""
    expires_at: datetime | None = None
    """After this the key is refused; None for a key that does not expire."""

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(key: str) -> str:
    return key[: len(KEY_PREFIX) + 8]


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def scopes_text(scopes: tuple[str, ...]) -> str:
    return " ".join(scopes)


def scopes_of(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class KeyStore(Protocol):
    async def create_api_key(
        self,
        app_id: str,
        *,
        scopes: tuple[str, ...] = ("admin",),
        expires_at: datetime | None = None,
    ) -> str: ...

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None: ...

    async def list_api_keys(self, app_id: str) -> list[ApiKeyInfo]: ...

    async def revoke_api_key(self, app_id: str, key_id: str) -> bool: ...

    async def rotate_webhook_secret(self, app_id: str, *, overlap: timedelta = timedelta(0)) -> str:
        """A new current secret; the one it replaces still signs for `overlap` (none by default).

        Only the secret just replaced is kept: rotating again within an overlap ends the older
        one's."""
        ...

    async def webhook_secret(self, app_id: str) -> str | None:
        """The current secret, the one senders should sign with."""
        ...

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None:
        """The secrets that sign for the app at `now` and its rule; None for an app with none."""
        ...

    async def require_webhook_timestamp(self, app_id: str, *, required: bool) -> bool:
        """Take only timestamped signatures from the app (or both forms again); False when
        the app has no webhook secret."""
        ...

    async def set_source_secret(
        self, app_id: str, platform: str, secret: str, *, user_field: str | None = None
    ) -> None:
        """Keep (or replace) the secret a platform signs the app's callbacks with, encrypted,
        and the field of its callbacks that names the user (None: the platform's default)."""
        ...

    async def source(self, app_id: str, platform: str) -> SourceConfig | None:
        """The platform's secret and user field for the app; None when it is not configured."""
        ...

    async def list_sources(self, app_id: str) -> list[SourceInfo]: ...

    async def remove_source(self, app_id: str, platform: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """A platform configured for an app (its secret is never listed)."""

    app_id: str
    platform: str
    updated_at: str
    user_field: str | None = None


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """What authenticates and reads one platform's callbacks for one app."""

    secret: str
    user_field: str | None = None
    """Which field of the callback names the user (`insights_common.sources.UserField`)."""


class MissingMasterKey(Exception):
    pass


class SecretBox:
    """Fernet encryption with a master key from the environment or a 0600 file in the data dir."""

    ENV = "INSIGHTS_MASTER_KEY"

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derived_key(self, purpose: str) -> bytes:
        """A Fernet key of its own for `purpose` (HKDF-SHA256 of the master key): what it
        seals cannot be read as a stored secret, nor a stored secret passed off as it."""
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()
        ).derive(base64.urlsafe_b64decode(self._key))
        return base64.urlsafe_b64encode(derived)

    @classmethod
    def from_env(cls) -> SecretBox:
        """The distributed mode's box: every process shares the key through the environment."""
        env = os.environ.get(cls.ENV, "").strip()
        if not env:
            raise MissingMasterKey(
                f"{cls.ENV} is not set. Every service process needs the same key to read the "
                "webhook secrets; create one with `insights keys master-key` and give it to all."
            )
        try:
            return cls(env.encode())
        except ValueError as error:
            raise MissingMasterKey(
                f"{cls.ENV} is not a Fernet key (32 url-safe base64-encoded bytes); "
                "create one with `insights keys master-key`."
            ) from error

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SecretBox:
        env = os.environ.get(cls.ENV)
        if env:
            return cls(env.encode())
        path = data_dir / "master.key"
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        return cls(path.read_bytes().strip())

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode()

    def decrypt(self, token: str) -> str | None:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            return None


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
# Columns added after the first release: (name, definition). Rows from before keep working: no
# previous secret, both signature forms taken.
_SQLITE_WEBHOOK_COLUMNS = (
    ("previous_encrypted", "TEXT"),
    ("previous_until", "TEXT"),
    ("require_timestamp", "INTEGER NOT NULL DEFAULT 0"),
)
# Keys from before scopes keep working as admin keys that do not expire.
_SQLITE_KEY_COLUMNS = (
    ("scopes", "TEXT NOT NULL DEFAULT 'admin'"),
    ("expires_at", "TEXT"),
)
# Sources from before the configured user field read the platform's default fields.
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


def signing_of(
    box: SecretBox,
    *,
    current: str,
    previous: str | None,
    previous_until: datetime | None,
    require_timestamp: bool,
    now: datetime,
) -> WebhookSigning | None:
    """The signing rule of one stored row, as both key stores read it."""
    secret = box.decrypt(current)
    if secret is None:
        return None
    secrets_now = [secret]
    if previous is not None and previous_until is not None and now < previous_until:
        older = box.decrypt(previous)
        if older is not None:
            secrets_now.append(older)
    return WebhookSigning(secrets=tuple(secrets_now), require_timestamp=require_timestamp)


def source_config(box: SecretBox, token: str, user_field: str | None) -> SourceConfig | None:
    """One stored source as both key stores read it; None when the master key changed."""
    secret = box.decrypt(token)
    return SourceConfig(secret, user_field) if secret is not None else None


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
        now = datetime.now(UTC).isoformat(timespec="seconds")
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
        now = datetime.now(UTC)
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
        now = datetime.now(UTC).isoformat(timespec="seconds")

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
