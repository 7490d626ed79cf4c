"""The ImportStore / UserRegistry port suite, run on the SQLite adapter (embedded mode) and on
the PostgreSQL adapter (distributed mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from import_svc.adapters.postgres import PostgresImportStore
from import_svc.adapters.sqlite import SqliteImportStore, parse_time
from import_svc.domain.model import (
    Counts,
    FileIssue,
    ImportMode,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    KnownUser,
    OnError,
    RowError,
)
from import_svc.ports import ImportStore, RegistryEntry, UserRegistry
from insights_common.clock import sortable
from insights_common.postgres.database import PostgresDatabase
from insights_common.sqlite.database import SqliteDatabase

if TYPE_CHECKING:
    from conftest import PgSchema

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


class Store(ImportStore, UserRegistry, Protocol):
    pass


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Path | PgSchema:
    if request.param == "postgres":
        schema: PgSchema = request.getfixturevalue("pg_schema")
        return schema
    return tmp_path / "store.db"


@pytest.fixture
async def store(storage: Path | PgSchema) -> AsyncIterator[Store]:
    if isinstance(storage, Path):
        db = SqliteDatabase(storage)
        yield SqliteImportStore(db)
        db.close()
        return
    pg = await PostgresDatabase.connect(storage.dsn, schema=storage.schema, max_size=2)
    postgres_store = PostgresImportStore(pg)
    await postgres_store.migrate()
    yield postgres_store
    await pg.close()


def record(n: int, app: str = "acme", **changes: object) -> ImportRecord:
    base = ImportRecord(
        id=f"imp_{n:013x}aaaaaaaaaa",
        app_id=app,
        filename=f"f{n}.csv",
        options=ImportOptions(ImportMode.INSERT_ONLY, OnError.REJECT_FILE, dry_run=True),
        created_at=NOW + timedelta(milliseconds=n),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_record_round_trips(store: Store) -> None:
    queued = record(1)
    await store.create(queued, owner="r1", at=NOW)
    assert await store.get("acme", queued.id) == queued
    done = (
        queued.validating()
        .with_progress(total_rows=10, progress=0.5)
        .rejected(
            (FileIssue("no_data_rows", "none", 3),),
            Counts(10, 1, 2, 3, 4),
            at=NOW + timedelta(seconds=2),
            warnings=(FileIssue("ignored_columns", "'émail'", 1),),
        )
    )
    await store.update(done)
    assert await store.get("acme", queued.id) == done


async def test_get_and_history_are_per_app(store: Store) -> None:
    for n in range(1, 6):
        await store.create(record(n), owner="r1", at=NOW)
    await store.create(record(9, app="globex"), owner="r1", at=NOW)
    assert await store.get("globex", record(1).id) is None
    newest = await store.history("acme", before_id=None, limit=3)
    assert [r.id for r in newest] == [record(n).id for n in (5, 4, 3)]
    older = await store.history("acme", before_id=newest[-1].id, limit=3)
    assert [r.id for r in older] == [record(n).id for n in (2, 1)]
    assert [r.id for r in await store.history("globex", before_id=None, limit=9)] == [
        record(9, app="globex").id
    ]


async def test_finish_writes_record_errors_and_users_together(store: Store) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    errors = [RowError(2, "a", "user_id", "x", "m1"), RowError(2, None, None, "y", "m2")]
    errors += [RowError(line, f"u{line}", "phone_number", "z", "m") for line in range(3, 8)]
    done = running.completed(Counts(7, 1, 0, 0, 6), at=NOW)
    await store.finish(
        done, errors=errors, users=[RegistryEntry("acme", "alex", "+14155550171", "Al", NOW)]
    )
    assert await store.get("acme", done.id) == done
    first = await store.row_errors("acme", done.id, after_seq=0, limit=3)
    assert [s.error for s in first] == errors[:3]
    rest = await store.row_errors("acme", done.id, after_seq=first[-1].seq, limit=10)
    assert [s.error for s in rest] == errors[3:]
    assert await store.row_errors("globex", done.id, after_seq=0, limit=10) == []
    assert await store.known_users("acme", ["alex"]) == {
        "alex": KnownUser("alex", "+14155550171", "Al")
    }


async def test_erasing_a_user_forgets_their_entry_and_rejected_rows_only(store: Store) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    errors = [RowError(2, "alex", "user_id", "duplicate", "m"), RowError(3, "bo", None, "x", "m")]
    done = running.completed(Counts(3, 1, 0, 0, 2), at=NOW)
    users = [
        RegistryEntry("acme", "alex", "+14155550171", "Al", NOW),
        RegistryEntry("acme", "bo", "+14155550172", None, NOW),
    ]
    await store.finish(done, errors=errors, users=users)
    await store.erase({("acme", "alex"): NOW, ("globex", "bo"): NOW})
    assert await store.erased([("acme", "alex"), ("acme", "bo")]) == {("acme", "alex"): NOW}
    assert set(await store.known_users("acme", ["alex", "bo"])) == {"bo"}
    rows = await store.row_errors("acme", done.id, after_seq=0, limit=10)
    assert [s.error.user_id for s in rows] == ["bo"]
    assert await store.get("acme", done.id) == done


async def test_a_failing_finish_writes_nothing(store: Store) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    done = running.completed(Counts(1, 1, 0, 0, 0), at=NOW)
    bad_entry = RegistryEntry("acme", None, None, None, NOW)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="(?i)not.null"):
        await store.finish(
            done,
            errors=[RowError(2, "a", None, "x", "m")],
            users=[RegistryEntry("acme", "ok", "+14155550171", None, NOW), bad_entry],
        )
    assert await store.get("acme", running.id) == running
    assert await store.row_errors("acme", running.id, after_seq=0, limit=5) == []
    assert await store.known_users("acme", ["ok"]) == {}


async def test_unfinished_imports_are_each_replicas_own(store: Store) -> None:
    await store.create(record(1), owner="r1", at=NOW)
    await store.create(record(2, app="globex").validating(), owner="r1", at=NOW)
    await store.create(record(3).validating(), owner="r2", at=NOW)
    finished = record(4).validating().completed(Counts(), at=NOW)
    await store.create(finished, owner="r1", at=NOW)
    assert [r.id for r in await store.unfinished(owner="r1")] == [record(1).id, record(2).id]
    assert [r.id for r in await store.unfinished(owner="r2")] == [record(3).id]
    assert await store.unfinished(owner="r3") == []


async def test_an_app_is_admitted_only_below_its_limit_of_running_imports(store: Store) -> None:
    assert await store.create(record(1).validating(), owner="r1", at=NOW, max_running=2)
    assert await store.create(record(2).validating(), owner="r2", at=NOW, max_running=2)
    assert not await store.create(record(3).validating(), owner="r1", at=NOW, max_running=2)
    assert await store.get("acme", record(3).id) is None
    # Another app has places of its own; a finished import frees one; no limit admits any.
    assert await store.create(record(4, app="globex"), owner="r1", at=NOW, max_running=2)
    await store.finish(record(1).validating().completed(Counts(), at=NOW), errors=[], users=[])
    assert await store.create(record(5).validating(), owner="r1", at=NOW, max_running=2)
    assert await store.create(record(6).validating(), owner="r1", at=NOW)
    assert [r.id for r in await store.unfinished(owner="r1")] == [record(n).id for n in (4, 5, 6)]


async def test_racing_creates_never_pass_the_limit(store: Store) -> None:
    admitted = await asyncio.gather(
        *(
            store.create(record(n).validating(), owner=f"r{n}", at=NOW, max_running=3)
            for n in range(1, 9)
        )
    )
    assert sorted(admitted) == [False] * 5 + [True] * 3
    assert len(await store.history("acme", before_id=None, limit=20)) == 3


async def test_a_heartbeat_is_stamped_only_by_the_owner_of_an_unfinished_import(
    store: Store,
) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    assert await store.heartbeat(running, owner="r1", at=NOW + timedelta(minutes=5))
    assert not await store.heartbeat(running, owner="r2", at=NOW + timedelta(minutes=5))
    # The stamp keeps it from being taken for stale; the other replica's attempt did nothing.
    issue = FileIssue("interrupted", "stale")
    assert await store.fail_stale(issue, before=NOW + timedelta(minutes=4), at=NOW) == []
    finished = running.completed(Counts(), at=NOW)
    await store.finish(finished, errors=[], users=[])
    assert not await store.heartbeat(finished, owner="r1", at=NOW + timedelta(minutes=6))


async def test_fail_stale_fails_silent_imports_of_every_app_and_owner(store: Store) -> None:
    old, fresh = NOW - timedelta(minutes=10), NOW
    await store.create(record(1), owner="r1", at=old)
    await store.create(record(2, app="globex").validating(), owner="r2", at=old)
    await store.create(record(3).validating().importing(Counts()), owner="r1", at=old)
    await store.create(record(5).validating(), owner="r1", at=fresh)
    finished = record(4).validating().completed(Counts(), at=NOW)
    await store.create(finished, owner="r1", at=old)
    issue = FileIssue("interrupted", "stale")
    swept = await store.fail_stale(issue, before=NOW - timedelta(minutes=2), at=NOW)
    assert sorted(swept) == sorted([record(1).id, record(2).id, record(3).id])
    for n, app in ((1, "acme"), (2, "globex"), (3, "acme")):
        got = await store.get(app, record(n).id)
        assert got is not None
        assert (got.status, got.errors, got.finished_at) == (ImportStatus.FAILED, (issue,), NOW)
    assert await store.get("acme", finished.id) == finished
    alive = await store.get("acme", record(5).id)
    assert alive is not None and alive.status is ImportStatus.VALIDATING
    assert await store.fail_stale(issue, before=NOW - timedelta(minutes=2), at=NOW) == []


async def test_known_users_of_a_whole_file_and_per_app(store: Store) -> None:
    ids = [f"u{i}" for i in range(100_000)]  # the most rows one import may have
    await store.merge(
        [RegistryEntry("acme", uid, f"+8210{i:08d}", None, NOW) for i, uid in enumerate(ids)]
    )
    await store.merge([RegistryEntry("globex", "other", "+14155550171", None, NOW)])
    known = await store.known_users("acme", [*ids, "other", "missing"])
    assert len(known) == 100_000 and "other" not in known
    assert known["u99999"] == KnownUser("u99999", "+821000099999", None)
    assert await store.known_users("acme", []) == {}


async def test_merge_newer_overrides_given_fields_older_fills_gaps(
    store: Store,
) -> None:
    t0, t1, t2 = NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    await store.merge([RegistryEntry("acme", "a", None, "Nick", t1)])
    await store.merge([RegistryEntry("acme", "a", "+14155550171", "Old nick", t0)])
    assert (await store.known_users("acme", ["a"]))["a"] == KnownUser("a", "+14155550171", "Nick")
    await store.merge([RegistryEntry("acme", "a", "+821012345678", None, t2)])
    assert (await store.known_users("acme", ["a"]))["a"] == KnownUser("a", "+821012345678", "Nick")


async def test_a_record_in_another_time_zone_reads_back_as_the_same_moment(store: Store) -> None:
    seoul = timezone(timedelta(hours=9))
    queued = record(1, created_at=datetime(2026, 11, 3, 4, 0, 0, 123456, tzinfo=seoul))
    await store.create(queued, owner="r1", at=NOW)
    failed = queued.failed(FileIssue("interrupted", "재시작 🔁"), at=NOW.astimezone(seoul))
    await store.update(failed)
    got = await store.get("acme", queued.id)
    assert got == failed
    assert got is not None and got.created_at.utcoffset() is not None


async def test_a_whole_file_of_row_errors_is_kept_and_paged_in_line_order(store: Store) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    errors = [
        RowError(line, None if line % 7 == 0 else f"u{line}", "nickname", "too_long", f"«{line}» ✂")
        for line in range(2, 100_002)
    ]
    done = running.completed(Counts(100_000, 0, 0, 0, 100_000), at=NOW)
    await store.finish(done, errors=errors, users=[])
    paged: list[RowError] = []
    after = 0
    while page := await store.row_errors("acme", done.id, after_seq=after, limit=20_000):
        assert [s.seq for s in page] == list(range(after + 1, after + 1 + len(page)))
        paged.extend(s.error for s in page)
        after = page[-1].seq
    assert paged == errors


async def test_finishing_again_replaces_the_row_errors(store: Store) -> None:
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    done = running.completed(Counts(3, 0, 0, 0, 3), at=NOW)
    first = [RowError(line, "a", None, "x", "first") for line in (2, 3, 4)]
    await store.finish(done, errors=first, users=[])
    second = [RowError(9, "b", None, "y", "second")]
    await store.finish(done, errors=second, users=[])
    stored = await store.row_errors("acme", done.id, after_seq=0, limit=10)
    assert [s.error for s in stored] == second


async def test_finish_merges_users_like_merge_does(store: Store) -> None:
    newer = NOW + timedelta(hours=1)
    await store.merge([RegistryEntry("acme", "kim", "+821012345678", "김민지 🌸", newer)])
    running = record(1).validating()
    await store.create(running, owner="r1", at=NOW)
    done = running.completed(Counts(2, 1, 0, 0, 0), at=NOW)
    await store.finish(
        done,
        errors=[],
        users=[
            RegistryEntry("acme", "kim", "+14155550171", None, NOW),  # older: fills nothing
            RegistryEntry("acme", "new", "+14155550172", None, NOW),
        ],
    )
    assert await store.known_users("acme", ["kim", "new"]) == {
        "kim": KnownUser("kim", "+821012345678", "김민지 🌸"),
        "new": KnownUser("new", "+14155550172", None),
    }


async def test_one_users_entries_in_one_merge_apply_in_their_order(store: Store) -> None:
    t0, t1, t2 = NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    await store.merge(
        [
            RegistryEntry("acme", "a", None, "Nick", t2),
            RegistryEntry("acme", "b", "+14155550100", "B0", t0),
            RegistryEntry("acme", "a", "+14155550171", None, t0),  # older: fills the phone
            RegistryEntry("globex", "a", "+14155550199", None, t0),
            RegistryEntry("acme", "a", "+14155550172", None, t1),  # older, phone known by now
            RegistryEntry("acme", "b", "+14155550101", None, t1),  # newer: overrides the phone
        ]
    )
    assert await store.known_users("acme", ["a", "b"]) == {
        "a": KnownUser("a", "+14155550171", "Nick"),
        "b": KnownUser("b", "+14155550101", "B0"),
    }
    assert await store.known_users("globex", ["a"]) == {"a": KnownUser("a", "+14155550199", None)}
    await store.merge([])
    assert len(await store.known_users("acme", ["a", "b"])) == 2


@pytest.mark.unit
def test_times_are_fixed_width_utc_text() -> None:
    seoul = datetime(2026, 11, 3, 4, 0, tzinfo=timezone(timedelta(hours=9)))
    text = sortable(seoul)
    assert text == "2026-11-02T19:00:00.000000+00:00"
    assert parse_time(text) == seoul
    assert sortable(NOW) < sortable(NOW + timedelta(microseconds=1))
