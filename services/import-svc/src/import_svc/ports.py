"""What the import service needs from outside. Every method is async: the distributed mode
implements them with asyncpg and aiokafka, the embedded mode with SQLite and the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from import_svc.domain.model import FileIssue, ImportRecord, KnownUser, RowError
from insights_common.bus import EventPublisher

__all__ = [
    "EventPublisher",
    "ImportStore",
    "RegistryEntry",
    "StoredRowError",
    "UploadSpool",
    "UploadTooLarge",
    "UserRegistry",
]


class RegistryEntry(NamedTuple):
    """A user as the registry should know it; None fields keep what is known."""

    app_id: str
    user_id: str
    phone: str | None
    nickname: str | None
    at: datetime


class StoredRowError(NamedTuple):
    seq: int
    error: RowError


class ImportStore(Protocol):
    async def create(self, record: ImportRecord) -> None: ...

    async def update(self, record: ImportRecord) -> None:
        """Store the status, progress, counts and issues of a running import."""
        ...

    async def finish(
        self,
        record: ImportRecord,
        *,
        errors: Sequence[RowError],
        users: Sequence[RegistryEntry],
    ) -> None:
        """In ONE transaction: the final record, its row errors and the registry rows."""
        ...

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None: ...

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> list[ImportRecord]:
        """The app's imports, newest first, older than `before_id` when given."""
        ...

    async def row_errors(
        self, app_id: str, import_id: str, *, after_seq: int, limit: int
    ) -> list[StoredRowError]:
        """Row errors in line order, after position `after_seq`."""
        ...

    async def fail_unfinished(self, issue: FileIssue, *, at: datetime) -> list[str]:
        """Mark every queued/validating/importing import failed; answer their ids."""
        ...


class UserRegistry(Protocol):
    async def known_users(self, app_id: str, user_ids: Sequence[str]) -> dict[str, KnownUser]: ...

    async def merge(self, entries: Sequence[RegistryEntry]) -> None:
        """Upsert users: given fields override when newer, absent fields keep what is known."""
        ...


class UploadTooLarge(Exception):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the upload exceeds {max_bytes} bytes")
        self.max_bytes = max_bytes


class UploadSpool(Protocol):
    """Where an upload waits while its import runs in the background."""

    async def save(self, name: str, chunks: AsyncIterator[bytes], *, max_bytes: int) -> int:
        """Write the chunks; answer the size. Raise UploadTooLarge (keeping nothing) past max."""
        ...

    async def head(self, name: str, size: int) -> bytes: ...

    def read(self, name: str) -> AsyncGenerator[bytes, None]: ...

    async def delete(self, name: str) -> None: ...
