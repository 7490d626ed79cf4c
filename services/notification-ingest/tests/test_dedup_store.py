"""The DedupStore port suite: the same tests on SqliteDedupStore and PostgresDedupStore."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pytest

from insights_common.postgres import PostgresDatabase
from insights_common.sqlite import SqliteDatabase
from notification_ingest.adapters.postgres import PostgresDedupStore
from notification_ingest.adapters.sqlite import SqliteDedupStore, iso_utc, utc_now
from notification_ingest.ports import DedupStore

if TYPE_CHECKING:
    from conftest import PgSchema

Clock = Callable[[], datetime]


class Backend(Protocol):
    async def open(self, *, clock: Clock = utc_now) -> DedupStore:
        """A store on this backend's storage, as a freshly started process would build it."""
        ...

    async def stored(self) -> list[tuple[str, str, datetime]]:
        """Every (app_id, event_id, seen_at) kept, in key order."""
        ...

    async def close(self) -> None: ...


class SqliteBackend:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._dbs: list[SqliteDatabase] = []

    async def open(self, *, clock: Clock = utc_now) -> DedupStore:
        db = SqliteDatabase(self.path)
        self._dbs.append(db)
        return SqliteDedupStore(db, clock=clock)

    async def stored(self) -> list[tuple[str, str, datetime]]:
        query = "SELECT app_id, event_id, seen_at FROM ing_seen_events ORDER BY app_id, event_id"
        rows = self._dbs[0].read_sync(lambda conn: conn.execute(query).fetchall())
        return [(r["app_id"], r["event_id"], datetime.fromisoformat(r["seen_at"])) for r in rows]

    async def close(self) -> None:
        for db in self._dbs:
            db.close()


class PostgresBackend:
    def __init__(self, pg: PgSchema) -> None:
        self.pg = pg
        self._dbs: list[PostgresDatabase] = []

    async def open(self, *, clock: Clock = utc_now) -> DedupStore:
        db = await PostgresDatabase.connect(self.pg.dsn, schema=self.pg.schema, max_size=2)
        self._dbs.append(db)
        store = PostgresDedupStore(db, clock=clock)
        await store.migrate()
        return store

    async def stored(self) -> list[tuple[str, str, datetime]]:
        async with self._dbs[0].acquire() as conn:
            rows = await conn.fetch(
                "SELECT app_id, event_id, seen_at FROM ing_seen_events"
                ' ORDER BY app_id COLLATE "C", event_id COLLATE "C"'
            )
        return [(r["app_id"], r["event_id"], r["seen_at"]) for r in rows]

    async def close(self) -> None:
        for db in self._dbs:
            await db.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", marks=pytest.mark.unit),
        pytest.param("postgres", marks=pytest.mark.integration),
    ]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "postgres":
        return PostgresBackend(request.getfixturevalue("pg_schema"))
    return SqliteBackend(tmp_path / "insights.sqlite3")


@pytest.fixture
async def backend(storage: Backend) -> AsyncIterator[Backend]:
    yield storage
    await storage.close()


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


@pytest.mark.unit
def test_sqlite_timestamps_are_stored_as_fixed_width_utc() -> None:
    seoul = timezone(timedelta(hours=9))
    assert iso_utc(datetime(2026, 11, 2, 19, 0, 5, 7, tzinfo=seoul)) == (
        "2026-11-02T10:00:05.000007+00:00"
    )
