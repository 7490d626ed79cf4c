"""Failed authentication is limited per client address and requests per API key (429 with
Retry-After), and the cache of resolved keys lets neither a revoked key nor a brute force
through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import Depends, FastAPI

from insights_common.auth import SecretBox, key_id_of, sign
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.http.guard import HttpSettings, install_http_guards
from insights_common.http.rate_limit import RateLimits, RateLimitSettings
from insights_common.key_cache import CachedKeyStore
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from tests.security.conftest import InProcess
from tests.security.serving import serving

pytestmark = pytest.mark.unit

WRONG = "uik_AAAAAAAA-not-a-key-of-this-deployment"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_address_past_its_failed_authentications_gets_429(
    in_process: InProcess,
) -> None:
    client = in_process.client
    burst = RateLimitSettings().failed_auth_burst
    for _ in range(burst):
        assert (await client.get("/api/v1/users", headers=bearer(WRONG))).status_code == 401
    refused = await client.get("/api/v1/users", headers=bearer(WRONG))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    assert "Retry-After" in refused.json()["detail"]
    # Even a right key from that address waits: the address is what is being limited.
    assert (await client.get("/api/v1/users", headers=in_process.auth)).status_code == 429
    # Another address is not held back.
    app = client._transport.app  # type: ignore[attr-defined]
    elsewhere = httpx.ASGITransport(app=app, client=("198.51.100.9", 1234))
    async with httpx.AsyncClient(transport=elsewhere, base_url="http://insights.test") as other:
        assert (await other.get("/api/v1/users", headers=in_process.auth)).status_code == 200


@pytest.fixture
def store(tmp_path: Path) -> SqliteKeyStore:
    return SqliteKeyStore(SqliteDatabase(tmp_path / "keys.db"), SecretBox(Fernet.generate_key()))


def guarded(keys: CachedKeyStore | SqliteKeyStore, limits: RateLimitSettings) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    install_http_guards(app, HttpSettings(), default_origin="http://t", limits=RateLimits(limits))
    auth = Access(keys).app_id(None)

    @app.get("/api/v1/whoami")
    async def whoami(app_id: str = Depends(auth)) -> dict[str, str]:
        return {"app_id": app_id}

    return app


@pytest.fixture
async def cached_client(
    store: SqliteKeyStore,
) -> AsyncIterator[tuple[httpx.AsyncClient, CachedKeyStore]]:
    keys = CachedKeyStore(store, ttl=60, size=100)
    app = guarded(keys, RateLimitSettings(failed_auth_burst=5, key_burst=3, key_per_second=0.01))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.50", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client, keys


async def test_an_unknown_key_remembered_by_the_cache_still_counts_as_a_failure(
    cached_client: tuple[httpx.AsyncClient, CachedKeyStore],
) -> None:
    client, _ = cached_client
    statuses = [
        (await client.get("/api/v1/whoami", headers=bearer(WRONG))).status_code for _ in range(7)
    ]
    assert statuses == [401] * 5 + [429] * 2


async def test_a_key_past_its_requests_gets_429_with_retry_after(
    cached_client: tuple[httpx.AsyncClient, CachedKeyStore],
) -> None:
    client, keys = cached_client
    key = await keys.create_api_key("acme")
    other = await keys.create_api_key("acme")
    statuses = [
        (await client.get("/api/v1/whoami", headers=bearer(key))).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    refused = await client.get("/api/v1/whoami", headers=bearer(key))
    assert refused.headers["retry-after"] == "100"  # 0.01 a second: one every 100 s
    assert (await client.get("/api/v1/whoami", headers=bearer(other))).status_code == 200


async def test_a_key_revoked_in_this_process_is_refused_at_once_despite_the_cache(
    cached_client: tuple[httpx.AsyncClient, CachedKeyStore],
) -> None:
    client, keys = cached_client
    key = await keys.create_api_key("acme")
    assert (await client.get("/api/v1/whoami", headers=bearer(key))).status_code == 200
    assert await keys.revoke_api_key("acme", key_id_of(key))
    assert (await client.get("/api/v1/whoami", headers=bearer(key))).status_code == 401


async def test_limits_can_be_turned_off(store: SqliteKeyStore) -> None:
    app = guarded(store, RateLimitSettings(enabled=False, failed_auth_burst=1))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for _ in range(5):
            assert (await client.get("/api/v1/whoami", headers=bearer(WRONG))).status_code == 401


async def test_a_forged_x_forwarded_for_does_not_escape_the_address_limit(
    store: SqliteKeyStore,
) -> None:
    app = guarded(store, RateLimitSettings(failed_auth_burst=3))
    async with (
        serving(app, HttpSettings()) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        statuses = [
            (
                await client.get(
                    "/api/v1/whoami",
                    headers={**bearer(WRONG), "X-Forwarded-For": f"198.51.100.{n}"},
                )
            ).status_code
            for n in range(5)
        ]
    assert statuses == [401, 401, 401, 429, 429]


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit(
    store: SqliteKeyStore,
) -> None:
    app = guarded(store, RateLimitSettings(failed_auth_burst=1))
    async with (
        serving(app, HttpSettings(trusted_proxies="127.0.0.1")) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):

        async def status(forwarded: str) -> int:
            headers = {**bearer(WRONG), "X-Forwarded-For": forwarded}
            return (await client.get("/api/v1/whoami", headers=headers)).status_code

        assert [await status("198.51.100.1") for _ in range(2)] == [401, 429]
        assert await status("198.51.100.2") == 401


def test_the_services_behind_the_edge_trust_its_forwarded_for_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from insights.distributed import http_settings  # noqa: PLC0415

    monkeypatch.delenv("INSIGHTS_HTTP_TRUSTED_PROXIES", raising=False)
    assert http_settings().trusted_proxies == "127.0.0.1"
    monkeypatch.setenv("INSIGHTS_HTTP_TRUSTED_PROXIES", "10.0.0.0/8")
    assert http_settings().trusted_proxies == "10.0.0.0/8"


async def test_failed_webhook_signatures_count_toward_the_address_limit(
    in_process: InProcess,
) -> None:
    """A sender guessing webhook secrets is held back like one guessing API keys, and the 429
    is answered from the headers, before the body."""
    client = in_process.client
    secret = await in_process.embedded.keys.rotate_webhook_secret("acme")
    body = b"[]"

    def headers(signature: str) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "X-Insights-App": "acme",
            "X-Insights-Signature": signature,
        }

    wrong = sign("whsec_a-guess", body)
    for _ in range(RateLimitSettings().failed_auth_burst):
        answer = await client.post("/api/v1/events", content=body, headers=headers(wrong))
        assert answer.status_code == 401
    refused = await client.post("/api/v1/events", content=body, headers=headers(sign(secret, body)))
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["connection"] == "close"
    # Unknown API keys from that address are refused by the same count.
    assert (await client.get("/api/v1/users", headers=bearer(WRONG))).status_code == 429
