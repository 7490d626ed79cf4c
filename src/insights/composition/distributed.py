"""The distributed mode's adapters, PostgreSQL, OpenSearch and Kafka, and the services built on
them: one kind of process each (`PROCESSES`), and what the CLI's commands work on when they
reach a deployment from a process of their own (`--distributed`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import TracerProvider

from import_svc.adapters.postgres import PostgresImportStore
from import_svc.app import HttpDoor, Imports, build_imports
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights import audit_shipper
from insights.composition import Settings
from insights.connections import (
    access_of,
    check,
    kafka_bus,
    key_store,
    opensearch_store,
    postgres,
)
from insights_common.audit import AuditLog, Trail
from insights_common.audit_ship import ShipperProcess
from insights_common.audit_spool import AuditSpool, SpooledTrail
from insights_common.auth import KeyStore, SecretBox
from insights_common.bus import AtOnce, EventSubscriber
from insights_common.dead_letters import CombinedDeadLetters, DeadLetterBox
from insights_common.http.observability import ReadinessCheck
from insights_common.kafka.bus import KafkaBus
from insights_common.kafka.dead_letters import KafkaDeadLetters
from insights_common.kafka.publisher import KafkaTransactionalPublisher
from insights_common.kafka.watermark import KafkaProjectionWatermark
from insights_common.members import MemberStore
from insights_common.outage import patiently
from insights_common.postgres.audit import PostgresAuditLog
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.keys import PostgresKeyStore
from insights_common.postgres.members import PostgresMemberStore
from insights_common.postgres.retention import PostgresRetentionSettings
from insights_common.service import Hook, ServiceParts
from insights_common.settings import KafkaSettings, PostgresSettings
from insights_query.app import build_projector, build_query
from insights_query.erasure import UserEraser
from insights_query.retention import RetentionService
from insights_query.settings import QuerySettings
from notification_ingest.adapters.postgres import (
    PostgresDedupStore,
    PostgresPendingCallbacks,
    PostgresPhoneDirectory,
)
from notification_ingest.app import Ingest, build_ingest
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.settings import IngestSettings

if TYPE_CHECKING:
    from insights.reference import PeerReferences
    from insights_query.adapters.opensearch import OpenSearchInsightsStore


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

    async def opensearch(self, settings: QuerySettings) -> OpenSearchInsightsStore:
        return await opensearch_store(
            settings.opensearch, self.stack, pool=settings.opensearch_pool, limit=self.limit
        )

    def kafka(self, settings: KafkaSettings, *, client_id: str) -> KafkaBus:
        return kafka_bus(settings, client_id=client_id, tracer_provider=self.tracer_provider)

    def started(self, bus: KafkaBus) -> Hook:
        return lambda: patiently("Kafka", bus.start, limit=self.limit)

    def on_postgres_and_kafka(
        self, parts: ServiceParts, host: str, port: int, *, db: PostgresDatabase, bus: KafkaBus
    ) -> ServiceProcess:
        """A service on PostgreSQL and Kafka: ready while both answer; the bus starts before
        the service's hooks and stops after them."""
        return ServiceProcess(
            parts,
            host,
            port,
            readiness=[check("PostgreSQL", db.ping), check("Kafka", bus.ping)],
            bus=bus,
            on_start=[self.started(bus), *parts.on_start],
            on_stop=[*parts.on_stop, bus.stop],
        )


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
    # Read before waiting on any server: without the master key no API is served.
    box, cache = settings.master_key, settings.key_cache
    own = settings.imports
    db = await servers.postgres(own.postgres)
    bus = servers.kafka(own.kafka, client_id="insights-import")
    access, audit = await access_of(db, await key_store(db, box, cache))
    imports = await kafka_imports(db, bus, own, users=bus, door=HttpDoor(access, audit))
    return servers.on_postgres_and_kafka(imports.parts, own.host, own.port, db=db, bus=bus)


async def ingest_process(settings: Settings, servers: Servers) -> ServiceProcess:
    # Read before waiting on any server: without the master key no API is served.
    box, cache = settings.master_key, settings.key_cache
    own = settings.ingest
    db = await servers.postgres(own.postgres)
    bus = servers.kafka(own.kafka, client_id="insights-ingest")
    ingest = await kafka_ingest(db, bus, await key_store(db, box, cache), own)
    return servers.on_postgres_and_kafka(ingest.parts, own.host, own.port, db=db, bus=bus)


async def query_process(settings: Settings, servers: Servers) -> ServiceProcess:
    # The whole API's reference is read from the peers over HTTP by this process alone.
    from insights.reference import PeerReferences  # noqa: PLC0415

    # Read before waiting on any server: without the master key no API is served.
    box, cache = settings.master_key, settings.key_cache
    own = settings.query
    store = await servers.opensearch(own)
    db = await servers.postgres(own.postgres)
    access, grouped = await access_of(db, await key_store(db, box, cache))
    audit: Trail = grouped
    if settings.audit.spool:
        spool = settings.audit.directory(own.postgres)
        every = settings.audit.ship_every_seconds
        shipper = ShipperProcess(audit_shipper.command(spool, every=every))
        audit = SpooledTrail(grouped, AuditSpool(spool), shipper)
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
        on_start=[audit.start, servers.started(bus), query.retention.start],
        on_stop=[*query.parts.on_stop, audit.stop, watermark.stop, bus.stop],
    )


