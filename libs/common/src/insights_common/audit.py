"""The audit trail: who viewed whose history, and who changed what, per app.

Entries are only ever appended. Each holds the SHA-256 of the previous entry's hash and of its
own fields (`entry_hash`), numbered from 1 per app, so an edited, inserted or removed entry
breaks the chain at that point (`verify`). The stores only load and save; the chain rule is
written once, here.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import orjson

from insights_common.clock import sortable

log = logging.getLogger(__name__)

GENESIS = "0" * 64
MAX_REASON = 500
VERIFY_CHUNK = 5000


class AuditEntry(NamedTuple):
    """One entry of the trail. A named tuple rather than a frozen dataclass: every recorded read
    makes two (the entry, then its chained copy), and a frozen dataclass takes six times as long
    to make (0.77 against 0.13 µs with eleven fields)."""

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

    def recorded(self) -> Recorded:
        """What the entry says, before it is chained: its fields from `at` to `detail`, in
        order (`AuditEntry(*recorded)` makes it again)."""
        return self[:8]  # RECORDED_FIELDS, as a literal the type checker can follow


Recorded = tuple[datetime, str, str, str, str | None, str | None, str | None, str | None]
RECORDED_FIELDS = 8
"""How many fields `Recorded` has: what an entry says, without its place in the chain."""


class SpoolMark(NamedTuple):
    """That a store took a spool file (`insights_common.audit_spool`) up to byte `upto`, the end
    of an entry; kept in the same transaction as those entries, so that the file is shipped on
    from there, never twice, whichever process ships it next."""

    spool: str
    upto: int


@dataclass(frozen=True, slots=True)
class AuditFilter:
    user_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _fields(entry: AuditEntry, seq: int) -> bytes:
    at, *said = entry.recorded()
    return orjson.dumps((seq, sortable(at), *said))


def entry_hash(entry: AuditEntry, prev_hash: str, *, seq: int | None = None) -> str:
    """The hash of the entry numbered `seq` (its own number by default) after `prev_hash`."""
    fields = _fields(entry, entry.seq if seq is None else seq)
    return hashlib.sha256(prev_hash.encode() + b"\n" + fields).hexdigest()


def chained(entry: AuditEntry, *, seq: int, prev_hash: str) -> AuditEntry:
    """The entry as it is stored after the one numbered seq - 1 whose hash is prev_hash."""
    # not `replace`: it costs more than the hash, on every read's entry
    return AuditEntry(*entry.recorded(), seq, prev_hash, entry_hash(entry, prev_hash, seq=seq))


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

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        """`append` of each entry in order, in one transaction; that transaction also keeps how
        far each spool of `spooled` was taken."""
        ...

    async def spooled(self, spool: str) -> int:
        """How far the store took this spool: the offset after its last entry taken, or 0."""
        ...

    async def forget_spool(self, spool: str) -> None:
        """The spool's file was removed: how far it was taken need not be kept."""
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

    async def start(self) -> None: ...

    async def stop(self) -> None:
        """Store what waits."""
        ...


class _Beside:
    """An entry written beside a read: awaiting it says that its group is needed now."""

    __slots__ = ("_future", "_group", "_log")

    def __init__(
        self,
        log: GroupedAuditLog,
        group: list[_Queued],
        future: asyncio.Future[AuditEntry],
    ) -> None:
        self._log = log
        self._group = group
        self._future = future

    def __await__(self) -> Generator[Any, None, AuditEntry]:
        if not self._future.done() and self._log._pending is self._group:
            self._log._due_now()
        return self._future.__await__()


@dataclass(slots=True)
class _Queued:
    entry: AuditEntry
    future: asyncio.Future[AuditEntry]
    """Done when the entry is stored."""


class GroupedAuditLog:
    """Implements `AuditLog` and `Trail` over another log, writing the entries of requests that
    arrive together in one transaction (group commit).

    One group is written at a time; the entries that arrive meanwhile form the next. A group
    leaves when one of its entries is needed (`append`, or awaiting what `beside` answered),
    `linger` seconds after its first entry, or at `batch` entries. An entry written beside a
    read waits for others to join it only while that read runs, and the read answers once the
    log stored it (`insights_common.audit_spool.SpooledTrail` answers sooner)."""

    LINGER = 0.002
    """Seconds; shorter than a read of OpenSearch beside which an entry is written, so that such
    a read rarely waits for its entry (docs/performance.md, "The audit trail on the read path")."""

    def __init__(self, log: AuditLog, *, batch: int = 500, linger: float = LINGER) -> None:
        self.store = log
        """The log the groups are written to."""
        self._batch = batch
        self._linger = linger
        self._pending: list[_Queued] = []
        self._due = False
        """The pending group leaves as soon as the group being written is stored."""
        self._timer: asyncio.TimerHandle | None = None
        self._flushing: asyncio.Task[None] | None = None

    async def start(self) -> None:
        return

    async def stop(self) -> None:
        await self.sent()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def append(self, entry: AuditEntry) -> asyncio.Future[AuditEntry]:
        """The entry is queued and its group made due; the future is done when it is stored
        (no task of its own is needed to wait for it beside other work)."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Queued(entry, future))
        self._due_now()
        return future

    def beside(self, entry: AuditEntry) -> Awaitable[AuditEntry]:
        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        answer = _Beside(self, self._pending, future)
        self._pending.append(_Queued(entry, future))
        if len(self._pending) >= self._batch:
            self._due_now()
        elif not self._due and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._due_now)
        return answer

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

    async def sent(self) -> None:
        """Send what waits now, and return once it was stored or failed."""
        self._due_now()
        if self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        while self._pending and self._due:
            taken, self._pending = self._pending[: self._batch], self._pending[self._batch :]
            self._due = bool(self._pending)  # what did not fit was already due
            try:
                stored = await self.store.append_many([queued.entry for queued in taken])
            except Exception as error:  # every waiting request fails with the write
                for queued in taken:
                    if not queued.future.done():
                        queued.future.set_exception(error)
                continue
            for queued, entry in zip(taken, stored, strict=True):
                if not queued.future.done():
                    queued.future.set_result(entry)

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        return await self.store.append_many(entries, spooled=spooled)

    async def spooled(self, spool: str) -> int:
        return await self.store.spooled(spool)

    async def forget_spool(self, spool: str) -> None:
        await self.store.forget_spool(spool)

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        """What this process recorded included (it is sent first)."""
        await self.sent()
        return await self.store.search(app_id, where, before_seq=before_seq, limit=limit)

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        await self.sent()
        return await self.store.run(app_id, from_seq=from_seq, limit=limit)


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
