"""The DedupStore port suite: the same tests on SqliteDedupStore and PostgresDedupStore."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING

import pytest

from insights_common.clock import sortable, utc_now
from insights_common.sqlite.database import SqliteDatabase
from notification_ingest.adapters.postgres import PostgresDedupStore
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.ports import DedupStore

if TYPE_CHECKING:
    from conftest import Databases

Clock = Callable[[], datetime]


class Backend:
    """The dedup store on a test's storage, and what that storage keeps."""

    def __init__(self, databases: Databases) -> None:
        self.databases = databases

    async def open(self, *, clock: Clock = utc_now, forget_chunk: int = 1000) -> DedupStore:
        """A store on this storage, as a freshly started process would build it."""
        db = await self.databases.open()
        if isinstance(db, SqliteDatabase):
            return SqliteDedupStore(db, clock=clock, forget_chunk=forget_chunk)
        store = PostgresDedupStore(db, clock=clock, forget_chunk=forget_chunk)
        await store.migrate()
        return store

    async def stored(self) -> list[tuple[str, str, datetime]]:
        """Every (app_id, event_id, seen_at) kept, in key order."""
        first = self.databases.opened[0]
        if isinstance(first, SqliteDatabase):
            query = (
                "SELECT app_id, event_id, seen_at FROM ing_seen_events ORDER BY app_id, event_id"
            )
            rows = first.read_sync(lambda conn: conn.execute(query).fetchall())
            return [
                (r["app_id"], r["event_id"], datetime.fromisoformat(r["seen_at"])) for r in rows
            ]
        async with first.acquire() as conn:
            records = await conn.fetch(
                "SELECT app_id, event_id, seen_at FROM ing_seen_events"
                ' ORDER BY app_id COLLATE "C", event_id COLLATE "C"'
            )
        return [(r["app_id"], r["event_id"], r["seen_at"]) for r in records]


@pytest.fixture
def backend(databases: Databases) -> Backend:
    return Backend(databases)


@pytest.fixture
async def store(backend: Backend) -> DedupStore:
    return await backend.open()


async def test_recorded_ids_are_seen_per_app(store: DedupStore) -> None:
    await store.record("acme", ["a", "b"])
    assert await store.seen("acme", ["a", "b", "c"]) == {"a", "b"}
    assert await store.seen("globex", ["a", "b", "c"]) == set()
    assert await store.seen("acme", []) == set()
    await store.record("acme", [])
    assert await store.seen("acme", ["c"]) == set()


async def test_recording_twice_is_harmless_and_keeps_the_first_time(backend: Backend) -> None:
    first, later = datetime(2026, 11, 2, 10, tzinfo=UTC), datetime(2026, 11, 3, 10, tzinfo=UTC)
    moments = iter([first, later, later])
    store = await backend.open(clock=lambda: next(moments))
    await store.record("acme", ["a"])
    await store.record("acme", ["a", "b"])
    await store.record("acme", ["c", "c"])  # twice in one batch
    assert await store.seen("acme", ["a", "b", "c"]) == {"a", "b", "c"}
    assert await backend.stored() == [
        ("acme", "a", first),
        ("acme", "b", later),
        ("acme", "c", later),
    ]


async def test_a_batch_of_thousands_is_looked_up_in_one_go(store: DedupStore) -> None:
    ids = [f"evt-{n}" for n in range(5000)]
    await store.record("acme", ids[::2])
    assert await store.seen("acme", ids) == set(ids[::2])


async def test_ids_are_matched_exactly(store: DedupStore) -> None:
    await store.record("acme", ["A", "x'y", 'q"z', "évt 🎉"])
    assert await store.seen("acme", ["a", "x'y", 'q"z', "%", "_", "evt 🎉", "évt 🎉"]) == {
        "x'y",
        'q"z',
        "évt 🎉",
    }


async def test_seen_ids_survive_a_restart(store: DedupStore, backend: Backend) -> None:
    await store.record("acme", ["a", "b"])
    restarted = await backend.open()
    assert await restarted.seen("acme", ["a", "b", "c"]) == {"a", "b"}
    await restarted.record("acme", ["c"])
    assert await store.seen("acme", ["c"]) == {"c"}


async def test_forgetting_drops_the_ids_of_every_app_taken_before_the_cutoff(
    backend: Backend,
) -> None:
    old, cutoff, new = (datetime(2026, 11, day, 10, tzinfo=UTC) for day in (1, 2, 3))
    moments = iter([old, old, new])
    store = await backend.open(clock=lambda: next(moments))
    await store.record("acme", ["a", "b"])
    await store.record("globex", ["a"])
    await store.record("acme", ["c"])
    assert await store.forget(before=cutoff) == 3
    assert await backend.stored() == [("acme", "c", new)]
    assert await store.seen("acme", ["a", "b", "c"]) == {"c"}
    assert await store.seen("globex", ["a"]) == set()
    # The cutoff is exclusive, and forgetting again finds nothing more.
    assert await store.forget(before=new) == 0
    assert await store.forget(before=new + timedelta(microseconds=1)) == 1
    assert await backend.stored() == []


async def test_forgetting_works_through_many_chunks_and_keeps_the_recent_ids(
    backend: Backend,
) -> None:
    """Old and recent ids interleave in key order, so some chunks hold no old id at all."""
    old, cutoff, new = (datetime(2026, 11, day, 10, tzinfo=UTC) for day in (1, 2, 3))
    now = [old]
    store = await backend.open(clock=lambda: now[0], forget_chunk=7)
    ids = [f"evt-{n:03}" for n in range(100)]
    olds = [i for n, i in enumerate(ids) if n % 10 < 3]  # runs of 3 old among 7 recent
    await store.record("acme", olds)
    now[0] = new
    await store.record("acme", [i for i in ids if i not in olds])
    assert await store.forget(before=cutoff) == 30
    assert await store.seen("acme", ids) == set(ids) - set(olds)


async def test_forgetting_an_empty_store_finds_nothing(store: DedupStore) -> None:
    assert await store.forget(before=datetime(2026, 11, 2, tzinfo=UTC)) == 0


async def test_ids_recorded_while_forgetting_are_kept(backend: Backend) -> None:
    old, cutoff, new = (datetime(2026, 11, day, 10, tzinfo=UTC) for day in (1, 2, 3))
    now = [old]
    store = await backend.open(clock=lambda: now[0], forget_chunk=10)
    await store.record("acme", [f"old-{n:04}" for n in range(500)])
    now[0] = new
    forgetting = asyncio.create_task(store.forget(before=cutoff))
    for batch in range(20):
        await store.record("acme", [f"new-{batch}-{n}" for n in range(10)])
        await asyncio.sleep(0)
    assert await forgetting == 500
    stored = await backend.stored()
    assert len(stored) == 200
    assert {seen_at for _, _, seen_at in stored} == {new}


@pytest.mark.unit
def test_sqlite_timestamps_are_stored_as_fixed_width_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    assert sortable(datetime(2026, 11, 2, 19, 0, 5, 7, tzinfo=seoul)) == (
        "2026-11-02T10:00:05.000007+00:00"
    )
