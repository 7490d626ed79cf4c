"""Dead letters on both buses: what a consumer cannot take is kept, with why, and can be replayed.

In process: an isolating publish applies the good events and stores the poison in the SQLite
table; the plain publish stays all or nothing. On Kafka: every DLQ record carries the original key,
bytes and headers plus the error, consumer, time and source position; a batch that keeps failing
is taken apart only while the health probe says the store is up; the replay tool sends letters back
and remembers which, in a consumer group's committed offsets.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from conftest import until
from insights_common.bus import InProcessBus
from insights_common.dead_letters import FailedEvent
from insights_common.kafka.bus import ISOLATE_AFTER, KafkaBus, KafkaOptions, Record, Rejected
from insights_common.kafka.dead_letters import KafkaDeadLetters, _Replayed
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.dead_letters import SqliteDeadLetters
from insights_contracts import AnyEvent, UserUpserted
from insights_contracts.topics import USERS, dlq

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def user(n: int, user_id: str = "alex") -> UserUpserted:
    return UserUpserted(
        event_id=f"u-{user_id}-{n}",
        app_id="acme",
        occurred_at=T0 + timedelta(seconds=n),
        user_id=user_id,
        nickname=f"nick {n}",
        source="platform",
    )


# -- in process -----------------------------------------------------------------------------


class TableProjection:
    """A projection into a real SQLite table, one transaction per batch, with a bug: it cannot
    apply the users named in `poison`, and fails the whole transaction on them."""

    def __init__(self, db: SqliteDatabase, poison: set[str]) -> None:
        self.db = db
        self.poison = poison
        db.migrate("CREATE TABLE IF NOT EXISTS t_users (event_id TEXT PRIMARY KEY, nickname TEXT)")

    async def handle(self, events: Sequence[AnyEvent]) -> None:
        def write(conn: sqlite3.Connection) -> None:
            for event in events:
                assert isinstance(event, UserUpserted)
                conn.execute(
                    "INSERT OR IGNORE INTO t_users VALUES (?, ?)", (event.event_id, event.nickname)
                )
                if event.user_id in self.poison:
                    raise ValueError(f"cannot fold {event.user_id}")

        await self.db.write(write)

    def stored(self) -> list[str]:
        rows = self.db.read_sync(lambda c: c.execute("SELECT event_id FROM t_users").fetchall())
        return sorted(str(row[0]) for row in rows)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "insights.db")
    yield database
    database.close()


@pytest.mark.unit
async def test_an_isolating_publish_keeps_the_good_events_and_stores_the_poison(
    db: SqliteDatabase,
) -> None:
    letters = SqliteDeadLetters(db)
    bus = InProcessBus(dead_letters=letters, clock=lambda: T0)
    projection = TableProjection(db, poison={"mallory"})
    bus.subscribe([USERS], projection.handle, group="projector")

    failed = await bus.publish_isolated([user(1), user(2, "mallory"), user(3, "kim")])

    assert projection.stored() == ["u-alex-1", "u-kim-3"]
    assert [f.value for f in failed] == [user(2, "mallory").model_dump_json().encode()]
    listing = await letters.listing(topic=None, limit=10)
    assert (listing.total, listing.pending) == (1, 1)
    [letter] = listing.letters
    assert letter.topic == USERS
    assert letter.key == b"acme:mallory"
    assert letter.value == user(2, "mallory").model_dump_json().encode()
    assert letter.error == "ValueError: cannot fold mallory"
    assert letter.consumer == "projector"
    assert letter.failed_at == "2026-11-01T09:00:00.000Z"
    assert not letter.replayed


@pytest.mark.unit
async def test_a_plain_publish_stays_all_or_nothing(db: SqliteDatabase) -> None:
    letters = SqliteDeadLetters(db)
    bus = InProcessBus(dead_letters=letters)
    projection = TableProjection(db, poison={"mallory"})
    bus.subscribe([USERS], projection.handle, group="projector")

    with pytest.raises(ValueError, match="mallory"):
        await bus.publish([user(1), user(2, "mallory"), user(3, "kim")])

    assert projection.stored() == []
    assert (await letters.listing(topic=None, limit=10)).total == 0


@pytest.mark.unit
async def test_one_keys_events_reach_the_handler_in_order_while_isolating(
    db: SqliteDatabase,
) -> None:
    seen: list[str] = []

    async def handle(events: Sequence[AnyEvent]) -> None:
        if len(events) > 1:
            raise RuntimeError("a batch with poison in it")
        seen.extend(event.event_id for event in events)

    bus = InProcessBus(dead_letters=SqliteDeadLetters(db))
    bus.subscribe([USERS], handle, group="projector")
    await bus.isolating().publish([user(n) for n in range(5)])

    assert seen == [f"u-alex-{n}" for n in range(5)]


@pytest.mark.unit
async def test_the_table_lists_selects_and_marks_replayed(db: SqliteDatabase) -> None:
    letters = SqliteDeadLetters(db)
    await letters.add(
        [
            FailedEvent(topic, None, f"v{n}".encode(), "boom", "projector", T0)
            for n, topic in enumerate([USERS, "insights.notifications.v1", USERS])
        ]
    )

    assert [x.id for x in (await letters.listing(topic=USERS, limit=10)).letters] == ["1", "3"]
    assert [x.id for x in (await letters.listing(topic=None, limit=2)).letters] == ["2", "3"]
    chosen, unknown = await letters.select(topic=None, ids=["3", "9", "x"])
    assert [x.id for x in chosen] == ["3"] and unknown == ["9", "x"]

    await letters.mark_replayed(["3"], at=T0)

    pending, _ = await letters.select(topic=USERS, ids=None)
    assert [x.id for x in pending] == ["1"]
    listing = await letters.listing(topic=None, limit=10)
    assert (listing.total, listing.pending) == (3, 2)
    assert [x.replayed for x in listing.letters] == [False, False, True]


@pytest.mark.unit
def test_replayed_offsets_are_remembered_as_an_offset_and_the_gaps_above_it() -> None:
    mark = _Replayed().adding([3, 4, 7, 8, 9, 12], begin=0)
    assert (mark.below, mark.metadata()) == (0, "3-4,7-9,12")
    assert not mark.has(0) and mark.has(4) and not mark.has(5)

    mark = mark.adding([0, 1, 2], begin=0)
    assert (mark.below, mark.metadata()) == (5, "7-9,12")
    assert mark.count(0, 20) == 9

    class Committed:
        offset = 5
        metadata = "7-9,12"

    assert _Replayed.parse(Committed()) == mark  # type: ignore[arg-type]
    # Records below the start of the log (deleted by retention) count as done.
    assert _Replayed().adding([10], begin=10).below == 11


# -- Kafka ----------------------------------------------------------------------------------


@pytest.fixture
async def kafka(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2)
    )
    yield bus
    await bus.stop()


async def read_all(bootstrap: str, topic: str, count: int) -> list[ConsumerRecord[Any, Any]]:
    """The first `count` records of a topic, from every partition."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    records: list[ConsumerRecord[Any, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(records) < count:
            assert asyncio.get_running_loop().time() < deadline, f"only {len(records)} records"
            batches = await consumer.getmany(timeout_ms=1000)
            records += [record for batch in batches.values() for record in batch]
    finally:
        await consumer.stop()
    return records


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        if topic not in await admin.list_topics():
            return []
        [described] = await admin.describe_topics([topic])
        return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    finally:
        await admin.close()


