"""Webhook secrets in both key stores: rotation with an overlap, the timestamped-only switch, and
the migration that keeps secrets stored before them working."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from insights_common.auth import KeyStore, SecretBox, SourceConfig
from insights_common.postgres.keys import COMPONENT, MIGRATIONS, PostgresKeyStore
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SQLITE_SCHEMA, SqliteKeyStore

if TYPE_CHECKING:
    from conftest import Databases

HOUR = timedelta(hours=1)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


async def open_store(databases: Databases, box: SecretBox) -> KeyStore:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        return SqliteKeyStore(db, box)
    store = PostgresKeyStore(db, box)
    await store.migrate()
    return store


@pytest.fixture
async def keys(databases: Databases, box: SecretBox) -> KeyStore:
    return await open_store(databases, box)


async def secrets_at(keys: KeyStore, moment: datetime, app_id: str = "acme") -> tuple[str, ...]:
    signing = await keys.webhook_signing(app_id, now=moment)
    assert signing is not None
    return signing.secrets


async def test_a_new_secret_signs_alone_and_both_forms_are_taken(keys: KeyStore) -> None:
    secret = await keys.rotate_webhook_secret("acme", overlap=HOUR)
    signing = await keys.webhook_signing("acme", now=datetime.now(UTC))
    assert signing is not None
    assert signing.secrets == (secret,)
    assert not signing.require_timestamp
    assert await keys.webhook_signing("globex", now=datetime.now(UTC)) is None


async def test_the_replaced_secret_signs_until_the_overlap_ends(keys: KeyStore) -> None:
    old = await keys.rotate_webhook_secret("acme")
    before = datetime.now(UTC)
    new = await keys.rotate_webhook_secret("acme", overlap=2 * HOUR)
    after = datetime.now(UTC)
    assert await keys.webhook_secret("acme") == new
    assert await secrets_at(keys, after) == (new, old)
    assert await secrets_at(keys, before + 2 * HOUR - timedelta(seconds=1)) == (new, old)
    assert await secrets_at(keys, after + 2 * HOUR) == (new,)


async def test_a_rotation_without_overlap_ends_the_old_secret_at_once(keys: KeyStore) -> None:
    await keys.rotate_webhook_secret("acme")
    await keys.rotate_webhook_secret("acme", overlap=HOUR)
    new = await keys.rotate_webhook_secret("acme")
    assert await secrets_at(keys, datetime.now(UTC)) == (new,)


async def test_rotating_again_in_an_overlap_keeps_only_the_secret_just_replaced(
    keys: KeyStore,
) -> None:
    first = await keys.rotate_webhook_secret("acme")
    second = await keys.rotate_webhook_secret("acme", overlap=HOUR)
    third = await keys.rotate_webhook_secret("acme", overlap=HOUR)
    now = datetime.now(UTC)
    assert await secrets_at(keys, now) == (third, second)
    assert first not in await secrets_at(keys, now)


async def test_an_app_can_be_switched_to_timestamped_signatures_and_back(keys: KeyStore) -> None:
    assert not await keys.require_webhook_timestamp("acme", required=True)
    secret = await keys.rotate_webhook_secret("acme")
    await keys.rotate_webhook_secret("globex")
    assert await keys.require_webhook_timestamp("acme", required=True)
    now = datetime.now(UTC)
    acme = await keys.webhook_signing("acme", now=now)
    globex = await keys.webhook_signing("globex", now=now)
    assert acme is not None and acme.require_timestamp and acme.secrets == (secret,)
    assert globex is not None and not globex.require_timestamp
    # The switch stays through a rotation: it belongs to the app, not to one secret.
    rotated = await keys.rotate_webhook_secret("acme", overlap=HOUR)
    after = await keys.webhook_signing("acme", now=datetime.now(UTC))
    assert after is not None and after.require_timestamp and after.secrets[0] == rotated
    assert await keys.require_webhook_timestamp("acme", required=False)
    off = await keys.webhook_signing("acme", now=datetime.now(UTC))
    assert off is not None and not off.require_timestamp


async def test_the_old_secret_needs_the_master_key_too(
    databases: Databases, box: SecretBox
) -> None:
    keys = await open_store(databases, box)
    await keys.rotate_webhook_secret("acme")
    await keys.rotate_webhook_secret("acme", overlap=HOUR)
    wrong_master = await open_store(databases, SecretBox(Fernet.generate_key()))
    assert await wrong_master.webhook_signing("acme", now=datetime.now(UTC)) is None


async def test_secrets_stored_before_the_migration_keep_working(
    databases: Databases, box: SecretBox
) -> None:
    secret = "whsec_from_the_first_release"
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        db.migrate(SQLITE_SCHEMA)  # the tables as the first release made them
        await db.write(
            lambda conn: conn.execute(
                "INSERT INTO webhook_secrets (app_id, secret_encrypted, rotated_at)"
                " VALUES ('acme', ?, '2026-01-01T00:00:00+00:00')",
                (box.encrypt(secret),),
            )
        )
    else:
        await db.migrate(COMPONENT, MIGRATIONS[:1])
        async with db.acquire() as conn:
            await conn.execute(
                "INSERT INTO webhook_secrets (app_id, secret_encrypted, rotated_at)"
                " VALUES ('acme', $1, now())",
                box.encrypt(secret),
            )
    keys = await open_store(databases, box)
    signing = await keys.webhook_signing("acme", now=datetime.now(UTC))
    assert signing is not None
    assert signing.secrets == (secret,)
    assert not signing.require_timestamp
    new = await keys.rotate_webhook_secret("acme", overlap=HOUR)
    assert await secrets_at(keys, datetime.now(UTC)) == (new, secret)


async def test_a_source_secret_is_kept_encrypted_replaced_listed_and_removed(
    keys: KeyStore,
) -> None:
    assert await keys.source("acme", "twilio") is None
    await keys.set_source_secret("acme", "twilio", "auth-token-1", user_field="customer")
    await keys.set_source_secret("acme", "knock", "whsec_knock", user_field="data.recipient.email")
    await keys.set_source_secret("acme", "twilio", "auth-token-2")
    await keys.set_source_secret("other", "twilio", "theirs")
    # Adding again replaces the secret and the user field both.
    assert await keys.source("acme", "twilio") == SourceConfig("auth-token-2", None)
    assert await keys.source("acme", "knock") == SourceConfig("whsec_knock", "data.recipient.email")
    listed = await keys.list_sources("acme")
    assert [(s.platform, s.user_field) for s in listed] == [
        ("knock", "data.recipient.email"),
        ("twilio", None),
    ]
    assert await keys.remove_source("acme", "knock")
    assert not await keys.remove_source("acme", "knock")
    assert await keys.source("acme", "knock") is None
    assert await keys.source("other", "twilio") == SourceConfig("theirs")


async def test_sources_stored_before_the_user_field_keep_working(
    databases: Databases, box: SecretBox
) -> None:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        db.migrate(SQLITE_SCHEMA)  # source_secrets as it was made before the user field
        await db.write(
            lambda conn: conn.execute(
                "INSERT INTO source_secrets (app_id, platform, secret_encrypted, updated_at)"
                " VALUES ('acme', 'knock', ?, '2026-01-01T00:00:00+00:00')",
                (box.encrypt("whsec_knock"),),
            )
        )
    else:
        await db.migrate(COMPONENT, MIGRATIONS[:4])
        async with db.acquire() as conn:
            await conn.execute(
                "INSERT INTO source_secrets (app_id, platform, secret_encrypted, updated_at)"
                " VALUES ('acme', 'knock', $1, now())",
                box.encrypt("whsec_knock"),
            )
    keys = await open_store(databases, box)
    assert await keys.source("acme", "knock") == SourceConfig("whsec_knock", None)
    await keys.set_source_secret("acme", "knock", "whsec_2", user_field="data.recipient.email")
    assert (await keys.list_sources("acme"))[0].user_field == "data.recipient.email"
