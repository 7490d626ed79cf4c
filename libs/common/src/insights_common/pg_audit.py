"""The audit trail in PostgreSQL, for the distributed mode: partitioned by month, so years of it
stay cheap to keep and an old month can be archived whole.

Appends of one app are serialized by a transaction-scoped advisory lock, so two processes never
chain two entries to the same predecessor. Updates and deletes are refused by a trigger; the
chain (`audit.verify`) catches what someone with the rights to drop it changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from insights_common.audit import AuditEntry, AuditFilter, chain_batch, stored_row, where_sql
from insights_common.postgres import PostgresDatabase, quote_ident

COMPONENT = "audit"

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE audit_log (
        app_id text NOT NULL,
        seq bigint NOT NULL,
        at timestamptz NOT NULL,
        actor text NOT NULL,
        action text NOT NULL,
        user_id text,
        address text,
        reason text,
        detail text,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        PRIMARY KEY (app_id, seq, at)
    ) PARTITION BY RANGE (at);
    CREATE INDEX audit_log_user ON audit_log (app_id, user_id, seq);
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
    CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    """,
)
_COLUMNS = "app_id, seq, at, actor, action, user_id, address, reason, detail, prev_hash, hash"


def month_bounds(at: datetime) -> tuple[datetime, datetime]:
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def _entry(row: asyncpg.Record) -> AuditEntry:
    return AuditEntry(
        at=row["at"],
        app_id=row["app_id"],
        actor=row["actor"],
        action=row["action"],
        user_id=row["user_id"],
        address=row["address"],
        reason=row["reason"],
        detail=row["detail"],
        seq=row["seq"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


class PostgresAuditLog:
    """Implements `insights_common.audit.AuditLog`. Call `await log.migrate()` once at start."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._months: set[datetime] = set()

    async def migrate(self) -> None:
        await self._db.migrate(COMPONENT, MIGRATIONS)

    async def _partition(self, at: datetime) -> None:
        start, end = month_bounds(at)
        if start in self._months:
            return
        name = quote_ident(f"audit_log_{start:%Y_%m}")
        async with self._db.acquire() as conn:
            try:
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF audit_log"
                    f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
                )
            except (asyncpg.DuplicateTableError, asyncpg.UniqueViolationError):
                pass  # another process made it at the same moment
        self._months.add(start)

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return (await self.append_many([entry]))[0]

    async def append_many(self, entries: Sequence[AuditEntry]) -> list[AuditEntry]:
        for moment in {month_bounds(entry.at)[0] for entry in entries}:
            await self._partition(moment)
        apps = sorted({entry.app_id for entry in entries})
        async with self._db.transaction() as conn:
            last: dict[str, tuple[int, str]] = {}
            for app_id in apps:  # in one order, so two batches never wait on each other
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended('audit:' || $1, 0))", app_id
                )
                row = await conn.fetchrow(
                    "SELECT seq, hash FROM audit_log WHERE app_id = $1 ORDER BY seq DESC LIMIT 1",
                    app_id,
                )
                if row is not None:
                    last[app_id] = (row["seq"], row["hash"])
            stored = chain_batch(entries, last)
            await conn.executemany(
                f"INSERT INTO audit_log ({_COLUMNS})"  # noqa: S608 - fixed column names
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                [stored_row(e, lambda at: at) for e in stored],
            )
        return stored

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        conditions, values = where_sql(where, mark=lambda n: f"${n + 1}")
        if before_seq is not None:
            values.append(before_seq)
            conditions += f" AND seq < ${len(values) + 1}"
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE app_id = $1{conditions}"  # noqa: S608
                f" ORDER BY seq DESC LIMIT ${len(values) + 2}",
                app_id,
                *values,
                limit,
            )
        return [_entry(row) for row in rows]

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE app_id = $1 AND seq >= $2"  # noqa: S608
                " ORDER BY seq LIMIT $3",
                app_id,
                from_seq,
                limit,
            )
        return [_entry(row) for row in rows]