async def projector_process(settings: Settings, servers: Servers) -> ServiceProcess:
    own = settings.query
    # Each batch is searchable before its offsets are committed: the committed positions are
    # then the watermark of what reads see (imports complete on it). The commits wait for a
    # refresh while the next batches are folded, rather than each batch waiting for its own.
    store = await servers.opensearch(own)
    bus = servers.kafka(own.kafka, client_id="insights-projector")
    projection = build_projector(
        store=store,
        bus=bus,
        group=own.kafka.projector_group,
        settings=own,
        consumers=own.projector_consumers,
        healthy=store.ping,
        visible=store.visible,
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
async def kept_callbacks(
    settings: IngestSettings, *, startup_limit: float
) -> AsyncIterator[KeptCallbackLetters]:
    """The platforms' kept callbacks on the distributed deployment's PostgreSQL, taken again
    through Kafka from this process (`insights dlq --distributed`), outside the running
    replicas: nothing consumed, no hooks run."""
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


@asynccontextmanager
async def dead_letters(*, kept: bool, startup_limit: float = 30.0) -> AsyncIterator[DeadLetterBox]:
    """The topics' dead letters on the distributed deployment's Kafka (`insights dlq
    --distributed`); with `kept`, the platforms' kept callbacks in PostgreSQL beside them."""
    settings = Settings().ingest
    letters = KafkaDeadLetters(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        topic_prefix=settings.kafka.topic_prefix,
        client_id="insights-cli",
    )
    if not kept:
        yield letters
        return
    async with kept_callbacks(settings, startup_limit=startup_limit) as callbacks:
        yield CombinedDeadLetters(letters, callbacks)


async def _audit_trail(db: PostgresDatabase) -> AuditLog:
    audit = PostgresAuditLog(db)
    await audit.migrate()
    return audit


async def _app_keys(db: PostgresDatabase, box: SecretBox) -> KeyStore:
    keys = PostgresKeyStore(db, box)
    await keys.migrate()
    return keys


@asynccontextmanager
async def app_keys(box: SecretBox, *, startup_limit: float = 30.0) -> AsyncIterator[KeyStore]:
    """The apps' API keys and webhook secrets in the distributed deployment's PostgreSQL, their
    secrets sealed with the master key `box` (`insights keys|webhooks --distributed`). Not
    cached: what this process changes, it reads back at once."""
    settings = Settings().query
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        yield await _app_keys(db, box)


@asynccontextmanager
async def app_sources(
    box: SecretBox, *, startup_limit: float = 30.0
) -> AsyncIterator[tuple[KeyStore, AuditLog]]:
    """The messaging platforms' secrets an app takes callbacks with, kept among its keys in the
    distributed deployment's PostgreSQL and sealed with the master key `box`, and the audit
    trail their changes are recorded in (`insights sources --distributed`)."""
    settings = Settings().query
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        yield await _app_keys(db, box), await _audit_trail(db)


@asynccontextmanager
async def app_members(
    *, startup_limit: float = 30.0
) -> AsyncIterator[tuple[MemberStore, AuditLog]]:
    """The apps' members and their audit trail in the distributed deployment's PostgreSQL
    (`insights members|audit --distributed`, and the CLI's changes to keys and secrets)."""
    settings = Settings().query
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        members = PostgresMemberStore(db)
        await members.migrate()
        yield members, await _audit_trail(db)


@asynccontextmanager
async def user_eraser(*, startup_limit: float = 30.0) -> AsyncIterator[tuple[UserEraser, AuditLog]]:
    """Erasing users from this process (`insights users erase --distributed`): the erase is
    published to the distributed deployment's Kafka and waited for on the projector's group,
    as the query service does; the audit trail in PostgreSQL. Nothing is consumed here."""
    settings = Settings().query
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        audit = await _audit_trail(db)
        bus = kafka_bus(settings.kafka, client_id="insights-erase-cli")
        await patiently("Kafka", bus.start, limit=startup_limit)
        stack.push_async_callback(bus.stop)
        watermark = KafkaProjectionWatermark(bus, group_id=settings.kafka.projector_group)
        stack.push_async_callback(watermark.stop)
        yield (
            UserEraser(
                publisher=bus, watermark=watermark, wait_seconds=settings.erase_wait_seconds
            ),
            audit,
        )


@asynccontextmanager
async def retention_passes(
    *, startup_limit: float = 30.0
) -> AsyncIterator[tuple[RetentionService, AuditLog]]:
    """The apps' retention settings in the distributed deployment's PostgreSQL and passes over
    its OpenSearch run from this process when asked (`insights apps --distributed`), never on
    a schedule; the audit trail their changes are recorded in."""
    settings = Settings().query
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        retention = PostgresRetentionSettings(db)
        await retention.migrate()
        audit = await _audit_trail(db)
        store = await opensearch_store(settings.opensearch, stack, pool=4, limit=startup_limit)
        passes = RetentionService(
            settings=retention, store=store, every=None, chunk=settings.retention_chunk
        )
        yield passes, audit
