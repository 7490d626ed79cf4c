"""The audit trail: who viewed whose history, and who changed what, per app.

Entries are only ever appended. Each holds the SHA-256 of the previous entry's hash and of its
own fields (`entry_hash`), numbered from 1 per app, so an edited, inserted or removed entry
breaks the chain at that point (`verify`). The stores only load and save; the chain rule is
written once, here.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Generator, Sequence
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import orjson
from fastapi import Request

from insights_common.access import Principal
from insights_common.clock import sortable, utc_now
from insights_common.http.rate_limit import client_address

T = TypeVar("T")

GENESIS = "0" * 64
MAX_REASON = 500
VERIFY_CHUNK = 5000


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    app_id: str
    actor: str
    action: str
    user_id: str | None = None
    address: str | None = None
    reason: str | None = None
    detail: str | None = None
    seq: int = 0
    prev_hash: str = GENESIS
    hash: str = ""


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _fields(entry: AuditEntry) -> bytes:
    return orjson.dumps(
        [
            entry.seq,
            sortable(entry.at),
            entry.app_id,
            entry.actor,
            entry.action,
            entry.user_id,
            entry.address,
            entry.reason,
            entry.detail,
        ]
    )


def entry_hash(entry: AuditEntry, prev_hash: str) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + _fields(entry)).hexdigest()


def chained(entry: AuditEntry, *, seq: int, prev_hash: str) -> AuditEntry:
    """The entry as it is stored after the one numbered seq - 1 whose hash is prev_hash."""
    numbered = replace(entry, seq=seq, prev_hash=prev_hash)
    return replace(numbered, hash=entry_hash(numbered, prev_hash))


@dataclass(frozen=True, slots=True)
class Verification:
    entries: int
    broken_at: int | None = None
    """The number of the first entry that does not follow from the one before it."""
    problem: str | None = None

    @property
    def intact(self) -> bool:
        return self.broken_at is None


def verify_chain(
    entries: Sequence[AuditEntry], *, expected_seq: int, prev_hash: str
) -> tuple[int, str, Verification | None]:
    """Check one run of entries that should continue the chain; answers where it got to, and
    a failed `Verification` at the first break."""
    for entry in entries:
        if entry.seq != expected_seq:
            problem = f"entry {expected_seq} is missing (the next one is {entry.seq})"
            return expected_seq, prev_hash, Verification(expected_seq - 1, expected_seq, problem)
        if entry.prev_hash != prev_hash or entry_hash(entry, prev_hash) != entry.hash:
            problem = f"entry {entry.seq} was changed after it was recorded"
            return expected_seq, prev_hash, Verification(expected_seq - 1, entry.seq, problem)
        expected_seq, prev_hash = expected_seq + 1, entry.hash
    return expected_seq, prev_hash, None


def stored_row(entry: AuditEntry, stamp: Callable[[datetime], object]) -> tuple[object, ...]:
    """An entry as the columns of audit_log hold it, in their order; `stamp` writes its time as
    the store does."""
    return (
        entry.app_id,
        entry.seq,
        stamp(entry.at),
        entry.actor,
        entry.action,
        entry.user_id,
        entry.address,
        entry.reason,
        entry.detail,
        entry.prev_hash,
        entry.hash,
    )


class StoredColumns(Protocol):
    """A row of audit_log as a store reads it back (asyncpg's Record, sqlite3's Row)."""

    def __getitem__(self, column: str) -> Any: ...


def stored_entry(row: StoredColumns, at: datetime) -> AuditEntry:
    """An entry read back from the columns of audit_log (`stored_row`'s other way); `at` is its
    time, as the store's own type reads it."""
    return AuditEntry(
        at=at,
        app_id=row["app_id"],
        actor=row["actor"],
        action=row["action"],
        user_id=row["user_id"],
        address=row["address"],
        reason=row["reason"],
        detail=row["detail"],
        seq=row["seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def chain_batch(
    entries: Sequence[AuditEntry], last: dict[str, tuple[int, str]]
) -> list[AuditEntry]:
    """The entries as stored, in order, each app's chained after `last[app]` (its number and
    hash; absent for an app with no entry yet)."""
    stored = []
    heads = dict(last)
    for entry in entries:
        seq, prev = heads.get(entry.app_id, (0, GENESIS))
        chained_entry = chained(entry, seq=seq + 1, prev_hash=prev)
        heads[entry.app_id] = (chained_entry.seq, chained_entry.hash)
        stored.append(chained_entry)
    return stored


class AuditLog(Protocol):
    def append(self, entry: AuditEntry) -> Awaitable[AuditEntry]:
        """Chain and store the entry after the app's last one; answers it as stored."""
        ...

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        """`append` of each entry in order, in one transaction."""
        ...

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        """The app's entries matching `where`, newest first, numbered below `before_seq`."""
        ...

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        """The app's entries numbered from `from_seq` up, in order (for `verify`)."""
        ...


async def verify(log: AuditLog, app_id: str) -> Verification:
    expected, prev = 1, GENESIS
    while True:
        entries = await log.run(app_id, from_seq=expected, limit=VERIFY_CHUNK)
        expected, prev, broken = verify_chain(entries, expected_seq=expected, prev_hash=prev)
        if broken is not None:
            return broken
        if len(entries) < VERIFY_CHUNK:
            return Verification(expected - 1)


class Trail(AuditLog, Protocol):
    """An audit log `Recorder` can write to: `append` stores an entry as soon as it can (the
    caller waits for it now); `beside` one the caller needs only once a read of its own ends."""

    def beside(self, entry: AuditEntry) -> Awaitable[AuditEntry]:
        """Stored while the caller does something else; awaiting it says it is needed now."""
        ...


class _Beside:
    """An entry written beside a read: awaiting it says that its group is needed now."""

    __slots__ = ("_future", "_group", "_log")

    def __init__(
        self,
        log: GroupedAuditLog,
        group: list[tuple[AuditEntry, asyncio.Future[AuditEntry]]],
        future: asyncio.Future[AuditEntry],
    ) -> None:
        self._log = log
        self._group = group
        self._future = future

    def __await__(self) -> Generator[Any, None, AuditEntry]:
        if not self._future.done() and self._log._pending is self._group:
            self._log._due_now()
        return self._future.__await__()


class GroupedAuditLog:
    """Implements `AuditLog` and `Trail` over another log, writing the entries of requests that
    arrive together in one transaction (group commit): each request still waits until its
    entry is stored, but concurrent reads of one app share one round trip for their chain.

    One group is written at a time; the entries that arrive meanwhile form the next. A group
    leaves when one of its entries is needed (`append`, or awaiting what `beside` answered),
    `linger` seconds after its first entry, or at `batch` entries. An entry written beside a
    read so waits for others to join it only while that read runs: a read longer than the
    linger and the round trip together pays nothing for its entry, and the process sends a
    fraction of the round trips (each costs its CPU a socket write and a wake-up)."""

    LINGER = 0.002
    """Seconds; shorter than a read of OpenSearch beside which an entry is written, so that such
    a read rarely waits for its entry (docs/performance.md, "The audit trail on the read path")."""

    def __init__(self, log: AuditLog, *, batch: int = 500, linger: float = LINGER) -> None:
        self._log = log
        self._batch = batch
        self._linger = linger
        self._pending: list[tuple[AuditEntry, asyncio.Future[AuditEntry]]] = []
        self._due = False
        """The pending group leaves as soon as the group being written is stored."""
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    def append(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        """The entry is queued and its group made due; the future is done when it is stored
        (no task of its own is needed to wait for it beside other work)."""
        future = self._queue(entry)
        self._due_now()
        return future

    def beside(self, entry: AuditEntry) -> Awaitable[AuditEntry]:
        group = self._pending
        future = self._queue(entry)
        if len(self._pending) >= self._batch:
            self._due_now()
        elif not self._due and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._due_now)
        return _Beside(self, group, future)

    def _queue(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        return future

    def _due_now(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._pending:
            return
        self._due = True
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(
                self._flush(), name="audit-flush"
            )

    async def _flush(self) -> None:
        while self._pending and self._due:
            taken, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            self._due = bool(self._pending)  # what did not fit was already due
            try:
                stored = await self._log.append_many([entry for entry, _ in taken])
            except Exception as error:  # every waiting request fails with the write
                for _, future in taken:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), entry in zip(taken, stored, strict=True):
                if not future.done():
                    future.set_result(entry)

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        return await self._log.append_many(entries)

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        return await self._log.search(app_id, where, before_seq=before_seq, limit=limit)

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        return await self._log.run(app_id, from_seq=from_seq, limit=limit)


class Recorder:
    """Records what the authenticated caller of a request did (`await record(request, action)`,
    or `await record.during(read, request, action, user_id=...)` for a read of a user;
    `http.access.Access` put the caller on the request)."""

    def __init__(self, trail: Trail, *, clock: Callable[[], datetime] = utc_now) -> None:
        self._trail = trail
        self._clock = clock

    async def __call__(
        self,
        request: Request,
        action: str,
        *,
        user_id: str | None = None,
        reason: str | None = None,
        detail: str | None = None,
    ) -> None:
        await self._trail.append(self._entry(request, action, user_id, reason, detail))

    def _entry(
        self,
        request: Request,
        action: str,
        user_id: str | None,
        reason: str | None,
        detail: str | None,
    ) -> AuditEntry:
        caller: Principal = request.state.principal
        return AuditEntry(
            at=self._clock(),
            app_id=caller.app_id,
            actor=caller.actor,
            action=action,
            user_id=user_id,
            address=client_address(request),
            reason=reason,
            detail=detail,
        )

    async def during(
        self,
        read: Awaitable[T],
        request: Request,
        action: str,
        *,
        user_id: str,
        reason: str | None = None,
        detail: str | None = None,
    ) -> T:
        """`read`, its entry written meanwhile: for a read whose user is known before it runs.

        The answer still waits until the entry is stored, but the trail's round trip runs
        beside the store's instead of after it, so a read pays for the trail only what the
        entry takes longer than the read. The entry records that the caller asked for the
        user's history, so it is kept when the read finds no such user or fails; a read fails
        (`DependencyUnavailable`, 503) when its entry could not be stored."""
        writing = self._trail.beside(self._entry(request, action, user_id, reason, detail))
        try:
            answer = await read
        except BaseException:
            with suppress(Exception):
                await writing  # the read's own error is the answer
            raise
        await writing
        return answer


def where_sql(
    where: AuditFilter,
    *,
    mark: Callable[[int], str],
    moment: Callable[[datetime], object] = lambda m: m,
) -> tuple[str, list[object]]:
    """SQL conditions of a filter (both stores use them); `mark(n)` is the n-th placeholder."""
    conditions: list[str] = []
    values: list[object] = []
    for column, value in (
        ("user_id", where.user_id),
        ("actor", where.actor),
        ("action", where.action),
    ):
        if value is not None:
            values.append(value)
            conditions.append(f"{column} = {mark(len(values))}")
    for op, at in ((">=", where.since), ("<=", where.until)):
        if at is not None:
            values.append(moment(at))
            conditions.append(f"at {op} {mark(len(values))}")
    return "".join(f" AND {c}" for c in conditions), values
