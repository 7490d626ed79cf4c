"""The one place that wires notification-ingest's adapters into its service."""

from __future__ import annotations

from insights_common.auth import KeyStore
from insights_common.bus import InProcessBus
from insights_common.kafka import KafkaBus
from insights_common.postgres import PostgresDatabase
from insights_common.service import ServiceParts
from insights_common.sqlite import SqliteDatabase
from notification_ingest.adapters.postgres import PostgresDedupStore
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.entrypoints.http import build_router
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings


def create_embedded(
    *,
    db: SqliteDatabase,
    bus: InProcessBus,
    keys: KeyStore,
    settings: IngestSettings,
) -> tuple[IngestService, ServiceParts]:
    """The service on the shared SQLite file and in-process bus, and its routes and hooks."""
    service = IngestService(
        dedup=SqliteDedupStore(db),
        publisher=bus,
        secrets=keys,
        max_batch=settings.max_batch,
    )
    router = build_router(service, max_body_bytes=settings.max_body_bytes)
    return service, ServiceParts(router=router)


async def create_distributed(
    *, db: PostgresDatabase, bus: KafkaBus, keys: KeyStore, settings: IngestSettings
) -> tuple[IngestService, ServiceParts]:
    """The service with its dedup in PostgreSQL, publishing to Kafka."""
    dedup = PostgresDedupStore(db)
    await dedup.migrate()
    service = IngestService(dedup=dedup, publisher=bus, secrets=keys, max_batch=settings.max_batch)
    router = build_router(service, max_body_bytes=settings.max_body_bytes)
    return service, ServiceParts(router=router)
