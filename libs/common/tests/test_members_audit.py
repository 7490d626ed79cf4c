"""The member store and the audit log port suites, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from starlette.requests import Request

from conftest import until
from insights_common.access import Principal
from insights_common.accounts import Accounts, LastAdmin, MemberExists
from insights_common.audit import (
    AuditEntry,
    AuditFilter,
    AuditLog,
    GroupedAuditLog,
    SpoolMark,
    verify,
)
from insights_common.audit_ship import InProcessShipping, SpoolShipper
from insights_common.audit_spool import AuditSpool, SpooledTrail, read_spool
from insights_common.http.recorder import Recorder
from insights_common.members import (
    MemberStore,
    SessionInfo,
    SessionLimits,
    session_alive,
    token_hash,
)
from insights_common.outage import DependencyUnavailable
from insights_common.postgres.audit import PostgresAuditLog, month_bounds
from insights_common.postgres.members import PostgresMemberStore
from insights_common.sqlite.audit import SqliteAuditLog
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.members import SqliteMemberStore

if TYPE_CHECKING:
    from conftest import Databases

T0 = datetime.now(UTC).replace(microsecond=0)


async def open_members(databases: Databases) -> MemberStore:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        return SqliteMemberStore(db)
    store = PostgresMemberStore(db)
    await store.migrate()
    return store


async def open_audit(databases: Databases) -> AuditLog:
    db = await databases.open()
    if isinstance(db, SqliteDatabase):
        return SqliteAuditLog(db)
    log = PostgresAuditLog(db)
    await log.migrate()
    return log


async def tamper(databases: Databases, sql: str) -> None:
    """Change the stored trail behind the store's back, as someone with the database would."""
    db = databases.opened[0]
    if isinstance(db, SqliteDatabase):

        def run(conn: object) -> None:
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")  # type: ignore[attr-defined]
            conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")  # type: ignore[attr-defined]
            conn.execute(sql)  # type: ignore[attr-defined]

        await db.write(run)  # type: ignore[arg-type]
        return
    async with db.acquire() as conn:
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
        await conn.execute(sql)


async def test_members_sign_in_by_password_and_sessions_end(databases: Databases) -> None:
    members = await open_members(databases)
    accounts = Accounts(members, clock=lambda: T0)
    password = await accounts.add("acme", " Ann@Example.com ", "admin")
    with pytest.raises(MemberExists):
        await accounts.add("acme", "ann@example.com", "agent")
    assert await accounts.sign_in("acme", "ann@example.com", "wrong") is None
    assert await accounts.sign_in("globex", "ann@example.com", password) is None
    session = await accounts.sign_in("acme", "ANN@example.com", password)
    assert session is not None
    stored = await members.session(token_hash(session.token))
    assert stored is not None and (stored.email, stored.role) == ("ann@example.com", "admin")
    assert stored.csrf_token == session.csrf_token
    # the store keeps no password and no session token in the clear
    assert await members.session(session.token) is None
    with pytest.raises(LastAdmin):
        await accounts.set_role("acme", "ann@example.com", "agent")
    await accounts.add("acme", "bo@example.com", "admin")
    await accounts.set_role("acme", "ann@example.com", "analyst")
    assert (await members.session(token_hash(session.token))).role == "analyst"  # type: ignore[union-attr]
    assert await accounts.sign_out_everywhere("acme", "ann@example.com") == 1
    assert await members.session(token_hash(session.token)) is None


async def test_a_member_an_identity_provider_vouched_for_gets_a_session(
    databases: Databases,
) -> None:
    members = await open_members(databases)
    accounts = Accounts(members, clock=lambda: T0)
    await accounts.add("acme", "Ann@Example.com", "agent")
    assert await members.is_member("acme", "ann@example.com")
    assert not await members.is_member("globex", "ann@example.com")
    assert await accounts.sign_in_verified("globex", "ann@example.com") is None
    assert await accounts.sign_in_verified("acme", "bo@example.com") is None
    session = await accounts.sign_in_verified("acme", " ANN@example.COM ")
    assert session is not None
    stored = await members.session(token_hash(session.token))
    assert stored is not None
    assert (stored.app_id, stored.email, stored.role) == ("acme", "ann@example.com", "agent")
    assert (stored.csrf_token, stored.created_at) == (session.csrf_token, T0)
    await accounts.remove("acme", "ann@example.com")
    assert await accounts.sign_in_verified("acme", "ann@example.com") is None