async def end_offsets(bootstrap: str, topic: str) -> int:
    """How many records the topic holds (0 when it does not exist)."""
    tps = await partitions(bootstrap, topic)
    if not tps:
        return 0
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def committed_all(bootstrap: str, group: str, topic: str) -> bool:
    """True when the group has committed every record of the topic."""
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        return all(committed[tp].offset == ends[tp] for tp in tps)
    finally:
        await admin.close()
        await consumer.stop()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(
                topic, value, key=key, partition=0, headers=[("trace", b"t-1")]
            )
    finally:
        await producer.stop()


@pytest.mark.integration
async def test_a_dead_letter_record_carries_the_original_and_why(
    kafka: KafkaBus, kafka_bootstrap: str
) -> None:
    seen: list[str] = []

    async def take(events: Sequence[AnyEvent]) -> None:
        seen.extend(e.event_id for e in events)

    kafka.subscribe([USERS], take, group="projector")
    await kafka.start()
    topic = kafka.topic(USERS)
    await produce(kafka_bootstrap, topic, [(b"acme:x", b"not json")])
    await kafka.publish([user(1)])
    await until(lambda: seen == ["u-alex-1"])

    [dead] = await read_all(kafka_bootstrap, dlq(topic), 1)
    headers = {name: value.decode() for name, value in dead.headers}
    assert (dead.key, dead.value) == (b"acme:x", b"not json")
    assert headers["trace"] == "t-1"
    assert headers["x-error"].startswith("(record): Invalid JSON")
    assert headers["x-consumer"] == kafka.topic("projector")  # groups take the prefix too
    assert headers["x-source-topic"] == topic
    assert (headers["x-source-partition"], headers["x-source-offset"]) == ("0", "0")
    failed_at = datetime.fromisoformat(headers["x-failed-at"])
    assert failed_at.tzinfo is not None and headers["x-failed-at"].endswith("Z")


