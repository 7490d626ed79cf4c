"""The KeyStore port suite: the same tests on SqliteKeyStore and PostgresKeyStore."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
from cryptography.fernet import Fernet

from insights_common.auth import KeyStore, SecretBox, UnreadableSecrets, key_id_of
from insights_common.postgres.keys import PostgresKeyStore
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore

if TYPE_CHECKING:
    from conftest import Databases


class Backend:
    """The key store on a test's storage, and a look at everything that storage keeps."""

    def __init__(self, databases: Databases) -> None:
        self.databases = databases

    async def open(self, box: SecretBox) -> KeyStore:
        """A store on this storage, as a freshly started process would build it."""
        db = await self.databases.open()
        if isinstance(db, SqliteDatabase):
            return SqliteKeyStore(db, box)
        store = PostgresKeyStore(db, box)
        await store.migrate()
        return store

    async def stored_bytes(self) -> bytes:
        """Everything the storage keeps, to look for secrets that should not be there."""
        first = self.databases.opened[0]
        if isinstance(first, SqliteDatabase):
            path = self.databases.sqlite_path
            files = [path, path.with_name(path.name + "-wal")]
            return b"".join(f.read_bytes() for f in files if f.exists())
        async with first.acquire() as conn:
            text = await conn.fetchval(
                "SELECT concat_ws(E'\\n',"
                " (SELECT string_agg(k::text, E'\\n') FROM api_keys k),"
                " (SELECT string_agg(w::text, E'\\n') FROM webhook_secrets w))"
            )
        assert text, "the key tables hold nothing: the check below would prove nothing"
        return str(text).encode()


@pytest.fixture
def backend(databases: Databases) -> Backend:
    return Backend(databases)


@pytest.fixture
def box() -> SecretBox:
    return SecretBox(Fernet.generate_key())


@pytest.fixture
async def keys(backend: Backend, box: SecretBox) -> KeyStore:
    return await backend.open(box)


async def test_keys_are_stored_hashed_and_resolve_to_their_app(
    keys: KeyStore, backend: Backend
) -> None:
    key = await keys.create_api_key("acme")
    info = await keys.resolve_api_key(key)
    assert info is not None
    assert (info.app_id, info.key_id) == ("acme", key_id_of(key))
    assert await keys.resolve_api_key(key + "x") is None
    assert await keys.resolve_api_key("") is None
    secret = await keys.rotate_webhook_secret("acme")
    assert await keys.webhook_secret("acme") == secret
    assert await keys.webhook_secret("other") is None
    raw = await backend.stored_bytes()
    assert key_id_of(key).encode() in raw
    assert key.encode() not in raw
    assert secret.encode() not in raw


async def test_rotation_replaces_the_secret(keys: KeyStore) -> None:
    first = await keys.rotate_webhook_secret("acme")
    second = await keys.rotate_webhook_secret("acme")
    other = await keys.rotate_webhook_secret("globex")
    assert len({first, second, other}) == 3
    assert await keys.webhook_secret("acme") == second
    assert await keys.webhook_secret("globex") == other


async def test_keys_are_listed_by_prefix_and_revoked_per_app(keys: KeyStore) -> None:
    first = await keys.create_api_key("acme")
    second = await keys.create_api_key("acme")
    await keys.create_api_key("globex")
    listed = await keys.list_api_keys("acme")
    assert sorted(info.key_id for info in listed) == sorted([key_id_of(first), key_id_of(second)])
    assert all(first not in info.key_id for info in listed)
    assert not await keys.revoke_api_key("globex", key_id_of(first))
    assert not await keys.revoke_api_key("acme", "uik_nothing")
    assert await keys.revoke_api_key("acme", key_id_of(first))
    assert not await keys.revoke_api_key("acme", key_id_of(first))
    assert await keys.resolve_api_key(first) is None
    assert await keys.resolve_api_key(second) is not None
    assert [info.key_id for info in await keys.list_api_keys("acme")] == [key_id_of(second)]
    assert await keys.list_api_keys("nobody") == []


