"""The distributed deployment: each service in its own process on Kafka, OpenSearch, PostgreSQL.

`insights serve import|ingest|query|projector` runs one of them; nginx (deploy/nginx) is the one
origin in front of them. Each reads its settings
class from the environment, waits for its backing services (they may start at the same time, as in
docker compose), applies its migrations or index templates, and serves /healthz, /readyz and
/metrics beside its routes. The projector has no routes: it serves only those three. With the
OTEL_* variables set, each exports its traces (insights_common.tracing).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.registry import Collector

from import_svc.app import create_distributed as create_import
from import_svc.app import create_distributed_importer as create_importer
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights.reference import PeerReferences, ReferenceSettings, merge_openapi
from insights.tuning import freeze_startup_objects, server_config, tune_garbage_collector
from insights_common.access_http import Access
from insights_common.audit import AuditLog, GroupedAuditLog
from insights_common.auth import KeyStore, SecretBox
from insights_common.http import install_problem_handlers
from insights_common.http_guard import HttpSettings, install_http_guards
from insights_common.kafka import KafkaBus, KafkaOptions
from insights_common.key_cache import CachedKeyStore
from insights_common.observability import ReadinessCheck, install_observability
from insights_common.pg_audit import PostgresAuditLog
from insights_common.pg_auth import PostgresKeyStore
from insights_common.pg_members import PostgresMemberStore
from insights_common.pg_retention import PostgresRetentionSettings
from insights_common.postgres import PostgresDatabase
from insights_common.service import Hook, ServiceParts
from insights_common.settings import (
    KafkaSettings,
    KeyCacheSettings,
    OpenSearchSettings,
    PostgresSettings,
)
from insights_common.tracing import start_tracing, trace_http
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import create_distributed as create_query
from insights_query.app import create_projector
from insights_query.entrypoints.api_docs import install_api_docs
from insights_query.settings import QuerySettings
from notification_ingest.app import create_distributed as create_ingest
from notification_ingest.app import kept_callbacks as create_kept_callbacks
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.settings import IngestSettings

log = logging.getLogger("insights.serve")

API_PREFIX = "/api/v1"
# Where users reach the distributed mode unless PUBLIC_BASE_URL says otherwise: the edge.
PUBLIC_ORIGIN = "http://127.0.0.1:8000"
SERVICES = ("import", "ingest", "query", "projector")

T = TypeVar("T")


@dataclass
class Process:
    """One service process: its HTTP app and where it listens."""

    app: FastAPI
    host: str
    port: int
    on_start: list[Hook] = field(default_factory=list)
    on_stop: list[Hook] = field(default_factory=list)


async def patiently(what: str, attempt: Callable[[], Awaitable[T]], *, limit: float) -> T:
    """Retry `attempt` with backoff for up to `limit` seconds: a backing service may be starting."""
    deadline = time.monotonic() + limit
    delay = 0.25
    while True:
        try:
            return await attempt()
        except Exception as error:
            if time.monotonic() + delay > deadline:
                raise RuntimeError(f"{what} did not answer in {limit:g} s: {error}") from error
            log.info("waiting for %s (%s)", what, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def kafka_bus(
    settings: KafkaSettings, *, client_id: str, tracer_provider: TracerProvider | None = None
) -> KafkaBus:
    return KafkaBus(
        KafkaOptions(
            bootstrap_servers=settings.bootstrap_servers,
            topic_prefix=settings.topic_prefix,
            client_id=client_id,
            partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            min_insync_replicas=settings.min_insync_replicas,
            publish_timeout=settings.publish_timeout,
        ),
        tracer_provider=tracer_provider,
    )


async def postgres(
    settings: PostgresSettings,
    stack: AsyncExitStack,
    *,
    limit: float,
    tracer_provider: TracerProvider | None = None,
) -> PostgresDatabase:
    db = await patiently(
        "PostgreSQL",
        lambda: PostgresDatabase.connect(
            settings.dsn.get_secret_value(),
            schema=settings.db_schema,
            max_size=settings.pool_size,
            acquire_timeout=settings.timeout,
            tracer_provider=tracer_provider,
        ),
        limit=limit,
    )
    stack.push_async_callback(db.close)
    return db


async def key_store(db: PostgresDatabase, box: SecretBox, cache: KeyCacheSettings) -> KeyStore:
    keys = PostgresKeyStore(db, box)
    await keys.migrate()
    if cache.seconds == 0:
        return keys
    return CachedKeyStore(keys, ttl=cache.seconds, size=cache.size)


async def access_of(db: PostgresDatabase, keys: KeyStore) -> tuple[Access, AuditLog]:
    """How a service process authenticates its callers (keys and members' sessions, in
    PostgreSQL) and where it records what they do."""
    members = PostgresMemberStore(db)
    await members.migrate()
    audit = PostgresAuditLog(db)
    await audit.migrate()
    return Access(keys, members), GroupedAuditLog(audit)


async def opensearch_store(
    settings: OpenSearchSettings,
    stack: AsyncExitStack,
    *,
    pool: int,
    limit: float,
    refresh: bool | Literal["wait_for"] = False,
) -> OpenSearchInsightsStore:
    client = create_client(settings.url, pool=pool)
    stack.push_async_callback(client.close)
    store = OpenSearchInsightsStore(client, prefix=settings.index_prefix, refresh=refresh)
    await patiently(
        "OpenSearch", lambda: store.ensure_indices(replicas=settings.replicas), limit=limit
    )
    return store


def check(name: str, ping: Callable[[], Awaitable[bool]]) -> ReadinessCheck:
    async def ready() -> None:
        if not await ping():
            raise RuntimeError(f"{name} is not answering")

    ready.__name__ = name  # the dependency's name in /readyz and insights_dependency_up
    return ready


def service_app(
    name: str,
    parts: ServiceParts | None,
    *,
    readiness: list[ReadinessCheck],
    peers: PeerReferences | None = None,
    bus: KafkaBus | None = None,
    collectors: list[Collector] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The HTTP app of one service process: its routes, problems, health and metrics; with
    `peers`, its reference is the whole API's (theirs merged with its own)."""
    openapi_url = f"{API_PREFIX}/openapi.json"
    app = FastAPI(
        title=f"User Insights {name}",
        version="1.0",
        docs_url=None,
        redoc_url=None,
        openapi_url=None if peers else openapi_url,
    )
    install_problem_handlers(app)
    install_http_guards(app, HttpSettings(), default_origin=PUBLIC_ORIGIN)
    own = [*(parts.collectors if parts else ()), *(collectors or ())]
    install_observability(
        app, service=name, readiness=readiness, collectors=[bus.metrics, *own] if bus else own
    )
    if parts is not None:
        app.include_router(parts.router, prefix=API_PREFIX)
    if peers is not None:

        @app.get(openapi_url, include_in_schema=False)
        async def whole_reference() -> JSONResponse:
            return JSONResponse(merge_openapi([app.openapi(), *await peers.documents()]))

    install_api_docs(app, openapi_url=openapi_url)
    trace_http(app, tracer_provider)
    return app


