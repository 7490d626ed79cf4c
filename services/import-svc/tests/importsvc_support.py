"""Helpers shared by the import-svc tests (a uniquely named module: tests run in importlib mode)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi import FastAPI

from import_svc.adapters.sqlite import SqliteImportStore
from import_svc.app import HttpDoor, build_imports
from import_svc.service import ImportService
from import_svc.settings import ImportSettings
from insights_common.audit import GroupedAuditLog
from insights_common.auth import SecretBox
from insights_common.bus import AtOnce, InProcessBus
from insights_common.http.access import Access
from insights_common.http.conventions import install_problem_handlers
from insights_common.service import ServiceParts
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_common.sqlite.members import SqliteMemberStore
from insights_contracts import AnyEvent, UserUpserted
from insights_contracts.topics import USERS


@dataclass
class Collector:
    """A real subscriber on the bus that keeps what was published, batch by batch."""

    batches: list[list[AnyEvent]] = field(default_factory=list)

    async def __call__(self, events: Sequence[AnyEvent]) -> None:
        self.batches.append(list(events))

    @property
    def users(self) -> list[UserUpserted]:
        return [e for batch in self.batches for e in batch if isinstance(e, UserUpserted)]


@dataclass
class Embedded:
    db: SqliteDatabase
    bus: InProcessBus
    keys: SqliteKeyStore
    service: ImportService
    parts: ServiceParts
    collector: Collector
    settings: ImportSettings


def build_embedded(
    tmp_path: Path, *, max_rows: int = 100_000, max_bytes: int = 64 * 1024 * 1024
) -> Embedded:
    db = SqliteDatabase(tmp_path / "insights.db")
    bus = InProcessBus()
    collector = Collector()
    bus.subscribe([USERS], collector, group="collector")
    keys = SqliteKeyStore(db, SecretBox(Fernet.generate_key()))
    settings = ImportSettings(data_dir=tmp_path / "data", max_rows=max_rows, max_bytes=max_bytes)
    imports = build_imports(
        store=SqliteImportStore(db),
        publisher=bus,
        watermark=AtOnce(),
        users=bus,
        door=HttpDoor(Access(keys, SqliteMemberStore(db)), GroupedAuditLog(SqliteAuditLog(db))),
        settings=settings,
    )
    return Embedded(db, bus, keys, imports.service, imports.parts, collector, settings)


def make_app(parts: ServiceParts) -> FastAPI:
    app = FastAPI()
    app.include_router(parts.router, prefix="/api/v1")
    install_problem_handlers(app)
    return app


def csv_bytes(*lines: str, newline: str = "\n") -> bytes:
    return (newline.join(lines) + newline).encode()
