"""The SQLite database's write-ahead log is copied into the database file while it is open."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from insights_common.sqlite import SqliteDatabase

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


def test_an_in_memory_database_needs_no_checkpoints() -> None:
    before = set(threading.enumerate())
    db = SqliteDatabase(":memory:")
    try:
        assert set(threading.enumerate()) == before
    finally:
        db.close()
