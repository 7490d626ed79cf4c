"""The SQLite store itself: batches are atomic, replays change nothing, lookups use indexes.

The OpenSearch store's own equivalents are in test_query_store_opensearch.py; what both must do
alike runs on both through the `store` fixture.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from insights_common.sqlite.database import SqliteDatabase
from insights_query.adapters.sqlite import SqliteInsightsStore
from insights_query.adapters.sqlite import projection as projection_module
from insights_query.adapters.sqlite import queries as queries_module
from insights_query.domain.queries import MessageFilter, SearchPosition
from insights_query.domain.search import Rank, SearchQuery, parse_search
from insights_query.ports import InsightsReader, ProjectionStore

sqlite_only = pytest.mark.unit


@sqlite_only
async def test_a_batch_becomes_visible_all_at_once_or_not_at_all(
    db: SqliteDatabase, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteInsightsStore(db)
    batch = [
        *(ev.user(f"u{n}", "2026-11-01T09:00:00Z", nickname=f"User {n}") for n in range(5)),
        ev.sent("m1", "u0", "2026-11-02T10:00:00Z"),
    ]
    real_save_users = projection_module._save_users

    def crash(*args: Any) -> None:
        raise RuntimeError("disk full")

    # The messages are saved before the users: the failure comes half way through the writes.
    monkeypatch.setattr(projection_module, "_save_users", crash)
    with pytest.raises(RuntimeError):
        await store.apply(batch)
    assert [await store.get_user("acme", f"u{n}") for n in range(5)] == [None] * 5
    assert await store.get_message("acme", "m1") is None

    monkeypatch.setattr(projection_module, "_save_users", real_save_users)
    await store.apply(batch)
    users = [await store.get_user("acme", f"u{n}") for n in range(5)]
    assert [u.nickname if u else None for u in users] == [f"User {n}" for n in range(5)]


@sqlite_only
async def test_replaying_batches_changes_nothing(db: SqliteDatabase, ev: Any) -> None:
    store = SqliteInsightsStore(db)
    batch = [
        ev.user("alex", "2026-11-01T09:00:00Z", nickname="Alex Kim"),
        ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
        ev.delivered("m1", "alex", "2026-11-02T10:00:01Z"),
    ]
    await store.apply(batch)

    def dump(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
        tables = (
            "q_messages",
            "q_message_events",
            "q_users",
            "q_user_tokens",
            "q_user_events",
            "q_template_versions",
        )
        return {
            t: [tuple(r) for r in conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2")]  # noqa: S608
            for t in tables
        }

    before = await db.read(dump)
    await store.apply(batch)
    await store.apply(list(reversed(batch)))
    assert await db.read(dump) == before
    assert len(before["q_message_events"]) == 2


async def test_a_large_import_batch_is_searchable(store: Any, ev: Any) -> None:
    projection: ProjectionStore = store
    reader: InsightsReader = store
    await projection.apply(
        [
            ev.user(
                f"user{n:05d}",
                "2026-11-01T09:00:00Z",
                nickname=f"Name{n}",
                phone=f"+1415555{n:04d}",
                source="import:big",
            )
            for n in range(3000)
        ]
    )
    profile = await reader.get_user("acme", "user02999")
    assert profile is not None
    assert profile.phone_number == "+14155552999"
    assert profile.imports == ("big",)
    found = await reader.search_users(
        "acme", parse("name2999"), after=SearchPosition(Rank.NICKNAME, ""), limit=5
    )
    assert [(rank, p.user_id) for rank, p in found] == [(Rank.NICKNAME, "user02999")]
    by_id = await reader.search_users("acme", parse("user0299"), after=None, limit=20)
    assert [p.user_id for _, p in by_id] == [f"user0{n}" for n in range(2990, 3000)]
    recent = await reader.recent_users("acme", after=None, limit=3000)
    assert len(recent) == 3000


def parse(q: str) -> SearchQuery:
    query = parse_search(q)
    assert query is not None
    return query


def plan(conn: Any, sql: str, params: Any) -> list[str]:
    return [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]


@sqlite_only
@pytest.mark.parametrize("rank", list(Rank))
async def test_search_by_each_rank_reads_a_range_not_the_whole_table(
    db: SqliteDatabase, rank: Rank
) -> None:
    SqliteInsightsStore(db)
    params = {
        "app": "acme",
        "id_lc": "alex",
        "id_glob": "alex*",
        "words": json.dumps(["alex", "kim"]),
        "first_glob": "alex*",
        "phone_digits": "14155550171",
        "after": "",
        "limit": 20,
    }
    steps = await db.read(lambda conn: plan(conn, queries_module._RANK_SQL[rank], params))
    assert not [
        s for s in steps if s.startswith("SCAN") and "VIRTUAL TABLE" not in s and s != "SCAN hits"
    ], steps
    expected_index = {
        Rank.EXACT_ID: "q_users_id_lc (app_id=? AND user_id_lc=?)",
        Rank.ID_PREFIX: "q_users_id_lc (app_id=? AND user_id_lc>? AND user_id_lc<?)",
        Rank.NICKNAME: "q_user_tokens_prefix (app_id=? AND token>? AND token<?)",
        Rank.PHONE: "q_users_phone (app_id=? AND phone_digits=?)",
    }[rank]
    assert any(expected_index in s for s in steps), steps


@sqlite_only
async def test_message_pages_walk_the_user_index(db: SqliteDatabase) -> None:
    SqliteInsightsStore(db)
    params = {
        "app": "acme",
        "user": "alex",
        "status": None,
        "channel": "push",
        "template": None,
        "since": "",
        "until": "2026-11-02T00:00:00.000000Z",
        "after_sent": "2026-11-01T00:00:00.000000Z",
        "after_id": "m9",
        "limit": 20,
    }
    steps = await db.read(lambda conn: plan(conn, queries_module._LIST_MESSAGES_SQL, params))
    assert len(steps) == 1, steps
    assert steps[0].startswith("SEARCH q_messages USING INDEX q_messages_user_sent"), steps


@sqlite_only
@pytest.mark.parametrize(
    "statement", ["_TOTALS_SQL", "_BY_CHANNEL_SQL", "_BY_TEMPLATE_SQL", "_DAILY_SQL"]
)
async def test_statistics_aggregate_in_sql_over_one_range_of_the_user_index(
    db: SqliteDatabase, statement: str
) -> None:
    SqliteInsightsStore(db)
    sql = getattr(queries_module, statement)
    params = ("acme", "alex", "2026-11-01T00:00:00.000000Z", "2026-11-30T23:59:59.999999Z")
    steps = await db.read(lambda conn: plan(conn, sql, params))
    assert not [s for s in steps if s.startswith("SCAN m")], steps
    assert any(
        "SEARCH m USING INDEX q_messages_user_sent (app_id=? AND user_id=? AND sent_at>? AND"
        " sent_at<?)" in s
        for s in steps
    ), steps


async def test_a_long_multibyte_message_id_round_trips(store: Any, ev: Any) -> None:
    message_id = "알림" + "🔔" * 126  # 128 characters, 510 bytes of UTF-8
    projection: ProjectionStore = store
    reader: InsightsReader = store
    await projection.apply(
        [
            ev.sent(message_id, "alex", "2026-11-02T10:00:00Z"),
            ev.read(message_id, "alex", "2026-11-02T10:01:00Z", app_id="a" * 64),
            ev.sent(message_id, "alex", "2026-11-02T10:00:00Z", app_id="a" * 64),
        ]
    )
    for app_id in ("acme", "a" * 64):
        detail = await reader.get_message(app_id, message_id)
        assert detail is not None
        assert detail.message_id == message_id
    listed = await reader.list_messages(
        "a" * 64, "alex", filters=MessageFilter(), after=None, limit=5
    )
    assert [(m.message_id, m.status) for m in listed] == [(message_id, "read")]
