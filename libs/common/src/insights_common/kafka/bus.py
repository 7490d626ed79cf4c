"""The Kafka adapter of the bus: the distributed mode's `EventPublisher` and batch subscribers.

Events travel as their contract JSON, keyed `app_id:user_id` (templates `app_id:template_key`),
so one user's events stay in order on one partition. Publishing groups a batch by the partition
each key hashes to (the Java client's murmur2 partitioner, so other producers agree) and sends one
record batch per partition. Subscribers take batches and commit their offsets only after the
handler returned, so a crash replays the batch (at-least-once); the projections are idempotent.
A subscriber whose store shows writes to reads only later (`visible`) commits each batch once
they are visible, while the next batches are handled (`visible_commits`).
A record that is not a valid contract event goes to `<topic>.dlq`, and the stream goes on; so does
an event the handler keeps failing on while its store is up (poison, told from an outage by the
store's own `DependencyUnavailable` and a health probe). A dead-letter record keeps the original
key, bytes and headers and adds why, which consumer, when, and where it came from (the headers of
`insights_common.dead_letters`). With a tracer provider, each record carries the trace context of
its publish in its headers and each batch is handled in a consumer span continuing it
(`insights_common.tracing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from aiokafka.structs import RecordMetadata
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaResponse
from faststream.kafka.annotations import KafkaMessage
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from insights_common.bus import (
    MAX_RECORDS,
    BatchHandler,
    EventSubscriber,
    HealthProbe,
    InProcessBus,
    Span,
    Visibility,
    Written,
    merge_spans,
    topic_names,
)
from insights_common.bus_metrics import BusMetrics
from insights_common.clock import rfc3339, utc_now
from insights_common.dead_letters import (
    CONSUMER_HEADER,
    DLQ_HEADERS,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    MAX_ERROR_CHARS,
    SOURCE_INDEX_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    SOURCE_TOPIC_HEADER,
    error_text,
)
from insights_common.kafka.partitions import partition_of
from insights_common.kafka.visible_commits import CommitsOnRevoke, VisibleCommits
from insights_common.outage import DEFAULT_TIMEOUT, DependencyUnavailable, bounded
from insights_common.tracing import PublishTelemetry, consuming, tracer
from insights_contracts import AnyEvent, event_adapter
from insights_contracts.topics import dlq, key_for, topic_for

log = logging.getLogger(__name__)

# Kafka's default max.message.bytes is 1 MiB; a record batch stays under it.
MAX_BATCH_BYTES = 900 * 1024
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 5.0)
# A batch that failed this many times in a row is taken apart to find the records at fault.
ISOLATE_AFTER = 3


class Record(NamedTuple):
    """One consumed record, as a record handler sees it (a tuple: made for every record a
    consumer takes, twice as fast as a frozen dataclass)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record, or one event of it (`index` in the record, its own `value`), for the DLQ."""

    record: Record
    error: str
    index: int | None = None
    value: bytes | None = None


RecordHandler = Callable[[Sequence[Record]], Awaitable[Sequence[Rejected]]]


def brokers(bootstrap_servers: str) -> list[str]:
    """`host:port`, or several separated by commas, as the clients take them: aiokafka takes a
    string as one address, so a cluster's list has to be split first."""
    return [server.strip() for server in bootstrap_servers.split(",") if server.strip()]


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    bootstrap_servers: str
    """`host:port` of a broker, or of several separated by commas."""
    topic_prefix: str = ""
    client_id: str = "user-insights"
    partitions: int = 6
    replication_factor: int = 1
    min_insync_replicas: int | None = None
    """`min.insync.replicas` of the topics this bus creates; None keeps the broker's default."""
    publish_timeout: float = DEFAULT_TIMEOUT
    """Seconds a publish may wait for the brokers; past it, `DependencyUnavailable`."""