class FlakyStore:
    """A store with a bug (it cannot apply the users in `poison`) that can also be down."""

    def __init__(self, poison: set[str]) -> None:
        self.poison = poison
        self.down = False
        self.attempts = 0
        self.applied: list[str] = []

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        self.attempts += 1
        if self.down:
            raise ConnectionError("the store does not answer")
        bad = [e for e in events if isinstance(e, UserUpserted) and e.user_id in self.poison]
        if bad:
            raise ValueError(f"cannot fold {bad[0].event_id}")
        self.applied.extend(e.event_id for e in events)

    async def ping(self) -> bool:
        return not self.down


@pytest.mark.integration
async def test_poison_is_isolated_while_the_store_is_healthy(
    kafka: KafkaBus, kafka_bootstrap: str
) -> None:
    store = FlakyStore(poison={"mallory"})
    kafka.subscribe([USERS], store.apply, group="projector", healthy=store.ping)
    await kafka.start()
    alex = [user(n) for n in range(6)]
    events = [*alex[:3], user(3, "mallory"), *alex[3:]]
    await kafka.publish(events)

    [dead] = await read_all(kafka_bootstrap, dlq(kafka.topic(USERS)), 1)
    await until(lambda: set(store.applied) >= {e.event_id for e in alex})

    assert dead.value == user(3, "mallory").model_dump_json().encode()
    assert dead.key == b"acme:mallory"
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers["x-error"] == "ValueError: cannot fold u-mallory-3"
    assert headers["x-consumer"] == kafka.topic("projector")
    # Applied one at a time in order: one key's events keep their order.
    assert [e for e in store.applied if e.startswith("u-alex")] == [e.event_id for e in alex]
    assert store.attempts >= ISOLATE_AFTER


@pytest.mark.integration
async def test_an_unhealthy_store_holds_the_batch_instead_of_dead_lettering_it(
    kafka: KafkaBus, kafka_bootstrap: str
) -> None:
    store = FlakyStore(poison=set())
    store.down = True
    kafka.subscribe([USERS], store.apply, group="projector", healthy=store.ping)
    await kafka.start()
    events = [user(n) for n in range(4)]
    await kafka.publish(events)

    # Beyond the point where a healthy store would have had its batch taken apart.
    await until(lambda: store.attempts >= ISOLATE_AFTER + 2)
    assert store.applied == []
    assert await end_offsets(kafka_bootstrap, dlq(kafka.topic(USERS))) == 0

    store.down = False
    await until(lambda: set(store.applied) == {e.event_id for e in events})
    topic = kafka.topic(USERS)
    deadline = asyncio.get_running_loop().time() + 30
    while not await committed_all(kafka_bootstrap, kafka.topic("projector"), topic):
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.1)
    assert await end_offsets(kafka_bootstrap, dlq(topic)) == 0


