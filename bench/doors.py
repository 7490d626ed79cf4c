"""The two doors events come in by: the signed webhook, and the platform's raw Kafka topic.

Both stream: a batch is generated, sent and dropped, with a few in flight. Both end the same way:
the latest notification event of each partition of the notifications topic is held back and
sent last, alone, once everything before it was taken; when each of those shows in
GET /api/v1/messages/{id}, every event before it on its partition does too (the projector takes
a partition in order).
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from bench.ingest import BATCH, Api, partition_of

RAW_RECORD_BYTES = 900_000  # under the broker's 1 MB message limit
PROGRESS_EVERY = 5.0


class Holdback:
    """Holds back the latest notification event of each partition; the others pass in order."""

    def __init__(self, *, partitions: int, app: str) -> None:
        self.slots: dict[int, dict[str, Any]] = {}
        self._partition = functools.lru_cache(maxsize=1 << 16)(
            lambda user_id: partition_of(user_id, partitions, app=app)
        )

    def swap(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The event to send now in place of `event`, if any."""
        if not event["event_type"].startswith("notification."):
            return event
        partition = self._partition(event["user_id"])
        previous = self.slots.get(partition)
        self.slots[partition] = event
        return previous

    def rest(self) -> list[dict[str, Any]]:
        return list(self.slots.values())


def passed(events: Iterable[dict[str, Any]], holdback: Holdback) -> Iterator[dict[str, Any]]:
    for event in events:
        out = holdback.swap(event)
        if out is not None:
            yield out


class Progress:
    """Counts what was sent; a line on stderr every few seconds."""

    def __init__(self, label: str, total_messages: int) -> None:
        self.label = label
        self.total = total_messages
        self.events = 0
        self.messages = 0
        self.started = time.perf_counter()
        self._task: asyncio.Task[None] | None = None

    def __enter__(self) -> Progress:
        self._task = asyncio.get_running_loop().create_task(self._report())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            seconds = time.perf_counter() - self.started
            print(
                f"  {self.label}: {self.messages:,}/{self.total:,} messages, {self.events:,} events"
                f" sent in {seconds:.0f} s ({self.events / seconds:,.0f} events/s)",
                file=sys.stderr,
                flush=True,
            )


@dataclass
class Posted:
    requests: int
    accepted: int
    duplicates: int
    dead_letters: int
    seconds: float  # until the last request or record was taken
    sentinels: list[dict[str, Any]]


def _chunks(
    events: Iterable[dict[str, Any]], *, count: int, size: int, progress: Progress
) -> Iterator[bytes]:
    """JSON arrays of at most `count` events and about `size` bytes."""
    parts: list[bytes] = []
    length = 0
    for event in events:
        encoded = orjson.dumps(event)
        if parts and (len(parts) == count or length + len(encoded) > size):
            yield b"[" + b",".join(parts) + b"]"
            parts, length = [], 0
        parts.append(encoded)
        length += len(encoded) + 1
        progress.events += 1
    if parts:
        yield b"[" + b",".join(parts) + b"]"


async def by_webhook(
    api: Api,
    events: Iterable[dict[str, Any]],
    holdback: Holdback,
    *,
    connections: int,
    progress: Progress,
) -> Posted:
    """Signed batches of up to 1,000 over `connections` concurrent connections."""
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=2 * connections)
    totals = {"requests": 0, "accepted": 0, "duplicates": 0}
    started = time.perf_counter()

    async def produce() -> None:
        for body in _chunks(passed(events, holdback), count=BATCH, size=8 << 20, progress=progress):
            await queue.put(body)
        for _ in range(connections):
            await queue.put(None)

    async def post(body: bytes) -> None:
        result = await api.post(body)
        totals["requests"] += 1
        totals["accepted"] += result["accepted"]
        totals["duplicates"] += result["duplicates"]

    async def worker() -> None:
        while (body := await queue.get()) is not None:
            await post(body)

    await asyncio.gather(produce(), *(worker() for _ in range(connections)))
    sentinels = holdback.rest()
    if sentinels:
        await post(orjson.dumps(sentinels))
        progress.events += len(sentinels)
    seconds = time.perf_counter() - started
    return Posted(
        totals["requests"], totals["accepted"], totals["duplicates"], 0, seconds, sentinels
    )


async def by_raw_topic(
    events: Iterable[dict[str, Any]],
    holdback: Holdback,
    *,
    kafka: str,
    topic: str,
    group: str,
    progress: Progress,
) -> Posted:
    """Records of up to 1,000 events on the raw topic, spread over its partitions.

    The sentinels go last, once the ingest's consumer group has committed every earlier record:
    the raw topic's partitions are consumed side by side, so only then do they follow every
    other event onto the notifications topic.
    """
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", linger_ms=5)
    await producer.start()
    records = 0
    started = time.perf_counter()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        in_flight: list[asyncio.Future[Any]] = []
        chunks = _chunks(
            passed(events, holdback), count=BATCH, size=RAW_RECORD_BYTES, progress=progress
        )
        for body in chunks:
            partition = partitions[records % len(partitions)]
            in_flight.append(await producer.send(topic, body, partition=partition))
            records += 1
            if len(in_flight) >= 32:
                await asyncio.gather(*in_flight)
                in_flight.clear()
        await asyncio.gather(*in_flight)
        await _drained(kafka, topic, group, partitions)
        sentinels = holdback.rest()
        if sentinels:
            await (await producer.send(topic, orjson.dumps(sentinels), partition=partitions[0]))
            records += 1
            progress.events += len(sentinels)
        await _drained(kafka, topic, group, partitions)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    dead = await _count(kafka, f"{topic}.dlq")
    return Posted(records, progress.events, 0, dead, seconds, sentinels)


async def _drained(
    kafka: str, topic: str, group: str, partitions: list[int], *, stall: float = 120
) -> None:
    """Until `group` has committed the end of every partition of `topic`; raises when its
    offsets stop moving for `stall` seconds."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    parts = [TopicPartition(topic, p) for p in partitions]
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await consumer.start()
    await admin.start()
    try:
        end = await consumer.end_offsets(parts)
        last, moved = None, time.perf_counter()
        while True:
            committed = await admin.list_consumer_group_offsets(group, partitions=parts)
            at = {tp: committed[tp].offset for tp in parts if tp in committed}
            if all(at.get(tp, -1) >= end[tp] for tp in parts):
                return
            if at != last:
                last, moved = at, time.perf_counter()
            elif time.perf_counter() - moved > stall:
                behind = sum(end[tp] - at.get(tp, 0) for tp in parts)
                raise RuntimeError(
                    f"group {group} has not moved for {stall:.0f} s, {behind:,} records behind"
                )
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
        await consumer.stop()


async def _count(kafka: str, topic: str) -> int:
    """Records on `topic` (0 when it does not exist)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in partitions]
        if not parts:
            return 0
        begin = await consumer.beginning_offsets(parts)
        end = await consumer.end_offsets(parts)
        return sum(end[tp] - begin[tp] for tp in parts)
    finally:
        await consumer.stop()
