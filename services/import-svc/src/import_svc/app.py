"""The one place that wires import-svc's adapters into its service."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from import_svc.adapters.postgres import PostgresImportStore
from import_svc.adapters.spool import LocalUploadSpool
from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.entrypoints.http import build_router
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights_common.access import Permission
from insights_common.access_http import Access
from insights_common.audit import AuditLog, Recorder
from insights_common.bus import EventSubscriber, InProcessBus
from insights_common.kafka import (
    KafkaBus,
    KafkaProjectionWatermark,
    KafkaTransactionalPublisher,
)
from insights_common.postgres import PostgresDatabase
from insights_common.service import ServiceParts
from insights_common.sqlite import SqliteDatabase
from insights_contracts.topics import USERS

REGISTRY_GROUP = "insights-import-registry"
"""The users registry's subscriber: its consumer group on Kafka, its dead letters' consumer."""


def create_embedded(
    *,
    db: SqliteDatabase,
    bus: InProcessBus,
    access: Access,
    audit: AuditLog,
    settings: ImportSettings,
) -> tuple[ImportService, ServiceParts]:
    """import-svc on the shared SQLite file and the in-process bus.

    The host mounts `parts.router` under /api/v1 and runs the hooks: on start, imports a crash
    left unfinished are resumed (or failed when their upload is gone); on stop, running imports
    are cancelled and kept to be resumed.
    """
    store = SqliteImportStore(db)
    service = ImportService(
        store=store,
        registry=store,
        publisher=bus,
        spool=LocalUploadSpool(settings.data_dir / "uploads"),
        owner=settings.replica_id,
        max_rows=settings.max_rows,
        max_bytes=settings.max_bytes,
        max_record_bytes=settings.max_record_bytes,
        max_blank_lines=settings.max_blank_lines,
        time_budget=timedelta(seconds=settings.time_budget_seconds),
        max_running_per_app=settings.max_running_per_app,
    )
    follow_users(bus, service)
    parts = ServiceParts(
        router=build_router(service, access.app_id(Permission.IMPORT), Recorder(audit)),
        on_start=[service.recover],
        on_stop=[service.shutdown],
    )
    return service, parts


async def create_distributed(
    *,
    db: PostgresDatabase,
    bus: KafkaBus,
    access: Access,
    audit: AuditLog,
    settings: ImportSettings,
) -> tuple[ImportService, ServiceParts]:
    """import-svc on PostgreSQL (imports, rejected rows, the users registry) and Kafka.

    Each import's users are published in one Kafka transaction under this replica's
    transactional id. Register before the bus starts: the registry follows the users topic in
    its own consumer group, so the platform's user.upserted events reach it as they do in the
    embedded mode.
    """
    service, hooks = await create_distributed_importer(db=db, bus=bus, settings=settings)
    follow_users(bus, service)
    parts = ServiceParts(
        router=build_router(service, access.app_id(Permission.IMPORT), Recorder(audit)),
        on_start=hooks.on_start,
        on_stop=hooks.on_stop,
    )
    return service, parts


def follow_users(bus: EventSubscriber, service: ImportService) -> None:
    """The registry learns the users the platform reports, so modes and "unchanged" see them."""
    bus.subscribe([USERS], service.learn_users, group=REGISTRY_GROUP)


async def create_distributed_importer(
    *, db: PostgresDatabase, bus: KafkaBus, settings: ImportSettings
) -> tuple[ImportService, ServiceParts]:
    """The import service of the distributed mode without its HTTP door (`insights import
    --distributed` runs one in the terminal); the parts hold only its hooks."""
    store = PostgresImportStore(db)
    await store.migrate()
    publisher = KafkaTransactionalPublisher(
        bus, transactional_id=f"insights-import-{settings.replica_id}"
    )
    watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)
    service = ImportService(
        store=store,
        registry=store,
        publisher=publisher,
        spool=LocalUploadSpool(settings.data_dir / "uploads"),
        owner=settings.replica_id,
        max_rows=settings.max_rows,
        max_bytes=settings.max_bytes,
        max_record_bytes=settings.max_record_bytes,
        max_blank_lines=settings.max_blank_lines,
        time_budget=timedelta(seconds=settings.time_budget_seconds),
        max_running_per_app=settings.max_running_per_app,
        # Completed means findable: an import waits for the projector's committed positions.
        watermark=watermark,
        behind_after=timedelta(seconds=settings.behind_after_seconds),
        stalled_after=timedelta(seconds=settings.stalled_after_seconds),
    )
    hooks = ServiceParts(
        router=APIRouter(),
        # The producer's start aborts a transaction a crash of this replica left open, before
        # its imports are resumed.
        on_start=[publisher.start, service.recover],
        on_stop=[service.shutdown, publisher.stop, watermark.stop],
    )
    return service, hooks
