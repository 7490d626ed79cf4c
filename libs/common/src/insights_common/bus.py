"""The event bus port and its in-process adapter.

The in-process bus carries the same contract events the Kafka topics carry. A publish awaits every
subscriber of the topic, so in the embedded mode a batch is projected before `publish` returns and
a batch handler can write it in one transaction.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from insights_contracts import AnyEvent
from insights_contracts.topics import topic_for

BatchHandler = Callable[[Sequence[AnyEvent]], Awaitable[None]]


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[AnyEvent]) -> None:
        """Publish events, each to the topic of its type, keeping their order per key."""
        ...


class InProcessBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, list[BatchHandler]] = defaultdict(list)

    def subscribe(self, topic: str, handler: BatchHandler) -> None:
        self._subscribers[topic].append(handler)

    async def publish(self, events: Sequence[AnyEvent]) -> None:
        by_topic: dict[str, list[AnyEvent]] = defaultdict(list)
        for event in events:
            by_topic[topic_for(event)].append(event)
        for topic, batch in by_topic.items():
            for handler in self._subscribers.get(topic, ()):
                await handler(batch)
