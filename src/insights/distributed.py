"""The distributed deployment: each service in its own process on Kafka, OpenSearch, PostgreSQL.

`insights serve import|ingest|query|projector` runs one of them; nginx (deploy/nginx) is the one
origin in front of them. Each is built by the composition root (`insights.composition.distributed`):
it reads its settings from the environment, waits for its backing services (they may start at the
same time, as in docker compose) and applies its migrations or index templates; then it serves
/healthz, /readyz and /metrics beside its routes. The projector has no routes: it serves only
those three. With the OTEL_* variables set, each exports its traces (insights_common.tracing).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client.registry import Collector

from insights.composition.distributed import ServiceProcess, build_process
from insights.reference import PeerReferences, merge_openapi
from insights.tuning import freeze_startup_objects, server_config, tune_garbage_collector
from insights_common.http.conventions import install_problem_handlers
from insights_common.http.guard import HttpSettings, install_http_guards
from insights_common.http.observability import ReadinessCheck, install_observability
from insights_common.kafka.bus import KafkaBus
from insights_common.service import ServiceParts, mount
from insights_common.tracing import NO_NATIVE_TELEMETRY, start_tracing, trace_http
from insights_query.entrypoints.api_docs import install_api_docs

log = logging.getLogger("insights.serve")

API_PREFIX = "/api/v1"
# Where users reach the distributed mode unless PUBLIC_BASE_URL says otherwise: the edge.
PUBLIC_ORIGIN = "http://127.0.0.1:8000"


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
        telemetry=NO_NATIVE_TELEMETRY,
        openapi_url=None if peers else openapi_url,
    )
    install_problem_handlers(app)
    install_http_guards(app, HttpSettings(), default_origin=PUBLIC_ORIGIN)
    own = [*(parts.collectors if parts else ()), *(collectors or ())]
    install_observability(
        app, service=name, readiness=readiness, collectors=[bus.metrics, *own] if bus else own
    )
    if parts is not None:
        mount(app, parts.router, prefix=API_PREFIX)
    if peers is not None:

        @app.get(openapi_url, include_in_schema=False)
        async def whole_reference() -> JSONResponse:
            return JSONResponse(merge_openapi([app.openapi(), *await peers.documents()]))

    install_api_docs(app, openapi_url=openapi_url)
    trace_http(app, tracer_provider)
    return app


def process_app(
    name: str, process: ServiceProcess, *, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    return service_app(
        name,
        process.parts,
        readiness=process.readiness,
        peers=process.peers,
        bus=process.bus,
        tracer_provider=tracer_provider,
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
        process = await build_process(
            name, stack, startup_limit=startup_limit, tracer_provider=tracer_provider
        )
        app = process_app(name, process, tracer_provider=tracer_provider)
        own_lifespan = app.router.lifespan_context

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

        app.router.lifespan_context = lifespan
        server = uvicorn.Server(
            server_config(
                app,
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
