"""One SQLite file for the embedded mode, shared by the services, each in its own tables.

Writes go through one connection under a lock (SQLite has one writer anyway); reads use a
connection per thread so queries do not wait for a long write. Work runs in worker threads so the
event loop never blocks on disk. A background thread checkpoints the write-ahead log into the
database file: done by the committing writer (SQLite's default), the copy and its wait for the
disk held up the next write, a sixth of the embedded webhook's time.

The writer keeps up to WRITER_CACHE_KIB of pages in memory (SQLite's default is 2 MiB): the
projection's upserts land on index pages all over tables of a few hundred MiB, and with the
default cache they were read back from the file time and again, half of projecting a webhook
batch.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

WRITER_CACHE_KIB = 64 * 1024

log = logging.getLogger(__name__)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def _owner_only(path: Path) -> None:
    """Create the data dir (0700) and the database file (0600) readable by their owner only.

    SQLite gives its -wal and -shm files the mode of the database file, so they follow. Files
    an older version left readable by others are narrowed; a data dir that already exists is
    the operator's, so a readable one is only reported.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        directory.chmod(0o700)
    elif stat.S_IMODE(directory.stat().st_mode) & 0o077:
        log.warning(
            "%s can be read by other users than its owner; 'chmod 700 %s' keeps them out",
            directory,
            directory,
        )
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists() and stat.S_IMODE(name.stat().st_mode) & 0o077:
            name.chmod(0o600)


CLOSE_WAIT_SECONDS = 30.0
"""How long close waits for the reads under way to end."""


class SqliteDatabase:
    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            _owner_only(Path(self.path))
        self._writer = _connect(self.path)
        self._writer.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        # The old copy of a row a write replaces or deletes is zeroed where that costs no I/O
        # (in a page written anyway): an erased person's older values leave no copy behind.
        self._writer.execute("PRAGMA secure_delete=FAST")
        self._checkpointer: _Checkpointer | None = None
        if self.path != ":memory:":
            self._writer.execute("PRAGMA wal_autocheckpoint=0")
            self._checkpointer = _Checkpointer(self.path)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Reads under way in worker threads: close waits for them, since a read whose awaiting
        # task was cancelled still runs on its connection, and closing it under the read would
        # crash the process.
        self._reading = threading.Condition()
        self._reads = 0
        self._closed = False

    def migrate(self, ddl: str) -> None:
        """Apply idempotent DDL (CREATE ... IF NOT EXISTS) at start."""
        with self._write_lock:
            self._writer.executescript(ddl)

    def write_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run fn in one transaction on the writer connection; roll back if it raises."""
        with self._write_lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if self._checkpointer is not None:
                self._checkpointer.wrote()
            return result

    def erase_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """`write_sync` for data that must leave the file's bytes too (erasing a person): the
        deleted cells and pages are overwritten with zeros (secure_delete), and the log, which
        still holds their earlier copies, is copied into the file and emptied (TRUNCATE; it
        waits for the reads under way)."""
        with self._write_lock:
            self._writer.execute("PRAGMA secure_delete=ON")
        try:
            result = self.write_sync(fn)
        finally:
            with self._write_lock:
                self._writer.execute("PRAGMA secure_delete=FAST")
        if self.path != ":memory:":
            with self._write_lock:
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        return result

    async def erase(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.erase_sync, fn)

    def read_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._reading:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            self._reads += 1
        try:
            conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
            if conn is None:
                conn = _connect(self.path) if self.path != ":memory:" else self._writer
                self._local.conn = conn
                with self._readers_lock:
                    self._readers.append(conn)
            if conn is self._writer:
                with self._write_lock:
                    return fn(conn)
            return fn(conn)
        finally:
            with self._reading:
                self._reads -= 1
                self._reading.notify_all()

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.write_sync, fn)

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self.read_sync, fn)

    def close(self) -> None:
        with self._reading:
            self._closed = True
            self._reading.wait_for(lambda: self._reads == 0, timeout=CLOSE_WAIT_SECONDS)
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._readers_lock:
            for conn in self._readers:
                if conn is not self._writer:
                    conn.close()
            self._readers.clear()
        with self._write_lock:
            self._writer.close()


class _Checkpointer(threading.Thread):
    """Copies committed pages from the log into the database file, a moment after writes.

    PASSIVE: it never waits for (or holds up) a reader or the writer; what it cannot copy yet it
    copies the next time. The log restarts from its beginning once all of it is copied, and the
    last connection to close checkpoints what is left.

    Under writes without a pause a passive checkpoint never catches up, so the log never
    restarts: bench.ingest's 100,000 webhook events grew it to 1,154 MiB, and 5 s of
    back-to-back 1,000-id dedup batches to 1 GiB beside a 21 MiB database; it kept that size on
    disk. Past LOG_LIMIT bytes the checkpointer therefore copies everything and empties the log
    (TRUNCATE), holding up the writer for that copy. It waits at most BUSY_MS for readers to
    leave the log, and tries again the next time if they have not.
    """

    INTERVAL = 0.5
    LOG_LIMIT = 64 * 1024 * 1024
    BUSY_MS = 1000

    def __init__(self, path: str) -> None:
        super().__init__(name=f"sqlite-checkpoint {path}", daemon=True)
        self._path = path
        self._written = threading.Event()
        self._stopping = threading.Event()
        self.start()

    def wrote(self) -> None:
        self._written.set()

    def stop(self) -> None:
        self._stopping.set()
        self.join()

    def run(self) -> None:
        conn = _connect(self._path)
        conn.execute(f"PRAGMA busy_timeout={self.BUSY_MS}")
        log_path = Path(f"{self._path}-wal")
        try:
            while not self._stopping.wait(self.INTERVAL):
                if self._written.is_set():
                    self._written.clear()
                    try:
                        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                        if _size(log_path) > self.LOG_LIMIT:
                            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
                    except sqlite3.Error:
                        log.exception("checkpointing %s failed; trying again later", self._path)
        finally:
            conn.close()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
