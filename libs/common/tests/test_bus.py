"""The bus port suite: the in-process bus and the Kafka bus deliver the same events the same way.

Then what only Kafka has: offsets committed after the handler, retries, the dead-letter topic.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import CollectorRegistry

from conftest import until
from insights_common.bus import InProcessBus
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_contracts import AnyEvent, NotificationSent, TemplateUpserted, UserUpserted
from insights_contracts.topics import NOTIFICATIONS, TEMPLATES, USERS, dlq

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def user(n: int, user_id: str = "alex", app_id: str = "acme") -> UserUpserted:
    return UserUpserted(
        event_id=f"u-{user_id}-{n}",
        app_id=app_id,
        occurred_at=T0 + timedelta(seconds=n),
        user_id=user_id,
        nickname=f"nick {n}",
        source="platform",
    )


def sent(n: int, user_id: str = "alex") -> NotificationSent:
    return NotificationSent.model_validate(
        {
            "event_id": f"s-{user_id}-{n}",
            "app_id": "acme",
            "occurred_at": T0 + timedelta(seconds=n),
            "message_id": f"m-{user_id}-{n}",
            "user_id": user_id,
            "channel": "sms",
            "template": {"key": "otp", "version": 1},
            "content": {"body": f"code {n}"},
        }
    )


def template(version: int) -> TemplateUpserted:
    return TemplateUpserted.model_validate(
        {
            "event_id": f"t-{version}",
            "app_id": "acme",
            "occurred_at": T0,
            "template": {"key": "otp", "name": "OTP", "version": version},
        }
    )


class Harness:
    """One bus under test; subscriptions are registered before it starts."""

    def __init__(
        self,
        bus: InProcessBus | KafkaBus,
        *,
        start: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.bus = bus
        self._start = start

    def collect(self, topic: str, group: str = "g1") -> list[AnyEvent]:
        seen: list[AnyEvent] = []

        async def handler(events: Sequence[AnyEvent]) -> None:
            seen.extend(events)

        self.bus.subscribe([topic], handler, group=group)
        return seen

    async def start(self) -> None:
        if self._start is not None:
            await self._start()


@pytest.fixture(params=["in-process", pytest.param("kafka", marks=pytest.mark.integration)])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    if request.param == "in-process":
        bus = InProcessBus()
        yield Harness(bus)
        return
    kafka = KafkaBus(
        KafkaOptions(
            bootstrap_servers=request.getfixturevalue("kafka_bootstrap"),
            topic_prefix=request.getfixturevalue("topic_prefix"),
            partitions=3,
        )
    )
    yield Harness(kafka, start=kafka.start)
    await kafka.stop()


async def test_each_event_reaches_the_subscribers_of_its_topic(harness: Harness) -> None:
    users = harness.collect(USERS)
    notifications = harness.collect(NOTIFICATIONS)
    templates = harness.collect(TEMPLATES)
    await harness.start()

    await harness.bus.publish([user(1), sent(1), template(1), user(2, "kim")])

    await until(lambda: len(users) == 2 and len(notifications) == 1 and len(templates) == 1)
    assert {e.event_id for e in users} == {"u-alex-1", "u-kim-2"}
    assert [e.event_id for e in notifications] == ["s-alex-1"]
    assert [e.event_id for e in templates] == ["t-1"]
    assert next(e for e in users if e.event_id == "u-alex-1") == user(1)


async def test_one_users_events_keep_their_order(harness: Harness) -> None:
    users = harness.collect(USERS)
    await harness.start()
    alex = [user(n, "alex") for n in range(200)]
    kim = [user(n, "kim") for n in range(200)]
    interleaved = [event for pair in zip(alex, kim, strict=True) for event in pair]

    for start_at in range(0, 400, 50):
        await harness.bus.publish(interleaved[start_at : start_at + 50])

    await until(lambda: len(users) == 400)
    assert [e for e in users if e.user_id == "alex"] == alex
    assert [e for e in users if e.user_id == "kim"] == kim


async def test_every_group_gets_every_event(harness: Harness) -> None:
    first = harness.collect(USERS, "projector")
    second = harness.collect(USERS, "registry")
    await harness.start()

    await harness.bus.publish([user(n) for n in range(10)])

    await until(lambda: len(first) == 10 and len(second) == 10)
    assert first == second


# What only Kafka has.


@pytest.fixture
async def kafka(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaBus]:
    bus = KafkaBus(
        KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix, partitions=2)
    )
    yield bus
    await bus.stop()


@pytest.mark.integration
async def test_a_failing_handler_is_retried_and_loses_nothing(kafka: KafkaBus) -> None:
    seen: list[str] = []
    failures = 2

    async def flaky(events: Sequence[AnyEvent]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the store is restarting")
        seen.extend(e.event_id for e in events)

    kafka.subscribe([USERS], flaky, group="projector")
    await kafka.start()
    await kafka.publish([user(n) for n in range(5)])

    await until(lambda: len(seen) >= 5)
    assert sorted(set(seen)) == sorted(f"u-alex-{n}" for n in range(5))
    assert failures == 0


@pytest.mark.integration
async def test_with_visible_offsets_wait_for_it_and_a_failed_batch_is_retried_first(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    bus = KafkaBus(KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix))
    seen: list[str] = []
    failures = 1
    shown = asyncio.Event()

    async def flaky(events: Sequence[AnyEvent]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the store is restarting")
        seen.extend(e.event_id for e in events)

    async def visible() -> None:
        await shown.wait()

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    async def committed() -> int:
        tp = TopicPartition(f"{topic_prefix}{USERS}", 0)
        offsets = await admin.list_consumer_group_offsets(
            f"{topic_prefix}projector", partitions=[tp]
        )
        return offsets[tp].offset if tp in offsets else -1

    bus.subscribe([USERS], flaky, group="projector", visible=visible)
    try:
        await bus.start()
        await bus.publish([user(n) for n in range(5)])  # one key: one partition
        await until(lambda: len(seen) >= 5)
        assert sorted(set(seen)) == sorted(f"u-alex-{n}" for n in range(5))
        await asyncio.sleep(0.3)
        assert await committed() == -1  # handled, not yet visible

        stopping = asyncio.create_task(bus.stop())  # a stop waits for the commit
        await asyncio.sleep(0.2)
        assert not stopping.done()
        shown.set()
        await asyncio.wait_for(stopping, 30)
        assert await committed() == 5
    finally:
        await bus.stop()
        await admin.close()


@pytest.mark.integration
async def test_a_restarted_group_resumes_after_what_it_committed(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    options = KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    first_run: list[str] = []

    async def take_first(events: Sequence[AnyEvent]) -> None:
        first_run.extend(e.event_id for e in events)

    bus = KafkaBus(options)
    bus.subscribe([USERS], take_first, group="projector")
    await bus.start()
    await bus.publish([user(n) for n in range(3)])
    await until(lambda: len(first_run) == 3)
    await bus.stop()

    second_run: list[str] = []

    async def take_second(events: Sequence[AnyEvent]) -> None:
        second_run.extend(e.event_id for e in events)

    publisher = KafkaBus(options)
    await publisher.start()
    await publisher.publish([user(n) for n in range(3, 6)])
    await publisher.stop()

    bus = KafkaBus(options)
    bus.subscribe([USERS], take_second, group="projector")
    await bus.start()
    try:
        await until(lambda: len(second_run) == 3)
        await asyncio.sleep(0.5)  # anything replayed would arrive with the first batch
        assert second_run == [f"u-alex-{n}" for n in range(3, 6)]
    finally:
        await bus.stop()


@pytest.mark.integration
async def test_a_record_that_is_not_an_event_goes_to_the_dead_letter_topic(
    kafka: KafkaBus, kafka_bootstrap: str, topic_prefix: str
) -> None:
    seen: list[str] = []

    async def take(events: Sequence[AnyEvent]) -> None:
        seen.extend(e.event_id for e in events)

    kafka.subscribe([USERS], take, group="projector")
    await kafka.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        topic = kafka.topic(USERS)
        await producer.send_and_wait(topic, b'{"event_type": "user.upserted"}', key=b"acme:x")
        await producer.send_and_wait(topic, b"not json", key=b"acme:y")
    finally:
        await producer.stop()
    await kafka.publish([user(1)])
    await until(lambda: seen == ["u-alex-1"])

    consumer = AIOKafkaConsumer(
        dlq(topic), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10_000, max_records=10)
        while sum(len(v) for v in batches.values()) < 2:
            more = await consumer.getmany(timeout_ms=5_000, max_records=10)
            assert more, "the dead-letter records did not arrive"
            for tp, records in more.items():
                batches.setdefault(tp, []).extend(records)
    finally:
        await consumer.stop()
    dead = [record for records in batches.values() for record in records]
    assert sorted(record.value for record in dead) == sorted(
        [b'{"event_type": "user.upserted"}', b"not json"]
    )
    reasons = [dict(record.headers)["x-error"].decode() for record in dead]
    assert all(reason for reason in reasons)


@pytest.mark.integration
async def test_the_bus_reports_lag_batches_failures_and_dead_letters(
    kafka: KafkaBus, kafka_bootstrap: str
) -> None:
    """What the alert rules of deploy/observability read, measured on a real broker."""
    registry = CollectorRegistry()
    registry.register(kafka.metrics)
    group = kafka.topic("projector")
    topic = kafka.topic(USERS)
    seen: list[str] = []
    hold = asyncio.Event()
    failures = 1

    async def take(events: Sequence[AnyEvent]) -> None:
        nonlocal failures
        if failures:
            failures -= 1
            raise ConnectionError("the store is restarting")
        if len(seen) >= 4:
            await hold.wait()  # the later events wait on their partition: lag
        seen.extend(e.event_id for e in events)

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def lag() -> float:
        return sum(
            sample.value
            for metric in registry.collect()
            if metric.name == "insights_consumer_lag"
            for sample in metric.samples
            if sample.labels["group"] == group and sample.labels["topic"] == topic
        )

    kafka.subscribe([USERS], take, group="projector", max_records=4)
    await kafka.start()
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not json", key=b"acme:y", partition=0)
    finally:
        await producer.stop()
    await kafka.publish([user(n) for n in range(4)])
    await until(lambda: len(seen) >= 4)
    await kafka.publish([user(n) for n in range(4, 24)])
    try:
        await until(lambda: lag() >= 10)
        assert value("insights_dead_letters_total", topic=topic) == 1
        assert value("insights_consumer_batch_failures_total", group=group, cause="error") == 1
        assert value("insights_consumer_batch_duration_seconds_count", group=group) >= 1
        assert value("insights_consumer_records_total", group=group, topic=topic) >= 5
    finally:
        hold.set()
    await until(lambda: len(seen) == 24 and lag() == 0)


CONSUMER_THAT_HANGS = """
import asyncio, sys
from insights_common.kafka.bus import KafkaBus, KafkaOptions

