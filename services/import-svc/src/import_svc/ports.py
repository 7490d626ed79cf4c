"""What the import service needs from outside. Every method is async: the distributed mode
implements them with asyncpg and aiokafka, the embedded mode with SQLite and the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Collection, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol

from import_svc.domain.model import FileIssue, ImportRecord, KnownUser, RowError
from insights_common.bus import EventPublisher
from insights_common.erasure import UserKey

__all__ = [
    "EventPublisher",
    "ImportStore",
    "RegistryEntry",
    "StoredRowError",
    "UploadSpool",
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
    """Imports, their row errors, and which replica runs each unfinished one.

    An unfinished import has an owner (the replica running it) and a heartbeat the owner stamps
    while it runs; a replica that died stops stamping, and any replica may fail its imports.
    """

    async def create(
        self, record: ImportRecord, *, owner: str, at: datetime, max_running: int | None = None
    ) -> bool:
        """Store a new import run by `owner`, its heartbeat stamped `at`; with `max_running`,
        only while the app has fewer unfinished imports than that (False: nothing stored). Two
        replicas creating at once cannot both take the last place."""
        ...

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

    async def heartbeat(self, record: ImportRecord, *, owner: str, at: datetime) -> bool:
        """Stamp the heartbeat; False (and nothing stamped) when the import is no longer an
        unfinished import of `owner`."""
        ...

    async def unfinished(self, *, owner: str) -> list[ImportRecord]:
        """The unfinished imports of `owner`, oldest first."""
        ...

    async def fail_stale(self, issue: FileIssue, *, before: datetime, at: datetime) -> list[str]:
        """Fail every unfinished import, of any owner, whose heartbeat is older than `before`;
        answer their ids."""
        ...


class UserRegistry(Protocol):
    async def known_users(self, app_id: str, user_ids: Sequence[str]) -> dict[str, KnownUser]: ...

    async def merge(self, entries: Sequence[RegistryEntry]) -> None:
        """Upsert users: given fields override when newer, absent fields keep what is known."""
        ...

    async def erase(self, erasures: Mapping[UserKey, datetime]) -> None:
        """Forget each (app_id, user_id): the registry's entry and the rows of the imports'
        rejected-row reports that name the user; keep when they were erased."""
        ...

    async def erased(self, users: Collection[UserKey]) -> dict[UserKey, datetime]:
        """When each of these users was erased; users never erased are missing."""
        ...


class UploadSpool(Protocol):
    """Where an upload waits while its import runs in the background."""

    async def save(self, name: str, chunks: AsyncIterator[bytes]) -> int:
        """Write the chunks; answer the size. The caller's validator enforces the byte limit."""
        ...

    async def complete(self, name: str) -> bool:
        """Whether the whole upload is there (an upload cut off midway is not)."""
        ...

    def read(self, name: str) -> AsyncGenerator[bytes, None]: ...

    async def delete(self, name: str) -> None: ...
