"""The distributed mode's dead letters: the `<topic>.dlq` topics, listed and replayed.

A replay publishes a dead letter's original key, bytes and headers to its source topic, where the
normal consumers take it again. Which letters were replayed is kept in Kafka itself, as committed
offsets of the consumer group `<topic prefix>insights-dlq-replay` (no member ever joins it): per
partition of a DLQ topic, every record below the committed offset was replayed, and the offset's
metadata lists the replayed records above it, since a replay of chosen ids can leave gaps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from insights_common.clock import rfc3339
from insights_common.dead_letters import (
    CONSUMER_HEADER,
    DLQ_HEADERS,
    DLQ_SOURCES,
    ERROR_HEADER,
    FAILED_AT_HEADER,
    SOURCE_INDEX_HEADER,
    SOURCE_OFFSET_HEADER,
    SOURCE_PARTITION_HEADER,
    DeadLetter,
    Listing,
    Replay,
)
from insights_common.kafka.bus import brokers
from insights_contracts.topics import dlq

REPLAY_GROUP = "insights-dlq-replay"
# Kafka keeps at most offset.metadata.max.bytes (4096 by default) of metadata per offset.
MAX_METADATA_CHARS = 4000
READ_STALL_SECONDS = 15.0


class DeadLetterError(RuntimeError):
    """A replay that cannot be done as asked; the message says why and what to do."""


@dataclass
class _Replayed:
    """Per DLQ partition: offsets below `below` were replayed, and so were those in `above`."""

    below: int = 0
    above: frozenset[int] = frozenset()

    def has(self, offset: int) -> bool:
        return offset < self.below or offset in self.above

    def count(self, begin: int, end: int) -> int:
        return max(0, min(self.below, end) - begin) + len(
            [o for o in self.above if begin <= o < end]
        )

    def adding(self, offsets: Iterable[int], *, begin: int) -> _Replayed:
        above = set(self.above) | set(offsets)
        below = max(self.below, begin)
        while below in above:
            below += 1
        return _Replayed(below, frozenset(o for o in above if o >= below))

    @classmethod
    def parse(cls, committed: OffsetAndMetadata | None) -> _Replayed:
        if committed is None or committed.offset < 0:
            return cls()
        above: set[int] = set()
        for part in committed.metadata.split(","):
            first, _, last = part.partition("-")
            if first.isdigit():
                above.update(range(int(first), int(last or first) + 1))
        return cls(committed.offset, frozenset(above))

    def metadata(self) -> str:
        spans: list[str] = []
        for first, last in _runs(sorted(self.above)):
            spans.append(str(first) if first == last else f"{first}-{last}")
        return ",".join(spans)


def _runs(offsets: list[int]) -> Iterable[tuple[int, int]]:
    start = previous = None
    for offset in offsets:
        if start is None or previous is None or offset != previous + 1:
            if start is not None and previous is not None:
                yield start, previous
            start = offset
        previous = offset
    if start is not None and previous is not None:
        yield start, previous


@dataclass
class _Partitions:
    begin: dict[TopicPartition, int]
    end: dict[TopicPartition, int]
    replayed: dict[TopicPartition, _Replayed]


class KafkaDeadLetters:
    """Implements `insights_common.dead_letters.DeadLetterBox` on the `<topic>.dlq` topics."""

    def __init__(
        self, *, bootstrap_servers: str, topic_prefix: str = "", client_id: str = "insights-dlq"
    ) -> None:
        self._servers = brokers(bootstrap_servers)
        self._prefix = topic_prefix
        self._client_id = client_id
        self.group = f"{topic_prefix}{REPLAY_GROUP}"

    async def listing(self, *, topic: str | None, limit: int) -> Listing:
        async with self._reader() as reader:
            tps = await self._partitions_of(reader, topic)
            if not tps:
                return Listing([], 0, 0)
            state = await self._state(reader, tps)
            total = sum(state.end[tp] - state.begin[tp] for tp in tps)
            replayed = sum(state.replayed[tp].count(state.begin[tp], state.end[tp]) for tp in tps)
            # The newest `limit` of each partition hold the newest `limit` of them all.
            ranges = {
                tp: (max(state.begin[tp], state.end[tp] - limit), state.end[tp]) for tp in tps
            }
            records = await _read(reader, ranges)
        letters = sorted(
            (self._letter(record, state.replayed[_tp(record)]) for record in records),
            key=lambda letter: (letter.failed_at, letter.id),
        )
        return Listing(letters[-limit:], total, total - replayed)

    async def replay(self, *, topic: str | None, ids: Sequence[str] | None) -> Replay:
        async with self._reader() as reader:
            tps = await self._partitions_of(reader, topic)
            state = await self._state(reader, tps)
            unknown: list[str] = []
            wanted: set[tuple[TopicPartition, int]] | None = None
            if ids is None:
                ranges = {
                    tp: (max(state.begin[tp], state.replayed[tp].below), state.end[tp])
                    for tp in tps
                }
            else:
                parsed = self._parse_ids(ids, set(tps))
                wanted = {place for place in parsed.values() if place is not None}
                # Clamped to what the partition holds: an id beyond it is simply not found.
                ranges = {
                    tp: (max(min(offsets), state.begin[tp]), min(max(offsets) + 1, state.end[tp]))
                    for tp, offsets in _group_offsets(wanted).items()
                }
            records = await _read(reader, ranges) if ranges else []
            if wanted is None:
                chosen = [r for r in records if not state.replayed[_tp(r)].has(r.offset)]
            else:
                chosen = [r for r in records if (_tp(r), r.offset) in wanted]
                found = {(_tp(r), r.offset) for r in chosen}
                unknown = [text for text, place in parsed.items() if place not in found]
            letters = [self._letter(r, state.replayed[_tp(r)]) for r in chosen]
            if not chosen:
                return Replay([], unknown)
            marks = {
                tp: state.replayed[tp].adding(
                    (r.offset for r in chosen if _tp(r) == tp), begin=state.begin[tp]
                )
                for tp in {_tp(r) for r in chosen}
            }
            for tp, mark in marks.items():
                if len(mark.metadata()) > MAX_METADATA_CHARS:
                    raise DeadLetterError(
                        f"{tp.topic} partition {tp.partition} has too many scattered replayed "
                        "records to remember; replay the pending ones with --all first."
                    )
        await self._publish(chosen)
        await self._mark(marks)
        return Replay(letters, unknown)

    # -- reading ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _reader(self) -> AsyncIterator[_Reader]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=self._servers, client_id=self._client_id)
        await consumer.start()
        try:
            await admin.start()
            try:
                yield _Reader(consumer, admin)
            finally:
                await admin.close()
        finally:
            await consumer.stop()

    async def _partitions_of(self, reader: _Reader, topic: str | None) -> list[TopicPartition]:
        existing = set(await reader.admin.list_topics())
        names = [dlq(f"{self._prefix}{source}") for source in ((topic,) if topic else DLQ_SOURCES)]
        present = [name for name in names if name in existing]
        if not present:
            return []
        described = await reader.admin.describe_topics(present)
        return sorted(
            TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]
        )

    async def _state(self, reader: _Reader, tps: list[TopicPartition]) -> _Partitions:
        if not tps:
            return _Partitions({}, {}, {})
        begin = await reader.consumer.beginning_offsets(tps)
        end = await reader.consumer.end_offsets(tps)
        committed = await reader.admin.list_consumer_group_offsets(self.group, partitions=tps)
        replayed = {tp: _Replayed.parse(committed.get(tp)) for tp in tps}
        return _Partitions(begin, end, replayed)

    def _source(self, dlq_topic: str) -> str:
        return dlq_topic.removeprefix(self._prefix).removesuffix(".dlq")

    def _id(self, tp: TopicPartition, offset: int) -> str:
        return f"{self._source(tp.topic)}:{tp.partition}:{offset}"

    def _parse_ids(
        self, ids: Sequence[str], known: set[TopicPartition]
    ) -> dict[str, tuple[TopicPartition, int] | None]:
        """Where each id points, or None when it names no partition of the DLQ topics."""
        parsed: dict[str, tuple[TopicPartition, int] | None] = {}
        for text in ids:
            rest, _, offset = text.rpartition(":")
            source, _, partition = rest.rpartition(":")
            parsed[text] = None
            if offset.isdigit() and partition.isdigit():
                tp = TopicPartition(dlq(f"{self._prefix}{source}"), int(partition))
                if tp in known:
                    parsed[text] = (tp, int(offset))
        return parsed

    def _letter(self, record: ConsumerRecord[Any, Any], replayed: _Replayed) -> DeadLetter:
        headers = {name: value.decode("utf-8", "replace") for name, value in record.headers}
        tp = _tp(record)
        failed_at = headers.get(FAILED_AT_HEADER) or rfc3339(
            datetime.fromtimestamp(record.timestamp / 1000, UTC)
        )
        return DeadLetter(
            id=self._id(tp, record.offset),
            topic=self._source(record.topic),
            key=record.key,
            value=record.value or b"",
            error=headers.get(ERROR_HEADER, ""),
            consumer=headers.get(CONSUMER_HEADER, ""),
            failed_at=failed_at,
            replayed=replayed.has(record.offset),
            partition=record.partition,
            offset=record.offset,
            source_partition=_int(headers.get(SOURCE_PARTITION_HEADER)),
            source_offset=_int(headers.get(SOURCE_OFFSET_HEADER)),
            source_index=_int(headers.get(SOURCE_INDEX_HEADER)),
        )

    # -- replaying --------------------------------------------------------------------------

    async def _publish(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=True,
        )
        await producer.start()
        try:
            sends = [
                await producer.send(
                    f"{self._prefix}{self._source(record.topic)}",
                    value=record.value,
                    key=record.key,
                    headers=[(n, v) for n, v in record.headers if n not in DLQ_HEADERS],
                )
                for record in records
            ]
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

    async def _mark(self, marks: dict[TopicPartition, _Replayed]) -> None:
        committer = AIOKafkaConsumer(
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            group_id=self.group,
            enable_auto_commit=False,
        )
        await committer.start()
        try:
            committer.assign(list(marks))
            await committer.commit(
                {tp: OffsetAndMetadata(mark.below, mark.metadata()) for tp, mark in marks.items()}
            )
        finally:
            await committer.stop()


@dataclass
class _Reader:
    consumer: AIOKafkaConsumer
    admin: AIOKafkaAdminClient


def _tp(record: ConsumerRecord[Any, Any]) -> TopicPartition:
    return TopicPartition(record.topic, record.partition)


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def _group_offsets(
    wanted: set[tuple[TopicPartition, int]],
) -> dict[TopicPartition, list[int]]:
    grouped: dict[TopicPartition, list[int]] = {}
    for tp, offset in wanted:
        grouped.setdefault(tp, []).append(offset)
    return grouped


async def _read(
    reader: _Reader, ranges: dict[TopicPartition, tuple[int, int]]
) -> list[ConsumerRecord[Any, Any]]:
    """The records of each partition from its first offset up to (not including) its last."""
    todo = {tp: span for tp, span in ranges.items() if span[0] < span[1]}
    if not todo:
        return []
    consumer = reader.consumer
    consumer.assign(list(todo))
    for tp, (first, _) in todo.items():
        consumer.seek(tp, first)
    records: list[ConsumerRecord[Any, Any]] = []
    loop = asyncio.get_running_loop()
    stalled_at = loop.time() + READ_STALL_SECONDS
    while todo:
        batches = await consumer.getmany(*todo, timeout_ms=500)
        for tp, batch in batches.items():
            last = todo[tp][1] if tp in todo else 0
            records += [record for record in batch if record.offset < last]
        progressed = bool(batches)
        for tp in list(todo):
            if await consumer.position(tp) >= todo[tp][1]:
                del todo[tp]
        if progressed:
            stalled_at = loop.time() + READ_STALL_SECONDS
        elif loop.time() > stalled_at:
            raise DeadLetterError(
                f"reading {', '.join(sorted({tp.topic for tp in todo}))} made no progress in "
                f"{READ_STALL_SECONDS:g} s; is Kafka answering?"
            )
    return records
