"""notification-ingest's builder: its service, doors, subscribers and hooks, from its ports.

The composition root (`insights.composition`) makes the ports of a mode, SQLite and the
in-process bus or PostgreSQL and Kafka, and hands them here; nothing below depends on which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from insights_common.auth import KeyStore
from insights_common.bus import EventPublisher, EventSubscriber, HealthProbe, ProjectionWatermark
from insights_common.clock import utc_now
from insights_common.service import ServiceParts, merged
from insights_contracts.topics import PLATFORM_RAW, USERS
from notification_ingest.entrypoints.consumers import phone_directory_consumer, raw_events_consumer
from notification_ingest.entrypoints.http import build_router
from notification_ingest.entrypoints.sources_http import build_sources_router
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.ports import DedupStore, PendingCallbacks, PhoneDirectory, RawTopic
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings
from notification_ingest.source_service import SourceService


@dataclass
class Ingest:
    service: IngestService
    parts: ServiceParts
    """`router` (the webhook and the platforms' sources) goes under /api/v1."""
    kept_callbacks: KeptCallbackLetters
    """The platforms' callbacks kept until a user has their number, as `insights dlq` shows
    them."""


def build_ingest(
    *,
    dedup: DedupStore,
    publisher: EventPublisher,
    watermark: ProjectionWatermark,
    keys: KeyStore,
    phones: PhoneDirectory,
    pending: PendingCallbacks,
    users: EventSubscriber | None,
    raw: RawTopic | None,
    healthy: HealthProbe | None,
    settings: IngestSettings,
    clock: Callable[[], datetime] = utc_now,
) -> Ingest:
    """The ingest service publishing with `publisher`; `wait=visible` waits on `watermark`.

    Subscribed here, so before the bus starts: with `users`, whose phone number is whose is kept
    from the users topic in the phone group, and the callbacks kept for a number are taken once
    it names a user; with `raw`, the platform's raw topic is consumed in the raw group. A batch
    either keeps failing on is taken apart only while `healthy` answers (the stores and the bus
    are up), so an outage never dead-letters good events. A process that only replays kept
    callbacks (`insights dlq --distributed`) passes neither and runs no hooks.
    """
    service = IngestService(
        dedup=dedup,
        publisher=publisher,
        secrets=keys,
        max_batch=settings.max_batch,
        dedup_window=settings.dedup_window,
        signature_tolerance=settings.signature_tolerance,
        watermark=watermark,
        clock=clock,
    )
    sources = SourceService(
        ingest=service,
        secrets=keys,
        phones=phones,
        pending=pending,
        tolerance=settings.signature_tolerance,
        keep_for=settings.dedup_window,
        clock=clock,
    )
    if raw is not None:
        raw.subscribe_records(
            [PLATFORM_RAW],
            raw_events_consumer(service, max_batch=settings.max_batch),
            group=settings.raw_group,
            healthy=healthy,
            max_records=settings.raw_batch,
        )
    if users is not None:
        users.subscribe(
            [USERS],
            phone_directory_consumer(phones, sources),
            group=settings.phone_group,
            healthy=healthy,
            max_records=settings.raw_batch,
        )
    router = merged(
        build_router(
            service,
            max_body_bytes=settings.max_body_bytes,
            visible_wait=settings.visible_wait_seconds,
        ),
        build_sources_router(sources, max_body_bytes=settings.max_body_bytes),
    )
    parts = ServiceParts(
        router=router, on_start=[service.start, sources.start], on_stop=[service.stop, sources.stop]
    )
    kept = KeptCallbackLetters(pending=pending, phones=phones, sources=sources)
    return Ingest(service, parts, kept)
