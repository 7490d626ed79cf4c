"""Publishing a batch of events as one Kafka transaction: all of them or none."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from opentelemetry.trace import SpanKind

from insights_common.bus import (
    Written,
    merge_spans,
)
from insights_common.kafka.bus import (
    MAX_BATCH_BYTES,
    KafkaBus,
    brokers,
    span_of,
)
from insights_common.tracing import record_headers
from insights_contracts import AnyEvent


class KafkaTransactionalPublisher:
    """Publishes each `publish` call as ONE Kafka transaction, for all-or-nothing batches.

    Consumers read committed only, so they see every event of a call or none of them, even when
    the process dies mid-way. The transactional id must be stable per replica and unique across
    replicas: a restarted replica's producer aborts what its predecessor left open at once
    (otherwise the broker does after `transaction_timeout_ms`), and two producers sharing an id
    fence each other.

    A publish that fails or outlasts the transaction timeout raises `DependencyUnavailable`
    and leaves the producer behind: it aborts its transaction when the brokers answer again, and
    the next publish registers a new producer under the same id, which fences the old one. A
    producer that lived through a broker restart may be stuck in an error state; a new one
    never is.
    """

    def __init__(
        self,
        bus: KafkaBus,
        *,
        transactional_id: str,
        transaction_timeout_ms: int = 120_000,
    ) -> None:
        self._bus = bus
        self._transactional_id = transactional_id
        self._transaction_timeout_ms = transaction_timeout_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._left: set[asyncio.Task[None]] = set()

    def _new_producer(self) -> AIOKafkaProducer:
        bus = self._bus
        return AIOKafkaProducer(
            bootstrap_servers=brokers(bus.options.bootstrap_servers),
            client_id=f"{bus.options.client_id}-tx",
            # Prefixed like topics and groups, so deployments sharing a cluster never fence
            # each other's producers.
            transactional_id=bus.topic(self._transactional_id),
            transaction_timeout_ms=self._transaction_timeout_ms,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            max_batch_size=MAX_BATCH_BYTES,
        )

    async def start(self) -> None:
        """Register the transactional id with the broker (aborting a predecessor's transaction)."""
        async with self._lock:
            await self._ready()

    async def stop(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await producer.stop()
        for task in list(self._left):
            task.cancel()
        await asyncio.gather(*self._left, return_exceptions=True)

    async def _ready(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                self._leave(producer, None)
                raise
            self._producer = producer
        return self._producer

    def _leave(self, producer: AIOKafkaProducer, work: asyncio.Task[Any] | None) -> None:
        """Let a failed producer finish (abort) in the background, then stop it."""

        async def wind_down() -> None:
            if work is not None:
                with contextlib.suppress(BaseException):
                    await work
            with contextlib.suppress(Exception):
                await producer.stop()

        task = asyncio.create_task(wind_down(), name="stop a failed Kafka producer")
        self._left.add(task)
        task.add_done_callback(self._left.discard)

    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        """Publish the events in one transaction and answer where they were written; raises (and
        aborts it) on any failure.

        `DependencyUnavailable` when Kafka refuses, or does not commit within the transaction
        timeout, after which the brokers would abort it anyway (one transaction at a time per
        producer: concurrent imports take turns, and the wait for a turn counts). Publishing is
        background work here (an import answered 202 already), so the bound is no door's.
        """
        bound = self._transaction_timeout_ms / 1000
        async with self._bus.within_publish_timeout(bound), self._lock:
            groups = await self._bus.by_partition(events)
            producer = await self._ready()
            with self._bus.tracer.start_as_current_span(
                "publish (transaction)",
                kind=SpanKind.PRODUCER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.operation.type": "send",
                    "messaging.batch.message_count": len(events),
                    "messaging.destination.name": ",".join(sorted({t for t, _ in groups})),
                },
            ):
                headers = record_headers()
                # A task of its own, shielded: a timeout must not interrupt the transaction's
                # abort, which waits for the brokers; the producer is left to finish it.
                work = asyncio.create_task(self._transaction(producer, groups, headers))
                try:
                    return await asyncio.shield(work)
                except BaseException:
                    self._producer = None
                    work.cancel()
                    self._leave(producer, work)
                    raise

    @staticmethod
    async def _transaction(
        producer: AIOKafkaProducer,
        groups: dict[tuple[str, int], list[tuple[bytes, bytes]]],
        headers: list[tuple[str, bytes]],
    ) -> Written:
        async with producer.transaction():
            sends = []
            counts = []
            for (topic, partition), records in groups.items():
                batch = producer.create_batch()
                for key, value in records:
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        counts.append(batch.record_count())
                        sends.append(await producer.send_batch(batch, topic, partition=partition))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None, headers=headers)
                if batch.record_count():
                    counts.append(batch.record_count())
                    sends.append(await producer.send_batch(batch, topic, partition=partition))
            sent = await asyncio.gather(*sends)
        return merge_spans(span_of(m, n) for m, n in zip(sent, counts, strict=True))
