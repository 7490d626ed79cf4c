"""The projector on Kafka and OpenSearch: poison goes to the dead-letter topic, an outage does not.

The store is the real OpenSearch store behind a wrapper that simulates a projection bug for some
messages and can pretend to be down (its ping then says so, as OpenSearch's would).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from insights_common.kafka.bus import ISOLATE_AFTER, KafkaBus
from insights_common.kafka.dead_letters import KafkaDeadLetters
from insights_contracts import AnyEvent
from insights_contracts.topics import NOTIFICATIONS
from insights_query.adapters.opensearch import OpenSearchInsightsStore, create_client
from insights_query.app import build_projector
from insights_query.settings import QuerySettings

pytestmark = pytest.mark.integration


class BuggyStore:
    """Applies through the real store, except the events of the messages in `broken`."""

    def __init__(self, inner: OpenSearchInsightsStore, broken: set[str]) -> None:
        self.inner = inner
        self.broken = broken
        self.down = False
        self.attempts = 0

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("OpenSearch does not answer")
        for event in events:
            if getattr(event, "message_id", None) in self.broken:
                raise RuntimeError(f"projection bug on {event.event_id}")
        await self.inner.apply(events)

    async def erased(self, users: Any) -> Any:
        return await self.inner.erased(users)

    async def erase(self, erasures: Any) -> None:
        await self.inner.erase(erasures)

    async def ping(self) -> bool:
        return not self.down and await self.inner.ping()


async def until(check: Callable[[], Any], limit: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.1)


@pytest.fixture
async def store(opensearch_url: str, os_prefix: str) -> AsyncIterator[OpenSearchInsightsStore]:
    client = create_client(opensearch_url)
    try:
        search = OpenSearchInsightsStore(client, prefix=os_prefix, refresh=True)
        await search.ensure_indices()
        yield search
    finally:
        await client.close()


# One consumer: `all_committed` expects every partition's offset committed, and a second
# consumer whose partitions stay empty never commits any.
SETTINGS = QuerySettings(projector_batch=50, projector_consumers=1)


async def all_committed(bootstrap: str, prefix: str) -> bool:
    topic = f"{prefix}{NOTIFICATIONS}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await admin.start()
    await consumer.start()
    try:
        [described] = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        ends = await consumer.end_offsets(tps)
        group = f"{prefix}{SETTINGS.kafka.projector_group}"
        done = await admin.list_consumer_group_offsets(group, partitions=tps)
        return all(done[tp].offset == ends[tp] for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def test_an_event_the_store_cannot_apply_goes_to_the_dead_letter_topic(
    store: OpenSearchInsightsStore,
    buses: tuple[KafkaBus, KafkaBus],
    ev: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    projector_bus, publisher = buses
    buggy = BuggyStore(store, broken={"m2"})
    build_projector(
        store=buggy,
        bus=projector_bus,
        group=SETTINGS.kafka.projector_group,
        settings=SETTINGS,
        consumers=SETTINGS.projector_consumers,
        healthy=buggy.ping,
    )
    await projector_bus.start()
    await publisher.start()
    poison = ev.sent("m2", "alex", "2026-11-02T10:01:00Z")
    await publisher.publish(
        [
            ev.sent("m1", "alex", "2026-11-02T10:00:00Z"),
            poison,
            ev.delivered("m1", "alex", "2026-11-02T10:02:00Z"),
            ev.sent("m3", "bo", "2026-11-02T10:03:00Z"),
        ]
    )

    async def good_ones_applied() -> bool:
        m1 = await store.get_message("acme", "m1")
        return (
            m1 is not None
            and m1.status == "delivered"
            and bool(await store.get_message("acme", "m3"))
        )

    await until(good_ones_applied)
    letters = KafkaDeadLetters(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)

    async def dead_lettered() -> bool:
        return (await letters.listing(topic=NOTIFICATIONS, limit=10)).total == 1

    await until(dead_lettered)
    [letter] = (await letters.listing(topic=None, limit=10)).letters
    assert letter.value == poison.model_dump_json().encode()
    assert letter.key == b"acme:alex"
    assert letter.error == f"RuntimeError: projection bug on {poison.event_id}"
    assert letter.consumer == f"{topic_prefix}{SETTINGS.kafka.projector_group}"
    assert not letter.replayed
    assert await store.get_message("acme", "m2") is None
    assert buggy.attempts >= ISOLATE_AFTER


async def test_an_outage_holds_the_events_and_dead_letters_none(
    store: OpenSearchInsightsStore,
    buses: tuple[KafkaBus, KafkaBus],
    ev: Any,
    kafka_bootstrap: str,
    topic_prefix: str,
) -> None:
    projector_bus, publisher = buses
    buggy = BuggyStore(store, broken=set())
    buggy.down = True
    build_projector(
        store=buggy,
        bus=projector_bus,
        group=SETTINGS.kafka.projector_group,
        settings=SETTINGS,
        consumers=SETTINGS.projector_consumers,
        healthy=buggy.ping,
    )
    await projector_bus.start()
    await publisher.start()
    await publisher.publish(
        [ev.sent(f"m{n}", "alex", f"2026-11-02T10:0{n}:00Z") for n in range(1, 4)]
    )

    async def retried_past_isolation() -> bool:
        return buggy.attempts >= ISOLATE_AFTER + 2

    await until(retried_past_isolation)
    letters = KafkaDeadLetters(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    assert (await letters.listing(topic=None, limit=10)).total == 0
    assert await store.get_message("acme", "m1") is None

    buggy.down = False

    async def everything_applied() -> bool:
        found = [await store.get_message("acme", f"m{n}") for n in range(1, 4)]
        return all(found) and await all_committed(kafka_bootstrap, topic_prefix)

    await until(everything_applied)
    assert (await letters.listing(topic=None, limit=10)).total == 0
