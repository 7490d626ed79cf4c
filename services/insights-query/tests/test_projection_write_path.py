"""How the stores write a projection: the OpenSearch store's writes split into requests, the
SQLite event table's layout. What the projection shows is tested on both stores
elsewhere (test_query_api.py, test_query_property.py); these tests hold the write path to it.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch

from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import AnyEvent
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.adapters.opensearch import document_io as document_io_module
from insights_query.adapters.opensearch.mappings import KINDS
from insights_query.adapters.sqlite import SqliteInsightsStore


@pytest.fixture
async def client(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    search = create_client(opensearch_url)
    yield search
    await search.close()


async def new_store(client: AsyncOpenSearch, prefix: str) -> OpenSearchInsightsStore:
    store = OpenSearchInsightsStore(client, prefix=prefix, refresh=True)
    await store.ensure_indices()
    return store


async def documents(client: AsyncOpenSearch, prefix: str) -> dict[str, list[Any]]:
    await client.indices.refresh(index=f"{prefix}-*")
    found: dict[str, list[Any]] = {}
    for kind in KINDS:
        response = await client.search(
            index=f"{prefix}-{kind}", body={"size": 10_000, "query": {"match_all": {}}}
        )
        found[kind] = sorted((hit["_id"], hit["_source"]) for hit in response["hits"]["hits"])
    return found


def campaign(ev: Any, *, messages: int, seed: int) -> list[list[AnyEvent]]:
    """A few users' messages going through their stages, with duplicates, cut into batches."""
    rng = random.Random(seed)
    events: list[AnyEvent] = []
    for n in range(messages):
        user = f"u{n % 7}"
        events.append(ev.sent(f"m{n}", user, f"2026-11-02T10:{n % 60:02d}:00Z", key=f"t{n % 3}"))
        events.append(ev.delivered(f"m{n}", user, f"2026-11-02T10:{n % 60:02d}:01Z"))
        if n % 2:
            events.append(ev.read(f"m{n}", user, f"2026-11-02T11:{n % 60:02d}:00Z"))
        if n % 5 == 0:
            events.append(ev.user(user, f"2026-11-01T09:00:{n % 60:02d}Z", nickname=f"N{n}"))
    events += rng.sample(events, k=len(events) // 10)
    rng.shuffle(events)
    cuts = sorted(rng.sample(range(1, len(events)), k=12))
    return [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True)]


@pytest.mark.integration
async def test_the_documents_do_not_depend_on_how_a_campaign_is_cut_into_bulk_requests(
    client: AsyncOpenSearch, os_prefix: str, ev: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches = campaign(ev, messages=60, seed=7)
    whole = await new_store(client, f"{os_prefix}-whole")
    await whole.apply([event for batch in batches for event in batch])
    # Requests of a few documents each: a batch's writes go out in many requests at once.
    monkeypatch.setattr(document_io_module, "_BULK_BYTES", 5_000)
    pieces = await new_store(client, f"{os_prefix}-pieces")
    for batch in batches:
        await pieces.apply(batch)
    assert await documents(client, f"{os_prefix}-pieces") == await documents(
        client, f"{os_prefix}-whole"
    )


OLD_EVENT_TABLE = """
CREATE TABLE q_message_events (
    app_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (app_id, event_id)
) WITHOUT ROWID;
CREATE INDEX q_message_events_message ON q_message_events (app_id, message_id);
"""


@pytest.mark.unit
async def test_a_data_dir_with_the_event_table_keyed_by_event_id_keeps_its_events(
    db: SqliteDatabase, ev: Any
) -> None:
    sent = ev.sent("m1", "alex", "2026-11-02T10:00:00Z")
    db.migrate(OLD_EVENT_TABLE)

    def insert(conn: Any) -> None:
        conn.execute(
            "INSERT INTO q_message_events VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                "acme",
                sent.event_id,
                "m1",
                "alex",
                sent.event_type,
                "2026-11-02T10:00:00.000000Z",
                sent.model_dump_json(),
            ),
        )

    await db.write(insert)

    store = SqliteInsightsStore(db)
    await store.apply([sent, ev.delivered("m1", "alex", "2026-11-02T10:00:01Z")])

    def layout(conn: Any) -> tuple[str, int]:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'q_message_events'"
        ).fetchone()
        (count,) = conn.execute("SELECT COUNT(*) FROM q_message_events").fetchone()
        return sql, count

    sql, count = await db.read(layout)
    assert "WITHOUT ROWID" not in sql.upper()
    assert count == 2  # the stored sent, the new delivery; the sent again was a duplicate
    message = await store.get_message("acme", "m1")
    assert message is not None
    assert [entry.status for entry in message.timeline] == ["sent", "delivered"]


async def test_the_first_copy_of_an_event_id_wins_over_a_later_different_one(
    store: Any, ev: Any
) -> None:
    first = ev.sent("m1", "alex", "2026-11-02T10:00:00Z", title="First")
    changed = first.model_copy(update={"content": first.content.model_copy(update={"title": "2"})})
    await store.apply([first])
    # The same event_id again, changed, beside a new event of the message: the stored copy
    # stays, also where the store folds the batch's own events without reading them back.
    await store.apply([changed, ev.delivered("m1", "alex", "2026-11-02T10:00:01Z")])
    await store.apply([ev.read("m1", "alex", "2026-11-02T10:00:02Z"), changed])
    message = await store.get_message("acme", "m1")
    assert message is not None
    assert (message.content.title, message.status) == ("First", "read")
    assert len(message.timeline) == 3
