"""The audit trail in PostgreSQL, for the distributed mode: partitioned by month, so years of it
stay cheap to keep and an old month can be archived whole.

Appends of one app are serialized by a transaction-scoped advisory lock, so two processes never
chain two entries to the same predecessor. Updates and deletes are refused by a trigger; the
chain (`audit.verify`) catches what someone with the rights to drop it changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import asyncpg
import orjson

from insights_common.audit import (
    AuditEntry,
    AuditFilter,
    SpoolMark,
    chain_batch,
    stored_entry,
    where_sql,
)
from insights_common.postgres.database import PostgresDatabase, quote_ident

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
    # An app's entries in one round trip: under the app's lock, the entries (chained by the
    # caller after the head it believed last) are inserted only if that head is still the last;
    # otherwise nothing is written and the actual head is answered for the caller to chain again.
    # Each statement of a function sees what committed before it, so the head is read after the
    # lock is held.
    """
    CREATE FUNCTION audit_log_append(
        p_app text, p_after_seq bigint, p_after_hash text,
        p_seq bigint[], p_at timestamptz[], p_actor text[], p_action text[], p_user_id text[],
        p_address text[], p_reason text[], p_detail text[], p_prev_hash text[], p_hash text[]
    ) RETURNS TABLE (written boolean, head_seq bigint, head_hash text)
    LANGUAGE plpgsql AS $$
    DECLARE
        last_seq bigint;
        last_hash text;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || p_app, 0));
        SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a
            WHERE a.app_id = p_app ORDER BY a.seq DESC LIMIT 1;
        IF last_seq IS DISTINCT FROM p_after_seq OR last_hash IS DISTINCT FROM p_after_hash THEN
            RETURN QUERY SELECT false, last_seq, last_hash;
            RETURN;
        END IF;
        INSERT INTO audit_log (app_id, seq, at, actor, action, user_id, address, reason, detail,
                               prev_hash, hash)
            SELECT p_app, e.* FROM unnest(p_seq, p_at, p_actor, p_action, p_user_id, p_address,
                                          p_reason, p_detail, p_prev_hash, p_hash) AS e;
        RETURN QUERY SELECT true, p_seq[array_upper(p_seq, 1)], p_hash[array_upper(p_hash, 1)];
    END $$;
    """,
    # The same append with the entries as one JSON array of rows: one parameter to encode instead
    # of ten arrays, which halves what a round trip costs the appending process. The function
    # above stays for processes of the previous version during a rolling upgrade.
    """
    CREATE FUNCTION audit_log_append_rows(
        p_app text, p_after_seq bigint, p_after_hash text, p_rows jsonb
    ) RETURNS TABLE (written boolean, head_seq bigint, head_hash text)
    LANGUAGE plpgsql AS $$
    DECLARE
        last_seq bigint;
        last_hash text;
    BEGIN
        PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || p_app, 0));
        SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a
            WHERE a.app_id = p_app ORDER BY a.seq DESC LIMIT 1;
        IF last_seq IS DISTINCT FROM p_after_seq OR last_hash IS DISTINCT FROM p_after_hash THEN
            RETURN QUERY SELECT false, last_seq, last_hash;
            RETURN;
        END IF;
        INSERT INTO audit_log (app_id, seq, at, actor, action, user_id, address, reason, detail,
                               prev_hash, hash)
            SELECT p_app, e.seq, e.at, e.actor, e.action, e.user_id, e.address, e.reason,
                   e.detail, e.prev_hash, e.hash
            FROM jsonb_to_recordset(p_rows) AS e(
                seq bigint, at timestamptz, actor text, action text, user_id text,
                address text, reason text, detail text, prev_hash text, hash text);
        RETURN QUERY SELECT true, (p_rows -> -1 ->> 'seq')::bigint, p_rows -> -1 ->> 'hash';
    END $$;
    """,
    # How far the trail took each process's spool of entries (insights_common.audit_spool),
    # written in the transaction that took them.
    """
    CREATE TABLE audit_spool (spool text PRIMARY KEY, upto bigint NOT NULL);
    """,
    # Every app's entries of a group and how far it took each spool, in one statement (so one
    # round trip and one transaction, whatever the group holds). Each app's lock is taken and
    # its head checked, in the order given, before anything is written: when one head is not
    # the one the caller chained after, nothing is written and the actual heads are answered.
    # p_groups: [{app, after_seq, after_hash, rows: [[seq, at, actor, action, user_id,
    # address, reason, detail, prev_hash, hash], ...]}]; p_marks: [[spool, upto], ...].
    """
    CREATE FUNCTION audit_log_append_groups(p_groups jsonb, p_marks jsonb)
    RETURNS TABLE (app text, written boolean, head_seq bigint, head_hash text)
    LANGUAGE plpgsql AS $$
    DECLARE
        g jsonb;
        last_seq bigint;
        last_hash text;
        stale boolean := false;
    BEGIN
        FOR g IN SELECT value FROM jsonb_array_elements(p_groups) LOOP
            PERFORM pg_advisory_xact_lock(hashtextextended('audit:' || (g ->> 'app'), 0));
            SELECT a.seq, a.hash INTO last_seq, last_hash FROM audit_log a
                WHERE a.app_id = g ->> 'app' ORDER BY a.seq DESC LIMIT 1;
            IF last_seq IS DISTINCT FROM (g ->> 'after_seq')::bigint
               OR last_hash IS DISTINCT FROM g ->> 'after_hash' THEN
                stale := true;
                app := g ->> 'app';
                written := false;
                head_seq := last_seq;
                head_hash := last_hash;
                RETURN NEXT;
            END IF;
        END LOOP;
        IF stale THEN
            RETURN;
        END IF;
        INSERT INTO audit_log (app_id, seq, at, actor, action, user_id, address, reason, detail,
                               prev_hash, hash)
            SELECT g2.value ->> 'app', (r.value ->> 0)::bigint, (r.value ->> 1)::timestamptz,
                   r.value ->> 2, r.value ->> 3, r.value ->> 4, r.value ->> 5, r.value ->> 6,
                   r.value ->> 7, r.value ->> 8, r.value ->> 9
            FROM jsonb_array_elements(p_groups) AS g2,
                 jsonb_array_elements(g2.value -> 'rows') AS r;
        INSERT INTO audit_spool (spool, upto)
            SELECT m.value ->> 0, (m.value ->> 1)::bigint FROM jsonb_array_elements(p_marks) AS m
            ON CONFLICT (spool) DO UPDATE SET upto = excluded.upto;
        RETURN QUERY SELECT g3.value ->> 'app', true, (g3.value -> 'rows' -> -1 ->> 0)::bigint,
                            g3.value -> 'rows' -> -1 ->> 9
            FROM jsonb_array_elements(p_groups) AS g3;
    END $$;
    """,
)
_NAMES = (
    "app_id",
    "seq",
    "at",
    "actor",
    "action",
    "user_id",
    "address",
    "reason",
    "detail",
    "prev_hash",
    "hash",
)
_COLUMNS = ", ".join(_NAMES)

Head = tuple[int, str] | None
"""An app's last entry, its number and hash; None when it has none."""


