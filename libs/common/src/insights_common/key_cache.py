"""Resolved API keys kept in memory for a few seconds, so a request does not wait on the key store.

The price is a bound on revocation: a key revoked by another process (`insights keys revoke`)
still works here until its entry expires, at most `ttl` seconds (API_KEY_CACHE_SECONDS, 5 by
default; 0 turns the cache off). A key revoked through this process is refused here at once,
even by a lookup that was under way while it was revoked. Keys the store does not know are
remembered the same way, so a client retrying a wrong key does not send each try to the store;
each try still counts as a failed authentication (`http.access.Access`), so a cached "unknown"
spares a brute force nothing.
Entries are keyed by the key's SHA-256, as the store keeps it, never by the key; there are at most
`size` of them, the least recently used going first, so unknown keys sent in bulk cannot grow
the memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from insights_common.auth import (
    ApiKeyInfo,
    KeyStore,
    SourceConfig,
    SourceInfo,
    WebhookSigning,
    hash_key,
)


class CachedKeyStore:
    """Implements `insights_common.auth.KeyStore` over another one; only resolving is cached."""

    def __init__(
        self,
        store: KeyStore,
        *,
        ttl: float,
        size: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or size < 1:
            raise ValueError(f"a key cache needs ttl > 0 and size >= 1 (got {ttl}, {size})")
        self._store = store
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._resolved: OrderedDict[str, tuple[float, ApiKeyInfo | None]] = OrderedDict()
        # Bumped by each revocation: a lookup that began before it does not keep its answer.
        self._revocations = 0

    def __len__(self) -> int:
        return len(self._resolved)

    async def resolve_api_key(self, key: str) -> ApiKeyInfo | None:
        digest = hash_key(key)
        now = self._clock()
        entry = self._resolved.get(digest)
        if entry is not None and entry[0] > now:
            self._resolved.move_to_end(digest)
            return entry[1]
        revocations = self._revocations
        info = await self._store.resolve_api_key(key)
        if revocations != self._revocations:
            return await self._store.resolve_api_key(key)
        self._resolved[digest] = (now + self._ttl, info)
        self._resolved.move_to_end(digest)
        while len(self._resolved) > self._size:
            self._resolved.popitem(last=False)
        return info

    async def revoke_api_key(self, app_id: str, key_id: str) -> bool:
        self._revocations += 1
        revoked = await self._store.revoke_api_key(app_id, key_id)
        self._revocations += 1
        # Revoked through this process: refused here at once, not after the ttl.
        for digest, (_, info) in list(self._resolved.items()):
            if info is not None and info.app_id == app_id and info.key_id == key_id:
                del self._resolved[digest]
        return revoked

    async def create_api_key(
        self,
        app_id: str,
        *,
        scopes: tuple[str, ...] = ("admin",),
        expires_at: datetime | None = None,
    ) -> str:
        return await self._store.create_api_key(app_id, scopes=scopes, expires_at=expires_at)

    async def list_api_keys(self, app_id: str) -> list[ApiKeyInfo]:
        return await self._store.list_api_keys(app_id)

    async def rotate_webhook_secret(self, app_id: str, *, overlap: timedelta = timedelta(0)) -> str:
        return await self._store.rotate_webhook_secret(app_id, overlap=overlap)

    async def webhook_secret(self, app_id: str) -> str | None:
        return await self._store.webhook_secret(app_id)

    async def webhook_signing(self, app_id: str, *, now: datetime) -> WebhookSigning | None:
        return await self._store.webhook_signing(app_id, now=now)

    async def require_webhook_timestamp(self, app_id: str, *, required: bool) -> bool:
        return await self._store.require_webhook_timestamp(app_id, required=required)

    async def set_source_secret(
        self, app_id: str, platform: str, secret: str, *, user_field: str | None = None
    ) -> None:
        await self._store.set_source_secret(app_id, platform, secret, user_field=user_field)

    async def source(self, app_id: str, platform: str) -> SourceConfig | None:
        return await self._store.source(app_id, platform)

    async def list_sources(self, app_id: str) -> list[SourceInfo]:
        return await self._store.list_sources(app_id)

    async def remove_source(self, app_id: str, platform: str) -> bool:
        return await self._store.remove_source(app_id, platform)

    async def reseal_secrets(self) -> dict[str, int]:
        return await self._store.reseal_secrets()
