"""The embedded mode's dead letters: a table of the SQLite file, replayed through the bus."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from insights_common.clock import rfc3339, utc_now
from insights_common.dead_letters import (
    DeadLetter,
    FailedEvent,
    IsolatingPublisher,
    Listing,
    Replay,
)
from insights_common.sqlite.database import SqliteDatabase
from insights_contracts import AnyEvent, event_adapter

log = logging.getLogger(__name__)

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