async def build(
    name: str,
    stack: AsyncExitStack,
    *,
    startup_limit: float,
    tracer_provider: TracerProvider | None = None,
) -> Process:
    """Connect what the service needs and wire it; nothing is served yet. With a tracer
    provider, its requests, publishes and consumed batches are spans."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    query = QuerySettings()
    if name == "projector":
        # Each batch is searchable before its offsets are committed: the committed positions
        # are then the watermark of what reads see (imports complete on it). It waits for the
        # index's own refresh (every second) rather than forcing one per batch, which cost
        # OpenSearch 70% more CPU an event (docs/performance.md).
        store = await opensearch_store(
            query.opensearch,
            stack,
            pool=query.opensearch_pool,
            limit=startup_limit,
            refresh="wait_for",
        )
        bus = kafka_bus(
            query.kafka, client_id="insights-projector", tracer_provider=tracer_provider
        )
        projector = create_projector(store=store, bus=bus, settings=query)
        app = service_app(
            name,
            None,
            readiness=[check("OpenSearch", store.ping), check("Kafka", bus.ping)],
            bus=bus,
            collectors=[projector.dropped],
            tracer_provider=tracer_provider,
        )
        return Process(
            app,
            query.host,
            query.port + 1,
            on_start=[lambda: patiently("Kafka", bus.start, limit=startup_limit)],
            on_stop=[bus.stop],
        )
    # Read before waiting on any server: without the master key no API can be served.
    box = SecretBox.from_env()
    key_cache = KeyCacheSettings()
    if name in ("import", "ingest"):
        settings = ImportSettings() if name == "import" else IngestSettings()
        db = await postgres(
            settings.postgres, stack, limit=startup_limit, tracer_provider=tracer_provider
        )
        bus = kafka_bus(
            settings.kafka, client_id=f"insights-{name}", tracer_provider=tracer_provider
        )
        keys = await key_store(db, box, key_cache)
        if isinstance(settings, ImportSettings):
            access, audit = await access_of(db, keys)
            _, parts = await create_import(
                db=db, bus=bus, access=access, audit=audit, settings=settings
            )
        else:
            _, parts = await create_ingest(db=db, bus=bus, keys=keys, settings=settings)
        app = service_app(
            name,
            parts,
            readiness=[check("PostgreSQL", db.ping), check("Kafka", bus.ping)],
            bus=bus,
            tracer_provider=tracer_provider,
        )
        return Process(
            app,
            settings.host,
            settings.port,
            on_start=[lambda: patiently("Kafka", bus.start, limit=startup_limit), *parts.on_start],
            on_stop=[*parts.on_stop, bus.stop],
        )
    store = await opensearch_store(
        query.opensearch, stack, pool=query.opensearch_pool, limit=startup_limit
    )
    db = await postgres(query.postgres, stack, limit=startup_limit, tracer_provider=tracer_provider)
    access, audit = await access_of(db, await key_store(db, box, key_cache))
    retention = PostgresRetentionSettings(db)
    await retention.migrate()
    # Only to publish the erases of users (it consumes nothing); not a readiness check, so
    # reads go on while Kafka is down (an erase then answers 503).
    bus = kafka_bus(query.kafka, client_id="insights-query", tracer_provider=tracer_provider)
    _, passes, parts = create_query(
        store=store,
        access=access,
        audit=audit,
        retention=retention,
        bus=bus,
        settings=query,
        box=box,
    )
    app = service_app(
        name,
        parts,
        readiness=[check("PostgreSQL", db.ping), check("OpenSearch", store.ping)],
        peers=PeerReferences(ReferenceSettings()),
        tracer_provider=tracer_provider,
    )
    return Process(
        app,
        query.host,
        query.port,
        on_start=[lambda: patiently("Kafka", bus.start, limit=startup_limit), passes.start],
        on_stop=[*parts.on_stop, bus.stop],
    )


async def serve(
    name: str, *, host: str | None, port: int | None, startup_limit: float = 60.0
) -> None:
    """Run one service process until SIGINT/SIGTERM, then stop it cleanly."""
    import uvicorn  # noqa: PLC0415 - only the serving path needs it

    tune_garbage_collector()
    tracer_provider = start_tracing(name)
    async with AsyncExitStack() as stack:
        if tracer_provider is not None:
            # last out: the spans still queued are sent once everything else stopped
            stack.push_async_callback(asyncio.to_thread, tracer_provider.shutdown)
        process = await build(
            name, stack, startup_limit=startup_limit, tracer_provider=tracer_provider
        )

        own_lifespan = process.app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with own_lifespan(app):
                for hook in process.on_start:
                    await hook()
                freeze_startup_objects()
                log.info(
                    "%s is serving on %s:%d (event loop: %s)",
                    name,
                    host or process.host,
                    port or process.port,
                    type(asyncio.get_running_loop()).__module__.split(".")[0],
                )
                try:
                    yield
                finally:
                    for hook in process.on_stop:
                        await hook()

        process.app.router.lifespan_context = lifespan
        server = uvicorn.Server(
            server_config(
                process.app,
                http_settings(),
                host=host or process.host,
                port=port or process.port,
                log_level="info",
                own_logging=False,
            )
        )
        await server.serve()


def http_settings() -> HttpSettings:
    """The services behind the edge take the client's address from its X-Forwarded-For
    (from 127.0.0.1 unless INSIGHTS_HTTP_TRUSTED_PROXIES names the edge)."""
    settings = HttpSettings()
    if "trusted_proxies" not in settings.model_fields_set:
        settings = settings.model_copy(update={"trusted_proxies": "127.0.0.1"})
    return settings


@asynccontextmanager
async def importer(*, owner: str, startup_limit: float = 30.0) -> AsyncIterator[ImportService]:
    """An import service on the distributed deployment's PostgreSQL and Kafka, in this process,
    under an owner name of its own (`insights import --distributed`)."""
    settings = ImportSettings().model_copy(update={"replica_id": owner})
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        bus = kafka_bus(settings.kafka, client_id="insights-import-cli")
        service, hooks = await create_importer(db=db, bus=bus, settings=settings)
        await patiently("Kafka", bus.start, limit=startup_limit)
        stack.push_async_callback(bus.stop)
        for hook in hooks.on_start:
            await hook()
        try:
            yield service
        finally:
            for hook in hooks.on_stop:
                await hook()


@asynccontextmanager
async def kept_callbacks(*, startup_limit: float = 30.0) -> AsyncIterator[KeptCallbackLetters]:
    """The platforms' kept callbacks on the distributed deployment's PostgreSQL, taken again
    through Kafka from this process (`insights dlq --distributed`)."""
    settings = IngestSettings()
    async with AsyncExitStack() as stack:
        db = await postgres(settings.postgres, stack, limit=startup_limit)
        bus = kafka_bus(settings.kafka, client_id="insights-dlq-cli")
        keys = PostgresKeyStore(db, SecretBox.from_env())
        kept = await create_kept_callbacks(db=db, bus=bus, keys=keys, settings=settings)
        await patiently("Kafka", bus.start, limit=startup_limit)
        stack.push_async_callback(bus.stop)
        yield kept
