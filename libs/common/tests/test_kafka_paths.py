"""KafkaBus's consuming paths, fast, on FastStream's in-memory `TestKafkaBroker`.

The real-Kafka suite (test_bus.py) proves delivery, offsets and restarts; these prove the rules a
batch follows inside the consumer, which need many failures in a row to reach: a batch that keeps
failing is retried whole until it has failed ISOLATE_AFTER times, then (if the store answers) taken
apart so only the records at fault go to the dead-letter topic; an outage is never taken apart;
what is not a contract event goes to the dead-letter topic with why. Kafka redelivers a failed batch
from the same offsets; here the test delivers it again, which is what the broker would do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from faststream.kafka import KafkaResponse, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry

from insights_common import kafka as kafka_module
from insights_common.dead_letters import (
    CONSUMER_HEADER,
    ERROR_HEADER,
    SOURCE_INDEX_HEADER,
    SOURCE_TOPIC_HEADER,
)
from insights_common.kafka import ISOLATE_AFTER, KafkaBus, KafkaOptions, Record, Rejected
from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent, NotificationSent
from insights_contracts.topics import NOTIFICATIONS, dlq

pytestmark = pytest.mark.unit

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
PREFIX = "paths."
TOPIC = f"{PREFIX}{NOTIFICATIONS}"


def sent(n: int) -> bytes:
    event = NotificationSent.model_validate(
        {
            "event_id": f"s-{n}",
            "app_id": "acme",
            "occurred_at": T0 + timedelta(seconds=n),
            "message_id": f"m-{n}",
            "user_id": "alex",
            "channel": "sms",
            "template": {"key": "otp", "version": 1},
            "content": {"body": f"code {n}"},
        }
    )
    return event.model_dump_json().encode()


@dataclass
class DeadLetters:
    """What reached the dead-letter topic: each record's value and headers."""

    records: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    @property
    def values(self) -> list[bytes]:
        return [value for value, _ in self.records]


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The consumer sleeps between retries; the rules do not depend on how long.
    monkeypatch.setattr(kafka_module, "RETRY_DELAYS", (0.0,))


def bus() -> KafkaBus:
    return KafkaBus(KafkaOptions("unused:9092", topic_prefix=PREFIX))


def watch_dead_letters(kafka: KafkaBus) -> DeadLetters:
    seen = DeadLetters()

    async def as_bytes(message: KafkaMessage) -> bytes:
        return message.body

    @kafka.broker.subscriber(dlq(TOPIC), group_id="dlq-reader", decoder=as_bytes)
    async def read(body: bytes, message: KafkaMessage) -> None:
        headers = {name: value.decode() for name, value in message.raw_message.headers}
        seen.records.append((body, headers))

    return seen


def counted(kafka: KafkaBus, name: str, **labels: str) -> float:
    """A counter of the bus's metrics, read as Prometheus would scrape it."""
    registry = CollectorRegistry()
    registry.register(kafka.metrics)
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def deliver(kafka: KafkaBus, *values: bytes) -> None:
    """One batch of records on the notifications topic, as a poll would hand it over."""
    await kafka.broker.publish_batch(*(KafkaResponse(v, key=b"alex") for v in values), topic=TOPIC)


async def test_a_record_that_is_not_an_event_goes_to_the_dead_letter_topic_and_the_rest_on() -> (
    None
):
    kafka = bus()
    taken: list[AnyEvent] = []

    async def handler(events: Sequence[AnyEvent]) -> None:
        taken.extend(events)

    kafka.subscribe([NOTIFICATIONS], handler, group="projector")
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        await deliver(kafka, sent(1), b'{"event_type": "notification.sent"}', sent(2))

    assert [e.event_id for e in taken] == ["s-1", "s-2"]
    assert dead.values == [b'{"event_type": "notification.sent"}']
    headers = dead.records[0][1]
    assert headers[SOURCE_TOPIC_HEADER] == TOPIC
    assert headers[CONSUMER_HEADER] == f"{PREFIX}projector"
    assert "event_id" in headers[ERROR_HEADER] or "Field required" in headers[ERROR_HEADER]
    assert counted(kafka, "insights_dead_letters_total", topic=TOPIC) == 1


