"""insights-query's builders, from their ports: the query API, and the projector that feeds its
store. The distributed mode runs them in two processes, the embedded mode in one.

The composition root (`insights.composition`) makes the ports of a mode, SQLite and the
in-process bus or OpenSearch, PostgreSQL and Kafka, and hands them here; nothing below depends
on which.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from fastapi import APIRouter

from insights_common.accounts import Accounts
from insights_common.audit import Trail
from insights_common.auth import SecretBox
from insights_common.bus import (
    EventPublisher,
    EventSubscriber,
    HealthProbe,
    ProjectionWatermark,
    Visibility,
)
from insights_common.clock import utc_now
from insights_common.http.access import Access
from insights_common.http.accounts import accounts_router
from insights_common.http.audit import audit_router
from insights_common.http.recorder import Recorder
from insights_common.http.sources import sources_router
from insights_common.retention import RetentionSettings
from insights_common.service import ServiceParts, merged
from insights_common.sources import Sources
from insights_common.sso import SEAL_PURPOSE, SingleSignOn
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS
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


@dataclass
class Query:
    service: QueryService
    retention: RetentionService
    """The retention passes: on their schedule once the process serving the API starts them
    (`RetentionService.start`), not among the parts' hooks."""
    eraser: UserEraser
    """Erases a user, as `DELETE /api/v1/users/{id}` does."""
    parts: ServiceParts


def build_query(
    *,
    store: QueryStore,
    access: Access,
    audit: Trail,
    retention: RetentionSettings,
    publisher: EventPublisher,
    watermark: ProjectionWatermark,
    settings: QuerySettings,
    box: SecretBox | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Query:
    """The query API over `store`, with sign-in, members, the audit trail and the app's
    settings (sources, retention) beside it; with single sign-on when `settings.sso` is
    configured (its flows are sealed with a key derived from `box`'s). Erasing a user publishes
    the erase with `publisher` and waits until `watermark` says the projection has taken it."""
    service = QueryService(store, settings=settings, clock=clock)
    passes = RetentionService.of(settings=retention, store=store, query=settings, clock=clock)
    eraser = UserEraser(
        publisher=publisher,
        watermark=watermark,
        wait_seconds=settings.erase_wait_seconds,
        clock=clock,
    )
    record = Recorder(audit)
    sso = None
    if settings.sso.enabled:
        if box is None:
            raise ValueError("single sign-on needs the master key (SecretBox) to seal its flows")
        sso = SingleSignOn(settings.sso, seal_keys=box.derived_keys(SEAL_PURPOSE))
    routers = [create_router(service, access, record)]
    if access.members is not None:
        accounts = Accounts(access.members)
        routers.append(accounts_router(access, accounts, audit, sso))
    routers += [
        audit_router(access, audit),
        sources_router(access, Sources(access.keys, audit)),
        settings_router(access, passes, record),
        erase_router(access, eraser, record),
    ]
    router = merged(*routers)
    return Query(service, passes, eraser, ServiceParts(router=router, on_stop=[passes.stop]))


@dataclass
class Projection:
    projector: Projector
    parts: ServiceParts
    """No routes; the count of the events it dropped, for /metrics."""


def build_projector(
    *,
    store: ProjectionStore,
    bus: EventSubscriber,
    group: str,
    settings: QuerySettings,
    consumers: int = 1,
    healthy: HealthProbe | None = None,
    visible: Visibility | None = None,
) -> Projection:
    """Project the bus's users, notifications and templates into `store`, subscribed (before
    the bus starts) `consumers` times in `group`.

    On Kafka the consumers share the partitions: while one waits for the store another folds its
    batch (two writing the same document is safe: the store retries writes that lost a race). An
    event the store keeps failing on while `healthy` answers goes to `<topic>.dlq`; while it does
    not, the batch waits. With `visible` (the store's: once what was written can be searched),
    a batch's offsets are committed only after it, while the next batches are folded. In
    process each subscription takes every publish, so one is enough: each publish's events are
    folded before it returns.
    """
    projector = Projector(store)
    for _ in range(consumers):
        bus.subscribe(
            TOPICS,
            projector.handle,
            group=group,
            healthy=healthy,
            max_records=settings.projector_batch,
            visible=visible,
        )
    return Projection(projector, ServiceParts(router=APIRouter(), collectors=[projector.dropped]))