async def main() -> None:
    bootstrap, prefix, marker = sys.argv[1:4]
    bus = KafkaBus(KafkaOptions(bootstrap_servers=bootstrap, topic_prefix=prefix))

    async def write_forever(events):
        with open(marker, "a") as out:
            out.write(" ".join(e.event_id for e in events) + "\\n")
        await asyncio.sleep(3600)  # the store never answers; the process is killed here

    bus.subscribe(["insights.users.v1"], write_forever, group="projector")
    await bus.start()
    await asyncio.sleep(3600)

asyncio.run(main())
"""


@pytest.mark.integration
async def test_a_consumer_killed_mid_batch_leaves_the_batch_to_the_next_one(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    options = KafkaOptions(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    publisher = KafkaBus(options)
    await publisher.ensure_topics([publisher.topic(USERS)])
    await publisher.start()
    await publisher.publish([user(n) for n in range(5)])
    await publisher.stop()

    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER_THAT_HANGS)
    marker = tmp_path / "seen.txt"
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), kafka_bootstrap, topic_prefix, str(marker)
    )
    try:
        await until(lambda: marker.exists() and bool(marker.read_text().strip()))
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    taken: list[str] = []

    async def take(events: Sequence[AnyEvent]) -> None:
        taken.extend(e.event_id for e in events)

    bus = KafkaBus(options)
    bus.subscribe([USERS], take, group="projector")
    await bus.start()
    try:
        # The dead member's session must expire before its partitions are handed over.
        await until(lambda: len(taken) >= 5, limit=60)
    finally:
        await bus.stop()
    assert sorted(taken) == sorted(f"u-alex-{n}" for n in range(5))


@pytest.mark.unit
@pytest.mark.parametrize(
    "bus",
    [InProcessBus, lambda: KafkaBus(KafkaOptions("unused:9092"))],
    ids=["in-process", "kafka"],
)
def test_a_topic_name_alone_is_refused_not_taken_letter_by_letter(
    bus: Callable[[], InProcessBus | KafkaBus],
) -> None:
    async def take(events: Sequence[AnyEvent]) -> None:
        pass

    with pytest.raises(TypeError, match="sequence of topics"):
        bus().subscribe(USERS, take, group="projector")
