"""The SQLite database's write-ahead log is copied into the database file while it is open."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from insights_common.sqlite.database import SqliteDatabase, _Checkpointer

pytestmark = pytest.mark.unit


async def test_committed_pages_reach_the_database_file_while_it_is_open(tmp_path: Path) -> None:
    path = tmp_path / "insights.db"
    db = SqliteDatabase(path)
    try:
        db.migrate("CREATE TABLE IF NOT EXISTS t (v BLOB)")

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO t VALUES (?)", [(bytes(4000),)] * 100)

        for _ in range(10):
            await db.write(insert)
        # 4 MB written; the log would hold all of it until the database is closed if nothing
        # checkpointed it.
        deadline = asyncio.get_running_loop().time() + 30
        while path.stat().st_size < 4_000_000:
            assert asyncio.get_running_loop().time() < deadline, "the log was never checkpointed"
            await asyncio.sleep(0.05)
        count = await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 1000
    finally:
        db.close()
    assert not [t for t in threading.enumerate() if str(path) in t.name]


async def test_a_log_grown_past_its_limit_is_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A passive checkpoint copies the log but leaves the file its size; past LOG_LIMIT the
    checkpointer empties it, so a burst of writes does not keep its size on disk."""
    monkeypatch.setattr(_Checkpointer, "LOG_LIMIT", 1_000_000)
    path = tmp_path / "insights.db"
    log = tmp_path / "insights.db-wal"
    db = SqliteDatabase(path)
    try:
        db.migrate("CREATE TABLE IF NOT EXISTS t (v BLOB)")

        def insert(conn: sqlite3.Connection) -> None:
            conn.executemany("INSERT INTO t VALUES (?)", [(bytes(4000),)] * 500)

        await db.write(insert)  # 2 MB in one transaction: the log holds all of it
        assert log.stat().st_size > 2_000_000
        deadline = asyncio.get_running_loop().time() + 30
        while log.stat().st_size > 1_000_000:
            assert asyncio.get_running_loop().time() < deadline, "the log kept its size"
            await asyncio.sleep(0.05)
        count = await db.read(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0])
        assert count == 500
        assert path.stat().st_size > 2_000_000
    finally:
        db.close()


def test_an_in_memory_database_needs_no_checkpoints() -> None:
    before = set(threading.enumerate())
    db = SqliteDatabase(":memory:")
    try:
        assert set(threading.enumerate()) == before
    finally:
        db.close()
