"""The DeadLetterBox port: one suite, run on both adapters.

- embedded: the `dead_letters` table of the SQLite file, replayed through the in-process bus
  (`EmbeddedDeadLetters`);
- distributed: the `<topic>.dlq` topics of a real Kafka, replayed to their topics and remembered
  in a consumer group (`KafkaDeadLetters`).

Each adapter comes with a consumer that fails on every event until it is fixed, as a projection
with a bug does: the letters are made by the bus's own dead-lettering, not written by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest

from conftest import until
from insights_common.bus import InProcessBus
from insights_common.dead_letters import DeadLetterBox
from insights_common.kafka.bus import KafkaBus, KafkaOptions
from insights_common.kafka.dead_letters import KafkaDeadLetters
from insights_common.sqlite.database import SqliteDatabase
from insights_common.sqlite.dead_letters import EmbeddedDeadLetters, SqliteDeadLetters
from insights_contracts import AnyEvent, TemplateUpserted, UserUpserted, event_adapter
from insights_contracts.events import TemplateDefinition
from insights_contracts.topics import TEMPLATES, USERS

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
CONSUMER = "projector"


def user(n: int) -> UserUpserted:
    return UserUpserted(
        event_id=f"u-{n}",
        app_id="acme",
        occurred_at=T0 + timedelta(seconds=n),
        user_id=f"user-{n}",
        nickname=f"nick {n}",
        source="platform",
    )


def template(n: int) -> TemplateUpserted:
    return TemplateUpserted(
        event_id=f"t-{n}",
        app_id="acme",
        occurred_at=T0 + timedelta(seconds=n),
        template=TemplateDefinition(key=f"welcome-{n}", name=f"Welcome {n}", version="1"),
    )


class Consumer:
    """A consumer that refuses every event until `fixed`, then keeps the ids it took."""

    def __init__(self) -> None:
        self.fixed = False
        self.taken: list[str] = []

    async def handle(self, events: Sequence[AnyEvent]) -> None:
        if not self.fixed:
            raise ValueError("cannot fold these events yet")
        self.taken.extend(event.event_id for event in events)


class Harness(Protocol):
    box: DeadLetterBox
    consumer: Consumer

    async def fail(self, events: Sequence[AnyEvent]) -> None:
        """Publish the events while the consumer fails on them; back once they are letters."""
        ...


class Embedded:
    def __init__(self, db: SqliteDatabase) -> None:
        self.consumer = Consumer()
        store = SqliteDeadLetters(db)
        self.bus = InProcessBus(dead_letters=store)
        self.bus.subscribe([USERS, TEMPLATES], self.consumer.handle, group=CONSUMER)
        self.box: DeadLetterBox = EmbeddedDeadLetters(store, self.bus)

    async def fail(self, events: Sequence[AnyEvent]) -> None:
        assert len(await self.bus.publish_isolated(events)) == len(events)


class OnKafka:
    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.consumer = Consumer()
        self.bus = KafkaBus(KafkaOptions(bootstrap_servers=bootstrap, topic_prefix=prefix))
        self.bus.subscribe(
            [USERS, TEMPLATES], self.consumer.handle, group=CONSUMER, healthy=self.up
        )
        self.box = KafkaDeadLetters(bootstrap_servers=bootstrap, topic_prefix=prefix)
        self.letters = 0

    async def up(self) -> bool:
        return True  # what the consumer writes to answers: its failures are the events' own

    async def fail(self, events: Sequence[AnyEvent]) -> None:
        await self.bus.publish(events)
        self.letters += len(events)
        total = 0

        async def count() -> None:
            nonlocal total
            total = (await self.box.listing(topic=None, limit=1)).total

        deadline = asyncio.get_running_loop().time() + 60
        while total < self.letters:
            assert asyncio.get_running_loop().time() < deadline, "no dead letters in time"
            await asyncio.sleep(0.2)
            await count()


@pytest.fixture(
    params=[
        pytest.param("embedded", marks=pytest.mark.unit),
        pytest.param("kafka", marks=pytest.mark.integration),
    ]
)
async def harness(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Harness]:
    if request.param == "embedded":
        db = SqliteDatabase(tmp_path / "letters.db")
        try:
            yield Embedded(db)
        finally:
            db.close()
        return
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    prefix: str = request.getfixturevalue("topic_prefix")
    on_kafka = OnKafka(bootstrap, prefix)
    await on_kafka.bus.start()
    try:
        yield on_kafka
    finally:
        await on_kafka.bus.stop()


async def test_an_empty_box_lists_nothing_and_replays_nothing(harness: Harness) -> None:
    listing = await harness.box.listing(topic=None, limit=10)
    assert (listing.letters, listing.total, listing.pending) == ([], 0, 0)
    done = await harness.box.replay(topic=None, ids=None)
    assert (done.replayed, done.unknown) == ([], [])


async def test_letters_keep_the_event_its_topic_the_consumer_and_why(harness: Harness) -> None:
    await harness.fail([user(1)])
    [letter] = (await harness.box.listing(topic=None, limit=10)).letters
    assert letter.topic == USERS
    assert UserUpserted.model_validate_json(letter.value) == user(1)
    assert letter.key == b"acme:user-1"
    assert letter.consumer.endswith(CONSUMER)
    assert "cannot fold these events yet" in letter.error
    assert letter.failed_at  # RFC 3339, from the clock of whoever dead-lettered it
    assert not letter.replayed


async def test_listing_counts_all_shows_the_newest_oldest_first_and_filters_by_topic(
    harness: Harness,
) -> None:
    await harness.fail([user(1), user(2)])
    await harness.fail([template(3)])
    await harness.fail([user(4)])
    everything = await harness.box.listing(topic=None, limit=10)
    assert (everything.total, everything.pending) == (4, 4)
    ids = [event_id(letter.value) for letter in everything.letters]
    assert sorted(ids) == ["t-3", "u-1", "u-2", "u-4"]
    assert ids[-1] == "u-4"
    users = await harness.box.listing(topic=USERS, limit=10)
    assert (users.total, users.pending) == (3, 3)
    assert {letter.topic for letter in users.letters} == {USERS}
    newest = await harness.box.listing(topic=USERS, limit=1)
    assert [event_id(letter.value) for letter in newest.letters] == ["u-4"]
    assert newest.total == 3


async def test_a_replay_by_id_sends_that_letter_back_once_and_names_the_unknown_ids(
    harness: Harness,
) -> None:
    await harness.fail([user(1), user(2), user(3)])
    listing = await harness.box.listing(topic=None, limit=10)
    second = next(letter for letter in listing.letters if event_id(letter.value) == "u-2")
    harness.consumer.fixed = True

    done = await harness.box.replay(topic=None, ids=[second.id, "nonsense"])

    assert [letter.id for letter in done.replayed] == [second.id]
    assert done.unknown == ["nonsense"]
    await until(lambda: harness.consumer.taken)
    listing = await harness.box.listing(topic=None, limit=10)
    assert (listing.total, listing.pending) == (3, 2)
    assert [event_id(x.value) for x in listing.letters if x.replayed] == ["u-2"]
    assert harness.consumer.taken == ["u-2"]


async def test_replaying_everything_takes_only_the_pending_ones_of_the_topic(
    harness: Harness,
) -> None:
    await harness.fail([user(1), user(2)])
    await harness.fail([template(3)])
    harness.consumer.fixed = True
    # by its event: the listing is in the order of the letters' failure times, which two
    # letters of one batch can share (then their ids, partition first, decide)
    listing = await harness.box.listing(topic=USERS, limit=10)
    first = next(letter for letter in listing.letters if event_id(letter.value) == "u-1")
    await harness.box.replay(topic=USERS, ids=[first.id])
    await until(lambda: len(harness.consumer.taken) == 1)

    users = await harness.box.replay(topic=USERS, ids=None)

    assert [event_id(letter.value) for letter in users.replayed] == ["u-2"]
    await until(lambda: len(harness.consumer.taken) == 2)
    assert (await harness.box.listing(topic=TEMPLATES, limit=10)).pending == 1
    rest = await harness.box.replay(topic=None, ids=None)
    assert [event_id(letter.value) for letter in rest.replayed] == ["t-3"]
    await until(lambda: len(harness.consumer.taken) == 3)
    assert sorted(harness.consumer.taken) == ["t-3", "u-1", "u-2"]
    assert (await harness.box.listing(topic=None, limit=10)).pending == 0
    assert (await harness.box.replay(topic=None, ids=None)).replayed == []


def event_id(value: bytes) -> str:
    return event_adapter.validate_json(value).event_id