@pytest.mark.unit
def test_a_session_ends_when_idle_or_too_old() -> None:
    limits = SessionLimits(idle=timedelta(minutes=30), absolute=timedelta(hours=12))
    fresh = SessionInfo("acme", "a@b.co", "agent", "t", T0, T0)
    assert session_alive(fresh, now=T0 + timedelta(minutes=29), limits=limits)
    assert not session_alive(fresh, now=T0 + timedelta(minutes=30), limits=limits)
    busy = SessionInfo("acme", "a@b.co", "agent", "t", T0, T0 + timedelta(hours=11, minutes=59))
    assert session_alive(busy, now=T0 + timedelta(hours=11, minutes=59, seconds=30), limits=limits)
    assert not session_alive(busy, now=T0 + timedelta(hours=12), limits=limits)


def entry(i: int, **fields: str) -> AuditEntry:
    return AuditEntry(
        at=T0 + timedelta(seconds=i),
        app_id=fields.get("app_id", "acme"),
        actor=fields.get("actor", "member:ann@example.com"),
        action=fields.get("action", "user.view"),
        user_id=fields.get("user_id", f"user-{i % 3}"),
        address="203.0.113.7",
    )


async def test_the_trail_is_chained_filtered_and_paged(databases: Databases) -> None:
    log = await open_audit(databases)
    for i in range(10):
        await log.append(entry(i))
    await log.append(entry(10, app_id="globex"))
    stored = await log.run("acme", from_seq=1, limit=100)
    assert [e.seq for e in stored] == list(range(1, 11))
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))
    newest = await log.search("acme", AuditFilter(), before_seq=None, limit=3)
    assert [e.seq for e in newest] == [10, 9, 8]
    after = await log.search("acme", AuditFilter(), before_seq=8, limit=3)
    assert [e.seq for e in after] == [7, 6, 5]
    user = await log.search("acme", AuditFilter(user_id="user-1"), before_seq=None, limit=100)
    assert [e.seq for e in user] == [8, 5, 2]
    window = AuditFilter(since=T0 + timedelta(seconds=2), until=T0 + timedelta(seconds=4))
    assert [e.seq for e in await log.search("acme", window, before_seq=None, limit=9)] == [5, 4, 3]
    checked = await verify(log, "acme")
    assert checked.intact and checked.entries == 10
    assert (await verify(log, "globex")).entries == 1


@pytest.mark.parametrize(
    ("change", "broken_at"),
    [
        ("UPDATE audit_log SET user_id = 'someone-else' WHERE app_id = 'acme' AND seq = 4", 4),
        (
            "UPDATE audit_log SET actor = 'member:x@example.com' WHERE seq = 6 AND app_id = 'acme'",
            6,
        ),
        ("DELETE FROM audit_log WHERE app_id = 'acme' AND seq = 3", 3),
    ],
)
async def test_an_edited_or_removed_entry_breaks_the_chain(
    databases: Databases, change: str, broken_at: int
) -> None:
    log = await open_audit(databases)
    for i in range(8):
        await log.append(entry(i))
    with pytest.raises(Exception, match="append-only"):
        await tamper_through_the_store(databases)
    await tamper(databases, change)
    checked = await verify(log, "acme")
    assert not checked.intact
    assert checked.broken_at == broken_at
    assert checked.entries == broken_at - 1


async def tamper_through_the_store(databases: Databases) -> None:
    """An ordinary UPDATE, which the store's trigger refuses."""
    db = databases.opened[0]
    if isinstance(db, SqliteDatabase):

        def run(conn: object) -> None:
            conn.execute("UPDATE audit_log SET reason = 'x'")  # type: ignore[attr-defined]

        await db.write(run)  # type: ignore[arg-type]
        return
    async with db.acquire() as conn:
        await conn.execute("UPDATE audit_log SET reason = 'x'")


