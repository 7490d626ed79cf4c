"""The ImportStore / UserRegistry port suite. It runs on the SQLite adapter here; the distributed
mode's PostgreSQL adapter is meant to join the `store` fixture's parameters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from import_svc.adapters.sqlite import SqliteImportStore, format_time, parse_time
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
from import_svc.ports import RegistryEntry
from insights_common.sqlite import SqliteDatabase

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqliteImportStore]:
    db = SqliteDatabase(tmp_path / "store.db")
    yield SqliteImportStore(db)
    db.close()


def record(n: int, app: str = "acme", **changes: object) -> ImportRecord:
    base = ImportRecord(
        id=f"imp_{n:013x}aaaaaaaaaa",
        app_id=app,
        filename=f"f{n}.csv",
        options=ImportOptions(ImportMode.INSERT_ONLY, OnError.REJECT_FILE, dry_run=True),
        created_at=NOW + timedelta(milliseconds=n),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


async def test_a_record_round_trips(store: SqliteImportStore) -> None:
    queued = record(1)
    await store.create(queued)
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


async def test_get_and_history_are_per_app(store: SqliteImportStore) -> None:
    for n in range(1, 6):
        await store.create(record(n))
    await store.create(record(9, app="globex"))
    assert await store.get("globex", record(1).id) is None
    newest = await store.history("acme", before_id=None, limit=3)
    assert [r.id for r in newest] == [record(n).id for n in (5, 4, 3)]
    older = await store.history("acme", before_id=newest[-1].id, limit=3)
    assert [r.id for r in older] == [record(n).id for n in (2, 1)]
    assert [r.id for r in await store.history("globex", before_id=None, limit=9)] == [
        record(9, app="globex").id
    ]


async def test_finish_writes_record_errors_and_users_together(store: SqliteImportStore) -> None:
    running = record(1).validating()
    await store.create(running)
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


async def test_a_failing_finish_writes_nothing(store: SqliteImportStore) -> None:
    running = record(1).validating()
    await store.create(running)
    done = running.completed(Counts(1, 1, 0, 0, 0), at=NOW)
    bad_entry = RegistryEntry("acme", None, None, None, NOW)  # type: ignore[arg-type]
    with pytest.raises(Exception, match="NOT NULL"):
        await store.finish(
            done,
            errors=[RowError(2, "a", None, "x", "m")],
            users=[RegistryEntry("acme", "ok", "+14155550171", None, NOW), bad_entry],
        )
    assert await store.get("acme", running.id) == running
    assert await store.row_errors("acme", running.id, after_seq=0, limit=5) == []
    assert await store.known_users("acme", ["ok"]) == {}


async def test_fail_unfinished_sweeps_every_app(store: SqliteImportStore) -> None:
    await store.create(record(1))
    await store.create(record(2, app="globex").validating())
    await store.create(record(3).validating().importing(Counts()))
    finished = record(4).validating().completed(Counts(), at=NOW)
    await store.create(finished)
    issue = FileIssue("interrupted", "restart")
    swept = await store.fail_unfinished(issue, at=NOW)
    assert sorted(swept) == sorted([record(1).id, record(2).id, record(3).id])
    for n, app in ((1, "acme"), (2, "globex"), (3, "acme")):
        got = await store.get(app, record(n).id)
        assert got is not None
        assert (got.status, got.errors, got.finished_at) == (ImportStatus.FAILED, (issue,), NOW)
    assert await store.get("acme", finished.id) == finished
    assert await store.fail_unfinished(issue, at=NOW) == []


async def test_known_users_in_batches_and_per_app(store: SqliteImportStore) -> None:
    ids = [f"u{i}" for i in range(10_050)]
    await store.merge([RegistryEntry("acme", uid, "+14155550171", None, NOW) for uid in ids])
    await store.merge([RegistryEntry("globex", "other", "+14155550171", None, NOW)])
    known = await store.known_users("acme", [*ids, "other", "missing"])
    assert len(known) == 10_050 and "other" not in known
    assert await store.known_users("acme", []) == {}


async def test_merge_newer_overrides_given_fields_older_fills_gaps(
    store: SqliteImportStore,
) -> None:
    t0, t1, t2 = NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)
    await store.merge([RegistryEntry("acme", "a", None, "Nick", t1)])
    await store.merge([RegistryEntry("acme", "a", "+14155550171", "Old nick", t0)])
    assert (await store.known_users("acme", ["a"]))["a"] == KnownUser("a", "+14155550171", "Nick")
    await store.merge([RegistryEntry("acme", "a", "+821012345678", None, t2)])
    assert (await store.known_users("acme", ["a"]))["a"] == KnownUser("a", "+821012345678", "Nick")


def test_times_are_fixed_width_utc_text() -> None:
    seoul = datetime(2026, 11, 3, 4, 0, tzinfo=timezone(timedelta(hours=9)))
    text = format_time(seoul)
    assert text == "2026-11-02T19:00:00.000000+00:00"
    assert parse_time(text) == seoul
    assert format_time(NOW) < format_time(NOW + timedelta(microseconds=1))
