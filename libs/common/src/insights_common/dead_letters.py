"""Dead letters: what a consumer could not take, kept with why, for a look and a replay.

Both modes keep the same facts about each one: the source topic, the original key and bytes, the
error, the consumer and when it failed. The distributed mode writes them to `<topic>.dlq` (the
facts travel in the headers named here, beside the record's own headers); the embedded mode to the
`dead_letters` table of the shared SQLite file. A replay sends the original bytes back to the
source topic, so the normal path takes them again (ingest's dedup and the projections'
idempotency make a second replay harmless), and marks them replayed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from pydantic import ValidationError

from insights_common.clock import rfc3339 as rfc3339
from insights_common.clock import utc_now as utc_now
from insights_common.sqlite import SqliteDatabase
from insights_contracts import AnyEvent, event_adapter
from insights_contracts.topics import CANONICAL, PLATFORM_RAW

log = logging.getLogger(__name__)

ERROR_HEADER = "x-error"
CONSUMER_HEADER = "x-consumer"
FAILED_AT_HEADER = "x-failed-at"
SOURCE_TOPIC_HEADER = "x-source-topic"
SOURCE_PARTITION_HEADER = "x-source-partition"
SOURCE_OFFSET_HEADER = "x-source-offset"
# Set when one event of a record holding several failed: its position in the record.
SOURCE_INDEX_HEADER = "x-source-index"
DLQ_HEADERS = frozenset(
    {
        ERROR_HEADER,
        CONSUMER_HEADER,
        FAILED_AT_HEADER,
        SOURCE_TOPIC_HEADER,
        SOURCE_PARTITION_HEADER,
        SOURCE_OFFSET_HEADER,
        SOURCE_INDEX_HEADER,
    }
)

MAX_ERROR_CHARS = 500

# The topics whose consumers dead-letter what they cannot take.
DLQ_SOURCES = (PLATFORM_RAW, *CANONICAL)
KEPT_CALLBACKS = "sources"
"""Where `insights dlq` lists the platforms' callbacks kept until a user with their phone number
is imported (notification-ingest's table, not a topic)."""
KEPT_PREFIX = "kept:"
"""A kept callback's id as listed: `kept:<n>`."""
LISTED_SOURCES = (*DLQ_SOURCES, KEPT_CALLBACKS)


def source_topic(name: str) -> str:
    """The source a user means by `name`: a topic (its `.dlq` topic is accepted too) or the
    kept callbacks."""
    source = name.removesuffix(".dlq")
    if source not in LISTED_SOURCES:
        raise ValueError(f"unknown topic '{name}'; use one of: {', '.join(LISTED_SOURCES)}")
    return source


def error_text(error: BaseException) -> str:
    """One line naming the exception and its message, short enough for a header."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text[:MAX_ERROR_CHARS]


def preview(value: bytes, width: int = 60) -> str:
    """The start of the bytes as one printable line."""
    text = value[: width * 4].decode("utf-8", "replace")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True, slots=True)
class FailedEvent:
    """An event a subscriber of the in-process bus could not apply."""

    topic: str
    key: bytes | None
    value: bytes
    error: str
    consumer: str
    failed_at: datetime


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One dead letter as `insights dlq list` shows it, from either mode.

    `id` is the row id (embedded) or `<topic>:<partition>:<offset>` of the DLQ record (Kafka).
    """

    id: str
    topic: str
    key: bytes | None
    value: bytes
    error: str
    consumer: str
    failed_at: str
    replayed: bool
    partition: int | None = None
    offset: int | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_index: int | None = None


@dataclass(frozen=True, slots=True)
class Listing:
    """The latest dead letters (oldest first) and the counts of all of them."""

    letters: list[DeadLetter]
    total: int
    pending: int


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay did. `failed_again` is known only where the replay is applied at once;
    `still_kept`: kept callbacks whose number still names nobody, so they stay kept."""

    replayed: list[DeadLetter]
    unknown: list[str]
    failed_again: int | None = None
    still_kept: int = 0


class DeadLetterBox(Protocol):
    """The dead letters of one deployment, embedded or distributed."""

    async def listing(self, *, topic: str | None, limit: int) -> Listing: ...

    async def replay(self, *, topic: str | None, ids: Sequence[str] | None) -> Replay:
        """Replay the letters with these ids, or every pending one when ids is None."""
        ...


class CombinedDeadLetters:
    """The dead letters of the topics and the platforms' kept callbacks, listed and replayed as
    one: `--topic sources` and ids `kept:<n>` are the kept callbacks, any other topic or id the
    topics' dead letters."""

    def __init__(self, letters: DeadLetterBox, kept: DeadLetterBox) -> None:
        self._letters = letters
        self._kept = kept

    async def listing(self, *, topic: str | None, limit: int) -> Listing:
        if topic == KEPT_CALLBACKS:
            return await self._kept.listing(topic=None, limit=limit)
        letters = await self._letters.listing(topic=topic, limit=limit)
        if topic is not None:
            return letters
        kept = await self._kept.listing(topic=None, limit=limit)
        both = sorted([*letters.letters, *kept.letters], key=lambda letter: letter.failed_at)
        return Listing(
            letters=both[-limit:],
            total=letters.total + kept.total,
            pending=letters.pending + kept.pending,
        )

    async def replay(self, *, topic: str | None, ids: Sequence[str] | None) -> Replay:
        if ids is None:
            letters = (
                Replay([], [])
                if topic == KEPT_CALLBACKS
                else await self._letters.replay(topic=topic, ids=None)
            )
            kept = (
                await self._kept.replay(topic=None, ids=None)
                if topic in (None, KEPT_CALLBACKS)
                else Replay([], [])
            )
        else:
            kept_ids = [i for i in ids if i.startswith(KEPT_PREFIX)]
            other = [i for i in ids if not i.startswith(KEPT_PREFIX)]
            letters = (
                await self._letters.replay(topic=topic, ids=other)
                if other and topic != KEPT_CALLBACKS
                else Replay([], other)
            )
            kept = (
                await self._kept.replay(topic=None, ids=kept_ids)
                if kept_ids and topic in (None, KEPT_CALLBACKS)
                else Replay([], kept_ids)
            )
        return Replay(
            replayed=[*letters.replayed, *kept.replayed],
            unknown=[*letters.unknown, *kept.unknown],
            failed_again=letters.failed_again,
            still_kept=letters.still_kept + kept.still_kept,
        )


SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    key BLOB,
    value BLOB NOT NULL,
    error TEXT NOT NULL,
    consumer TEXT NOT NULL,
    failed_at TEXT NOT NULL,
    replayed_at TEXT
);
CREATE INDEX IF NOT EXISTS dead_letters_pending ON dead_letters (topic, replayed_at, id);
"""


def _letter(row: sqlite3.Row) -> DeadLetter:
    return DeadLetter(
        id=str(row["id"]),
        topic=str(row["topic"]),
        key=row["key"],
        value=bytes(row["value"]),
        error=str(row["error"]),
        consumer=str(row["consumer"]),
        failed_at=str(row["failed_at"]),
        replayed=row["replayed_at"] is not None,
    )


class SqliteDeadLetters:
    """The embedded mode's dead letters, in the shared SQLite file."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.migrate(SCHEMA)

    async def add(self, failed: Sequence[FailedEvent]) -> None:
        rows = [
            (f.topic, f.key, f.value, f.error, f.consumer, rfc3339(f.failed_at)) for f in failed
        ]

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO dead_letters (topic, key, value, error, consumer, failed_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

        if rows:
            await self._db.write(insert)

    async def listing(self, *, topic: str | None, limit: int) -> Listing:
        def select(conn: sqlite3.Connection) -> Listing:
            rows = conn.execute(
                "SELECT * FROM dead_letters WHERE (:topic IS NULL OR topic = :topic)"
                " ORDER BY id DESC LIMIT :limit",
                {"topic": topic, "limit": limit},
            ).fetchall()
            total, pending = conn.execute(
                "SELECT count(*), coalesce(sum(replayed_at IS NULL), 0) FROM dead_letters"
                " WHERE (:topic IS NULL OR topic = :topic)",
                {"topic": topic},
            ).fetchone()
            return Listing([_letter(row) for row in reversed(rows)], int(total), int(pending))

        return await self._db.read(select)

    async def select(
        self, *, topic: str | None, ids: Sequence[str] | None
    ) -> tuple[list[DeadLetter], list[str]]:
        """The letters with these ids (any state), or all pending ones; and the ids not found."""

        def run(conn: sqlite3.Connection) -> tuple[list[DeadLetter], list[str]]:
            if ids is None:
                rows = conn.execute(
                    "SELECT * FROM dead_letters WHERE replayed_at IS NULL"
                    " AND (:topic IS NULL OR topic = :topic) ORDER BY id",
                    {"topic": topic},
                ).fetchall()
                return [_letter(row) for row in rows], []
            found: dict[str, DeadLetter] = {}
            for wanted in ids:
                row = conn.execute(
                    "SELECT * FROM dead_letters WHERE id = ?",
                    (int(wanted) if wanted.isdigit() else -1,),
                ).fetchone()
                if row is not None and (topic is None or row["topic"] == topic):
                    found[wanted] = _letter(row)
            letters = sorted(found.values(), key=lambda letter: int(letter.id))
            return letters, [wanted for wanted in ids if wanted not in found]

        return await self._db.read(run)

    async def mark_replayed(self, ids: Sequence[str], *, at: datetime) -> None:
        stamp = rfc3339(at)

        def update(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE dead_letters SET replayed_at = ? WHERE id = ?",
                [(stamp, int(letter_id)) for letter_id in ids],
            )

        if ids:
            await self._db.write(update)


class IsolatingPublisher(Protocol):
    async def publish_isolated(self, events: Sequence[AnyEvent]) -> list[FailedEvent]:
        """Publish independent events; answer those that went to the dead-letter table."""
        ...


@dataclass
class EmbeddedDeadLetters:
    """The embedded mode's dead letters: a table of the SQLite file, replayed through the bus.

    A replay publishes the events again to every subscriber of their topics, as Kafka does; one
    that fails again is stored as a new dead letter.
    """

    store: SqliteDeadLetters
    bus: IsolatingPublisher

    async def listing(self, *, topic: str | None, limit: int) -> Listing:
        return await self.store.listing(topic=topic, limit=limit)

    async def replay(self, *, topic: str | None, ids: Sequence[str] | None) -> Replay:
        letters, unknown = await self.store.select(topic=topic, ids=ids)
        events: list[AnyEvent] = []
        taken: list[DeadLetter] = []
        for letter in letters:
            try:
                events.append(event_adapter.validate_json(letter.value))
            except ValidationError:
                log.exception("dead letter %s is no longer a contract event", letter.id)
            else:
                taken.append(letter)
        failed = await self.bus.publish_isolated(events) if events else []
        await self.store.mark_replayed([letter.id for letter in taken], at=utc_now())
        return Replay(taken, unknown, failed_again=len(failed) + len(letters) - len(taken))
