"""The projector on Kafka and OpenSearch commits a batch's offsets only once a search finds what
the batch wrote (what imports' completion and `wait=visible` read), while it folds the next.

The indices are given a refresh every 60 s, so within the test only the projector's own
refreshes make anything searchable; each time the group's committed offsets move, a search
(which refreshes nothing) must already find every user below them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from insights_common.kafka.bus import KafkaBus
from insights_contracts.topics import USERS
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import build_projector
from insights_query.settings import QuerySettings

pytestmark = pytest.mark.integration

USERS_COUNT = 300
SETTINGS = QuerySettings(projector_batch=20, projector_consumers=2)


@pytest.fixture
async def store(opensearch_url: str, os_prefix: str) -> AsyncIterator[OpenSearchInsightsStore]:
    client = create_client(opensearch_url)
    try:
        # Indices that refresh on their own only after the test; the projector's store is
        # another one, whose refreshes keep the default gap.
        await OpenSearchInsightsStore(client, prefix=os_prefix).ensure_indices(refresh_seconds=60)
        yield OpenSearchInsightsStore(client, prefix=os_prefix)
    finally:
        await client.close()


async def searchable(store: OpenSearchInsightsStore, os_prefix: str) -> set[str]:
    response = await store._client.search(
        index=f"{os_prefix}-users",
        body={"size": USERS_COUNT + 10, "_source": ["user_id"], "query": {"match_all": {}}},
    )
    return {hit["_source"]["user_id"] for hit in response["hits"]["hits"]}


async def test_offsets_move_only_past_users_a_search_already_finds(
    store: OpenSearchInsightsStore,
    buses: tuple[KafkaBus, KafkaBus],
    ev: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
    os_prefix: str,
) -> None:
    projector_bus, publisher = buses
    build_projector(
        store=store,
        bus=projector_bus,
        group=SETTINGS.kafka.projector_group,
        settings=SETTINGS,
        consumers=SETTINGS.projector_consumers,
        healthy=store.ping,
        visible=store.visible,
    )
    await publisher.start()
    await projector_bus.start()

    at: dict[tuple[int, int], str] = {}  # (partition, offset) -> the user it upserts

    async def publish() -> None:
        for n in range(USERS_COUNT):
            user_id = f"u{n:04}"
            [span] = await publisher.publish([ev.user(user_id, "2026-11-02T10:00:00Z")])
            at[(span.partition, span.first)] = user_id
            if n % 25 == 0:
                await asyncio.sleep(0.05)  # batches of several sizes, some while others wait

    publishing = asyncio.create_task(publish())
    topic = f"{topic_prefix}{USERS}"
    group = f"{topic_prefix}{SETTINGS.kafka.projector_group}"
    partitions = [TopicPartition(topic, p) for p in range(2)]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    moves = 0
    last: dict[TopicPartition, int] = {}
    below: set[str] = set()
    try:
        async with asyncio.timeout(120):
            while True:
                offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
                committed = {tp: offsets[tp].offset for tp in partitions if tp in offsets}
                if committed != last:
                    moves += 1
                    found = await searchable(store, os_prefix)
                    below = {
                        user
                        for (partition, offset), user in at.items()
                        if offset < committed.get(partitions[partition], -1)
                    }
                    assert below <= found, f"committed before searchable: {sorted(below - found)}"
                    last = committed
                if publishing.done() and len(below) == USERS_COUNT:
                    break
                await asyncio.sleep(0.01)
    finally:
        await admin.close()
        await publishing
    assert moves >= 3  # the offsets moved batch by batch, each checked


async def test_an_erase_removes_what_earlier_batches_wrote_before_any_refresh(
    store: OpenSearchInsightsStore, ev: Any, os_prefix: str
) -> None:
    # The batches before the erase returned once indexed; none of them is searchable yet.
    await store.apply([ev.user("alex", "2026-11-02T10:00:00Z")])
    await store.apply([ev.sent("m1", "alex", "2026-11-02T10:01:00Z")])

    await store.erase({("acme", "alex"): datetime(2026, 11, 3, tzinfo=UTC)})

    await store._client.indices.refresh(index=f"{os_prefix}-*")
    for kind in ("users", "messages"):
        response = await store._client.count(
            index=f"{os_prefix}-{kind}", body={"query": {"term": {"user_id": "alex"}}}
        )
        assert response["count"] == 0, kind
