"""The OpenSearch store itself: documents, conditional writes, failures and its indices.

What it shares with the SQLite store (the API-visible behaviour) runs on both stores in
test_query_api.py and test_query_property.py; these tests look at what only this store has.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opensearchpy import AsyncOpenSearch
from opensearchpy.exceptions import NotFoundError

from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent
from insights_query.adapters.opensearch import (
    OpenSearchInsightsStore,
    create_client,
)
from insights_query.adapters.opensearch.mappings import KINDS, MAPPINGS, IndexSetupError
from insights_query.domain.search import parse_search

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(opensearch_url: str) -> AsyncIterator[AsyncOpenSearch]:
    search = create_client(opensearch_url)
    yield search
    await search.close()


async def new_store(client: AsyncOpenSearch, prefix: str) -> OpenSearchInsightsStore:
    store = OpenSearchInsightsStore(client, prefix=prefix, refresh=True)
    await store.ensure_indices()
    return store


@pytest.fixture
async def store(client: AsyncOpenSearch, os_prefix: str) -> OpenSearchInsightsStore:
    return await new_store(client, os_prefix)


async def dump(
    client: AsyncOpenSearch, prefix: str, *, versions: bool = False
) -> dict[str, list[Any]]:
    """Every document of every index, by id; with versions, their (seq_no, primary_term) too."""
    await client.indices.refresh(index=f"{prefix}-*")
    docs: dict[str, list[Any]] = {}
    for kind in KINDS:
        response = await client.search(
            index=f"{prefix}-{kind}",
            body={
                "size": 10_000,
                "seq_no_primary_term": True,
                "query": {"match_all": {}},
            },
        )
        docs[kind] = sorted(
            (h["_id"], h["_source"], *((h["_seq_no"], h["_primary_term"]) if versions else ()))
            for h in response["hits"]["hits"]
        )
    return docs


def batch_of(ev: Any) -> list[AnyEvent]:
    return [
        ev.user("alex", "2026-11-01T09:00:00Z", nickname="Alex Kim", source="import:a"),
        ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
        ev.delivered("m1", "alex", "2026-11-02T10:00:01Z"),
        ev.read("m2", "bo", "2026-11-03T10:00:05Z"),
        ev.template("order_shipped", 2, "2026-10-01T00:00:00Z", name="Order shipped v2"),
    ]


async def test_replaying_batches_writes_nothing(
    client: AsyncOpenSearch, store: OpenSearchInsightsStore, os_prefix: str, ev: Any
) -> None:
    batch = batch_of(ev)
    await store.apply(batch)
    before = await dump(client, os_prefix, versions=True)
    await store.apply(batch)
    await store.apply(list(reversed(batch)))
    await store.apply(batch[2:])
    # same documents, and not even rewritten (same seq_no)
    assert await dump(client, os_prefix, versions=True) == before
    messages = {doc_id: source for doc_id, source, *_ in before["messages"]}
    assert sorted(messages) == ["acme:m1", "acme:m2"]
    assert len(messages["acme:m1"]["events"]) == 2
    # events of a message whose sent has not arrived are kept, not shown
    assert messages["acme:m2"]["visible"] is False
    assert [doc_id for doc_id, *_ in before["users"]] == ["acme:alex"]
    assert [doc_id for doc_id, *_ in before["templates"]] == [
        "acme:order_shipped:1",
        "acme:order_shipped:2",
    ]


async def test_the_documents_do_not_depend_on_batching_or_order(
    client: AsyncOpenSearch, os_prefix: str, ev: Any
) -> None:
    batch = batch_of(ev) + [
        ev.sent("m2", "bo", "2026-11-03T10:00:00Z", key="promo"),
        ev.user("bo", "2026-11-03T11:00:00Z", phone="+14155550171"),
        ev.failed("m1", "alex", "2026-11-02T10:00:00Z", code="E1"),
    ]
    whole = await new_store(client, f"{os_prefix}-whole")
    await whole.apply(batch)
    pieces = await new_store(client, f"{os_prefix}-pieces")
    for event in reversed(batch):
        await pieces.apply([event])
    assert await dump(client, f"{os_prefix}-pieces") == await dump(client, f"{os_prefix}-whole")


async def test_a_write_refused_for_now_is_an_outage_and_a_replay_completes_the_batch(
    client: AsyncOpenSearch, store: OpenSearchInsightsStore, os_prefix: str, ev: Any
) -> None:
    batch = [ev.sent("m1", "alex", "2026-11-02T10:00:00Z")]
    users = store.index("users")
    await client.indices.put_settings(index=users, body={"index.blocks.write": True})
    try:
        with pytest.raises(DependencyUnavailable, match="cluster_block_exception"):
            await store.apply(batch)
    finally:
        await client.indices.put_settings(index=users, body={"index.blocks.write": False})
    # the message got written, its user did not
    assert await store.get_message("acme", "m1") is not None
    assert await store.get_user("acme", "alex") is None
    await store.apply(batch)
    alex = await store.get_user("acme", "alex")
    assert alex is not None
    assert alex.last_activity_at.isoformat() == "2026-11-02T10:00:00+00:00"


async def test_two_projectors_writing_the_same_documents_lose_nothing(
    opensearch_url: str,
    client: AsyncOpenSearch,
    os_prefix: str,
    ev: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first: list[AnyEvent] = []
    second: list[AnyEvent] = []
    for n in range(40):
        first += [
            ev.sent(f"m{n}", f"u{n % 5}", "2026-11-02T10:00:00Z", key=f"t{n % 3}"),
            ev.user(f"u{n % 5}", f"2026-11-01T09:00:{n:02d}Z", nickname=f"Name {n}"),
        ]
        second += [
            ev.read(f"m{n}", f"u{n % 5}", f"2026-11-02T11:00:{n:02d}Z"),
            ev.user(f"u{n % 5}", f"2026-11-01T10:00:{n:02d}Z", phone=f"+1415555{n:04d}"),
            ev.template(f"t{n % 3}", 1, f"2026-10-01T00:00:{n:02d}Z", name=f"T{n}"),
        ]
    reference = await new_store(client, f"{os_prefix}-ref")
    await reference.apply(first + second)
    await new_store(client, os_prefix)
    other_client = create_client(opensearch_url)
    try:
        a = OpenSearchInsightsStore(client, prefix=os_prefix, refresh=True)
        b = OpenSearchInsightsStore(other_client, prefix=os_prefix, refresh=True)
        with caplog.at_level(logging.INFO, logger="insights_query.adapters.opensearch.store"):
            await asyncio.gather(a.apply(first), b.apply(second))
    finally:
        await other_client.close()
    # both read the same (empty) documents before either wrote, so one of them lost races
    assert any("re-folding" in record.message for record in caplog.records)
    assert await dump(client, os_prefix) == await dump(client, f"{os_prefix}-ref")


async def test_ensure_indices_is_idempotent_and_safe_to_race(
    opensearch_url: str, client: AsyncOpenSearch, os_prefix: str
) -> None:
    other_client = create_client(opensearch_url)
    try:
        stores = [
            OpenSearchInsightsStore(c, prefix=os_prefix) for c in (client, other_client, client)
        ]
        await asyncio.gather(*(s.ensure_indices() for s in stores))
        await stores[0].ensure_indices()
    finally:
        await other_client.close()
    aliases = await client.indices.get_alias(index=f"{os_prefix}-*")
    assert {index: sorted(body["aliases"]) for index, body in aliases.items()} == {
        f"{os_prefix}-{kind}-v1": [f"{os_prefix}-{kind}"] for kind in KINDS
    }
    templates = await client.indices.get_index_template(name=f"{os_prefix}-*")
    assert sorted(t["name"] for t in templates["index_templates"]) == [
        f"{os_prefix}-{kind}" for kind in sorted(KINDS)
    ]


async def test_the_refresh_interval_reaches_the_templates_and_the_live_indices(
    client: AsyncOpenSearch, os_prefix: str
) -> None:
    store = OpenSearchInsightsStore(client, prefix=os_prefix)
    await store.ensure_indices(refresh_seconds=0.5)

    async def intervals() -> set[str]:
        settings = await client.indices.get_settings(index=f"{os_prefix}-*")
        return {body["settings"]["index"]["refresh_interval"] for body in settings.values()}

    assert await intervals() == {"500ms"}
    await store.ensure_indices(refresh_seconds=2)  # a deployment started again, configured anew
    assert await intervals() == {"2000ms"}
    templates = await client.indices.get_index_template(name=f"{os_prefix}-*")
    assert {
        t["index_template"]["template"]["settings"]["index"]["refresh_interval"]
        for t in templates["index_templates"]
    } == {"2000ms"}


async def test_a_rebuilt_index_behind_the_alias_is_used(
    client: AsyncOpenSearch, store: OpenSearchInsightsStore, os_prefix: str, ev: Any
) -> None:
    await store.apply(batch_of(ev))
    old, new = f"{os_prefix}-users-v1", f"{os_prefix}-users-v2"
    # the template gives the new index the same mappings
    await client.reindex(body={"source": {"index": old}, "dest": {"index": new}}, refresh=True)
    await client.indices.update_aliases(
        body={
            "actions": [
                {"add": {"index": new, "alias": f"{os_prefix}-users"}},
                {"remove_index": {"index": old}},
            ]
        }
    )
    mapping = await client.indices.get_mapping(index=new)
    assert mapping[new]["mappings"]["dynamic"] == "strict"
    await store.ensure_indices()
    alex = await store.get_user("acme", "alex")
    assert alex is not None
    assert alex.nickname == "Alex Kim"


async def an_index_of_an_older_version(
    client: AsyncOpenSearch, os_prefix: str, kind: str, fields: dict[str, Any]
) -> None:
    """The index behind `<prefix>-<kind>` as an older version made it: these fields only."""
    await client.indices.create(
        index=f"{os_prefix}-{kind}-v1",
        body={
            "mappings": {"dynamic": "strict", "properties": fields},
            "aliases": {f"{os_prefix}-{kind}": {}},
        },
    )


async def test_the_fields_a_new_version_adds_reach_the_indices_an_older_one_made(
    client: AsyncOpenSearch, os_prefix: str, ev: Any
) -> None:
    users = MAPPINGS["users"]["properties"]
    older = {name: field for name, field in users.items() if name not in ("imports", "span")}
    await an_index_of_an_older_version(client, os_prefix, "users", older)
    store = OpenSearchInsightsStore(client, prefix=os_prefix, refresh=True)
    await store.ensure_indices()
    mapping = await client.indices.get_mapping(index=f"{os_prefix}-users")
    assert mapping[f"{os_prefix}-users-v1"]["mappings"]["properties"].keys() == users.keys()
    # without the fields added, the strict index would refuse these documents
    await store.apply(batch_of(ev))
    alex = await store.get_user("acme", "alex")
    assert alex is not None
    assert alex.nickname == "Alex Kim"


async def test_an_index_that_cannot_take_the_mapping_says_which_reindex_it_needs(
    client: AsyncOpenSearch, os_prefix: str
) -> None:
    users = MAPPINGS["users"]["properties"]
    await an_index_of_an_older_version(
        client, os_prefix, "users", {**users, "activity_us": {"type": "keyword"}}
    )
    store = OpenSearchInsightsStore(client, prefix=os_prefix)
    with pytest.raises(IndexSetupError) as raised:
        await store.ensure_indices()
    message = str(raised.value)
    assert f"{os_prefix}-users" in message
    assert "activity_us" in message
    assert f"reindex them into {os_prefix}-users-v1" in message


async def test_ping(client: AsyncOpenSearch, store: OpenSearchInsightsStore) -> None:
    assert await store.ping() is True
    nowhere = create_client("http://127.0.0.1:9")
    try:
        assert await OpenSearchInsightsStore(nowhere).ping() is False
    finally:
        await nowhere.close()


async def test_a_search_failing_inside_its_msearch_raises_as_it_would_alone(
    client: AsyncOpenSearch, os_prefix: str
) -> None:
    # No indices behind this prefix: every rank's search fails with index_not_found.
    store = OpenSearchInsightsStore(client, prefix=f"{os_prefix}-missing")
    query = parse_search("alex")
    assert query is not None and len(query.ranks()) > 1
    with pytest.raises(NotFoundError) as alone:
        await client.search(index=store.index("users"), body={"query": {"match_all": {}}})
    # A missing index is no fault of the request: the read is an outage (503), caused by the
    # same error the search alone gives.
    with pytest.raises(DependencyUnavailable) as outage:
        await store.search_users("acme", query, after=None, limit=20)
    together = outage.value.__cause__
    assert isinstance(together, NotFoundError)
    assert together.status_code == alone.value.status_code == 404
    assert together.error == alone.value.error == "index_not_found_exception"
