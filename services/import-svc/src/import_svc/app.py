"""import-svc's builder: its service, routes, hooks and the registry's subscriber, from its ports.

The composition root (`insights.composition`) makes the ports of a mode, SQLite and the
in-process bus or PostgreSQL and Kafka, and hands them here; nothing below depends on which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from fastapi import APIRouter

from import_svc.adapters.spool import LocalUploadSpool
from import_svc.entrypoints.http import build_router
from import_svc.ports import ImportStore, UserRegistry
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights_common.access import Permission
from insights_common.audit import Trail
from insights_common.bus import EventPublisher, EventSubscriber, ProjectionWatermark
from insights_common.clock import utc_now
from insights_common.http.access import Access
from insights_common.http.recorder import Recorder
from insights_common.service import ServiceParts
from insights_contracts.topics import USERS

REGISTRY_GROUP = "insights-import-registry"
"""The users registry's subscriber: its consumer group on Kafka, its dead letters' consumer."""


class ImportStorage(ImportStore, UserRegistry, Protocol):
    """The imports and the users registry in one store: an import's `finish` writes both."""


@dataclass(frozen=True)
class HttpDoor:
    """Who may call the door and where what they do is recorded."""

    access: Access
    audit: Trail


@dataclass
class Imports:
    service: ImportService
    parts: ServiceParts
    """`router` goes under /api/v1; on start, imports a crash left unfinished are resumed (or
    failed when their upload is gone); on stop, running imports are cancelled and kept to be
    resumed."""


def build_imports(
    *,
    store: ImportStorage,
    publisher: EventPublisher,
    watermark: ProjectionWatermark,
    users: EventSubscriber | None,
    door: HttpDoor | None,
    settings: ImportSettings,
    clock: Callable[[], datetime] = utc_now,
) -> Imports:
    """The import service over `store`, publishing each import's users with `publisher`; an
    import completes once `watermark` says the projection made them visible (findable).

    With `users`, the registry follows the users topic in its own group (subscribed here, so
    before the bus starts), learning the users the platform reports as `unchanged` and the
    modes need. A process that only runs imports (`insights import --distributed`) passes None
    and no `door`: the service's replicas keep the registry and serve the routes.
    """
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
        watermark=watermark,
        behind_after=timedelta(seconds=settings.behind_after_seconds),
        stalled_after=timedelta(seconds=settings.stalled_after_seconds),
        clock=clock,
    )
    if users is not None:
        users.subscribe([USERS], service.learn_users, group=REGISTRY_GROUP)
    router = APIRouter()
    if door is not None:
        router = build_router(service, door.access.app_id(Permission.IMPORT), Recorder(door.audit))
    parts = ServiceParts(router=router, on_start=[service.recover], on_stop=[service.shutdown])
    return Imports(service, parts)
