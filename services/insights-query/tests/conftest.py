"""Fixtures of the insights-query tests: a store, bus, key store and HTTP app.

`store` is parametrized: every test that uses it (directly or through the service or the HTTP
client) runs once on SQLite (unit) and once on a real OpenSearch (integration), with its own
index prefix. Keys stay on SQLite in both: they are not what is under test here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from insights_common.audit import GroupedAuditLog
from insights_common.auth import SecretBox
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_contracts import (
    NotificationClicked,
    NotificationDelivered,
    NotificationFailed,
    NotificationRead,
    NotificationResponded,
    NotificationSent,
    TemplateUpserted,
    UserUpserted,
)
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector, build_query
from insights_query.service import QueryService
from insights_query.settings import QuerySettings

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

Store = SqliteInsightsStore | OpenSearchInsightsStore


def at(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


class Events:
    """Builds contract events with fresh event ids; every field can be overridden."""

    def __init__(self, app_id: str = "acme") -> None:
        self.app_id = app_id
        self._n = 0

    def _envelope(self, when: str | datetime, kw: dict[str, Any]) -> dict[str, Any]:
        self._n += 1
        return {
            "event_id": kw.pop("event_id", f"{self.app_id}-e{self._n:05d}"),
            "app_id": kw.pop("app_id", self.app_id),
            "occurred_at": at(when),
        }

    def sent(
        self,
        message_id: str,
        user_id: str,
        when: str | datetime,
        *,
        channel: str = "push",
        key: str = "order_shipped",
        version: int = 1,
        name: str = "Order shipped",
        title: str | None = "Your order shipped",
        body: str = "Order A-1001 is on its way",
        buttons: tuple[dict[str, Any], ...] = (),
        variables: dict[str, Any] | None = None,
        **kw: Any,
    ) -> NotificationSent:
        return NotificationSent.model_validate(
            {
                **self._envelope(when, kw),
                "message_id": message_id,
                "user_id": user_id,
                "channel": channel,
                "template": {
                    "key": key,
                    "name": name,
                    "version": version,
                    "variables": variables or {},
                },
                "content": {"title": title, "body": body, "buttons": list(buttons)},
            }
        )

    def delivered(self, message_id: str, user_id: str, when: str, **kw: Any) -> Any:
        env = self._envelope(when, kw)
        return NotificationDelivered(**env, message_id=message_id, user_id=user_id)

    def read(self, message_id: str, user_id: str, when: str, **kw: Any) -> Any:
        env = self._envelope(when, kw)
        return NotificationRead(**env, message_id=message_id, user_id=user_id)

    def clicked(
        self,
        message_id: str,
        user_id: str,
        when: str,
        *,
        button_id: str | None = None,
        url: str | None = None,
        **kw: Any,
    ) -> Any:
        env = self._envelope(when, kw)
        return NotificationClicked(
            **env, message_id=message_id, user_id=user_id, button_id=button_id, url=url
        )

    def failed(
        self, message_id: str, user_id: str, when: str, *, code: str, reason: str = "", **kw: Any
    ) -> Any:
        env = self._envelope(when, kw)
        return NotificationFailed(
            **env, message_id=message_id, user_id=user_id, code=code, reason=reason
        )

    def responded(
        self,
        message_id: str,
        user_id: str,
        when: str,
        *,
        type: str = "button",
        value: Any = None,
        label: str | None = None,
        **kw: Any,
    ) -> Any:
        env = self._envelope(when, kw)
        return NotificationResponded.model_validate(
            {
                **env,
                "message_id": message_id,
                "user_id": user_id,
                "response": {"type": type, "value": value, "label": label},
            }
        )

    def user(
        self,
        user_id: str,
        when: str,
        *,
        phone: str | None = None,
        nickname: str | None = None,
        source: str = "platform",
        **kw: Any,
    ) -> UserUpserted:
        env = self._envelope(when, kw)
        return UserUpserted(
            **env, user_id=user_id, phone_number=phone, nickname=nickname, source=source
        )

    def template(
        self,
        key: str,
        version: int,
        when: str,
        *,
        name: str = "",
        channels: dict[str, Any] | None = None,
        variable_schema: list[dict[str, Any]] | None = None,
        **kw: Any,
    ) -> TemplateUpserted:
        return TemplateUpserted.model_validate(
            {
                **self._envelope(when, kw),
                "template": {
                    "key": key,
                    "name": name,
                    "version": version,
                    "channels": channels or {},
                    "variable_schema": variable_schema or [],
                },
            }
        )


@pytest.fixture
async def buses(
    kafka_bootstrap: str, topic_prefix: str
) -> AsyncIterator[tuple[KafkaBus, KafkaBus]]:
    """The projector's bus and a publisher's."""
    options = KafkaOptions(
        bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2
    )
    projector, publisher = KafkaBus(options), KafkaBus(options)
    yield projector, publisher
    await projector.stop()
    await publisher.stop()


@pytest.fixture
def ev() -> Events:
    return Events("acme")


@pytest.fixture
def other_ev() -> Events:
    return Events("other")


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "insights.db")
    yield database
    database.close()


@pytest.fixture
def keys(db: SqliteDatabase) -> SqliteKeyStore:
    return SqliteKeyStore(db, SecretBox(Fernet.generate_key()))


@pytest.fixture
def bus() -> InProcessBus:
    return InProcessBus()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("opensearch", marks=pytest.mark.integration),
    ]
)
def store_backend(request: pytest.FixtureRequest) -> tuple[str, str] | None:
    """None for SQLite; (url, index prefix) for OpenSearch, only resolved when used."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("opensearch_url")
    prefix: str = request.getfixturevalue("os_prefix")
    return url, prefix