@pytest.mark.unit
def test_months_bound_the_partitions() -> None:
    assert month_bounds(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    assert month_bounds(datetime(2027, 2, 3, tzinfo=UTC))[1] == datetime(2027, 3, 1, tzinfo=UTC)


class CountingLog:
    """An audit log that counts the transactions it is asked for."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.transactions = 0
        self.groups: list[int] = []

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        self.transactions += 1
        self.groups.append(len(entries))
        return await self.log.append_many(entries, spooled=spooled)

    async def spooled(self, spool: str) -> int:
        return await self.log.spooled(spool)

    async def forget_spool(self, spool: str) -> None:
        await self.log.forget_spool(spool)

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        return await self.log.run(app_id, from_seq=from_seq, limit=limit)

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        return await self.log.search(app_id, where, before_seq=before_seq, limit=limit)


async def test_concurrent_entries_are_grouped_and_chained_in_order(databases: Databases) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    grouped = GroupedAuditLog(counting)  # type: ignore[arg-type]
    stored = await asyncio.gather(*(grouped.append(entry(i)) for i in range(60)))
    assert sorted(e.seq for e in stored) == list(range(1, 61))
    assert [e.seq for e in stored] == list(range(1, 61))  # in the order they were asked for
    assert counting.transactions < 60
    assert (await verify(log, "acme")).entries == 60


async def test_entries_beside_reads_wait_for_each_other_until_one_is_needed(
    databases: Databases,
) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    grouped = GroupedAuditLog(counting, linger=3600)  # type: ignore[arg-type]
    beside = [grouped.beside(entry(i)) for i in range(5)]
    await asyncio.sleep(0.05)
    assert counting.transactions == 0  # nobody needs them yet: they wait for more
    first = await asyncio.wait_for(beside[2], timeout=10)  # its read ended: all five go now
    assert counting.groups == [5]
    assert first.seq == 3
    assert [(await one).seq for one in beside] == [1, 2, 3, 4, 5]
    assert counting.groups == [5]


async def test_an_entry_beside_a_read_is_written_after_the_linger_unasked(
    databases: Databases,
) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    grouped = GroupedAuditLog(counting, linger=0.01)  # type: ignore[arg-type]
    beside = grouped.beside(entry(0))
    for _ in range(500):  # never awaited: the linger alone sends it
        if counting.groups:
            break
        await asyncio.sleep(0.01)
    assert counting.groups == [1]
    assert (await beside).seq == 1


async def test_an_entry_needed_now_takes_the_waiting_ones_without_their_linger(
    databases: Databases,
) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    grouped = GroupedAuditLog(counting, linger=3600)  # type: ignore[arg-type]
    beside = [grouped.beside(entry(i)) for i in range(3)]
    now = await asyncio.wait_for(grouped.append(entry(3)), timeout=10)
    assert now.seq == 4
    assert counting.groups == [4]
    assert [(await one).seq for one in beside] == [1, 2, 3]


async def test_a_group_leaves_when_it_is_full(databases: Databases) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    grouped = GroupedAuditLog(counting, batch=4, linger=3600)  # type: ignore[arg-type]
    beside = [grouped.beside(entry(i)) for i in range(10)]
    await asyncio.wait_for(beside[7], timeout=10)  # the first two groups were full
    assert counting.groups[:2] == [4, 4]
    assert [(await one).seq for one in beside] == list(range(1, 11))
    assert counting.groups == [4, 4, 2]


async def test_a_failed_group_fails_each_of_its_entries_and_not_the_next(
    databases: Databases,
) -> None:
    log = await open_audit(databases)
    gate = Gate(log)
    gate.fail = DependencyUnavailable("PostgreSQL", "down")
    gate.release.set()
    grouped = GroupedAuditLog(gate, linger=3600)  # type: ignore[arg-type]
    beside = [grouped.beside(entry(i)) for i in range(3)]
    for one in beside:
        with pytest.raises(DependencyUnavailable):
            await asyncio.wait_for(one, timeout=10)
    gate.fail = None
    assert (await asyncio.wait_for(grouped.append(entry(3)), timeout=10)).seq == 1


async def test_two_processes_chain_one_apps_entries_without_a_gap_or_a_fork(
    databases: Databases,
) -> None:
    """Two query replicas record reads of one app at once: each learns where the other left the
    chain (PostgreSQL: its head is stale, the append is refused and chained again)."""
    first, second = await open_audit(databases), await open_audit(databases)
    await first.append(entry(0))  # the second process has never seen this app's chain
    one, two = GroupedAuditLog(first), GroupedAuditLog(second)
    stored = await asyncio.gather(*((one if i % 2 else two).append(entry(i)) for i in range(1, 41)))
    assert sorted(e.seq for e in stored) == list(range(2, 42))
    checked = await verify(first, "acme")
    assert checked.intact and checked.entries == 41


def asked(address: str = "203.0.113.7") -> Request:
    """A request of an agent of acme, as `http.access.Access` leaves it for the recorder."""
    request = Request({"type": "http", "headers": [], "client": (address, 40000)})
    request.state.principal = Principal("acme", "member:ann@example.com", frozenset(), "agent")
    return request


class Gate:
    """A trail whose write waits until it is let through, and says when it has started."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return await self.log.append_many(entries, spooled=spooled)


async def test_a_read_of_a_user_runs_while_its_entry_is_written(databases: Databases) -> None:
    log = await open_audit(databases)
    gate = Gate(log)
    record = Recorder(GroupedAuditLog(gate))  # type: ignore[arg-type]

    async def read() -> str:
        # Only ends once the entry's write has begun: one after the other would never end.
        await gate.started.wait()
        gate.release.set()
        return "the profile"

    answer = await asyncio.wait_for(
        record.during(read(), asked(), "user.view", user_id="alex"), timeout=30
    )
    assert answer == "the profile"
    (stored,) = await log.run("acme", from_seq=1, limit=10)
    assert (stored.action, stored.user_id, stored.address) == ("user.view", "alex", "203.0.113.7")


async def test_a_read_that_fails_keeps_its_entry_and_its_own_error(databases: Databases) -> None:
    log = await open_audit(databases)
    record = Recorder(GroupedAuditLog(log))

    async def missing() -> str:
        raise LookupError("no such user")

    with pytest.raises(LookupError, match="no such user"):
        await record.during(missing(), asked(), "user.view", user_id="nobody")
    (stored,) = await log.run("acme", from_seq=1, limit=10)
    assert (stored.action, stored.user_id) == ("user.view", "nobody")


async def test_a_read_whose_entry_is_not_stored_is_not_answered(databases: Databases) -> None:
    log = await open_audit(databases)
    gate = Gate(log)
    gate.fail = DependencyUnavailable("PostgreSQL", "down")
    gate.release.set()
    read_done = asyncio.Event()

    async def read() -> str:
        read_done.set()
        return "the profile"

    record = Recorder(GroupedAuditLog(gate))  # type: ignore[arg-type]
    with pytest.raises(DependencyUnavailable):
        await record.during(read(), asked(), "user.view", user_id="alex")
    assert read_done.is_set()
    assert await log.run("acme", from_seq=1, limit=10) == []


# The spool: an entry beside a read is stored in the process's file before the read answers,
# and a shipper takes the files into the store.


class Down:
    """A trail store that is down until `up()`, counting what it is asked for."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self.down = True
        self.calls = 0

    def up(self) -> None:
        self.down = False

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        self.calls += 1
        if self.down:
            raise DependencyUnavailable("PostgreSQL", "down")
        return await self.log.append_many(entries, spooled=spooled)

    async def spooled(self, spool: str) -> int:
        return await self.log.spooled(spool)

    async def forget_spool(self, spool: str) -> None:
        await self.log.forget_spool(spool)


def spool_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.spool"))


async def stored_in(log: AuditLog, *, count: int = 1) -> list[AuditEntry]:
    """The app's entries once the trail has `count` of them."""

    async def enough() -> bool:
        return len(await log.run("acme", from_seq=1, limit=1000)) >= count

    await until(enough)
    return await log.run("acme", from_seq=1, limit=1000)


def spooled(
    log: AuditLog, directory: Path, *, every: float = 3600, **spool: int
) -> tuple[SpooledTrail, SpoolShipper]:
    """A trail spooling to `directory` and its shipper, run in this process; with the default
    `every`, the shipper passes when it starts and when it stops, and when a test says so."""
    shipper = SpoolShipper(log, directory, every=every, retry_delays=(0.05,))
    trail = SpooledTrail(
        GroupedAuditLog(log), AuditSpool(directory, **spool), InProcessShipping(shipper)
    )
    return trail, shipper


async def test_a_read_answers_once_its_entry_is_in_the_spool_and_the_shipper_takes_it_later(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    counting = CountingLog(log)
    trail, shipper = spooled(counting, tmp_path)  # type: ignore[arg-type]
    await trail.start()
    record = Recorder(trail)

    async def read() -> str:
        return "the profile"

    answers = [await record.during(read(), asked(), "user.view", user_id=f"u{i}") for i in range(5)]
    await record.read(asked(), "message.view", user_id="u9", detail="m-1")
    assert answers == ["the profile"] * 5
    assert counting.transactions == 0  # answered before the trail's store was asked
    (spool,) = spool_files(tmp_path)
    assert spool.read_bytes().count(b"\n") == 6
    assert await shipper.ship() == 6
    assert counting.groups == [6]  # one transaction
    stored = await log.run("acme", from_seq=1, limit=10)
    assert [(e.seq, e.user_id) for e in stored] == [
        *((i + 1, f"u{i}") for i in range(5)),
        (6, "u9"),
    ]
    assert stored[-1].detail == "m-1"
    assert await log.spooled(spool.stem) == written(spool)  # kept with the entries
    await trail.stop()
    assert spool_files(tmp_path) == []  # all of it was taken: removed, and its mark too
    assert await log.spooled(spool.stem) == 0


async def test_reading_the_trail_waits_for_what_this_process_spooled(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    trail, _ = spooled(log, tmp_path, every=0.05)
    await trail.start()
    await Recorder(trail).read(asked(), "user.view", user_id="alex")
    (found,) = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
    assert found.user_id == "alex"
    await trail.stop()

    unshipped = SpooledTrail(  # its shipper waits for the directory another one holds
        GroupedAuditLog(log),
        AuditSpool(tmp_path),
        InProcessShipping(SpoolShipper(log, tmp_path)),
    )
    unshipped.CATCH_UP = 0.2
    holder = SpoolShipper(log, tmp_path)
    assert holder.try_lock()
    await unshipped.start()
    await Recorder(unshipped).read(asked(), "user.view", user_id="bo")
    with pytest.raises(DependencyUnavailable, match="not in the store after 0.2 s"):
        await unshipped.search("acme", AuditFilter(), before_seq=None, limit=10)
    holder.close()  # the waiting shipper takes the directory, at its next look
    unshipped.CATCH_UP = 10.0
    (newest, _) = await unshipped.search("acme", AuditFilter(), before_seq=None, limit=10)
    assert newest.user_id == "bo"
    await unshipped.stop()


async def test_reading_the_trail_has_the_shipper_pass_at_once(
    databases: Databases, tmp_path: Path
) -> None:
    """The shipper passes once an hour here: only the reader's wake can have it pass in time."""
    log = await open_audit(databases)
    counting = CountingLog(log)
    trail, _ = spooled(counting, tmp_path)  # type: ignore[arg-type]
    trail.CATCH_UP = 5.0
    await trail.start()
    for user_id in ("alex", "bo"):
        await Recorder(trail).read(asked(), "user.view", user_id=user_id)
        (last, *_) = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
        assert last.user_id == user_id
    assert counting.groups == [1, 1]  # one pass for each reader
    found = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
    assert len(found) == 2
    assert counting.groups == [1, 1]  # nothing new spooled: no pass asked
    await trail.stop()


def written(path: Path) -> int:
    """The bytes written to a spool file (its unwritten end is zeros)."""
    return len(path.read_bytes().rstrip(b"\0"))


async def test_lines_a_failing_disk_changed_are_set_aside_and_shipping_goes_on(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    trail, _ = spooled(log, tmp_path)
    trail.CATCH_UP = 5.0
    await trail.start()
    users = ("alex", "bo", "cy", "dee", "eve", "fay")
    for user_id in users:
        await Recorder(trail).read(asked(), "user.view", user_id=user_id)
    (path,) = spool_files(tmp_path)
    data = bytearray(path.read_bytes())
    starts = [0]
    while len(starts) <= len(users):
        starts.append(data.index(b"\n", starts[-1]) + 1)
    # A block zeroed from within the second line to within the third (its newline with it),
    # and the fifth line's bytes changed, as a failing disk returns them.
    data[starts[1] + 20 : starts[2] + 20] = bytes(starts[2] - starts[1])
    data[starts[4] : starts[5] - 1] = b'["2026-13-99", 1, 2]'.ljust(starts[5] - 1 - starts[4])
    with path.open("r+b") as damaged:
        damaged.write(data)

    found = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
    assert [e.user_id for e in found] == ["fay", "dee", "alex"]  # not held up by the rest
    aside = tmp_path / f"{path.stem}.unreadable"
    assert aside.read_bytes().splitlines() == [
        bytes(data[starts[1] : starts[3] - 1]),
        bytes(data[starts[4] : starts[5] - 1]),
    ]
    assert await log.spooled(path.stem) == written(path)

    await Recorder(trail).read(asked(), "user.view", user_id="gus")
    found = await trail.search("acme", AuditFilter(), before_seq=None, limit=10)
    assert [e.user_id for e in found] == ["gus", "fay", "dee", "alex"]
    assert len(aside.read_bytes().splitlines()) == 2  # each set aside once
    await trail.stop()
    assert (await verify(log, "acme")).entries == 4


async def test_an_entry_stored_at_once_follows_the_reads_this_process_spooled_before(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    trail, _ = spooled(log, tmp_path, every=0.05)
    await trail.start()
    await Recorder(trail).read(asked(), "message.view", user_id="alex", detail="m-1")
    await Recorder(trail)(asked(), "user.erase", user_id="alex")  # waits for the read's entry
    stored = await log.run("acme", from_seq=1, limit=10)
    assert [(e.seq, e.action) for e in stored] == [(1, "message.view"), (2, "user.erase")]
    await trail.stop()


async def test_reads_go_on_while_the_trails_store_is_down_and_their_entries_arrive_after(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    store = Down(log)
    trail, _ = spooled(store, tmp_path, every=0.01)  # type: ignore[arg-type]
    await trail.start()
    for i in range(4):
        await trail.beside(entry(i))
    await until(lambda: store.calls >= 3)  # tried, and tried again after a pause
    assert await log.run("acme", from_seq=1, limit=10) == []
    await trail.beside(entry(4))
    store.up()
    stored = await stored_in(log, count=5)
    assert [e.at for e in stored] == [entry(i).at for i in range(5)]  # in the order of the reads
    assert (await verify(log, "acme")).entries == 5
    await trail.stop()


async def test_a_read_is_refused_while_too_much_waits_for_the_store_and_served_after(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    store = Down(log)
    trail, _ = spooled(store, tmp_path, every=0.01, rotate_bytes=300, max_bytes=900)  # type: ignore[arg-type]
    await trail.start()
    record = Recorder(trail)
    read_done = asyncio.Event()

    async def read() -> str:
        read_done.set()
        return "the profile"

    written = 0
    with pytest.raises(DependencyUnavailable, match="KiB of entries wait"):
        while written < 100:
            await record.during(read(), asked(), "user.view", user_id=f"u{written}")
            written += 1
            read_done.clear()
    assert 0 < written < 100
    assert not read_done.is_set()  # refused before it read anything
    store.up()
    await stored_in(log, count=written)

    async def served() -> bool:
        try:
            await record.during(read(), asked(), "user.view", user_id="again")
        except DependencyUnavailable:
            return False
        return True

    await until(served)  # once the shipper removed the files it took
    await trail.stop()
    assert spool_files(tmp_path) == []
    assert (await verify(log, "acme")).entries == written + 1


async def test_the_spool_a_process_left_is_taken_from_where_the_store_stopped(
    databases: Databases, tmp_path: Path
) -> None:
    """A process wrote five entries to its spool and the store took the first two, then it
    died (its lock goes with its file descriptor) in the middle of writing a sixth."""
    log = await open_audit(databases)
    dead = AuditSpool(tmp_path)
    dead.open()
    marks = [dead.write(entry(i)) for i in range(5)]
    await log.append_many([entry(0), entry(1)], spooled=[marks[1]])
    (left,) = spool_files(tmp_path)
    with left.open("ab") as cut:
        cut.write(b'["2026-')  # the write it died in
    alive = AuditSpool(tmp_path)  # a process of the same directory, still running
    alive.open()
    alive.write(entry(5))
    dead.close()  # its process ended: the file stays, unlocked

    shipper = SpoolShipper(log, tmp_path)
    assert await shipper.ship() == 4  # three left behind, one of the live process
    stored = await log.run("acme", from_seq=1, limit=10)
    assert [e.at for e in stored] == [entry(i).at for i in range(6)]  # each once, in order
    assert (await verify(log, "acme")).entries == 6
    assert not left.exists()
    assert await log.spooled(left.stem) == 0  # forgotten with the file
    (live,) = spool_files(tmp_path)  # the live process's stays: it may write more
    alive.write(entry(6))
    alive.close()
    assert await shipper.ship() == 1
    assert spool_files(tmp_path) == []
    shipper.close()


async def test_a_full_spool_file_is_left_to_the_shipper_and_removed_once_taken(
    databases: Databases, tmp_path: Path
) -> None:
    log = await open_audit(databases)
    spool = AuditSpool(tmp_path, rotate_bytes=300)
    spool.open()
    for i in range(12):
        spool.write(entry(i))
    assert len(spool_files(tmp_path)) > 2
    shipper = SpoolShipper(log, tmp_path, batch=5)
    assert await shipper.ship() == 12
    assert len(spool_files(tmp_path)) == 1  # the files written to before were taken and removed
    assert (await verify(log, "acme")).entries == 12
    assert [e.at for e in await log.run("acme", from_seq=1, limit=20)] == [
        entry(i).at for i in range(12)
    ]
    spool.close()
    shipper.close()


@pytest.mark.unit
def test_a_spool_entry_reads_back_as_written_and_a_cut_line_is_left_out(tmp_path: Path) -> None:
    spool = AuditSpool(tmp_path)
    spool.open()
    written = AuditEntry(
        at=T0,
        app_id="acme",
        actor="key:k1",
        action="user.reveal_phone",
        user_id='ü "quoted"\nline',
        address="2001:db8::1",
        reason="a caller asked\tto confirm",
        detail=None,
    )
    first = spool.write(written)
    spool.write(entry(1))
    (path,) = spool_files(tmp_path)
    data = path.read_bytes().rstrip(b"\0") + b'["2026'
    read = read_spool(data, 0)
    assert read.entries[0] == (written, first.upto)
    assert read.end == len(data) - len(b'["2026')
    assert [e for e, _ in read_spool(data, first.upto).entries] == [entry(1)]
    spool.close()


@pytest.mark.parametrize(
    "line",
    [
        b'{"at": 1, "app_id": 2, "actor": 3, "action": 4, "a": 5, "b": 6, "c": 7, "d": 8}',
        b'"2026-11-02T10:00:00+00:00"',
        b'["2026-11-02T10:00:00+00:00", "acme", "key:k1", "user.view", "u1", null, null]',
        b'["2026-11-02T10:00:00+00:00", "acme", 7, "user.view", "u1", null, null, null]',
        b'["2026-11-02T10:00:00+00:00", "acme", "key:k1", null, "u1", null, null, null]',
        b'["2026-11-02T10:00:00+00:00", "acme", "key:k1", "user.view", ["u1"], null, null, null]',
        b'["2026-11-02T10:00:00+00:00", "acme", "key:k1", "user.view", "u1", null, 1.5, null]',
        b'[20261102, "acme", "key:k1", "user.view", "u1", null, null, null]',
        b'["2026-11-02T10:00:00", "acme", "key:k1", "user.view", "u1", null, null, null]',
        b'["yesterday", "acme", "key:k1", "user.view", "u1", null, null, null]',
    ],
)
def test_a_spool_line_that_holds_no_entry_is_read_as_unreadable(line: bytes) -> None:
    good = b'["2026-11-02T10:00:00+00:00", "acme", "key:k1", "user.view", "u1", null, null, null]'
    read = read_spool(line + b"\n" + good + b"\n", 0)
    assert read.unreadable == [(line, len(line) + 1)]
    assert [e.user_id for e, _ in read.entries] == ["u1"]


SPOOLING_CHILD = """
import sys
from datetime import UTC, datetime
from pathlib import Path

from insights_common.audit import AuditEntry
from insights_common.audit_spool import AuditSpool

spool = AuditSpool(Path(sys.argv[1]))
spool.open()
for i in range(int(sys.argv[2])):
    at = datetime(2026, 12, 1, tzinfo=UTC)
    spool.write(AuditEntry(at=at, app_id="acme", actor="key:k", action="user.view",
                           user_id=f"u{i}"))
print("spooled", flush=True)
sys.stdin.read()  # until killed
"""


async def test_a_killed_process_s_spooled_reads_are_stored_by_the_shipper(
    databases: Databases, tmp_path: Path
) -> None:
    """SIGKILL: no stop; the kernel drops the child's lock on its file."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SPOOLING_CHILD,
        str(tmp_path),
        "7",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    assert await asyncio.wait_for(child.stdout.readline(), timeout=60) == b"spooled\n"
    log = await open_audit(databases)
    shipper = SpoolShipper(log, tmp_path)
    assert await shipper.ship() == 7  # taken while it lives: its file stays
    assert len(spool_files(tmp_path)) == 1
    child.kill()
    await child.wait()
    assert await shipper.ship() == 0
    assert spool_files(tmp_path) == []  # nobody holds it now: removed
    stored = await log.run("acme", from_seq=1, limit=10)
    assert [e.user_id for e in stored] == [f"u{i}" for i in range(7)]
    assert (await verify(log, "acme")).entries == 7
    shipper.close()


@pytest.mark.unit
def test_an_entry_longer_than_a_spool_file_is_refused_and_the_next_is_taken(
    tmp_path: Path,
) -> None:
    spool = AuditSpool(tmp_path, rotate_bytes=300)
    spool.open()
    huge = entry(1)._replace(reason="x" * 1_000_000)
    with pytest.raises(DependencyUnavailable, match="longer than a spool file"):
        spool.write(huge)
    mark = spool.write(entry(2))
    (path,) = spool_files(tmp_path)
    assert [e for e, _ in read_spool(path.read_bytes(), 0).entries] == [entry(2)]
    assert mark.upto == written(path)
    spool.close()


FILLING_CHILD = """
import resource, signal, sys
from datetime import UTC, datetime
from pathlib import Path

from insights_common.audit import AuditEntry
from insights_common.audit_spool import AuditSpool
from insights_common.outage import DependencyUnavailable

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file past the limit fails instead
spool = AuditSpool(Path(sys.argv[1]), rotate_bytes=600)
spool.open()
resource.setrlimit(resource.RLIMIT_FSIZE, (500, 500))  # no room on the disk for a new file
at = datetime(2026, 12, 1, tzinfo=UTC)
written = 0
refusals = []
while len(refusals) < 2:
    try:
        spool.write(AuditEntry(at=at, app_id="acme", actor="key:k", action="user.view",
                               user_id=f"u{written}"))
        written += 1
    except DependencyUnavailable as error:
        refusals.append(str(error))
print(written, refusals[0] == refusals[1], refusals[0])
"""


@pytest.mark.unit
def test_a_disk_without_room_for_the_next_file_refuses_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    """A file takes its room when it is made: the kernel's file size limit stands for a full
    disk when the next one is made, and copying into the map never meets it."""
    done = subprocess.run(  # noqa: S603 - our own child
        [sys.executable, "-c", FILLING_CHILD, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    count, again, reason = done.stdout.split(" ", 2)
    assert "the audit spool is unavailable: no new file" in reason
    assert again == "True"  # the next write tries a new file again, and is refused alike
    (path,) = spool_files(tmp_path)  # the file it could not make is not left behind
    assert list(tmp_path.glob("*.new")) == []
    entries = read_spool(path.read_bytes(), 0).entries
    assert int(count) >= 3
    assert [e.user_id for e, _ in entries] == [f"u{i}" for i in range(int(count))]
