"""Closing the shared SQLite file while a read is under way in a worker thread."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from insights_common.sqlite.database import SqliteDatabase

pytestmark = pytest.mark.unit


def test_close_waits_for_a_read_under_way_and_refuses_later_ones(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "insights.db")
    db.migrate("CREATE TABLE IF NOT EXISTS t (n INTEGER)")
    started = threading.Event()
    answers: list[int] = []

    def slow(conn: sqlite3.Connection) -> int:
        started.set()
        time.sleep(0.3)  # the awaiting task may be cancelled; the read goes on on this connection
        return int(conn.execute("SELECT count(*) FROM t").fetchone()[0])

    reader = threading.Thread(target=lambda: answers.append(db.read_sync(slow)))
    reader.start()
    assert started.wait(5)
    db.close()  # would close the connection under the read, and crash the process
    reader.join(5)
    assert answers == [0]
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        db.read_sync(lambda conn: conn.execute("SELECT 1").fetchone())