def _known(heads: dict[str, Head]) -> dict[str, tuple[int, str]]:
    return {app_id: head for app_id, head in heads.items() if head is not None}


def _groups(chained: dict[str, list[AuditEntry]], heads: dict[str, Head]) -> str:
    """Each app's entries, chained after its head in `heads`, as `audit_log_append_groups`
    takes them; each instant with its microseconds, as timestamptz keeps it."""
    groups = []
    for app_id, entries in chained.items():
        head = heads[app_id]
        rows = [
            [e.seq, e.at, e.actor, e.action, e.user_id, e.address, e.reason, e.detail]
            + [e.prev_hash, e.hash]
            for e in entries
        ]
        groups.append(
            {
                "app": app_id,
                "after_seq": None if head is None else head[0],
                "after_hash": None if head is None else head[1],
                "rows": rows,
            }
        )
    return orjson.dumps(groups).decode()


def _one_per_month(instants: Iterable[datetime]) -> list[datetime]:
    """One of the instants of each UTC month they fall in."""
    months: dict[tuple[int, int], datetime] = {}
    for at in instants:
        utc = at.astimezone(UTC)
        months.setdefault((utc.year, utc.month), utc)
    return list(months.values())


def month_bounds(at: datetime) -> tuple[datetime, datetime]:
    start = at.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


class PostgresAuditLog:
    """Implements `insights_common.audit.AuditLog`. Call `await log.migrate()` once at start."""

    def __init__(self, db: PostgresDatabase) -> None:
        self._db = db
        self._writer = db.dedicated()
        """Appends go one at a time (`GroupedAuditLog` groups them): on a connection of their own
        they pay no pool reset, a round trip and a transaction each."""
        self._months: set[datetime] = set()
        self._heads: dict[str, Head] = {}
        """Each app's last entry as this process last wrote or saw it (None: none yet)."""

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

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        """Every app's entries, and how far they take each spool of `spooled`, in one round trip
        while this process's idea of each app's last entry is right (one query process, or one
        that wrote last); two when another process wrote since. Apps in one order, so two
        groups never wait on each other."""
        for at in _one_per_month(entry.at for entry in entries):
            await self._partition(at)
        by_app: dict[str, list[int]] = {}
        for index, entry in enumerate(entries):
            by_app.setdefault(entry.app_id, []).append(index)
        apps = sorted(by_app)
        heads = {app_id: self._heads.get(app_id) for app_id in apps}
        marks = orjson.dumps([[mark.spool, mark.upto] for mark in spooled]).decode()
        async with self._writer.use() as conn:
            while True:
                chained = {
                    app_id: chain_batch([entries[i] for i in by_app[app_id]], _known(heads))
                    for app_id in apps
                }
                answers = await conn.fetch(
                    "SELECT app, written, head_seq, head_hash"
                    " FROM audit_log_append_groups($1::jsonb, $2::jsonb)",
                    _groups(chained, heads),
                    marks,
                )
                for answer in answers:
                    head = answer["head_seq"], answer["head_hash"]
                    heads[answer["app"]] = self._heads[answer["app"]] = (
                        None if answer["head_seq"] is None else head
                    )
                if all(answer["written"] for answer in answers):
                    break
                # another process wrote since: chain after its last entries and try again
        stored: list[AuditEntry] = list(entries)
        for app_id in apps:
            for index, entry in zip(by_app[app_id], chained[app_id], strict=True):
                stored[index] = entry
        return stored

    async def spooled(self, spool: str) -> int:
        async with self._db.acquire() as conn:
            upto = await conn.fetchval("SELECT upto FROM audit_spool WHERE spool = $1", spool)
        return 0 if upto is None else int(upto)

    async def forget_spool(self, spool: str) -> None:
        async with self._db.acquire() as conn:
            await conn.execute("DELETE FROM audit_spool WHERE spool = $1", spool)

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
        return [stored_entry(row, row["at"]) for row in rows]

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        async with self._db.acquire() as conn:
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM audit_log WHERE app_id = $1 AND seq >= $2"  # noqa: S608
                " ORDER BY seq LIMIT $3",
                app_id,
                from_seq,
                limit,
            )
        return [stored_entry(row, row["at"]) for row in rows]
