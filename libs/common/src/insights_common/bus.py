"""The event bus port and its in-process adapter.

Both buses take subscribers the same way (`EventSubscriber`), so a service's wiring subscribes its
handlers once, whichever bus it is given. The in-process bus carries the same contract events the
Kafka topics carry. A publish awaits every subscriber of the topic, so in the embedded mode a batch
is projected before `publish` returns and a batch handler can write it in one transaction.

`publish` is all or nothing: a subscriber that fails fails the publish, and its transaction took
none of the batch (an import relies on this: its valid rows become visible together or not at
all). `publish_isolated` is for batches of independent events (the webhook's): a batch a
subscriber fails on is applied again one event at a time, and each event that still fails goes to
the dead-letter table with its error instead of failing the others, as the Kafka subscribers send
it to `<topic>.dlq`.

A publish answers where it wrote (`Written`: per topic partition, its first and last offset), and
a `ProjectionWatermark` answers how much of that the projection has made visible: an import is
complete, and a webhook's `wait=visible` answered, only when all of it is. Nothing is written
anywhere in the embedded mode (the projection took the events before `publish` returned), so
there `Written` is empty and visible already.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from insights_common.clock import utc_now
from insights_common.dead_letters import FailedEvent, error_text
from insights_common.tracing import tracer
from insights_contracts import AnyEvent
from insights_contracts.topics import key_for, topic_for

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[AnyEvent]], Awaitable[None]]
HealthProbe = Callable[[], Awaitable[bool]]
Visibility = Callable[[], Awaitable[None]]
"""Returns once every write made before the call can be read (raises when it cannot tell)."""
"""Answers whether what a handler writes to is up (its store's ping)."""

MAX_RECORDS = 1000
"""The most records a Kafka subscriber takes in one batch unless told otherwise."""


@dataclass(frozen=True, slots=True)
class Span:
    """The records one publish wrote to one partition: offsets `first` to `last` (other
    producers' records may lie between them), `records` of them."""

    topic: str
    partition: int
    first: int
    last: int
    records: int

    def covered(self, committed: int) -> int:
        """How many of the records lie before `committed` (a consumer's next offset)."""
        if committed > self.last:
            return self.records
        if committed <= self.first:
            return 0
        return self.records * (committed - self.first) // (self.last + 1 - self.first)


Written = tuple[Span, ...]
"""Where a publish wrote; empty when what it published was projected before it returned."""


def written_records(written: Written) -> int:
    return sum(span.records for span in written)


def merge_spans(spans: Iterable[Span]) -> Written:
    """One span per topic partition, covering all the spans given for it."""
    merged: dict[tuple[str, int], Span] = {}
    for span in spans:
        key = (span.topic, span.partition)
        known = merged.get(key)
        merged[key] = (
            span
            if known is None
            else Span(
                span.topic,
                span.partition,
                min(known.first, span.first),
                max(known.last, span.last),
                known.records + span.records,
            )
        )
    return tuple(sorted(merged.values(), key=lambda s: (s.topic, s.partition)))


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        """Publish events, each to the topic of its type, keeping their order per key; answer
        where they were written."""
        ...


class ProjectionWatermark(Protocol):
    async def visible(self, written: Written) -> int:
        """How many of the written records the projection has made visible to reads: all of
        them once it has taken every span (its committed position is past the span's last
        offset). Raises `DependencyUnavailable` when it cannot tell."""
        ...


class AtOnce:
    """The embedded mode's watermark: a publish returns once the projection took its events."""

    async def visible(self, written: Written) -> int:
        return written_records(written)


class EventSubscriber(Protocol):
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
        """Feed `handler` batches of the topics' events, one key's events in their order.

        `group` names the subscriber wherever it shows: its consumer group on Kafka, the consumer
        of its dead letters and its spans in both modes. On Kafka the subscriptions of one group
        share the partitions; in process each subscription takes every publish. Call before the
        bus starts.

        `healthy` and `max_records` are Kafka's: there a batch is at most `max_records` records,
        and one the handler keeps failing on is taken apart only while `healthy()` answers that
        its store is up. In process a batch is what one publish carried, and a failure fails the
        publish or, isolating, dead-letters the events at fault at once.

        `visible` is Kafka's too: there a batch's offsets are committed only once it returned
        after the batch was handled (what the handler wrote can then be read), and the next
        batches are handled meanwhile. In process the handler's writes are read at once.
        """
        ...


def topic_names(topics: Sequence[str]) -> tuple[str, ...]:
    """The topics of a subscription; one name alone is refused, not taken as its letters."""
    if isinstance(topics, str):
        raise TypeError(f"subscribe takes a sequence of topics, not the string {topics!r}")
    return tuple(topics)


class DeadLetterSink(Protocol):
    async def add(self, failed: Sequence[FailedEvent]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Subscription:
    handler: BatchHandler
    consumer: str


class InProcessBus:
    def __init__(
        self,
        *,
        dead_letters: DeadLetterSink | None = None,
        clock: Callable[[], datetime] = utc_now,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        """With a tracer provider, each subscriber's handling of a batch is a consumer span,
        a child of the span that published it (the request, in `insights dev`)."""
        self._subscribers: dict[str, list[_Subscription]] = defaultdict(list)
        self._dead_letters = dead_letters
        self._clock = clock
        self._tracer = tracer(__name__, tracer_provider) if tracer_provider else None

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
        """`EventSubscriber.subscribe`: `group` names the subscriber in its dead letters and
        spans; `healthy`, `max_records` and `visible` are Kafka's."""
        for topic in topic_names(topics):
            self._subscribers[topic].append(_Subscription(handler, group))

    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        for topic, batch in _by_topic(events).items():
            for subscription in self._subscribers.get(topic, ()):
                with self._span(topic, subscription, batch):
                    await subscription.handler(batch)
        return ()

    def _span(
        self, topic: str, subscription: _Subscription, batch: Sequence[AnyEvent]
    ) -> contextlib.AbstractContextManager[object]:
        if self._tracer is None:
            return contextlib.nullcontext()
        return self._tracer.start_as_current_span(
            f"{subscription.consumer} process",
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "in-process",
                "messaging.operation.type": "process",
                "messaging.consumer.group.name": subscription.consumer,
                "messaging.destination.name": topic,
                "messaging.batch.message_count": len(batch),
            },
        )

    async def publish_isolated(self, events: Sequence[AnyEvent]) -> list[FailedEvent]:
        """Publish independent events; answer those that went to the dead-letter table.

        Without a dead-letter table this is `publish`: a failure fails the publish.
        """
        sink = self._dead_letters
        if sink is None:
            await self.publish(events)
            return []
        failed: list[FailedEvent] = []
        for topic, batch in _by_topic(events).items():
            for subscription in self._subscribers.get(topic, ()):
                try:
                    with self._span(topic, subscription, batch):
                        await subscription.handler(batch)
                except Exception:
                    log.exception(
                        "%s failed on a batch of %d events; applying them one at a time",
                        subscription.consumer,
                        len(batch),
                    )
                    failed += await self._isolate(topic, subscription, batch)
        if failed:
            await sink.add(failed)
            log.warning("%d events went to the dead-letter table", len(failed))
        return failed

    def isolating(self) -> EventPublisher:
        """This bus as an `EventPublisher` whose `publish` is `publish_isolated`."""
        return _Isolating(self)

    async def _isolate(
        self, topic: str, subscription: _Subscription, batch: Sequence[AnyEvent]
    ) -> list[FailedEvent]:
        failed: list[FailedEvent] = []
        # In order, so one key's events still reach the handler in the order they were published.
        for event in batch:
            try:
                await subscription.handler([event])
            except Exception as error:
                failed.append(
                    FailedEvent(
                        topic=topic,
                        key=key_for(event).encode(),
                        value=event.model_dump_json().encode(),
                        error=error_text(error),
                        consumer=subscription.consumer,
                        failed_at=self._clock(),
                    )
                )
        return failed


@dataclass(frozen=True, slots=True)
class _Isolating:
    bus: InProcessBus

    async def publish(self, events: Sequence[AnyEvent]) -> Written:
        await self.bus.publish_isolated(events)
        return ()


def _by_topic(events: Sequence[AnyEvent]) -> dict[str, list[AnyEvent]]:
    by_topic: dict[str, list[AnyEvent]] = defaultdict(list)
    for event in events:
        by_topic[topic_for(event)].append(event)
    return by_topic
