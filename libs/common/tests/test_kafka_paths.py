"""KafkaBus's retry rules, fast, on FastStream's in-memory `TestKafkaBroker`.

The real-Kafka suites (test_bus.py, test_dead_letters.py) prove delivery, offsets and restarts;
these prove the rules a batch follows inside the consumer, which need many failures in a row to
reach: a failing batch is retried whole, with a growing backoff, until it has failed ISOLATE_AFTER
times, then taken apart, if the store answers, so only the records at fault go to the dead-letter
topic; an outage (the handler's `DependencyUnavailable`, or a probe that says no or fails) is never
taken apart, also when it begins while a batch is.

What lives in aiokafka's consumer is left to the real-Kafka suites: the commit after the handler
(and none after a failure) and the redelivery from there, polls of at most `max_records`,
read_committed, a group's consumers sharing the partitions (the test broker hands a record to the
first subscriber of a group), the lag gauge (it reads the consumer's assignment) and offsets (every
record here has offset 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from faststream.kafka import TestKafkaBroker

from insights_common.dead_letters import ERROR_HEADER
from insights_common.kafka.bus import ISOLATE_AFTER, RETRY_DELAYS, KafkaBus, Record, Rejected
from insights_common.outage import DependencyUnavailable
from insights_contracts import AnyEvent
from insights_contracts.topics import NOTIFICATIONS
from tests.in_memory_kafka import (
    GROUP,
    TOPIC,
    Backoff,
    bus,
    counted,
    deliver,
    redeliver_until_taken,
    sent,
    watch_dead_letters,
)

pytestmark = pytest.mark.unit


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
    failures = counted(kafka, "insights_consumer_batch_failures_total", group=GROUP, cause="error")
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
    outages = counted(kafka, "insights_consumer_batch_failures_total", group=GROUP, cause="outage")
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


async def test_a_handler_that_fails_for_a_while_is_retried_with_backoff_until_it_succeeds() -> None:
    backoff = Backoff()
    kafka = bus(backoff)
    failures = 2
    taken: list[str] = []

    async def handler(events: Sequence[AnyEvent]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the store is restarting")
        taken.extend(e.event_id for e in events)

    kafka.subscribe([NOTIFICATIONS], handler, group="projector")
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        deliveries = await redeliver_until_taken(
            kafka, [sent(1), sent(2), sent(3)], attempts=5, failing=ConnectionError
        )

    assert deliveries == 3
    assert taken == ["s-1", "s-2", "s-3"]
    assert backoff.delays == list(RETRY_DELAYS[:2])
    assert dead.values == []
    assert counted(kafka, "insights_consumer_batch_failures_total", group=GROUP, cause="error") == 2
    assert counted(kafka, "insights_consumer_records_total", group=GROUP, topic=TOPIC) == 3
    assert counted(kafka, "insights_consumer_batch_duration_seconds_count", group=GROUP) == 1


async def test_the_backoff_grows_to_its_longest_and_starts_over_after_a_success() -> None:
    backoff = Backoff()
    kafka = bus(backoff)
    down = True

    async def handler(events: Sequence[AnyEvent]) -> None:
        if down:
            raise ConnectionError("the store does not answer")

    kafka.subscribe([NOTIFICATIONS], handler, group="projector")  # no probe: never taken apart
    async with TestKafkaBroker(kafka.broker):
        for _ in range(len(RETRY_DELAYS) + 2):
            with pytest.raises(ConnectionError):
                await deliver(kafka, sent(1))
        down = False
        await deliver(kafka, sent(1))
        down = True
        with pytest.raises(ConnectionError):
            await deliver(kafka, sent(2))

    longest = RETRY_DELAYS[-1]
    assert backoff.delays == [*RETRY_DELAYS, longest, longest, RETRY_DELAYS[0]]


@pytest.mark.parametrize("outage", ["reported", "probed"])
async def test_an_outage_that_begins_while_a_batch_is_taken_apart_holds_the_whole_batch(
    outage: str,
) -> None:
    """The store goes down after taking the first record alone: the handler says so itself
    (`DependencyUnavailable`), or only its probe does. Nothing is dead-lettered then; once the
    store is back the batch is taken apart again from its first record (at least once)."""
    kafka = bus()
    taken: list[str] = []
    up = True
    falls_after_one = True

    async def handler(events: Sequence[AnyEvent]) -> None:
        nonlocal up, falls_after_one
        if not up:
            if outage == "reported":
                raise DependencyUnavailable("OpenSearch", "connection refused")
            raise ConnectionError("connection refused")
        if any(e.event_id == "s-2" for e in events):
            raise ValueError("cannot fold s-2")
        taken.extend(e.event_id for e in events)
        if len(events) == 1 and falls_after_one:
            up, falls_after_one = False, False

    async def probe() -> bool:
        return up

    kafka.subscribe([NOTIFICATIONS], handler, group="projector", healthy=probe)
    dead = watch_dead_letters(kafka)
    batch = [sent(1), sent(2), sent(3)]
    async with TestKafkaBroker(kafka.broker):
        for _ in range(ISOLATE_AFTER - 1):
            with pytest.raises(ValueError):
                await deliver(kafka, *batch)
        with pytest.raises((DependencyUnavailable, ConnectionError)):
            await deliver(kafka, *batch)
        assert (taken, dead.values) == (["s-1"], [])
        up = True
        await deliver(kafka, *batch)

    assert taken == ["s-1", "s-1", "s-3"]
    assert dead.values == [sent(2)]


async def test_a_health_probe_that_fails_counts_as_a_store_that_is_down() -> None:
    kafka = bus()

    async def handler(events: Sequence[AnyEvent]) -> None:
        raise ValueError("cannot fold")

    async def probe() -> bool:
        raise TimeoutError("the ping timed out")

    kafka.subscribe([NOTIFICATIONS], handler, group="projector", healthy=probe)
    dead = watch_dead_letters(kafka)
    async with TestKafkaBroker(kafka.broker):
        for _ in range(ISOLATE_AFTER + 1):
            with pytest.raises(ValueError):
                await deliver(kafka, sent(1))

    assert dead.values == []
