"""The embedded deployment: the three services in one process on SQLite and an in-process bus.

This is not a second product: the composition root (`insights.composition.embedded`) wires
the same services that run separately in the distributed mode to their embedded adapters, and
this app serves their routes and the dashboard on one port.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from pydantic_settings import BaseSettings, SettingsConfigDict

from import_svc.service import ImportService
from insights_common.audit import Trail
from insights_common.bus import InProcessBus
from insights_common.http.conventions import install_problem_handlers
from insights_common.http.guard import HttpSettings, install_http_guards
from insights_common.http.observability import install_observability
from insights_common.service import ServiceParts, mount
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.dead_letters import EmbeddedDeadLetters
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_common.tracing import NO_NATIVE_TELEMETRY, trace_http
from insights_query.entrypoints.api_docs import install_api_docs
from insights_query.entrypoints.dashboard import install_dashboard
from insights_query.erasure import UserEraser
from insights_query.retention import RetentionService
from insights_query.service import QueryService
from notification_ingest.kept_letters import KeptCallbackLetters
from notification_ingest.service import IngestService

API_PREFIX = "/api/v1"
DATA_DIR_LOCK = "serving.lock"
"""The file `hold_data_dir` locks, in the data dir; it holds the holder's pid."""


class DataDirBusy(Exception):
    """Another process holds the data dir (`hold_data_dir`)."""


def hold_data_dir(data_dir: Path) -> int:
    """Hold the data dir for this process, for as long as it lives: `insights dev` serving it,
    or a command that must not run beside that (a new master key). Answers the lock file's
    descriptor, which releases it when closed; the kernel releases it with the process however
    that ends. DataDirBusy, naming the holder's pid, when another process holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / DATA_DIR_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 20, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirBusy(f"{data_dir} is held by another process (pid {holder})") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


DEFAULT_ORIGIN = "http://127.0.0.1:8000"

log = logging.getLogger(__name__)


class EmbeddedSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INSIGHTS_")

    data_dir: Path = Path(".insights")
    host: str = "127.0.0.1"
    port: int = 8000


@dataclass
class Embedded:
    """The wired services of one data dir, usable with or without the HTTP app."""

    db: SqliteDatabase
    keys: SqliteKeyStore
    members: SqliteMemberStore
    audit: Trail
    bus: InProcessBus
    imports: ImportService
    ingest: IngestService
    query: QueryService
    retention: RetentionService
    """The retention passes; on their schedule only in the process serving the API."""
    eraser: UserEraser
    """Erases a user; the data dir's projector, import registry and phone directory all take
    the erase before it returns."""
    dead_letters: EmbeddedDeadLetters
    kept_callbacks: KeptCallbackLetters
    """The platforms' callbacks waiting for a user with their number (`insights dlq`)."""
    parts: list[ServiceParts] = field(default_factory=list)

    async def start(self) -> None:
        for parts in self.parts:
            for hook in parts.on_start:
                await hook()

    async def stop(self) -> None:
        for parts in reversed(self.parts):
            for hook in parts.on_stop:
                await hook()
        self.db.close()


def create_app(
    embedded: Embedded,
    *,
    after_start: Callable[[Embedded], Awaitable[None]] | None = None,
    http: HttpSettings | None = None,
    origin: str = DEFAULT_ORIGIN,
    tracer_provider: TracerProvider | None = None,
) -> FastAPI:
    """The HTTP app of an already wired (not yet started) embedded deployment; its absolute
    URLs use `http.public_base_url`, else `origin` (where `insights dev` listens). With a
    tracer provider, each request is a server span."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await embedded.start()
        await embedded.retention.start()
        try:
            if after_start is not None:
                await after_start(embedded)
            yield
        finally:
            await embedded.stop()

    app = FastAPI(
        title="User Insights",
        version="1.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry=NO_NATIVE_TELEMETRY,
        openapi_url="/api/v1/openapi.json",
    )
    install_problem_handlers(app)
    install_http_guards(app, http or HttpSettings(), default_origin=origin)

    async def database() -> None:
        await embedded.db.read(lambda conn: conn.execute("SELECT 1").fetchone())

    install_observability(
        app,
        service="embedded",
        readiness=[database],
        collectors=[c for parts in embedded.parts for c in parts.collectors],
    )
    for parts in embedded.parts:
        mount(app, parts.router, prefix=API_PREFIX)

    install_api_docs(app, openapi_url="/api/v1/openapi.json")
    install_dashboard(app)
    trace_http(app, tracer_provider)
    return app
