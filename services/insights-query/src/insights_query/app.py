"""The one place that wires the query side's adapters into its service."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from insights_common.auth import KeyStore
from insights_common.bus import InProcessBus
from insights_common.http import bearer_auth
from insights_common.service import ServiceParts
from insights_common.sqlite import SqliteDatabase
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.domain.time import utc_now
from insights_query.entrypoints.http import create_router
from insights_query.service import Projector, QueryService
from insights_query.settings import QuerySettings


def create_embedded(
    *,
    db: SqliteDatabase,
    bus: InProcessBus,
    keys: KeyStore,
    settings: QuerySettings,
    clock: Callable[[], datetime] = utc_now,
) -> tuple[QueryService, ServiceParts]:
    """Project the bus's users, notifications and templates into SQLite and serve the query API."""
    store = SqliteInsightsStore(db)
    projector = Projector(store)
    for topic in (USERS, NOTIFICATIONS, TEMPLATES):
        bus.subscribe(topic, projector.handle)
    service = QueryService(store, settings=settings, clock=clock)
    return service, ServiceParts(router=create_router(service, bearer_auth(keys)))
