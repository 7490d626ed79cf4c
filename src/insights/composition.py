"""The composition root: reads each service's settings once and builds the services of a mode.

Each service has one builder that takes its ports and answers its parts, whatever the mode
(`import_svc.app`, `notification_ingest.app`, `insights_query.app`). What differs between the
modes is only which adapters are made here: SQLite and the in-process bus for the embedded mode
(`build_embedded`: `insights dev` and the CLI), PostgreSQL, OpenSearch and Kafka for each process
of the distributed mode (`PROCESSES`: `insights serve <service>`). A new process kind is one
entry in that table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from opentelemetry.sdk.trace import TracerProvider

from import_svc.adapters.postgres import PostgresImportStore
from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.app import HttpDoor, Imports, build_imports
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights.connections import (
    access_of,
    check,
    kafka_bus,
    key_store,
    opensearch_store,
    patiently,
    postgres,
)
from insights.embedded import Embedded, EmbeddedSettings
from insights_common.access_http import Access
from insights_common.audit import GroupedAuditLog, SqliteAuditLog
from insights_common.auth import KeyStore, SecretBox, SqliteKeyStore
from insights_common.bus import AtOnce, EventSubscriber, InProcessBus
from insights_common.dead_letters import EmbeddedDeadLetters, SqliteDeadLetters
from insights_common.kafka import KafkaBus, KafkaProjectionWatermark, KafkaTransactionalPublisher
from insights_common.members import SqliteMemberStore
from insights_common.observability import ReadinessCheck
from insights_common.pg_auth import PostgresKeyStore
from insights_common.pg_retention import PostgresRetentionSettings
from insights_common.postgres import PostgresDatabase
from insights_common.retention import SqliteRetentionSettings
from insights_common.service import Hook, ServiceParts
from insights_common.settings import (
    KafkaSettings,
    KeyCacheSettings,
    PostgresSettings,
)
from insights_common.sqlite import SqliteDatabase
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.app import EMBEDDED_PROJECTOR, build_projector, build_query
from insights_query.settings import QuerySettings
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
from notification_ingest.app import Ingest, build_ingest
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.settings import IngestSettings

if TYPE_CHECKING:
    from insights.reference import PeerReferences, ReferenceSettings
    from insights_query.adapters.opensearch import OpenSearchInsightsStore


class Settings:
    """Each service's settings, read from the environment once, when first needed: a process of
    the distributed mode reads only those of what it builds. `data_dir` and `import_owner` are
    the embedded mode's and the CLI's: where uploads wait, and who runs the imports."""

    def __init__(self, *, data_dir: Path | None = None, import_owner: str | None = None) -> None:
        self._data_dir = data_dir
        self._import_owner = import_owner

    @cached_property
    def imports(self) -> ImportSettings:
        if self._data_dir is None:
            settings = ImportSettings()
        else:
            settings = ImportSettings(data_dir=self._data_dir)
        if self._import_owner is not None:
            settings = settings.model_copy(update={"replica_id": self._import_owner})
        return settings

    @cached_property
    def ingest(self) -> IngestSettings:
        return IngestSettings()

    @cached_property
    def query(self) -> QuerySettings:
        return QuerySettings()

    @cached_property
    def key_cache(self) -> KeyCacheSettings:
        return KeyCacheSettings()

    @cached_property
    def reference(self) -> ReferenceSettings:
        from insights.reference import ReferenceSettings  # noqa: PLC0415 - see `query_process`

        return ReferenceSettings()

    @cached_property
    def master_key(self) -> SecretBox:
        """The distributed mode's (INSIGHTS_MASTER_KEY)."""
        return SecretBox.from_env()


# -- embedded -------------------------------------------------------------------------------


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
    audit = GroupedAuditLog(SqliteAuditLog(db))
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


# -- distributed ----------------------------------------------------------------------------


@dataclass
class ServiceProcess:
    """One service process of the distributed mode, built and not yet served."""

    parts: ServiceParts
    host: str
    port: int
    readiness: list[ReadinessCheck]
    bus: KafkaBus | None = None
    """The bus whose consumers' and dead letters' metrics the process serves."""
    peers: PeerReferences | None = None
    """With peers, the process's API reference is the whole API's (theirs merged with its
    own)."""
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


