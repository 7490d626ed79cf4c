"""The Kafka adapter of the bus: the distributed mode's `EventPublisher` and batch subscribers.

Events travel as their contract JSON, keyed `app_id:user_id` (templates `app_id:template_key`),
so one user's events stay in order on one partition. Publishing groups a batch by the partition
each key hashes to (the Java client's murmur2 partitioner, so other producers agree) and sends one
record batch per partition. Subscribers take batches and commit their offsets only after the
handler returned, so a crash replays the batch (at-least-once); the projections are idempotent.
A record that is not a valid contract event goes to `<topic>.dlq` with the reason in its headers,
and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import DefaultPartitioner
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaResponse
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from insights_contracts import AnyEvent, event_adapter
from insights_contracts.topics import dlq, key_for, topic_for

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[AnyEvent]], Awaitable[None]]

# Kafka's default max.message.bytes is 1 MiB; a record batch stays under it.
MAX_BATCH_BYTES = 900 * 1024
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    bootstrap_servers: str
    topic_prefix: str = ""
    client_id: str = "user-insights"
    partitions: int = 6
    replication_factor: int = 1


class KafkaBus:
    """Publishes contract events to their topics and feeds batch handlers from them."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options
        self.broker = KafkaBroker(
            options.bootstrap_servers,
            client_id=options.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            logger=log,
        )
        self._partitions: dict[str, int] = {}
        self._partitioner = DefaultPartitioner()
        self._topics: set[str] = set()

    def topic(self, name: str) -> str:
        return f"{self.options.topic_prefix}{name}"

    async def start(self) -> None:
        await self.ensure_topics(self._topics)
        await self.broker.start()

    async def stop(self) -> None:
        await self.broker.stop()

    async def ping(self) -> bool:
        return bool(await self.broker.ping(timeout=2))

    async def ensure_topics(self, names: Iterable[str]) -> None:
        """Create the topics (full names) that do not exist yet; learn their partition counts."""
        wanted = set(names)
        if not wanted:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.options.bootstrap_servers,
            client_id=f"{self.options.client_id}-admin",
        )
        await admin.start()
        try:
            missing = wanted - set(await admin.list_topics())
            if missing:
                try:
                    await admin.create_topics(
                        [
                            NewTopic(
                                name,
                                num_partitions=self.options.partitions,
                                replication_factor=self.options.replication_factor,
                            )
                            for name in sorted(missing)
                        ]
                    )
                except TopicAlreadyExistsError:
                    pass  # another process created it between our list and create
            # A topic just created may show no partitions until its metadata has spread.
            for _ in range(100):
                described = await admin.describe_topics(sorted(wanted))
                counts = {d["topic"]: len(d["partitions"]) for d in described}
                if len(counts) == len(wanted) and all(counts.values()):
                    self._partitions.update(counts)
                    return
                await asyncio.sleep(0.1)
            raise RuntimeError(f"Kafka shows no partitions for {sorted(wanted)} after 10 s")
        finally:
            await admin.close()

    async def publish(self, events: Sequence[AnyEvent]) -> None:
        """Publish events to the topics of their types; waits until every broker acknowledged."""
        groups: dict[tuple[str, int], list[KafkaResponse]] = defaultdict(list)
        for event in events:
            topic = self.topic(topic_for(event))
            key = key_for(event).encode()
            partition = await self._partition_for(topic, key)
            groups[(topic, partition)].append(
                KafkaResponse(event.model_dump_json().encode(), key=key)
            )
        sends = [
            self.broker.publish_batch(*chunk, topic=topic, partition=partition, no_confirm=True)
            for (topic, partition), records in groups.items()
            for chunk in _chunks_by_size(records)
        ]
        futures = await asyncio.gather(*sends)
        await asyncio.gather(*futures)

    async def publish_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes, dict[str, str]]]
    ) -> None:
        """Publish (key, value, headers) records as they are, e.g. to a dead-letter topic."""
        sends = [
            self.broker.publish(value, topic=topic, key=key, headers=headers, no_confirm=True)
            for key, value, headers in records
        ]
        futures = await asyncio.gather(*sends)
        await asyncio.gather(*futures)

    def subscribe(
        self,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        group_id: str,
        max_records: int = 1000,
    ) -> None:
        """Feed batches of the topics' events to `handler`, committing after it returns.

        Call before `start`. A handler error is retried with backoff from the same offsets (the
        store may be briefly unavailable); nothing is committed until the batch is handled.
        """
        full_names = [self.topic(name) for name in topics]
        self._topics.update(full_names)
        failures = 0

        async def consume(bodies: list[bytes], message: KafkaMessage) -> None:
            nonlocal failures
            records = _records(message)
            events, poison = _decode(bodies, records)
            if poison:
                await self._dead_letter(poison)
            try:
                if events:
                    await handler(events)
            except Exception:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                log.exception(
                    "handling a batch of %d events failed; retrying in %.1f s", len(events), delay
                )
                await asyncio.sleep(delay)
                raise
            failures = 0

        subscriber = self.broker.subscriber(
            *full_names,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=100,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            decoder=_raw_values,
        )
        subscriber(consume)

    async def _dead_letter(self, poison: Sequence[tuple[ConsumerRecord[Any, Any], str]]) -> None:
        by_topic: dict[str, list[tuple[bytes | None, bytes, dict[str, str]]]] = defaultdict(list)
        for record, reason in poison:
            by_topic[dlq(record.topic)].append((record.key, record.value, {"x-error": reason}))
        for topic, records in by_topic.items():
            await self.publish_raw(topic, records)
            log.warning("%d records that are not contract events went to %s", len(records), topic)

    async def _partition_for(self, topic: str, key: bytes) -> int:
        if topic not in self._partitions:
            await self.ensure_topics([topic])
        count = self._partitions[topic]
        partitions = list(range(count))
        return int(self._partitioner(key, partitions, partitions))


async def _raw_values(message: KafkaMessage) -> Any:
    """Hand the record values over as bytes: the contract models parse the JSON themselves."""
    return message.body


def _records(message: KafkaMessage) -> tuple[ConsumerRecord[Any, Any], ...]:
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


def _decode(
    bodies: Sequence[bytes], records: Sequence[ConsumerRecord[Any, Any]]
) -> tuple[list[AnyEvent], list[tuple[ConsumerRecord[Any, Any], str]]]:
    events: list[AnyEvent] = []
    poison: list[tuple[ConsumerRecord[Any, Any], str]] = []
    for body, record in zip(bodies, records, strict=True):
        try:
            events.append(event_adapter.validate_json(body))
        except ValidationError as error:
            poison.append((record, _short(error)))
    return events, poison


def _short(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(record)"
    return f"{where}: {first['msg']}"[:500]


def _chunks_by_size(records: list[KafkaResponse]) -> Iterable[list[KafkaResponse]]:
    chunk: list[KafkaResponse] = []
    size = 0
    for record in records:
        record_size = len(record.body) + 64
        if chunk and size + record_size > MAX_BATCH_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(record)
        size += record_size
    if chunk:
        yield chunk
