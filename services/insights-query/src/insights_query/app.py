"""The one place that wires the query side's adapters into its service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from fastapi import APIRouter

from insights_common.access_http import Access
from insights_common.accounts import Accounts
from insights_common.accounts_http import accounts_router
from insights_common.audit import AuditLog, Recorder
from insights_common.audit_http import audit_router
from insights_common.auth import SecretBox
from insights_common.bus import AtOnce, EventSubscriber, InProcessBus
from insights_common.kafka import KafkaBus, KafkaProjectionWatermark
from insights_common.retention import RetentionSettings, SqliteRetentionSettings
from insights_common.service import ServiceParts
from insights_common.sources import Sources
from insights_common.sources_http import sources_router
from insights_common.sqlite import SqliteDatabase
from insights_common.sso import SEAL_PURPOSE, SingleSignOn
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.domain.time import utc_now
from insights_query.entrypoints.erase_http import erase_router
from insights_query.entrypoints.http import create_router
from insights_query.entrypoints.settings_http import settings_router
from insights_query.erasure import UserEraser
from insights_query.ports import InsightsReader, ProjectionStore, RetentionStore
from insights_query.retention import RetentionService
from insights_query.service import Projector, QueryService
from insights_query.settings import QuerySettings

TOPICS = (USERS, NOTIFICATIONS, TEMPLATES)
# Names the embedded projector in its dead letters, as the projector's group does on Kafka.
EMBEDDED_PROJECTOR = "insights-projector"


class QueryStore(InsightsReader, RetentionStore, Protocol):
    """What the query API reads, and where its retention passes remove messages."""


def create_service(
    *,
    reader: QueryStore,
    access: Access,
    audit: AuditLog,
    retention: RetentionSettings,
    eraser: UserEraser,
    settings: QuerySettings,
    box: SecretBox | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[QueryService, RetentionService, ServiceParts]:
    """The query API over any store, with sign-in, members, the audit trail and the app's
    settings (sources, retention) beside it; with single sign-on when `settings.sso` is
    configured (its flows are sealed with a key derived from `box`'s). The retention passes run
    on their schedule once the process serving the API starts them (`RetentionService.start`)."""
    service = QueryService(reader, settings=settings, clock=clock)
    passes = RetentionService.of(settings=retention, store=reader, query=settings, clock=clock)
    record = Recorder(audit)
    router = APIRouter()
    router.include_router(create_router(service, access, record))
    sso = None
    if settings.sso.enabled:
        if box is None:
            raise ValueError("single sign-on needs the master key (SecretBox) to seal its flows")
        sso = SingleSignOn(settings.sso, seal_key=box.derived_key(SEAL_PURPOSE))
    if access.members is not None:
        accounts = Accounts(access.members)
        router.include_router(accounts_router(access, accounts, audit, sso))
    router.include_router(audit_router(access, audit))
    router.include_router(sources_router(access, Sources(access.keys, audit)))
    router.include_router(settings_router(access, passes, record))
    router.include_router(erase_router(access, eraser, record))
    return service, passes, ServiceParts(router=router, on_stop=[passes.stop])


def project_bus(bus: EventSubscriber, store: ProjectionStore) -> Projector:
    """Project the bus's users, notifications and templates into `store` (the embedded mode's
    projector: one subscriber, each publish's events folded before the publish returns)."""
    projector = Projector(store)
    bus.subscribe(TOPICS, projector.handle, group=EMBEDDED_PROJECTOR)
    return projector


def create_embedded(
    *,
    db: SqliteDatabase,
    bus: InProcessBus,
    access: Access,
    audit: AuditLog,
    settings: QuerySettings,
    box: SecretBox | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[QueryService, RetentionService, ServiceParts]:
    """Project the bus's users, notifications and templates into SQLite and serve the query API;
    retention settings are kept in the same file."""
    store = SqliteInsightsStore(db)
    projector = project_bus(bus, store)
    # The in-process bus: every consumer (this projector, import-svc's registry, ingest's
    # phone directory) has taken the erase when `publish` returns.
    eraser = UserEraser(
        publisher=bus, watermark=AtOnce(), wait_seconds=settings.erase_wait_seconds, clock=clock
    )
    service, passes, parts = create_service(
        reader=store,
        access=access,
        audit=audit,
        retention=SqliteRetentionSettings(db),
        eraser=eraser,
        settings=settings,
        box=box,
        clock=clock,
    )
    parts.collectors.append(projector.dropped)
    return service, passes, parts


def create_distributed(
    *,
    store: QueryStore,
    access: Access,
    audit: AuditLog,
    retention: RetentionSettings,
    bus: KafkaBus,
    settings: QuerySettings,
    box: SecretBox | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[QueryService, RetentionService, ServiceParts]:
    """The query API process: reads the store (the projector process writes it) and runs the
    retention passes, one replica at a time (`retention.exclusive`). It publishes the erases
    of users on `bus` and waits for the projector's consumer group to have taken them."""
    watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)
    eraser = UserEraser(
        publisher=bus,
        watermark=watermark,
        wait_seconds=settings.erase_wait_seconds,
        clock=clock,
    )
    service, passes, parts = create_service(
        reader=store,
        access=access,
        audit=audit,
        retention=retention,
        eraser=eraser,
        settings=settings,
        box=box,
        clock=clock,
    )
    parts.on_stop.append(watermark.stop)
    return service, passes, parts


class PingableProjectionStore(ProjectionStore, Protocol):
    async def ping(self) -> bool:
        """True while the store answers."""
        ...


def create_projector(
    *, store: PingableProjectionStore, bus: EventSubscriber, settings: QuerySettings
) -> Projector:
    """The projector process: one consumer group over the three topics, batches into `store`.

    Register before the bus starts. Its instances, and the `projector_consumers` consumers of
    each, share the partitions: while one consumer waits for OpenSearch another folds its batch.
    Two of them writing the same document is safe (the store retries writes that lost a race).
    An event the store keeps failing on while it answers its ping goes to `<topic>.dlq`; while
    it does not answer, the batch waits.
    """
    projector = Projector(store)
    for _ in range(settings.projector_consumers):
        bus.subscribe(
            TOPICS,
            projector.handle,
            group=settings.kafka.projector_group,
            healthy=store.ping,
            max_records=settings.projector_batch,
        )
    return projector
