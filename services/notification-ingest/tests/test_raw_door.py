"""The platform's raw topic as a second door: the webhook's validation and dedup, per app.

Unit tests drive the consumer's handler with records as the Kafka bus hands them over (on SQLite
and the in-process bus); the integration tests run it on real Kafka and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from cryptography.fernet import Fernet
from ingest_support import RecordingBus, contract_events, delivered

from insights_common.auth import SecretBox, sign
from insights_common.bus import AtOnce
from insights_common.kafka.bus import KafkaBus, KafkaOptions, Record
from insights_common.postgres.database import PostgresDatabase
from insights_common.postgres.keys import PostgresKeyStore
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.keys import SqliteKeyStore
from insights_contracts import AnyEvent
from insights_contracts.topics import CANONICAL, PLATFORM_RAW, dlq
from notification_ingest.adapters.postgres import (
    PostgresDedupStore,
    PostgresPendingCallbacks,
    PostgresPhoneDirectory,
)
from notification_ingest.adapters.sqlite import SqliteDedupStore
from notification_ingest.app import build_ingest
from notification_ingest.entrypoints.consumers import raw_events_consumer
from notification_ingest.service import IngestService
from notification_ingest.settings import IngestSettings


def record(value: bytes | str | object, offset: int = 0) -> Record:
    if not isinstance(value, bytes):
        value = value.encode() if isinstance(value, str) else orjson.dumps(value)
    return Record(topic="platform.events.raw", partition=0, offset=offset, key=None, value=value)


def make_service(db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore) -> IngestService:
    return IngestService(dedup=SqliteDedupStore(db), publisher=bus, secrets=keys, max_batch=1000)


@pytest.mark.unit
async def test_each_event_is_taken_for_the_app_its_envelope_names(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    consume = raw_events_consumer(make_service(db, bus, keys), max_batch=1000)
    rejected = await consume(
        [
            record([delivered("acme", "a1", "m1"), delivered("beta", "b1", "m9")]),
            record(delivered("acme", "a2", "m2"), offset=1),
        ]
    )

    assert rejected == []
    # One publish per app, each in the order the events came in.
    assert [[e.event_id for e in call] for call in bus.calls] == [["a1", "a2"], ["b1"]]
    assert {e.app_id for e in bus.calls[1]} == {"beta"}


@pytest.mark.unit
async def test_what_is_not_json_or_not_valid_comes_back_as_a_reject(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    consume = raw_events_consumer(make_service(db, bus, keys), max_batch=1000)
    bad_time = {**delivered("acme", "a2"), "occurred_at": "yesterday"}
    no_app = {k: v for k, v in delivered("acme", "a3").items() if k != "app_id"}
    records = [
        record(b"{not json", offset=0),
        record([delivered("acme", "a1"), bad_time, no_app], offset=1),
        record({**delivered("acme", "a4"), "event_type": "notification.bounced"}, offset=2),
        record(b"[]", offset=3),
    ]

    rejected = await consume(records)

    assert [e.event_id for e in bus.received] == ["a1"]
    by_offset = {(r.record.offset, r.index): r for r in rejected}
    assert sorted(by_offset) == [(0, None), (1, 1), (1, 2), (2, None), (3, None)]
    assert by_offset[(0, None)].error.startswith("The body is not valid JSON")
    assert by_offset[(0, None)].value is None  # the record as it was
    assert by_offset[(1, 1)].error.startswith("occurred_at: ")
    assert json.loads(by_offset[(1, 1)].value or b"") == bad_time
    assert by_offset[(1, 2)].error == "app_id: Field required"
    assert by_offset[(2, None)].error.startswith(
        "event_type: Unknown event_type 'notification.bounced'"
    )
    assert by_offset[(3, None)].error.startswith("The body is an empty array")


@pytest.mark.unit
async def test_an_event_with_an_integer_beyond_64_bits_comes_back_exact_as_a_reject(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    consume = raw_events_consumer(make_service(db, bus, keys), max_batch=1000)
    wide = {**delivered("acme", "a2"), "occurred_at": "0001-01-01T00:00:00Z", "n": "N"}
    value = orjson.dumps([delivered("acme", "a1"), wide]).replace(b'"N"', b"1" + b"0" * 25)
    rejected = await consume([record(value)])
    assert [e.event_id for e in bus.received] == ["a1"]
    [reject] = rejected
    assert reject.index == 1
    assert reject.error.startswith("occurred_at: ")
    assert json.loads(reject.value or b"")["n"] == 10**25


@pytest.mark.unit
async def test_an_event_taken_by_one_door_is_a_duplicate_at_the_other(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore, acme_secret: str
) -> None:
    service = make_service(db, bus, keys)
    consume = raw_events_consumer(service, max_batch=1000)
    body = orjson.dumps([delivered("acme", "d1"), delivered("acme", "d2")])
    await service.receive_webhook(app_id="acme", signature=sign(acme_secret, body), body=body)

    assert await consume([record([delivered("acme", "d2"), delivered("acme", "d3")])]) == []
    assert (await service.ingest_platform([[delivered("acme", "d3")]])).duplicates == 1

    assert [e.event_id for e in bus.received] == ["d1", "d2", "d3"]


@pytest.mark.unit
async def test_every_contract_event_type_is_taken_through_the_raw_door(
    db: SqliteDatabase, bus: RecordingBus, keys: SqliteKeyStore
) -> None:
    items = contract_events()
    consume = raw_events_consumer(make_service(db, bus, keys), max_batch=1000)

    assert await consume([record(item, offset=n) for n, item in enumerate(items)]) == []
    assert [e.event_id for e in bus.calls[0]] == [item["event_id"] for item in items]


# -- on Kafka and PostgreSQL ----------------------------------------------------------------


async def until(check: Callable[[], bool], limit: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + limit
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not reached in time"
        await asyncio.sleep(0.05)


@pytest.fixture
async def pg(pg_schema: Any) -> AsyncIterator[PostgresDatabase]:
    db = await PostgresDatabase.connect(pg_schema.dsn, schema=pg_schema.schema, max_size=4)
    yield db
    await db.close()


class Door:
    """`insights serve ingest`'s wiring on real servers, and a reader of what it published."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        options = KafkaOptions(bootstrap_servers=bootstrap, topic_prefix=prefix, partitions=2)
        self.bootstrap = bootstrap
        self.bus = KafkaBus(options)
        self.reader = KafkaBus(options)
        self.canonical: list[AnyEvent] = []

        async def collect(events: Sequence[AnyEvent]) -> None:
            self.canonical.extend(events)

        self.reader.subscribe(list(CANONICAL), collect, group="reader")

    async def produce(self, *values: bytes) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap)
        await producer.start()
        try:
            for value in values:
                # One key: the records stay in order on one partition.
                await producer.send_and_wait(self.bus.topic(PLATFORM_RAW), value, key=b"platform")
        finally:
            await producer.stop()

    async def dead_letters(self, count: int) -> list[ConsumerRecord[Any, Any]]:
        consumer = AIOKafkaConsumer(
            dlq(self.bus.topic(PLATFORM_RAW)),
            bootstrap_servers=self.bootstrap,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        records: list[ConsumerRecord[Any, Any]] = []
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while len(records) < count:
                assert asyncio.get_running_loop().time() < deadline, f"only {len(records)}"
                batches = await consumer.getmany(timeout_ms=1000)
                records += [r for batch in batches.values() for r in batch]
        finally:
            await consumer.stop()
        return sorted(records, key=lambda r: dict(r.headers)["x-source-offset"])


@pytest.fixture
async def door(
    kafka_bootstrap: str, topic_prefix: str, pg: PostgresDatabase
) -> AsyncIterator[tuple[Door, IngestService, str]]:
    door = Door(kafka_bootstrap, topic_prefix)
    keys = PostgresKeyStore(pg, SecretBox(Fernet.generate_key()))
    await keys.migrate()
    dedup = PostgresDedupStore(pg)
    await dedup.migrate()

    async def healthy() -> bool:
        return await pg.ping() and await door.bus.ping()

    service = build_ingest(
        dedup=dedup,
        publisher=door.bus,
        watermark=AtOnce(),
        keys=keys,
        phones=PostgresPhoneDirectory(pg),
        pending=PostgresPendingCallbacks(pg),
        users=door.bus,
        raw=door.bus,
        healthy=healthy,
        settings=IngestSettings(),
    ).service
    secret = await keys.rotate_webhook_secret("acme")
    await door.bus.start()
    await door.reader.start()
    yield door, service, secret
    await door.reader.stop()
    await door.bus.stop()


@pytest.mark.integration
async def test_the_raw_topic_feeds_the_canonical_topics_and_dead_letters_the_rest(
    door: tuple[Door, IngestService, str],
) -> None:
    kafka, _, _ = door
    bad = {**delivered("acme", "r2"), "occurred_at": "2026-11-02"}
    await kafka.produce(
        orjson.dumps(delivered("acme", "r1")),
        b"\xff not json",
        orjson.dumps([delivered("acme", "r3"), bad, delivered("beta", "r4")]),
    )

    await until(lambda: len(kafka.canonical) == 3)
    assert sorted(e.event_id for e in kafka.canonical) == ["r1", "r3", "r4"]
    dead = await kafka.dead_letters(2)
    raw_topic = kafka.bus.topic(PLATFORM_RAW)

    not_json, invalid = dead
    headers = {k: v.decode() for k, v in not_json.headers}
    assert not_json.value == b"\xff not json"
    assert not_json.key == b"platform"
    assert headers["x-error"].startswith("The body is not valid JSON")
    assert headers["x-consumer"] == kafka.bus.topic("insights-ingest-raw")
    assert headers["x-source-topic"] == raw_topic
    assert headers["x-source-offset"] == "1"
    assert "x-source-index" not in headers
    assert headers["x-failed-at"].endswith("Z")

    headers = {k: v.decode() for k, v in invalid.headers}
    assert orjson.loads(invalid.value) == bad
    assert headers["x-source-offset"] == "2" and headers["x-source-index"] == "1"
    assert headers["x-error"].startswith("occurred_at: ")


@pytest.mark.integration
async def test_one_event_id_through_both_doors_is_published_once(
    door: tuple[Door, IngestService, str],
) -> None:
    kafka, service, secret = door
    body = orjson.dumps(delivered("acme", "both"))
    result = await service.receive_webhook(app_id="acme", signature=sign(secret, body), body=body)
    assert result.accepted == 1

    # The raw copy is followed, on the same partition, by one more event: once that one is
    # published, the copy has been seen and dropped.
    await kafka.produce(body, orjson.dumps(delivered("acme", "after")))
    await until(lambda: any(e.event_id == "after" for e in kafka.canonical))

    assert [e.event_id for e in kafka.canonical].count("both") == 1
    assert {e.event_id for e in kafka.canonical} == {"both", "after"}