@dataclass(frozen=True)
class Servers:
    """How a process reaches the deployment's servers: waiting up to `limit` seconds for each,
    closing them with `stack`; with a tracer provider its publishes and consumed batches are
    spans."""

    stack: AsyncExitStack
    limit: float
    tracer_provider: TracerProvider | None = None

    async def postgres(self, settings: PostgresSettings) -> PostgresDatabase:
        return await postgres(
            settings, self.stack, limit=self.limit, tracer_provider=self.tracer_provider
        )

    async def opensearch(
        self, settings: QuerySettings, *, refresh: bool | Literal["wait_for"] = False
    ) -> OpenSearchInsightsStore:
        return await opensearch_store(
            settings.opensearch,
            self.stack,
            pool=settings.opensearch_pool,
            limit=self.limit,
            refresh=refresh,
        )

    def kafka(self, settings: KafkaSettings, *, client_id: str) -> KafkaBus:
        return kafka_bus(settings, client_id=client_id, tracer_provider=self.tracer_provider)

    def started(self, bus: KafkaBus) -> Hook:
        return lambda: patiently("Kafka", bus.start, limit=self.limit)


ProcessBuilder = Callable[[Settings, Servers], Awaitable[ServiceProcess]]


async def kafka_imports(
    db: PostgresDatabase,
    bus: KafkaBus,
    settings: ImportSettings,
    *,
    users: EventSubscriber | None,
    door: HttpDoor | None,
) -> Imports:
    """Imports in PostgreSQL, each import's users published in one Kafka transaction under this
    replica's transactional id; complete once the projector's group has committed past them."""
    store = PostgresImportStore(db)
    await store.migrate()
    publisher = KafkaTransactionalPublisher(
        bus, transactional_id=f"insights-import-{settings.replica_id}"
    )
    watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)
    imports = build_imports(
        store=store,
        publisher=publisher,
        watermark=watermark,
        users=users,
        door=door,
        settings=settings,
    )
    # The producer's start aborts a transaction a crash of this replica left open, before its
    # imports are resumed.
    imports.parts.on_start.insert(0, publisher.start)
    imports.parts.on_stop += [publisher.stop, watermark.stop]
    return imports


async def kafka_ingest(
    db: PostgresDatabase, bus: KafkaBus, keys: KeyStore, settings: IngestSettings
) -> Ingest:
    """Ingest's dedup, phone directory and kept callbacks in PostgreSQL, publishing to Kafka;
    besides the webhook, it consumes the platform's raw topic. A batch it keeps failing on is
    taken apart only while PostgreSQL and Kafka answer."""
    dedup = PostgresDedupStore(db)
    await dedup.migrate()
    watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)

    async def healthy() -> bool:
        return await db.ping() and await bus.ping()

    ingest = build_ingest(
        dedup=dedup,
        publisher=bus,
        watermark=watermark,
        keys=keys,
        phones=PostgresPhoneDirectory(db),
        pending=PostgresPendingCallbacks(db),
        users=bus,
        raw=bus,
        healthy=healthy,
        settings=settings,
    )
    ingest.parts.on_stop.append(watermark.stop)
    return ingest


async def import_process(settings: Settings, servers: Servers) -> ServiceProcess:
    box = settings.master_key  # before waiting on any server: without it no API is served
    own = settings.imports
    db = await servers.postgres(own.postgres)
    bus = servers.kafka(own.kafka, client_id="insights-import")
    access, audit = await access_of(db, await key_store(db, box, settings.key_cache))
    imports = await kafka_imports(db, bus, own, users=bus, door=HttpDoor(access, audit))
    return ServiceProcess(
        imports.parts,
        own.host,
        own.port,
        readiness=[check("PostgreSQL", db.ping), check("Kafka", bus.ping)],
        bus=bus,
        on_start=[servers.started(bus), *imports.parts.on_start],
        on_stop=[*imports.parts.on_stop, bus.stop],
    )


async def ingest_process(settings: Settings, servers: Servers) -> ServiceProcess:
    box = settings.master_key  # before waiting on any server: without it no API is served
    own = settings.ingest
    db = await servers.postgres(own.postgres)
    bus = servers.kafka(own.kafka, client_id="insights-ingest")
    ingest = await kafka_ingest(db, bus, await key_store(db, box, settings.key_cache), own)
    return ServiceProcess(
        ingest.parts,
        own.host,
        own.port,
        readiness=[check("PostgreSQL", db.ping), check("Kafka", bus.ping)],
        bus=bus,
        on_start=[servers.started(bus), *ingest.parts.on_start],
        on_stop=[*ingest.parts.on_stop, bus.stop],
    )