class KafkaBus:
    """Publishes contract events to their topics and feeds batch handlers from them."""

    def __init__(
        self,
        options: KafkaOptions,
        *,
        tracer_provider: TracerProvider | None = None,
        clock: Callable[[], datetime] = utc_now,
        pause: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """`clock` stamps the dead letters; `pause` waits out a failed batch's backoff (both
        injected, so the consuming rules can be tested without waiting)."""
        self.options = options
        self._clock = clock
        self._pause = pause
        self.traced = tracer_provider is not None
        self.tracer = tracer(__name__, tracer_provider)
        self.broker = KafkaBroker(
            brokers(options.bootstrap_servers),
            client_id=options.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=1024 * 1024,
            logger=log,
            middlewares=(
                [PublishTelemetry(tracer_provider=tracer_provider)] if tracer_provider else []
            ),
        )
        self._partitions: dict[str, int] = {}
        self._topics: set[str] = set()
        self._commits: list[VisibleCommits] = []
        self.metrics = BusMetrics()

    def topic(self, name: str) -> str:
        return f"{self.options.topic_prefix}{name}"

    async def start(self) -> None:
        await self.ensure_topics(self._topics)
        await self.broker.start()

    async def stop(self) -> None:
        """Commit what the subscribers handled once it is visible, then stop consuming."""
        await asyncio.gather(*(commits.close() for commits in self._commits))
        await self.broker.stop()

    async def ping(self) -> bool:
        return bool(await self.broker.ping(timeout=2))

    async def ensure_topics(self, names: Iterable[str]) -> None:
        """Create the topics (full names) that do not exist yet; learn their partition counts."""
        wanted = set(names)
        if not wanted:
            return
        admin = AIOKafkaAdminClient(
            bootstrap_servers=brokers(self.options.bootstrap_servers),
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
                                topic_configs=self._topic_configs(),
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

    def _topic_configs(self) -> dict[str, str]:
        isr = self.options.min_insync_replicas
        return {} if isr is None else {"min.insync.replicas": str(isr)}

    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        """Publish events to the topics of their types; waits until every broker acknowledged.
        Answers where they were written.

        Raises `DependencyUnavailable` when that takes longer than `publish_timeout` or Kafka
        refuses. Some of the events may still arrive later: a caller that publishes them again
        makes duplicates, which the projections absorb (at-least-once).
        """
        async with self.within_publish_timeout():
            groups = await self.by_partition(events)
            chunks = [
                (topic, partition, chunk)
                for (topic, partition), records in groups.items()
                for chunk in chunks_by_size(
                    [KafkaResponse(value, key=key) for key, value in records]
                )
            ]
            futures = await asyncio.gather(
                *(
                    self.broker.publish_batch(
                        *chunk, topic=topic, partition=partition, no_confirm=True
                    )
                    for topic, partition, chunk in chunks
                )
            )
            sent = await asyncio.gather(*futures)
        return merge_spans(
            span_of(metadata, len(chunk))
            for (_, _, chunk), metadata in zip(chunks, sent, strict=True)
        )

    def within_publish_timeout(
        self, seconds: float | None = None
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Bound a block by `seconds` (`publish_timeout` by default); Kafka's refusals and the
        timeout become `DependencyUnavailable`."""
        return bounded(
            "Kafka",
            self.options.publish_timeout if seconds is None else seconds,
            passing=(KafkaError, OSError),
        )

    async def by_partition(
        self, events: Sequence[AnyEvent]
    ) -> dict[tuple[str, int], list[tuple[bytes, bytes]]]:
        """The events' (key, JSON) records grouped by the topic and partition they go to."""
        groups: dict[tuple[str, int], list[tuple[bytes, bytes]]] = defaultdict(list)
        routes: dict[type[AnyEvent], tuple[str, int]] = {}  # each type's topic, its partitions
        for event in events:
            route = routes.get(type(event))
            if route is None:
                topic = self.topic(topic_for(event))
                if topic not in self._partitions:
                    await self.ensure_topics([topic])
                route = routes[type(event)] = (topic, self._partitions[topic])
            topic, count = route
            key = key_for(event).encode()
            groups[(topic, partition_of(key, count))].append(
                (key, event.model_dump_json().encode())
            )
        return groups

    async def publish_raw(
        self, topic: str, records: Sequence[tuple[bytes | None, bytes, dict[str, str]]]
    ) -> None:
        """Publish (key, value, headers) records as they are, e.g. to a dead-letter topic."""
        async with self.within_publish_timeout():
            sends = [
                self.broker.publish(value, topic=topic, key=key, headers=headers, no_confirm=True)
                for key, value, headers in records
            ]
            futures = await asyncio.gather(*sends)
            # each send answers the future of its acknowledgement (nothing on FastStream's
            # in-memory test broker, which delivers at once)
            await asyncio.gather(*(future for future in futures if future is not None))

    def subscribe(
        self,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        group: str,
        healthy: HealthProbe | None = None,
        max_records: int = MAX_RECORDS,
        visible: Visibility | None = None,
    ) -> None:
        """Feed batches of the topics' events to `handler`, committing after it returns
        (`EventSubscriber.subscribe`); with `visible`, once what it wrote is visible.

        Call before `start`. A record that is not a contract event goes to `<topic>.dlq` and the
        others go on. A batch the handler fails on is retried with backoff from the same offsets;
        see `subscribe_records` for how poison is told from an outage with `healthy`.
        """

        async def handle(records: Sequence[Record]) -> list[Rejected]:
            events, rejected = _decode(records)
            if events:
                await handler(events)
            return rejected

        self.subscribe_records(
            topics,
            handle,
            group=group,
            healthy=healthy,
            max_records=max_records,
            visible=visible,
        )

    def subscribe_records(
        self,
        topics: Sequence[str],
        handler: RecordHandler,
        *,
        group: str,
        healthy: HealthProbe | None = None,
        max_records: int = MAX_RECORDS,
        visible: Visibility | None = None,
    ) -> None:
        """Feed batches of raw records to `handler`; what it answers goes to `<topic>.dlq`.

        Call before `start`. Offsets are committed after the handler returned and its rejects
        were dead-lettered. With `visible`, the next batch is taken at once, and the offsets
        are committed, in order, only after `visible()` returned once they were handed over
        (`VisibleCommits`): at most a few batches wait for that at a time. A batch the handler
        fails on is retried with backoff from the same offsets (nothing after it is committed
        before it). A `DependencyUnavailable` from the handler is an outage: the batch is retried,
        never taken apart. After ISOLATE_AFTER other failures in a row, if `healthy()` answers
        that what the handler writes to is up, the failure is the records' own: they are handled
        one at a time, in order, and each one that still fails goes to the dead-letter topic with
        its error.
        While `healthy()` answers no (and always without a probe) the batch is retried, so an
        outage never sends good records to the dead-letter topic.

        The group id takes the topic prefix too: deployments sharing a cluster share no group.
        """
        group_id = self.topic(group)
        full_names = [self.topic(name) for name in topic_names(topics)]
        self._topics.update(full_names)
        self._topics.update(dlq(name) for name in full_names)
        failures = 0

        metrics = self.metrics
        commits: VisibleCommits | None = None
        if visible is not None:

            async def commit(offsets: dict[TopicPartition, int]) -> None:
                consumer = subscriber.consumer
                if consumer is not None:  # none on the in-memory test broker
                    await consumer.commit(offsets)

            commits = VisibleCommits(
                name=group_id,
                visible=visible,
                commit=commit,
                retry_delays=RETRY_DELAYS,
                pause=self._pause,
            )
            self._commits.append(commits)

        async def consume(bodies: list[bytes], message: KafkaMessage) -> None:
            nonlocal failures
            if commits is not None and commits.closed:
                return  # stopping: nothing more is committed, the batch is taken after restart
            generation = commits.generation if commits is not None else 0
            records = _records(bodies, message)
            started = time.perf_counter()
            try:
                with self._batch_span(group_id, records):
                    rejected = await _handle(
                        records, handler, isolate=failures + 1 >= ISOLATE_AFTER, healthy=healthy
                    )
                    if rejected:
                        await self._dead_letter(rejected, consumer=group_id)
            except Exception as error:
                delay = RETRY_DELAYS[min(failures, len(RETRY_DELAYS) - 1)]
                failures += 1
                outage = isinstance(error, DependencyUnavailable)
                metrics.batch_failures.labels(group_id, "outage" if outage else "error").inc()
                log.log(
                    logging.WARNING if outage else logging.ERROR,
                    "%s: handling a batch of %d records failed (%d in a row): %s; retrying in "
                    "%.1f s",
                    group_id,
                    len(records),
                    failures,
                    error,
                    delay,
                    exc_info=not outage,  # an outage is told in one line
                )
                await self._pause(delay)
                if commits is not None:
                    await message.nack()  # acked by hand: back to the batch's first offsets
                raise
            failures = 0
            metrics.batch_seconds.labels(group_id).observe(time.perf_counter() - started)
            offsets = _next_offsets(records)
            metrics.took(group_id, Counter(record.topic for record in records), offsets)
            if commits is not None:
                await commits.add(offsets, generation=generation)

        subscriber = self.broker.subscriber(
            *full_names,
            group_id=group_id,
            batch=True,
            max_records=max_records,
            batch_timeout_ms=100,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            ack_policy=AckPolicy.NACK_ON_ERROR if commits is None else AckPolicy.MANUAL,
            listener=None if commits is None else CommitsOnRevoke(commits),
            decoder=_raw_values,
        )
        subscriber(consume)

        def ends() -> dict[tuple[str, int], int | None]:
            # read_committed: the end a consumer can reach is the last stable offset.
            consumer = subscriber.consumer
            if consumer is None:
                return {}
            return {
                (tp.topic, tp.partition): consumer.last_stable_offset(tp)
                for tp in consumer.assignment()
            }

        metrics.follow(group_id, ends)

    def _batch_span(
        self, group_id: str, records: Sequence[Record]
    ) -> contextlib.AbstractContextManager[object]:
        """The consumer span a batch is handled in; untraced, none (no header is read)."""
        if not self.traced:
            return contextlib.nullcontext()
        return consuming(
            self.tracer,
            f"{group_id} process",
            [record.headers for record in records],
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": group_id,
                "messaging.destination.name": records[0].topic,
                "messaging.destination.partition.id": str(records[0].partition),
            },
        )

    async def _dead_letter(self, rejected: Sequence[Rejected], *, consumer: str) -> None:
        """Send each reject to `<its topic>.dlq`: its key and bytes, its own headers, and why."""
        failed_at = rfc3339(self._clock())
        by_topic: dict[str, list[tuple[bytes | None, bytes, dict[str, str]]]] = defaultdict(list)
        for reject in rejected:
            record = reject.record
            headers = {
                name: value.decode("utf-8", "replace")
                for name, value in record.headers
                if name not in DLQ_HEADERS
            }
            headers |= {
                ERROR_HEADER: reject.error,
                CONSUMER_HEADER: consumer,
                FAILED_AT_HEADER: failed_at,
                SOURCE_TOPIC_HEADER: record.topic,
                SOURCE_PARTITION_HEADER: str(record.partition),
                SOURCE_OFFSET_HEADER: str(record.offset),
            }
            if reject.index is not None:
                headers[SOURCE_INDEX_HEADER] = str(reject.index)
            value = record.value if reject.value is None else reject.value
            by_topic[dlq(record.topic)].append((record.key, value, headers))
        for topic, records in by_topic.items():
            await self.publish_raw(topic, records)
            self.metrics.dead_letters.labels(topic.removesuffix(dlq(""))).inc(len(records))
            log.warning(
                "%s: %d records it could not take went to %s", consumer, len(records), topic
            )


# Checked by mypy: both buses take subscribers as the port says; the wiring takes either one.
_SUBSCRIBERS: tuple[type[EventSubscriber], ...] = (InProcessBus, KafkaBus)


def span_of(metadata: RecordMetadata, records: int) -> Span:
    """Where a record batch went: its base offset and the offset of its last record."""
    return Span(
        metadata.topic, metadata.partition, metadata.offset, metadata.offset + records - 1, records
    )


async def _raw_values(message: KafkaMessage) -> Any:
    """Hand the record values over as bytes: the contract models parse the JSON themselves."""
    return message.body


def _records(bodies: Sequence[bytes], message: KafkaMessage) -> list[Record]:
    raw = message.raw_message
    # a batch subscriber's raw message is the poll's records (a tuple from aiokafka, a list from
    # FastStream's in-memory test broker); a single subscriber's is one record
    consumed: Sequence[ConsumerRecord[Any, Any]] = raw if isinstance(raw, tuple | list) else (raw,)
    return [
        Record(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=body,
            headers=tuple(record.headers or ()),
        )
        for body, record in zip(bodies, consumed, strict=True)
    ]


def _next_offsets(records: Sequence[Record]) -> dict[TopicPartition, int]:
    """Per partition, the offset after the batch's last record: what its commit stores."""
    last: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        if record.offset > last.get(key, -1):
            last[key] = record.offset
    return {TopicPartition(topic, partition): at + 1 for (topic, partition), at in last.items()}


async def _handle(
    records: Sequence[Record],
    handler: RecordHandler,
    *,
    isolate: bool,
    healthy: HealthProbe | None,
) -> list[Rejected]:
    """The handler's rejects for the batch; or, when it fails and may isolate, for each record."""
    try:
        return list(await handler(records))
    except DependencyUnavailable:
        raise  # the store said it cannot now: the batch waits, whatever the probe answers
    except Exception:
        if not isolate or not await _is_healthy(healthy):
            raise
    log.warning(
        "a batch of %d records keeps failing while the store answers; taking them one at a time",
        len(records),
    )
    rejected: list[Rejected] = []
    for record in records:
        try:
            rejected += await handler([record])
        except DependencyUnavailable:
            raise  # an outage began meanwhile: the whole batch is retried
        except Exception as error:
            if not await _is_healthy(healthy):
                raise  # an outage began meanwhile: the whole batch is retried
            log.warning(
                "%s[%d]@%d cannot be taken: %s",
                record.topic,
                record.partition,
                record.offset,
                error,
            )
            rejected.append(Rejected(record, error_text(error)))
    return rejected


async def _is_healthy(healthy: HealthProbe | None) -> bool:
    if healthy is None:
        return False
    try:
        return await healthy()
    except Exception:
        log.exception("the health probe failed")
        return False


def _decode(records: Sequence[Record]) -> tuple[list[AnyEvent], list[Rejected]]:
    events: list[AnyEvent] = []
    rejected: list[Rejected] = []
    for record in records:
        try:
            events.append(event_adapter.validate_json(record.value))
        except ValidationError as error:
            rejected.append(Rejected(record, _short(error)))
    return events, rejected


def _short(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(record)"
    return f"{where}: {first['msg']}"[:MAX_ERROR_CHARS]


def chunks_by_size(records: list[KafkaResponse]) -> Iterable[list[KafkaResponse]]:
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
