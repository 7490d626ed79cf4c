"""The real OpenSearch store while its indices refuse writes but the node answers its ping.

That is what a restarted node does while its shards recover, and why the health probe alone
could not tell an outage from poison: the store's own errors say it (`errors.py`), the
projector waits, and nothing goes to the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opensearchpy import AsyncOpenSearch

from insights_common.audit import GroupedAuditLog
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.kafka.bus import ISOLATE_AFTER, KafkaBus, KafkaOptions
from insights_common.kafka.dead_letters import KafkaDeadLetters
from insights_common.outage import DependencyUnavailable
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_contracts import AnyEvent
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import build_projector, build_query
from insights_query.settings import QuerySettings

pytestmark = pytest.mark.integration

SETTINGS = QuerySettings(projector_batch=50, projector_consumers=1)


class Counting:
    """The real store, counting the batches it was handed."""

    def __init__(self, inner: OpenSearchInsightsStore) -> None:
        self.inner = inner
        self.attempts = 0

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        self.attempts += 1
        await self.inner.apply(events)

    async def erased(self, users: Any) -> Any:
        return await self.inner.erased(users)

    async def erase(self, erasures: Any) -> None:
        await self.inner.erase(erasures)

    async def ping(self) -> bool:
        return await self.inner.ping()


@pytest.fixture
async def client(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    opened = create_client(opensearch_url)
    yield opened
    await opened.close()


@pytest.fixture
async def store(client: AsyncOpenSearch, os_prefix: str) -> OpenSearchInsightsStore:
    search = OpenSearchInsightsStore(client, prefix=os_prefix, refresh=True)
    await search.ensure_indices()
    return search


async def block_writes(client: AsyncOpenSearch, store: OpenSearchInsightsStore, on: bool) -> None:
    await client.indices.put_settings(
        index=store.index("messages"), body={"index.blocks.write": True if on else None}
    )


async def until(check: Callable[[], Any], limit: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


async def test_a_blocked_index_is_an_outage_of_opensearch(
    client: AsyncOpenSearch, store: OpenSearchInsightsStore, ev: Any
) -> None:
    await block_writes(client, store, True)
    try:
        with pytest.raises(DependencyUnavailable) as raised:
            await store.apply([ev.sent("m1", "alex", "2026-11-02T10:00:00Z")])
        assert raised.value.dependency == "OpenSearch"
        assert "cluster_block_exception" in str(raised.value)
        assert await store.ping()  # the node answers all the while
    finally:
        await block_writes(client, store, False)
    await store.apply([ev.sent("m1", "alex", "2026-11-02T10:00:00Z")])
    assert await store.get_message("acme", "m1") is not None


async def test_the_projector_waits_for_a_blocked_index_and_dead_letters_nothing(
    client: AsyncOpenSearch,
    store: OpenSearchInsightsStore,
    ev: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    options = KafkaOptions(
        bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2
    )
    projector_bus, publisher = KafkaBus(options), KafkaBus(options)
    counting = Counting(store)
    build_projector(
        store=counting,
        bus=projector_bus,
        group=SETTINGS.kafka.projector_group,
        settings=SETTINGS,
        consumers=SETTINGS.projector_consumers,
        healthy=counting.ping,
    )
    await block_writes(client, store, True)
    try:
        await projector_bus.start()
        await publisher.start()
        await publisher.publish(
            [ev.sent(f"m{n}", "alex", f"2026-11-02T10:0{n}:00Z") for n in range(1, 4)]
        )

        async def retried_past_isolation() -> bool:
            return counting.attempts >= ISOLATE_AFTER + 2

        await until(retried_past_isolation)
        letters = KafkaDeadLetters(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
        assert (await letters.listing(topic=None, limit=10)).total == 0
        await block_writes(client, store, False)

        async def everything_applied() -> bool:
            found = [await store.get_message("acme", f"m{n}") for n in range(1, 4)]
            return all(found)

        await until(everything_applied)
        assert (await letters.listing(topic=None, limit=10)).total == 0
    finally:
        await block_writes(client, store, False)
        await projector_bus.stop()
        await publisher.stop()


READ_PATHS = (
    "/api/v1/users?q=alex",
    "/api/v1/users/alex",
    "/api/v1/users/alex/messages",
    "/api/v1/messages/m1",
    "/api/v1/templates",
)


def query_app(store: OpenSearchInsightsStore, keys: SqliteKeyStore, db: SqliteDatabase) -> FastAPI:
    query = build_query(
        store=store,
        access=Access(keys, SqliteMemberStore(db)),
        audit=GroupedAuditLog(SqliteAuditLog(db)),
        retention=SqliteRetentionSettings(db),
        publisher=InProcessBus(),
        watermark=AtOnce(),
        settings=QuerySettings(),
    )
    app = FastAPI()
    app.include_router(query.parts.router, prefix="/api/v1")
    install_problem_handlers(app)
    return app


async def read_each_path(app: FastAPI, auth: dict[str, str]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return [await http.get(path, headers=auth) for path in READ_PATHS]


def assert_outage(answers: list[httpx.Response]) -> None:
    for path, answer in zip(READ_PATHS, answers, strict=True):
        assert answer.status_code == 503, (path, answer.text)
        assert int(answer.headers["retry-after"]) >= 1, path
        assert answer.json()["dependency"] == "OpenSearch", path


async def test_reads_while_the_indices_refuse_them_are_503_then_answer_again(
    client: AsyncOpenSearch,
    store: OpenSearchInsightsStore,
    keys: SqliteKeyStore,
    db: SqliteDatabase,
    ev: Any,
) -> None:
    app = query_app(store, keys, db)
    auth = {"Authorization": f"Bearer {await keys.create_api_key('acme')}"}
    await store.apply([ev.sent("m1", "alex", "2026-11-02T10:00:00Z")])
    indices = ",".join(store.index(kind) for kind in ("users", "messages", "templates"))
    await client.indices.put_settings(index=indices, body={"index.blocks.read": True})
    try:
        assert_outage(await read_each_path(app, auth))
    finally:
        await client.indices.put_settings(index=indices, body={"index.blocks.read": None})
    assert [answer.status_code for answer in await read_each_path(app, auth)] == [200] * 5


async def test_reads_with_no_opensearch_listening_are_503(
    keys: SqliteKeyStore, db: SqliteDatabase, os_prefix: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = create_client(nobody)
    try:
        store = OpenSearchInsightsStore(unreachable, prefix=os_prefix)
        auth = {"Authorization": f"Bearer {await keys.create_api_key('acme')}"}
        assert_outage(await read_each_path(query_app(store, keys, db), auth))
    finally:
        await unreachable.close()