async def query_process(settings: Settings, servers: Servers) -> ServiceProcess:
    # The whole API's reference is read from the peers over HTTP by this process alone.
    from insights.reference import PeerReferences  # noqa: PLC0415

    box = settings.master_key  # before waiting on any server: without it no API is served
    own = settings.query
    store = await servers.opensearch(own)
    db = await servers.postgres(own.postgres)
    access, audit = await access_of(db, await key_store(db, box, settings.key_cache))
    retention = PostgresRetentionSettings(db)
    await retention.migrate()
    # Only to publish the erases of users (it consumes nothing); not a readiness check, so
    # reads go on while Kafka is down (an erase then answers 503).
    bus = servers.kafka(own.kafka, client_id="insights-query")
    watermark = KafkaProjectionWatermark(bus, group_id=own.kafka.projector_group)
    query = build_query(
        store=store,
        access=access,
        audit=audit,
        retention=retention,
        publisher=bus,
        watermark=watermark,
        settings=own,
        box=box,
    )
    return ServiceProcess(
        query.parts,
        own.host,
        own.port,
        readiness=[check("PostgreSQL", db.ping), check("OpenSearch", store.ping)],
        peers=PeerReferences(settings.reference),
        on_start=[servers.started(bus), query.retention.start],
        on_stop=[*query.parts.on_stop, watermark.stop, bus.stop],
    )


async def projector_process(settings: Settings, servers: Servers) -> ServiceProcess:
    own = settings.query
    # Each batch is searchable before its offsets are committed: the committed positions are
    # then the watermark of what reads see (imports complete on it). It waits for the index's
    # own refresh (every second) rather than forcing one per batch, which cost OpenSearch 70%
    # more CPU an event (docs/performance.md).
    store = await servers.opensearch(own, refresh="wait_for")
    bus = servers.kafka(own.kafka, client_id="insights-projector")
    projection = build_projector(
        store=store,
        bus=bus,
        group=own.kafka.projector_group,
        settings=own,
        consumers=own.projector_consumers,
        healthy=store.ping,
    )
    return ServiceProcess(
        projection.parts,
        own.host,
        own.port + 1,  # health and metrics only, beside the query API's port
        readiness=[check("OpenSearch", store.ping), check("Kafka", bus.ping)],
        bus=bus,
        on_start=[servers.started(bus)],
        on_stop=[bus.stop],
    )


PROCESSES: Mapping[str, ProcessBuilder] = MappingProxyType(
    {
        "import": import_process,
        "ingest": ingest_process,
        "query": query_process,
        "projector": projector_process,
    }
)
"""The process kinds of `insights serve`, by name."""


async def build_process(
    name: str,
    stack: AsyncExitStack,
    *,
    startup_limit: float,
    tracer_provider: TracerProvider | None = None,
) -> ServiceProcess:
    """Connect what the service needs and wire it; nothing is served yet. With a tracer
    provider, its requests, publishes and consumed batches are spans."""
    builder = PROCESSES.get(name)
    if builder is None:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(PROCESSES)}")
    return await builder(Settings(), Servers(stack, startup_limit, tracer_provider))


@asynccontextmanager
async def importer(*, owner: str, startup_limit: float = 30.0) -> AsyncIterator[ImportService]:
    """An import service on the distributed deployment's PostgreSQL and Kafka, in this process,
    under an owner name of its own (`insights import --distributed`): no door, and the
    registry is the service replicas' to keep."""
    settings = Settings(import_owner=owner).imports
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        bus = kafka_bus(settings.kafka, client_id="insights-import-cli")
        imports = await kafka_imports(db, bus, settings, users=None, door=None)
        await patiently("Kafka", bus.start, limit=startup_limit)
        stack.push_async_callback(bus.stop)
        for hook in imports.parts.on_start:
            await hook()
        try:
            yield imports.service
        finally:
            for hook in imports.parts.on_stop:
                await hook()


@asynccontextmanager
async def kept_callbacks(*, startup_limit: float = 30.0) -> AsyncIterator[KeptCallbackLetters]:
    """The platforms' kept callbacks on the distributed deployment's PostgreSQL, taken again
    through Kafka from this process (`insights dlq --distributed`), outside the running
    replicas: nothing consumed, no hooks run."""
    settings = Settings().ingest
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        bus = kafka_bus(settings.kafka, client_id="insights-dlq-cli")
        keys = PostgresKeyStore(db, SecretBox.from_env())
        dedup = PostgresDedupStore(db)
        await dedup.migrate()
        ingest = build_ingest(
            dedup=dedup,
            publisher=bus,
            watermark=AtOnce(),
            keys=keys,
            phones=PostgresPhoneDirectory(db),
            pending=PostgresPendingCallbacks(db),
            users=None,
            raw=None,
            healthy=None,
            settings=settings,
        )
        await patiently("Kafka", bus.start, limit=startup_limit)
        stack.push_async_callback(bus.stop)
        yield ingest.kept_callbacks