async def test_created_at_reads_as_utc_seconds(keys: KeyStore) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    key = await keys.create_api_key("acme")
    info = await keys.resolve_api_key(key)
    assert info is not None
    created = datetime.fromisoformat(info.created_at)
    assert info.created_at == created.isoformat(timespec="seconds")
    assert created.utcoffset() == timedelta(0)
    assert before <= created <= datetime.now(UTC)
    assert [i.created_at for i in await keys.list_api_keys("acme")] == [info.created_at]


async def test_keys_that_start_alike_get_a_fresh_draw(
    keys: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    draws = iter(["uik_AAAAAAAA-first", "uik_AAAAAAAA-second", "uik_BBBBBBBB-third"])
    # The store draws keys with the new_api_key its own module imported.
    monkeypatch.setattr(sys.modules[type(keys).__module__], "new_api_key", lambda: next(draws))
    assert await keys.create_api_key("acme") == "uik_AAAAAAAA-first"
    assert await keys.create_api_key("globex") == "uik_BBBBBBBB-third"
    assert await keys.resolve_api_key("uik_AAAAAAAA-second") is None
    resolved = await keys.resolve_api_key("uik_BBBBBBBB-third")
    assert resolved is not None and resolved.app_id == "globex"


async def test_keys_and_secrets_outlive_the_process_but_not_the_master_key(
    keys: KeyStore, backend: Backend, box: SecretBox
) -> None:
    key = await keys.create_api_key("acme")
    secret = await keys.rotate_webhook_secret("acme")
    restarted = await backend.open(box)
    resolved = await restarted.resolve_api_key(key)
    assert resolved is not None and resolved.app_id == "acme"
    assert await restarted.webhook_secret("acme") == secret
    wrong_master = await backend.open(SecretBox(Fernet.generate_key()))
    assert await wrong_master.webhook_secret("acme") is None
    assert await wrong_master.resolve_api_key(key) is not None


async def test_a_new_master_key_takes_every_stored_secret_and_the_old_one_can_go(
    backend: Backend,
) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = await backend.open(SecretBox(old))
    replaced = await before.rotate_webhook_secret("acme")
    current = await before.rotate_webhook_secret("acme", overlap=timedelta(hours=1))
    await before.set_source_secret("acme", "twilio", "twilio-token", user_field="To")
    only = await before.rotate_webhook_secret("globex")
    key = await before.create_api_key("acme")

    rolling = await backend.open(SecretBox([new, old]))
    assert await rolling.reseal_secrets() == {"acme": 3, "globex": 1}
    assert await rolling.reseal_secrets() == {"acme": 3, "globex": 1}  # again: nothing lost

    after = await backend.open(SecretBox(new))
    signing = await after.webhook_signing("acme", now=datetime.now(UTC))
    assert signing is not None
    assert signing.secrets == (current, replaced)
    assert await after.webhook_secret("globex") == only
    source = await after.source("acme", "twilio")
    assert source is not None and (source.secret, source.user_field) == ("twilio-token", "To")
    resolved = await after.resolve_api_key(key)  # hashed, not encrypted: untouched
    assert resolved is not None and resolved.app_id == "acme"
    assert await (await backend.open(SecretBox(old))).webhook_secret("globex") is None


async def test_a_secret_no_key_opens_stops_the_reseal_and_nothing_changes(
    backend: Backend,
) -> None:
    old, lost, new = Fernet.generate_key(), Fernet.generate_key(), Fernet.generate_key()
    kept = await (await backend.open(SecretBox(old))).rotate_webhook_secret("acme")
    await (await backend.open(SecretBox(lost))).set_source_secret("globex", "knock", "k")
    with pytest.raises(UnreadableSecrets, match="source_secrets.secret_encrypted of globex/knock"):
        await (await backend.open(SecretBox([new, old]))).reseal_secrets()
    assert await (await backend.open(SecretBox(old))).webhook_secret("acme") == kept
