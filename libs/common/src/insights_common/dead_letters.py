"""Dead letters: what a consumer could not take, kept with why, for a look and a replay.

Both modes keep the same facts about each one: the source topic, the original key and bytes, the
error, the consumer and when it failed. The distributed mode writes them to `<topic>.dlq` (the
facts travel in the headers named here, beside the record's own headers); the embedded mode to the
`dead_letters` table of the shared SQLite file. A replay sends the original bytes back to the
source topic, so the normal path takes them again (ingest's dedup and the projections'
idempotency make a second replay harmless), and marks them replayed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from insights_contracts import AnyEvent
from insights_contracts.topics import CANONICAL, PLATFORM_RAW

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


class IsolatingPublisher(Protocol):
    async def publish_isolated(self, events: Sequence[AnyEvent]) -> list[FailedEvent]:
        """Publish independent events; answer those that went to the dead-letter table."""
        ...
