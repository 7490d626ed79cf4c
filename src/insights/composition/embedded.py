"""The embedded mode's adapters, SQLite and an in-process bus, and the services built on them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from opentelemetry.sdk.trace import TracerProvider

from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.app import HttpDoor, build_imports
from insights.composition import Settings
from insights.embedded import Embedded, EmbeddedSettings
from insights_common.audit import GroupedAuditLog
from insights_common.audit_ship import InProcessShipping, SpoolShipper
from insights_common.audit_spool import AuditSpool, SpooledTrail
from insights_common.auth import SecretBox
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.dead_letters import EmbeddedDeadLetters, SqliteDeadLetters
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_common.sqlite.retention import SqliteRetentionSettings
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector, build_query
from notification_ingest.adapters.sqlite import (
    SqliteDedupStore,
    SqlitePendingCallbacks,
    SqlitePhoneDirectory,
)
from notification_ingest.app import build_ingest

AUDIT_SPOOL = "audit-spool"
"""The data dir's directory of audit spools (`insights_common.audit_spool`)."""


def build_embedded(
    settings: EmbeddedSettings,
    *,
    import_owner: str | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Embedded:
    """Wire the services of one data dir on its SQLite file and an in-process bus.
    `import_owner` names who runs its imports (the server by default): a second process on the
    same data dir passes a name of its own, so the server does not take its running imports for
    its own unfinished ones. With a tracer provider, each subscriber's batch is a span within
    the request that published it."""
    data_dir = settings.data_dir
    read = Settings(data_dir=data_dir, import_owner=import_owner)
    db = SqliteDatabase(data_dir / "insights.db")
    box = SecretBox.from_data_dir(data_dir)
    keys = SqliteKeyStore(db, box)
    members = SqliteMemberStore(db)
    trail = SqliteAuditLog(db)
    spool = data_dir / AUDIT_SPOOL
    audit = SpooledTrail(
        GroupedAuditLog(trail),
        AuditSpool(spool),
        InProcessShipping(SpoolShipper(trail, spool)),
    )
    access = Access(keys, members)
    dead_letters = SqliteDeadLetters(db)
    bus = InProcessBus(dead_letters=dead_letters, tracer_provider=tracer_provider)
    # Every subscriber (the projector, import-svc's registry, ingest's phone directory) has
    # taken a publish when it returns: what was published is visible at once.
    at_once = AtOnce()
    store = SqliteInsightsStore(db)
    projection = build_projector(
        store=store, bus=bus, group=EMBEDDED_PROJECTOR, settings=read.query
    )
    query = build_query(
        store=store,
        access=access,
        audit=audit,
        retention=SqliteRetentionSettings(db),
        publisher=bus,
        watermark=at_once,
        settings=read.query,
        box=box,
    )
    imports = build_imports(
        store=SqliteImportStore(db),
        publisher=bus,
        watermark=at_once,
        users=bus,
        door=HttpDoor(access, audit),
        settings=read.imports,
    )
    # The platform's events are independent: one the projector cannot apply goes to the
    # dead-letter table and the others are taken.
    ingest = build_ingest(
        dedup=SqliteDedupStore(db),
        publisher=bus.isolating(),
        watermark=at_once,
        keys=keys,
        phones=SqlitePhoneDirectory(db),
        pending=SqlitePendingCallbacks(db),
        users=bus,
        raw=None,
        healthy=None,
        settings=read.ingest,
    )
    # The spool is the query's (its reads of users); it is the last to stop.
    query.parts.on_start.insert(0, audit.start)
    query.parts.on_stop.append(audit.stop)
    return Embedded(
        db=db,
        keys=keys,
        members=members,
        audit=audit,
        bus=bus,
        imports=imports.service,
        ingest=ingest.service,
        query=query.service,
        retention=query.retention,
        eraser=query.eraser,
        dead_letters=EmbeddedDeadLetters(dead_letters, bus),
        kept_callbacks=ingest.kept_callbacks,
        parts=[query.parts, projection.parts, imports.parts, ingest.parts],
    )


@asynccontextmanager
async def running(
    settings: EmbeddedSettings, *, import_owner: str | None = None
) -> AsyncIterator[Embedded]:
    """The embedded services of a data dir, started, for a command of the CLI."""
    embedded = build_embedded(settings, import_owner=import_owner)
    await embedded.start()
    try:
        yield embedded
    finally:
        await embedded.stop()
