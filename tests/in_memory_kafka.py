"""KafkaBus's consumers on FastStream's in-memory `TestKafkaBroker`: what the fast tests of its
consuming paths share (libs/common/tests/test_kafka_paths.py, test_kafka_dead_letter_records.py).

A batch is delivered by publishing it to the notifications topic, which the test broker hands to
the subscriber at once, in the publisher's task: the handler's failure is the publish's. The test
broker commits nothing and redelivers nothing, so a test delivers a failed batch again, which is
what Kafka would do from the uncommitted offsets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaResponse
from faststream.kafka.annotations import KafkaMessage
from prometheus_client import CollectorRegistry

from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_contracts import NotificationSent
from insights_contracts.topics import NOTIFICATIONS, dlq

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
FAILED_AT = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
PREFIX = "paths."
TOPIC = f"{PREFIX}{NOTIFICATIONS}"
GROUP = f"{PREFIX}projector"


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
    """What reached the dead-letter topic: each record's value and headers, and its key."""

    records: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    keys: list[bytes | None] = field(default_factory=list)

    @property
    def values(self) -> list[bytes]:
        return [value for value, _ in self.records]


@dataclass
class Backoff:
    """The waits between retries the consumer asked for, taken without waiting."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def bus(backoff: Backoff | None = None) -> KafkaBus:
    """A bus whose consumers run on the test broker: its dead letters are stamped FAILED_AT and
    its backoff is recorded in `backoff`, not waited out."""
    return KafkaBus(
        KafkaOptions("unused:9092", topic_prefix=PREFIX),
        clock=lambda: FAILED_AT,
        pause=backoff or Backoff(),
    )


def watch_dead_letters(kafka: KafkaBus, *, refusals: int = 0) -> DeadLetters:
    """What reaches the dead-letter topic; its first `refusals` writes are refused, as a Kafka
    that cannot take them would."""
    seen = DeadLetters()

    async def as_bytes(message: KafkaMessage) -> bytes:
        return message.body

    @kafka.broker.subscriber(dlq(TOPIC), group_id="dlq-reader", decoder=as_bytes)
    async def read(body: bytes, message: KafkaMessage) -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise KafkaError("NotEnoughReplicas")
        headers = {name: value.decode() for name, value in message.raw_message.headers}
        seen.records.append((body, headers))
        seen.keys.append(message.raw_message.key)

    return seen


def counted(kafka: KafkaBus, name: str, **labels: str) -> float:
    """A counter of the bus's metrics, read as Prometheus would scrape it."""
    registry = CollectorRegistry()
    registry.register(kafka.metrics)
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def deliver(
    kafka: KafkaBus, *values: bytes, partition: int = 0, headers: dict[str, str] | None = None
) -> None:
    """One batch of records on the notifications topic, as a poll would hand it over."""
    await kafka.broker.publish_batch(
        *(KafkaResponse(v, key=b"alex") for v in values),
        topic=TOPIC,
        partition=partition,
        headers=headers,
    )


async def redeliver_until_taken(
    kafka: KafkaBus,
    values: Sequence[bytes],
    attempts: int,
    *,
    failing: type[Exception] = ValueError,
    **record: Any,
) -> int:
    """Deliver the batch again after each failure, as Kafka does from the uncommitted offsets;
    answers how many deliveries it took."""
    for attempt in range(1, attempts + 1):
        try:
            await deliver(kafka, *values, **record)
        except failing:
            continue  # the handler's failure: Kafka would hand the batch over again
        return attempt
    raise AssertionError(f"the batch was still failing after {attempts} deliveries")
