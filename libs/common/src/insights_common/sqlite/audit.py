"""The audit trail in the SQLite file, append-only; the chain rule is `insights_common.audit`."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from insights_common.audit import (
    AuditEntry,
    AuditFilter,
    SpoolMark,
    chain_batch,
    stored_entry,
    stored_row,
    where_sql,
)
from insights_common.clock import sortable
from insights_common.sqlite.database import SqliteDatabase

SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    app_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT,
    address TEXT,
    reason TEXT,
    detail TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (app_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS audit_log_user ON audit_log (app_id, user_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TABLE IF NOT EXISTS audit_spool (
    spool TEXT PRIMARY KEY,
    upto INTEGER NOT NULL
) WITHOUT ROWID;
"""


_COLUMNS = "app_id, seq, at, actor, action, user_id, address, reason, detail, prev_hash, hash"


class SqliteAuditLog:
    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        db.migrate(SQLITE_SCHEMA)

    async def append(self, entry: AuditEntry) -> AuditEntry:
        return (await self.append_many([entry]))[0]

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        def insert(conn: sqlite3.Connection) -> list[AuditEntry]:
            last = {}
            for app_id in {entry.app_id for entry in entries}:
                row = conn.execute(
                    "SELECT seq, hash FROM audit_log WHERE app_id = ? ORDER BY seq DESC LIMIT 1",
                    (app_id,),
                ).fetchone()
                if row is not None:
                    last[app_id] = (row["seq"], row["hash"])
            stored = chain_batch(entries, last)
            conn.executemany(
                f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                [stored_row(e, sortable) for e in stored],
            )
            conn.executemany(
                "INSERT INTO audit_spool (spool, upto) VALUES (?, ?)"
                " ON CONFLICT (spool) DO UPDATE SET upto = excluded.upto",
                [(mark.spool, mark.upto) for mark in spooled],
            )
            return stored

        return await self._db.write(insert)

    async def spooled(self, spool: str) -> int:
        def select(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT upto FROM audit_spool WHERE spool = ?", (spool,)).fetchone()
            return 0 if row is None else int(row["upto"])

        return await self._db.read(select)

    async def forget_spool(self, spool: str) -> None:
        await self._db.write(
            lambda conn: conn.execute("DELETE FROM audit_spool WHERE spool = ?", (spool,))
        )

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        conditions, values = where_sql(where, mark=lambda _: "?", moment=sortable)
        if before_seq is not None:
            conditions += " AND seq < ?"
            values.append(before_seq)

        def select(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM audit_log WHERE app_id = ?{conditions}"  # noqa: S608
                " ORDER BY seq DESC LIMIT ?",
                (app_id, *values, limit),
            )
            return [stored_entry(row, datetime.fromisoformat(row["at"])) for row in rows]

        return await self._db.read(select)

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        def select(conn: sqlite3.Connection) -> list[AuditEntry]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM audit_log WHERE app_id = ? AND seq >= ?"  # noqa: S608
                " ORDER BY seq LIMIT ?",
                (app_id, from_seq, limit),
            )
            return [stored_entry(row, datetime.fromisoformat(row["at"])) for row in rows]

        return await self._db.read(select)
