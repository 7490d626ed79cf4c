"""All-or-nothing publishes: one Kafka transaction per call, read committed by the subscribers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.kafka.publisher import KafkaTransactionalPublisher
from insights_contracts import AnyEvent, UserUpserted
from insights_contracts.topics import USERS

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def users(batch: str, count: int) -> list[AnyEvent]:
    return [
        UserUpserted(
            event_id=f"{batch}:{n}",
            app_id="acme",
            occurred_at=T0 + timedelta(seconds=n),
            user_id=f"{batch}-{n}",
            phone_number="+14155550171",
            source=f"import:{batch}",
        )
        for n in range(count)
    ]


class Seen:
    """A subscriber that keeps what it is given and wakes whoever waits for a count."""

    def __init__(self) -> None:
        self.events: list[AnyEvent] = []
        self._changed = asyncio.Event()

    async def __call__(self, events: Sequence[AnyEvent]) -> None:
        self.events.extend(events)
        self._changed.set()

    async def until(self, count: int) -> None:
        async def wait() -> None:
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), timeout=30)


async def test_a_publish_is_seen_whole_in_its_order_per_key(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    options = KafkaOptions(kafka_bootstrap, topic_prefix=topic_prefix, partitions=3)
    bus = KafkaBus(options)
    seen = Seen()
    bus.subscribe([USERS], seen, group="tx-reader")
    publisher = KafkaTransactionalPublisher(bus, transactional_id="import-1")
    await bus.start()
    await publisher.start()
    try:
        # Large enough for several record batches per partition.
        events = users("big", 20_000)
        await publisher.publish(events)
        await publisher.publish(users("next", 3))
        await seen.until(20_003)
    finally:
        await publisher.stop()
        await bus.stop()
    assert sorted(e.event_id for e in seen.events) == sorted(
        e.event_id for e in [*events, *users("next", 3)]
    )
    assert len(seen.events) == 20_003


_CRASHING_PRODUCER = textwrap.dedent(
    """
    import asyncio, sys
    from aiokafka import AIOKafkaProducer

    async def main(bootstrap, topic, transactional_id):
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, transactional_id=transactional_id,
            enable_idempotence=True, transaction_timeout_ms=600_000,
        )
        await producer.start()
        await producer.begin_transaction()
        for n in range(500):
            await producer.send(topic, key=b"acme:lost", value=b"{}")
        await producer.flush()
        print("sent", flush=True)
        await asyncio.sleep(3600)  # killed here, its transaction open

    asyncio.run(main(*sys.argv[1:]))
    """
)


async def test_a_publisher_killed_mid_transaction_leaves_nothing_and_its_successor_goes_on(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    options = KafkaOptions(kafka_bootstrap, topic_prefix=topic_prefix, partitions=3)
    bus = KafkaBus(options)
    await bus.ensure_topics([bus.topic(USERS)])
    # The publisher prefixes its transactional id as it does topics; the killed producer had
    # the same full id.
    transactional_id = "import-1"
    crashing = subprocess.Popen(  # noqa: ASYNC220, S603 - our own child, killed not awaited
        [
            sys.executable,
            "-c",
            _CRASHING_PRODUCER,
            kafka_bootstrap,
            bus.topic(USERS),
            bus.topic(transactional_id),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert crashing.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(crashing.stdout.readline), timeout=60)
        assert line.strip() == "sent"
    finally:
        crashing.kill()
        crashing.wait()
        assert crashing.stdout is not None
        crashing.stdout.close()

    seen = Seen()
    bus.subscribe([USERS], seen, group="tx-reader")
    # The successor under the same id: starting it aborts what the killed one left open (which
    # would otherwise hold back every later record of its partitions for its 10-minute timeout),
    # so the successor's events are readable within `until`'s wait.
    publisher = KafkaTransactionalPublisher(bus, transactional_id=transactional_id)
    await bus.start()
    await publisher.start()
    try:
        await publisher.publish(users("after", 10))
        await seen.until(10)
        await asyncio.sleep(1)  # anything of the aborted transaction would have arrived too
    finally:
        await publisher.stop()
        await bus.stop()
    # The killed producer's 500 records were never committed: none is read.
    assert sorted(e.event_id for e in seen.events) == sorted(f"after:{n}" for n in range(10))