@dataclass
class Flaky:
    """A record handler that fails on any batch holding a poison record, and counts its calls."""

    poison: bytes
    healthy: bool = True
    calls: list[int] = field(default_factory=list)
    taken: list[bytes] = field(default_factory=list)

    async def handle(self, records: Sequence[Record]) -> Sequence[Rejected]:
        self.calls.append(len(records))
        if any(r.value == self.poison for r in records):
            raise ValueError("the store refused this document")
        self.taken.extend(r.value for r in records)
        return []

    async def probe(self) -> bool:
        return self.healthy

    def subscribe(self, kafka: KafkaBus) -> None:
        kafka.subscribe_records([NOTIFICATIONS], self.handle, group="projector", healthy=self.probe)


async def redeliver_until_taken(kafka: KafkaBus, values: Sequence[bytes], attempts: int) -> int:
    """Deliver the batch again after each failure, as Kafka does from the uncommitted offsets;
    answers how many deliveries it took."""
    for attempt in range(1, attempts + 1):
        try:
            await deliver(kafka, *values)
        except ValueError:
            continue  # the handler's failure: Kafka would hand the batch over again
        return attempt
    raise AssertionError(f"the batch was still failing after {attempts} deliveries")


async def test_a_batch_that_keeps_failing_is_taken_apart_and_only_the_poison_is_dead_lettered() -> (
    None
):
    kafka = bus()
    poison = sent(2)
    flaky = Flaky(poison)
    flaky.subscribe(kafka)
    dead = watch_dead_letters(kafka)
    batch = [sent(1), poison, sent(3)]
    async with TestKafkaBroker(kafka.broker):
        deliveries = await redeliver_until_taken(kafka, batch, attempts=ISOLATE_AFTER + 2)

    assert deliveries == ISOLATE_AFTER
    # whole batch ISOLATE_AFTER times, then one record at a time, in order
    assert flaky.calls == [3] * ISOLATE_AFTER + [1, 1, 1]
    assert flaky.taken == [sent(1), sent(3)]
    assert dead.values == [poison]
    assert "the store refused this document" in dead.records[0][1][ERROR_HEADER]
    failures = counted(
        kafka, "insights_consumer_batch_failures_total", group=f"{PREFIX}projector", cause="error"
    )
    assert failures == ISOLATE_AFTER - 1


async def test_an_outage_is_retried_whole_and_never_dead_letters_anything() -> None:
    kafka = bus()
    calls: list[int] = []
    up = False

    async def handler(records: Sequence[Record]) -> Sequence[Rejected]:
        calls.append(len(records))
        if not up:
            raise DependencyUnavailable("OpenSearch", "connection refused")
        return []

    async def probe() -> bool:
        return True  # the probe may say yes: the handler's own word about an outage wins

    kafka.subscribe_records([NOTIFICATIONS], handler, group="projector", healthy=probe)
    dead = watch_dead_letters(kafka)
    batch = [sent(1), sent(2)]
    async with TestKafkaBroker(kafka.broker):
        for _ in range(ISOLATE_AFTER * 2):
            with pytest.raises(DependencyUnavailable):
                await deliver(kafka, *batch)
        up = True
        await deliver(kafka, *batch)

    assert calls == [2] * (ISOLATE_AFTER * 2 + 1)
    assert dead.values == []
    outages = counted(
        kafka, "insights_consumer_batch_failures_total", group=f"{PREFIX}projector", cause="outage"
    )
    assert outages == ISOLATE_AFTER * 2


async def test_without_a_healthy_store_a_failing_batch_is_never_taken_apart() -> None:
    kafka = bus()
    poison = sent(2)
    flaky = Flaky(poison, healthy=False)
    flaky.subscribe(kafka)
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        for _ in range(ISOLATE_AFTER + 2):
            with pytest.raises(ValueError, match="refused"):
                await deliver(kafka, sent(1), poison)
        # the store comes back: the next delivery isolates at once (failures are still counted)
        flaky.healthy = True
        await deliver(kafka, sent(1), poison)

    assert flaky.calls == [2] * (ISOLATE_AFTER + 2) + [2, 1, 1]
    assert dead.values == [poison]
    assert flaky.taken == [sent(1)]


async def test_a_success_resets_the_count_of_failures_in_a_row() -> None:
    kafka = bus()
    poison = sent(9)
    flaky = Flaky(poison)
    flaky.subscribe(kafka)
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        for _ in range(ISOLATE_AFTER - 1):
            with pytest.raises(ValueError):
                await deliver(kafka, poison)
        await deliver(kafka, sent(1))  # a good batch between: the streak is broken
        with pytest.raises(ValueError):
            await deliver(kafka, poison)

    assert dead.values == []
    assert flaky.taken == [sent(1)]


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