@pytest.mark.integration
async def test_a_record_handler_sends_parts_of_a_record_to_the_dead_letter_topic(
    kafka: KafkaBus, kafka_bootstrap: str
) -> None:
    taken: list[bytes] = []

    async def take(records: Sequence[Record]) -> list[Rejected]:
        taken.extend(record.value for record in records)
        return [Rejected(record, "item 1 is bad", 1, b'{"n": 1}') for record in records]

    kafka.subscribe_records(["raw"], take, group="raw-reader")
    await kafka.start()
    await produce(kafka_bootstrap, kafka.topic("raw"), [(b"k", b'[{"n": 0}, {"n": 1}]')])

    [dead] = await read_all(kafka_bootstrap, dlq(kafka.topic("raw")), 1)
    headers = {name: value.decode() for name, value in dead.headers}
    assert (dead.key, dead.value) == (b"k", b'{"n": 1}')
    assert headers["x-source-index"] == "1"
    assert headers["x-error"] == "item 1 is bad"
    assert headers["x-consumer"] == kafka.topic("raw-reader")
    assert taken == [b'[{"n": 0}, {"n": 1}]']


@pytest.mark.integration
async def test_replays_send_letters_back_and_are_remembered(
    kafka: KafkaBus, kafka_bootstrap: str, topic_prefix: str
) -> None:
    seen: list[str] = []

    async def take(events: Sequence[AnyEvent]) -> None:
        seen.extend(e.event_id for e in events)

    kafka.subscribe([USERS], take, group="projector")
    await kafka.start()
    topic = kafka.topic(USERS)
    await produce(kafka_bootstrap, topic, [(f"k{n}".encode(), b"broken %d" % n) for n in range(4)])
    await read_all(kafka_bootstrap, dlq(topic), 4)
    await kafka.stop()  # until the cause is "fixed": what is replayed now stays in the topic
    letters = KafkaDeadLetters(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)

    listing = await letters.listing(topic=None, limit=10)
    assert (listing.total, listing.pending) == (4, 4)
    by_value = {letter.value: letter for letter in listing.letters}
    assert sorted(by_value) == [b"broken %d" % n for n in range(4)]
    third = by_value[b"broken 2"]
    assert third.topic == USERS and third.consumer == f"{topic_prefix}projector"
    assert third.id == f"{USERS}:{third.partition}:{third.offset}"
    assert (third.source_partition, third.source_offset) == (0, 2)

    done = await letters.replay(topic=USERS, ids=[third.id, f"{USERS}:0:99", "nonsense"])
    assert [x.id for x in done.replayed] == [third.id]
    assert done.unknown == [f"{USERS}:0:99", "nonsense"]
    listing = await letters.listing(topic=USERS, limit=10)
    assert (listing.total, listing.pending) == (4, 3)
    assert [x.value for x in listing.letters if x.replayed] == [b"broken 2"]

    everything = await letters.replay(topic=None, ids=None)
    assert sorted(x.value for x in everything.replayed) == [b"broken 0", b"broken 1", b"broken 3"]
    assert (await letters.listing(topic=None, limit=10)).pending == 0
    assert (await letters.replay(topic=None, ids=None)).replayed == []

    # Sent back as they were, and still broken: the consumer dead-letters them again, with the
    # original headers still there.
    again = KafkaBus(KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix))
    again.subscribe([USERS], take, group="projector")
    await again.start()
    try:
        records = await read_all(kafka_bootstrap, dlq(topic), 8)
    finally:
        await again.stop()
    assert sorted(r.value for r in records) == sorted([b"broken %d" % n for n in range(4)] * 2)
    assert all(dict(r.headers)["trace"] == b"t-1" for r in records)
    assert (await letters.listing(topic=None, limit=10)).pending == 4
