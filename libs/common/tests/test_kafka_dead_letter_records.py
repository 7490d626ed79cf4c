"""What KafkaBus sends to `<topic>.dlq`, fast, on FastStream's in-memory `TestKafkaBroker`.

A record that is not a contract event, an event the handler keeps failing on while its store
answers, and an event a record handler rejects go to the dead-letter topic, and the records after
them are taken; a dead letter keeps the record's key, bytes and headers and adds why, which
consumer, when and where it came from (replacing those facts of an earlier failure). Until Kafka
has taken the dead letters, the batch is not done. test_dead_letters.py proves the same on Kafka.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from faststream.kafka import TestKafkaBroker

from insights_common.dead_letters import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    SOURCE_INDEX_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
)
from insights_common.kafka.bus import ISOLATE_AFTER, Record, Rejected
from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent
from insights_contracts.topics import NOTIFICATIONS
from tests.in_memory_kafka import (
    GROUP,
    TOPIC,
    bus,
    counted,
    deliver,
    redeliver_until_taken,
    sent,
    watch_dead_letters,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b'{"event_type": "notification.sent"}', "notification.sent.event_id: Field required"),
        (b"not json", "(record): Invalid JSON"),
        (b'{"event_type": "user.renamed"}', "(record): Input tag 'user.renamed'"),
    ],
    ids=["incomplete", "not-json", "unknown-type"],
)
async def test_a_record_that_is_not_an_event_goes_to_the_dead_letter_topic_and_the_rest_on(
    value: bytes, why: str
) -> None:
    kafka = bus()
    taken: list[AnyEvent] = []

    async def handler(events: Sequence[AnyEvent]) -> None:
        taken.extend(events)

    kafka.subscribe([NOTIFICATIONS], handler, group="projector")
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        await deliver(kafka, sent(1), value, sent(2))

    assert [e.event_id for e in taken] == ["s-1", "s-2"]
    assert dead.values == [value]
    headers = dead.records[0][1]
    assert headers[SOURCE_TOPIC_HEADER] == TOPIC
    assert headers[CONSUMER_HEADER] == GROUP
    assert headers[ERROR_HEADER].startswith(why)
    assert counted(kafka, "insights_dead_letters_total", topic=TOPIC) == 1


async def test_an_event_a_handler_rejects_goes_with_its_index_in_the_record() -> None:
    kafka = bus()

    async def handler(records: Sequence[Record]) -> Sequence[Rejected]:
        # e.g. one event of a raw webhook batch the limits refuse
        return [Rejected(records[0], "occurred_at: before 1970", index=3, value=b'{"bad": 1}')]

    kafka.subscribe_records([NOTIFICATIONS], handler, group="ingest")
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        await deliver(kafka, sent(1))

    assert dead.values == [b'{"bad": 1}']
    headers = dead.records[0][1]
    assert headers[SOURCE_INDEX_HEADER] == "3"
    assert headers[ERROR_HEADER] == "occurred_at: before 1970"


async def test_an_event_the_handler_keeps_failing_on_is_dead_lettered_with_its_record_and_why() -> (
    None
):
    kafka = bus()
    calls: list[list[str]] = []

    async def handler(events: Sequence[AnyEvent]) -> None:
        calls.append([e.event_id for e in events])
        if "s-2" in calls[-1]:
            raise ValueError("cannot fold s-2")

    async def up() -> bool:
        return True

    kafka.subscribe([NOTIFICATIONS], handler, group="projector", healthy=up)
    dead = watch_dead_letters(kafka)
    # A replayed dead letter still carries the facts of its last failure: they are replaced.
    headers = {
        "trace": "t-1",
        ERROR_HEADER: "an older failure",
        SOURCE_OFFSET_HEADER: "41",
        SOURCE_INDEX_HEADER: "2",
    }
    batch = [sent(1), sent(2), sent(3)]
    async with TestKafkaBroker(kafka.broker):
        deliveries = await redeliver_until_taken(
            kafka, batch, attempts=ISOLATE_AFTER + 2, partition=1, headers=headers
        )
        await deliver(kafka, sent(4))

    assert deliveries == ISOLATE_AFTER
    # the records after the poison are taken, in order; the next batch at once
    singles = [["s-1"], ["s-2"], ["s-3"], ["s-4"]]
    assert calls == [["s-1", "s-2", "s-3"]] * ISOLATE_AFTER + singles
    assert (dead.values, dead.keys) == ([sent(2)], [b"alex"])
    test_brokers_own = ("content-type", "correlation_id")
    assert {k: v for k, v in dead.records[0][1].items() if k not in test_brokers_own} == {
        "trace": "t-1",
        ERROR_HEADER: "ValueError: cannot fold s-2",
        CONSUMER_HEADER: GROUP,
        FAILED_AT_HEADER: "2026-11-01T09:30:00.000Z",
        SOURCE_TOPIC_HEADER: TOPIC,
        SOURCE_PARTITION_HEADER: "1",
        SOURCE_OFFSET_HEADER: "0",  # the test broker's offset of every record
    }


async def test_a_batch_whose_dead_letters_kafka_refuses_is_held_until_they_are_written() -> None:
    kafka = bus()
    taken: list[str] = []

    async def handler(events: Sequence[AnyEvent]) -> None:
        taken.extend(e.event_id for e in events)

    kafka.subscribe([NOTIFICATIONS], handler, group="projector")
    dead = watch_dead_letters(kafka, refusals=1)
    async with TestKafkaBroker(kafka.broker):
        with pytest.raises(DependencyUnavailable):
            await deliver(kafka, sent(1), b"not json")
        await deliver(kafka, sent(1), b"not json")

    assert dead.values == [b"not json"]
    assert taken == ["s-1", "s-1"]  # taken again with its batch: at least once
    assert (
        counted(kafka, "insights_consumer_batch_failures_total", group=GROUP, cause="outage") == 1
    )
