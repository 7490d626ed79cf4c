"""The one place that wires notification-ingest's adapters into its service."""

from __future__ import annotations

from fastapi import APIRouter

from insights_common.auth import KeyStore
from insights_common.bus import (
    EventPublisher,
    EventSubscriber,
    HealthProbe,
    InProcessBus,
    ProjectionWatermark,
)
from insights_common.kafka import KafkaBus, KafkaProjectionWatermark
from insights_common.postgres import PostgresDatabase
from insights_common.service import ServiceParts
from insights_common.sqlite import SqliteDatabase
from insights_contracts.topics import PLATFORM_RAW, USERS
from notification_ingest.adapters.postgres import (
    PostgresDedupStore,
    PostgresPendingCallbacks,
    PostgresPhoneDirectory,
)
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.entrypoints.consumers import phone_directory_consumer, raw_events_consumer
from notification_ingest.entrypoints.http import build_router
from notification_ingest.entrypoints.sources_http import build_sources_router
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.ports import DedupStore, PendingCallbacks, PhoneDirectory
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings
from notification_ingest.source_service import SourceService


def create_embedded(
    *,
    db: SqliteDatabase,
    bus: InProcessBus,
    keys: KeyStore,
    settings: IngestSettings,
) -> tuple[IngestService, ServiceParts, KeptCallbackLetters]:
    """The service on the shared SQLite file and in-process bus, its routes and hooks, and its
    kept callbacks as `insights dlq` shows them."""
    # The platform's events are independent: one the projector cannot apply goes to the
    # dead-letter table and the others are taken.
    service = ingest_service(SqliteDedupStore(db), bus.isolating(), keys=keys, settings=settings)
    phones = SqlitePhoneDirectory(db)
    pending = SqlitePendingCallbacks(db)
    sources = source_service(service, keys=keys, phones=phones, pending=pending, settings=settings)
    follow_phone_numbers(bus, phones, sources, settings=settings)
    router = routes(service, sources, settings=settings)
    parts = ServiceParts(
        router=router, on_start=[service.start, sources.start], on_stop=[service.stop, sources.stop]
    )
    return service, parts, KeptCallbackLetters(pending=pending, phones=phones, sources=sources)


async def create_distributed(
    *, db: PostgresDatabase, bus: KafkaBus, keys: KeyStore, settings: IngestSettings
) -> tuple[IngestService, ServiceParts]:
    """The service with its dedup in PostgreSQL, publishing to Kafka; its two doors.

    Register before the bus starts: besides the webhook, the service consumes the platform's raw
    topic in its own consumer group. A raw batch it keeps failing on is taken apart only while
    PostgreSQL and Kafka answer, so an outage never dead-letters good events.
    """
    dedup = PostgresDedupStore(db)
    await dedup.migrate()
    watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)
    service = ingest_service(dedup, bus, keys=keys, settings=settings, watermark=watermark)

    async def healthy() -> bool:
        return await db.ping() and await bus.ping()

    bus.subscribe_records(
        [PLATFORM_RAW],
        raw_events_consumer(service, max_batch=settings.max_batch),
        group=settings.raw_group,
        healthy=healthy,
        max_records=settings.raw_batch,
    )
    phones = PostgresPhoneDirectory(db)
    sources = source_service(
        service, keys=keys, phones=phones, pending=PostgresPendingCallbacks(db), settings=settings
    )
    follow_phone_numbers(bus, phones, sources, settings=settings, healthy=healthy)
    router = routes(service, sources, settings=settings)
    return service, ServiceParts(
        router=router,
        on_start=[service.start, sources.start],
        on_stop=[service.stop, sources.stop, watermark.stop],
    )


def follow_phone_numbers(
    bus: EventSubscriber,
    phones: PhoneDirectory,
    sources: SourceService,
    *,
    settings: IngestSettings,
    healthy: HealthProbe | None = None,
) -> None:
    """Keep whose phone number is whose from the users topic, in the phone group; the
    platforms' callbacks kept for a number are taken once it names a user."""
    bus.subscribe(
        [USERS],
        phone_directory_consumer(phones, sources),
        group=settings.phone_group,
        healthy=healthy,
        max_records=settings.raw_batch,
    )


async def kept_callbacks(
    *, db: PostgresDatabase, bus: KafkaBus, keys: KeyStore, settings: IngestSettings
) -> KeptCallbackLetters:
    """The distributed mode's kept callbacks for `insights dlq`: taken again through a service
    publishing to Kafka, outside the running replicas."""
    dedup = PostgresDedupStore(db)
    await dedup.migrate()
    service = ingest_service(dedup, bus, keys=keys, settings=settings)
    phones = PostgresPhoneDirectory(db)
    pending = PostgresPendingCallbacks(db)
    sources = source_service(service, keys=keys, phones=phones, pending=pending, settings=settings)
    return KeptCallbackLetters(pending=pending, phones=phones, sources=sources)


def ingest_service(
    dedup: DedupStore,
    publisher: EventPublisher,
    *,
    keys: KeyStore,
    settings: IngestSettings,
    watermark: ProjectionWatermark | None = None,
) -> IngestService:
    return IngestService(
        dedup=dedup,
        publisher=publisher,
        secrets=keys,
        max_batch=settings.max_batch,
        dedup_window=settings.dedup_window,
        signature_tolerance=settings.signature_tolerance,
        watermark=watermark,
    )


def source_service(
    service: IngestService,
    *,
    keys: KeyStore,
    phones: PhoneDirectory,
    pending: PendingCallbacks,
    settings: IngestSettings,
) -> SourceService:
    return SourceService(
        ingest=service,
        secrets=keys,
        phones=phones,
        pending=pending,
        tolerance=settings.signature_tolerance,
        keep_for=settings.dedup_window,
    )


def routes(
    service: IngestService, sources: SourceService, *, settings: IngestSettings
) -> APIRouter:
    """The webhook and the platforms' sources, in either mode."""
    router = build_router(
        service, max_body_bytes=settings.max_body_bytes, visible_wait=settings.visible_wait_seconds
    )
    router.include_router(build_sources_router(sources, max_body_bytes=settings.max_body_bytes))
    return router