async def _opened(
    store_backend: tuple[str, str] | None, db: SqliteDatabase, *, refresh: bool
) -> AsyncIterator[Store]:
    if store_backend is None:
        yield SqliteInsightsStore(db)
        return
    url, prefix = store_backend
    client = create_client(url)
    try:
        search = OpenSearchInsightsStore(client, prefix=prefix, refresh=refresh)
        await search.ensure_indices()
        yield search
    finally:
        await client.close()


@pytest.fixture
async def store(store_backend: tuple[str, str] | None, db: SqliteDatabase) -> AsyncIterator[Store]:
    """Each store; on OpenSearch, every write searchable when it returns."""
    async for opened in _opened(store_backend, db, refresh=True):
        yield opened


@pytest.fixture
async def projecting(
    store_backend: tuple[str, str] | None, db: SqliteDatabase
) -> AsyncIterator[Store]:
    """Each store as the projector runs it: on OpenSearch, writes not refreshed one by one."""
    async for opened in _opened(store_backend, db, refresh=False):
        yield opened


def wire(
    store: Store,
    bus: InProcessBus,
    keys: SqliteKeyStore,
    settings: QuerySettings,
    db: SqliteDatabase,
) -> tuple[QueryService, FastAPI]:
    """The query service and its HTTP app over `store`, fed by `bus`."""
    build_projector(store=store, bus=bus, group=EMBEDDED_PROJECTOR, settings=settings)
    query = build_query(
        store=store,
        access=Access(keys, SqliteMemberStore(db)),
        audit=GroupedAuditLog(SqliteAuditLog(db)),
        retention=SqliteRetentionSettings(db),
        publisher=bus,
        watermark=AtOnce(),
        settings=settings,
        clock=lambda: NOW,
    )
    app = FastAPI()
    app.include_router(query.parts.router, prefix="/api/v1")
    install_problem_handlers(app)
    return query.service, app


Wiring = Callable[[QuerySettings], tuple[QueryService, FastAPI]]


@pytest.fixture
def wiring(store: Store, bus: InProcessBus, keys: SqliteKeyStore, db: SqliteDatabase) -> Wiring:
    """Wires the service over this test's store with the given settings (once per test)."""
    return lambda settings: wire(store, bus, keys, settings, db)


@pytest.fixture
def embedded(wiring: Wiring) -> tuple[QueryService, FastAPI]:
    return wiring(QuerySettings())


@pytest.fixture
def service(embedded: tuple[QueryService, FastAPI]) -> QueryService:
    return embedded[0]


@pytest.fixture
async def client(embedded: tuple[QueryService, FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=embedded[1])
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        yield http


@pytest.fixture
async def acme(keys: SqliteKeyStore) -> dict[str, str]:
    return {"Authorization": f"Bearer {await keys.create_api_key('acme')}"}


@pytest.fixture
async def other(keys: SqliteKeyStore) -> dict[str, str]:
    return {"Authorization": f"Bearer {await keys.create_api_key('other')}"}
