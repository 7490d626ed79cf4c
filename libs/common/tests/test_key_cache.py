"""CachedKeyStore: resolved keys kept for a bounded time and number, over a real SqliteKeyStore."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from insights_common.auth import ApiKeyInfo, SecretBox, key_id_of
from insights_common.key_cache import CachedKeyStore
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore

pytestmark = pytest.mark.unit

TTL = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteKeyStore]:
    db = SqliteDatabase(tmp_path / "insights.db")
    yield SqliteKeyStore(db, SecretBox(Fernet.generate_key()))
    db.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def cached(store: SqliteKeyStore, clock: Clock, *, size: int = 100) -> CachedKeyStore:
    return CachedKeyStore(store, ttl=TTL, size=size, clock=clock)


async def test_a_key_revoked_elsewhere_is_refused_once_its_entry_expires(
    store: SqliteKeyStore, clock: Clock
) -> None:
    keys = cached(store, clock)
    key = await store.create_api_key("acme")
    info = await keys.resolve_api_key(key)
    assert info is not None and info.app_id == "acme"
    # As `insights keys revoke` does from its own process: straight in the store.
    assert await store.revoke_api_key("acme", key_id_of(key))
    clock.now += TTL - 0.1
    assert await keys.resolve_api_key(key) == info
    clock.now += 0.1
    assert await keys.resolve_api_key(key) is None


async def test_a_key_revoked_through_the_cache_is_refused_at_once(
    store: SqliteKeyStore, clock: Clock
) -> None:
    keys = cached(store, clock)
    kept, dropped = await keys.create_api_key("acme"), await keys.create_api_key("acme")
    assert await keys.resolve_api_key(kept) is not None
    assert await keys.resolve_api_key(dropped) is not None
    assert await keys.revoke_api_key("acme", key_id_of(dropped))
    assert await keys.resolve_api_key(dropped) is None
    assert await keys.resolve_api_key(kept) is not None
    assert [info.key_id for info in await keys.list_api_keys("acme")] == [key_id_of(kept)]


async def test_an_unknown_key_is_remembered_for_the_ttl_too(
    store: SqliteKeyStore, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = cached(store, clock)
    assert await keys.resolve_api_key("uik_AAAAAAAA-later") is None
    monkeypatch.setattr(
        sys.modules[SqliteKeyStore.__module__], "new_api_key", lambda: "uik_AAAAAAAA-later"
    )
    assert await store.create_api_key("acme") == "uik_AAAAAAAA-later"
    assert await keys.resolve_api_key("uik_AAAAAAAA-later") is None
    clock.now += TTL
    resolved = await keys.resolve_api_key("uik_AAAAAAAA-later")
    assert resolved is not None and resolved.app_id == "acme"


async def test_the_cache_keeps_at_most_size_keys_dropping_the_least_recently_used(
    store: SqliteKeyStore, clock: Clock
) -> None:
    keys = cached(store, clock, size=2)
    first, second = await store.create_api_key("acme"), await store.create_api_key("acme")
    await keys.resolve_api_key(first)
    await keys.resolve_api_key(second)
    await keys.resolve_api_key(first)  # now the most recently used
    assert await keys.resolve_api_key("uik_unknown") is None  # takes the place of `second`
    assert len(keys) == 2
    await store.revoke_api_key("acme", key_id_of(second))
    await store.revoke_api_key("acme", key_id_of(first))
    assert await keys.resolve_api_key(first) is not None  # still kept
    assert await keys.resolve_api_key(second) is None  # dropped, so asked again
    for number in range(100):
        assert await keys.resolve_api_key(f"uik_unknown{number}") is None
        assert len(keys) == 2


async def test_webhook_secrets_and_keys_are_the_stores(store: SqliteKeyStore, clock: Clock) -> None:
    keys = cached(store, clock)
    secret = await keys.rotate_webhook_secret("acme")
    assert await store.webhook_secret("acme") == secret
    assert await keys.webhook_secret("acme") == secret
    key = await keys.create_api_key("globex")
    resolved = await store.resolve_api_key(key)
    assert resolved is not None and resolved.app_id == "globex"


@pytest.mark.parametrize(("ttl", "size"), [(0, 10), (-1, 10), (5, 0)])
def test_a_cache_needs_a_positive_ttl_and_size(
    store: SqliteKeyStore, ttl: float, size: int
) -> None:
    with pytest.raises(ValueError, match="ttl > 0 and size >= 1"):
        CachedKeyStore(store, ttl=ttl, size=size)


class SlowResolve:
    """The real store, whose first resolve waits until it is released (as a slow database)."""

    def __init__(self, store: SqliteKeyStore) -> None:
        self.store = store
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None:
        info = await self.store.resolve_api_key(key)
        if not self.release.is_set():
            self.started.set()
            await self.release.wait()
        return info

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_a_lookup_under_way_while_its_key_is_revoked_keeps_nothing(
    store: SqliteKeyStore, clock: Clock
) -> None:
    slow = SlowResolve(store)
    keys = CachedKeyStore(slow, ttl=TTL, size=100, clock=clock)  # type: ignore[arg-type]
    key = await store.create_api_key("acme")
    lookup = asyncio.create_task(keys.resolve_api_key(key))
    await slow.started.wait()
    assert await keys.revoke_api_key("acme", key_id_of(key))
    slow.release.set()
    # The lookup read the key before the revocation; neither it nor the next one lets it in.
    assert await lookup is None
    assert await keys.resolve_api_key(key) is None
