"""Reaching the distributed mode's Kafka, PostgreSQL and OpenSearch: each adapter made from its
settings, waiting while the server starts (as in docker compose, all may start at once)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, TypeVar

from opentelemetry.sdk.trace import TracerProvider

from insights_common.audit import GroupedAuditLog
from insights_common.auth import KeyStore, SecretBox
from insights_common.http.access import Access
from insights_common.http.observability import ReadinessCheck
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.key_cache import CachedKeyStore
from insights_common.outage import patiently
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.keys import PostgresKeyStore
from insights_common.postgres.members import PostgresMemberStore
from insights_common.settings import (
    KafkaSettings,
    KeyCacheSettings,
    OpenSearchSettings,
    PostgresSettings,
)

if TYPE_CHECKING:
    from insights_query.adapters.opensearch import OpenSearchInsightsStore

log = logging.getLogger("insights.serve")

T = TypeVar("T")


def kafka_bus(
    settings: KafkaSettings, *, client_id: str, tracer_provider: TracerProvider | None = None
) -> KafkaBus:
    return KafkaBus(
        KafkaOptions(
            bootstrap_servers=settings.bootstrap_servers,
            topic_prefix=settings.topic_prefix,
            client_id=client_id,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
            publish_timeout=settings.publish_timeout,
        ),
        tracer_provider=tracer_provider,
    )


async def postgres(
    settings: PostgresSettings,
    stack: AsyncExitStack,
    *,
    limit: float,
    tracer_provider: TracerProvider | None = None,
) -> PostgresDatabase:
    db = await patiently(
        "PostgreSQL",
        lambda: PostgresDatabase.connect(
            settings.dsn.get_secret_value(),
            schema=settings.db_schema,
            max_size=settings.pool_size,
            acquire_timeout=settings.timeout,
            tracer_provider=tracer_provider,
        ),
        limit=limit,
    )
    stack.push_async_callback(db.close)
    return db


async def key_store(db: PostgresDatabase, box: SecretBox, cache: KeyCacheSettings) -> KeyStore:
    keys = PostgresKeyStore(db, box)
    await keys.migrate()
    if cache.seconds == 0:
        return keys
    return CachedKeyStore(keys, ttl=cache.seconds, size=cache.size)


async def access_of(db: PostgresDatabase, keys: KeyStore) -> tuple[Access, GroupedAuditLog]:
    """How a service process authenticates its callers (keys and members' sessions, in
    PostgreSQL) and where it records what they do (`GroupedAuditLog`; its `start` and `stop`
    are the caller's)."""
    members = PostgresMemberStore(db)
    await members.migrate()
    audit = PostgresAuditLog(db)
    await audit.migrate()
    return Access(keys, members), GroupedAuditLog(audit)


async def opensearch_store(
    settings: OpenSearchSettings,
    stack: AsyncExitStack,
    *,
    pool: int,
    limit: float,
) -> OpenSearchInsightsStore:
    # Only the processes that read or write OpenSearch load its client (the CLI's embedded
    # commands import this module too).
    from insights_query.adapters.opensearch import (  # noqa: PLC0415
        OpenSearchInsightsStore,
        create_client,
    )
    from insights_query.adapters.opensearch.mappings import IndexSetupError  # noqa: PLC0415

    client = create_client(settings.url, pool=pool)
    stack.push_async_callback(client.close)
    store = OpenSearchInsightsStore(client, prefix=settings.index_prefix)
    await patiently(
        "OpenSearch",
        lambda: store.ensure_indices(
            replicas=settings.replicas, refresh_seconds=settings.refresh_seconds
        ),
        limit=limit,
        final=(IndexSetupError,),
    )
    return store


def check(name: str, ping: Callable[[], Awaitable[bool]]) -> ReadinessCheck:
    async def ready() -> None:
        if not await ping():
            raise RuntimeError(f"{name} is not answering")

    ready.__name__ = name  # the dependency's name in /readyz and insights_dependency_up
    return ready
