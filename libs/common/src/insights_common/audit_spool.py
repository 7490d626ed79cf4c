"""The spool of audit entries: where an entry written beside a read is stored before the read
answers, for a shipper (`insights_common.audit_ship`) to take into the trail's store.

A spool is a directory of files of JSON lines. A process that records reads writes to a file of
its own, named by a random id and locked (`flock`) while the process may still write to it, so
the shipper knows a file nobody holds is complete. The store keeps how far the shipper took each
file, in the transaction that took it: a file is shipped from there, never twice.

A file takes its whole size on the disk when it is made, and its process maps it into memory: an
entry is its line copied into the map, with no system call. The map's pages are the kernel's page
cache, so an entry is there when the read answers and outlives a crash of the process; not a
crash of the machine before the page is written back. (One `write` a line cost the kernel 5-6 µs
at 400 reads a second, each of them changing the file's modification time in the file system's
journal; a line copied into the map, about 1 µs of page faults: docs/performance.md.)

The files' unwritten end is zeros. A reader can see a line while it is being copied (its newline
before all its bytes): `read_spool` stops at a line it cannot read until it is `settled`.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import mmap
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from insights_common.audit import (
    RECORDED_FIELDS,
    AuditEntry,
    AuditFilter,
    GroupedAuditLog,
    SpoolMark,
)
from insights_common.outage import DependencyUnavailable

log = logging.getLogger(__name__)

SUFFIX = ".spool"
ROTATE_BYTES = 4 * 1024 * 1024
"""A file is left to the shipper, and entries go to a new one, once it is this large."""
MAX_BYTES = 16 * 1024 * 1024
"""Reads are refused (503) once this process's files the shipper has not removed hold this
much: about 100,000 entries, while the trail's store or the shipper is away."""


def spool_path(directory: Path, spool: str) -> Path:
    """The file of the spool `spool` in `directory`."""
    return directory / f"{spool}{SUFFIX}"


def _line(entry: AuditEntry) -> bytes:
    # the instant in RFC 3339 with its offset, as `datetime.fromisoformat` reads it
    return orjson.dumps(entry.recorded(), option=orjson.OPT_APPEND_NEWLINE)


def _entry(line: bytes) -> AuditEntry:
    """The entry a line holds; ValueError or TypeError when it holds none."""
    fields = orjson.loads(line)
    if type(fields) is not list or len(fields) != RECORDED_FIELDS:
        raise ValueError("not [at, app_id, actor, action, user_id, address, reason, detail]")
    at, app_id, actor, action, user_id, address, reason, detail = fields
    # each field tested once, without a generator: the shipper reads every read's entry
    if not type(at) is type(app_id) is type(actor) is type(action) is str:
        raise ValueError("a field of the wrong type")
    for optional in (user_id, address, reason, detail):
        if optional is not None and type(optional) is not str:
            raise ValueError("a field of the wrong type")
    moment = datetime.fromisoformat(at)
    if moment.tzinfo is None:
        raise ValueError("an instant without its offset")
    return AuditEntry(moment, app_id, actor, action, user_id, address, reason, detail)


@dataclass
class SpoolRead:
    """What a spool's bytes hold from where reading started."""

    entries: list[tuple[AuditEntry, int]]
    """The entries, each with the offset where it ends."""
    unreadable: list[tuple[bytes, int]]
    """The lines that hold no entry (bytes a failing disk changed), each with where it ends."""
    end: int
    """Where the last whole line ends: how far the spool was read."""


def read_spool(data: bytes, start: int, *, settled: int | None = None) -> SpoolRead:
    """The whole lines of a spool's bytes from `start` (the end of a line, or 0); what follows
    the last newline is an entry being written, cut short by a crash, or the file's unwritten
    end. A line that holds no entry is `unreadable` when it ends at or before `settled` (None:
    all of `data` is settled, as in a file nobody writes to any more); one past it may be a line
    being copied, and reading stops before it."""
    read = SpoolRead([], [], start)
    at = start
    while (end := data.find(b"\n", at)) != -1:
        try:
            read.entries.append((_entry(data[at:end]), end + 1))
        except (ValueError, TypeError):
            if settled is not None and end + 1 > settled:
                break  # read again at the next pass, when its copy has ended
            read.unreadable.append((data[at:end], end + 1))
        at = read.end = end + 1
    return read


@dataclass
class _File:
    id: str
    fd: int
    map: mmap.mmap
    size: int = 0
    """The bytes written: where the next entry goes."""


class AuditSpool:
    """This process's files in the spool `directory` (made if missing). `open` before `write`.

    Each file is `rotate_bytes` long from the start. Once an entry does not fit in the file
    written to, its lock is released (the shipper takes the rest of it and removes it) and
    entries go to a new one."""

    def __init__(
        self,
        directory: Path,
        *,
        rotate_bytes: int = ROTATE_BYTES,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.directory = directory
        self._rotate_bytes = rotate_bytes
        self._max_bytes = max_bytes
        self._file: _File | None = None
        self._left: dict[str, int] = {}
        """Files this process no longer writes to, by id, with their sizes, until the shipper
        removed them."""
        self._left_bytes = 0
        self._left_checked = 0.0
        self._opened = False

    def open(self) -> None:
        """Start a new file, its room on the disk taken and locked by this process before the
        shipper can see it. OSError when the disk has no room for it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        spool_id = secrets.token_hex(12)
        making = self.directory / f"{spool_id}.new"
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Taken now, so that copying into the map never finds the disk full (which would be
            # SIGBUS, not an error).
            os.posix_fallocate(fd, 0, self._rotate_bytes)
            mapped = mmap.mmap(fd, self._rotate_bytes)
        except BaseException:
            os.close(fd)
            making.unlink(missing_ok=True)
            raise
        making.rename(spool_path(self.directory, spool_id))
        self._file = _File(spool_id, fd, mapped)
        self._opened = True

    def write(self, entry: AuditEntry) -> SpoolMark:
        """Append the entry; answers the file and the offset where the entry ends. No room on
        the disk for the next file, or MAX_BYTES waiting for the shipper, is
        `DependencyUnavailable`: the entry is not stored."""
        line = _line(entry)
        file = self._file
        if file is None or file.size + len(line) > self._rotate_bytes:
            file = self._next(len(line))
        elif self._left_bytes and file.size + self._left_bytes >= self._max_bytes:
            file = self._writable()
        end = file.size + len(line)
        file.map[file.size : end] = line
        file.size = end
        return SpoolMark(file.id, end)

    def _next(self, needed: int) -> _File:
        """Release the file written to (the shipper removes it once it took all of it) and
        open the next; or open one again after a disk had no room for it."""
        if not self._opened:
            raise DependencyUnavailable("the audit spool", "it is not open")
        if needed > self._rotate_bytes:
            raise DependencyUnavailable(
                "the audit spool", f"an entry of {needed} bytes is longer than a spool file"
            )
        self._release()
        self._forget_removed()
        try:
            self.open()
        except OSError as error:
            raise DependencyUnavailable("the audit spool", f"no new file: {error}") from error
        return self._writable()

    def _forget_removed(self) -> None:
        """Forget the files the shipper removed."""
        self._left = {
            spool: size
            for spool, size in self._left.items()
            if spool_path(self.directory, spool).exists()
        }
        self._left_bytes = sum(self._left.values())

    def _writable(self) -> _File:
        """The file to write to, unless the files not yet removed hold MAX_BYTES: looks at
        most once a second whether the shipper removed some."""
        assert self._file is not None  # noqa: S101 - only while open
        if time.monotonic() - self._left_checked >= 1.0:
            self._left_checked = time.monotonic()
            self._forget_removed()
        waiting = self._file.size + self._left_bytes
        if waiting >= self._max_bytes:
            raise DependencyUnavailable(
                "the audit trail's store",
                f"{waiting // 1024} KiB of entries wait for it in this process's spool",
            )
        return self._file

    def marks(self) -> list[SpoolMark]:
        """Where each file this process wrote and the shipper has not removed ends."""
        marks = [SpoolMark(spool, size) for spool, size in self._left.items()]
        if self._file is not None and self._file.size:
            marks.append(SpoolMark(self._file.id, self._file.size))
        return marks

    def close(self) -> None:
        """Release the file written to: the shipper takes the rest of it and removes it."""
        self._release()
        self._left_bytes = sum(self._left.values())
        self._opened = False

    def _release(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            self._left[file.id] = file.size
            file.map.close()
            os.close(file.fd)


class Shipping(Protocol):
    """Runs the shipper of a spool directory, in this process or beside it."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def wake(self) -> None:
        """Ask the shipper for a pass at once: a reader of the trail waits for it."""
        ...


class _Spooled:
    """An entry in the spool: stored already, awaiting it does not wait."""

    __slots__ = ("_entry",)

    def __init__(self, entry: AuditEntry) -> None:
        self._entry = entry

    def __await__(self) -> Generator[Any, None, AuditEntry]:
        return self._entry
        yield  # never reached: makes this a generator, done at its first step


class SpooledTrail:
    """Implements `insights_common.audit.Trail`: an entry written beside a read goes to this
    process's spool before the read answers, and a shipper takes it into the store with the
    others of its moment (`shipping` runs it, in this process or in one of its own). Every other
    entry goes straight to the store through `grouped`.

    Reading the trail back (`search`, `run`) waits until the store holds what this process
    spooled, at most CATCH_UP seconds; longer is `DependencyUnavailable`. So does an entry
    stored straight away (`append`), so that it follows this process's reads in the trail."""

    CATCH_UP = 10.0
    POLL = 0.02

    def __init__(
        self,
        grouped: GroupedAuditLog,
        spool: AuditSpool,
        shipping: Shipping,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._grouped = grouped
        self._log = grouped.store
        self._spool = spool
        self._shipping = shipping
        self._clock = clock
        self._taken: dict[str, int] = {}
        """How far the store took each file of this process, as it last said."""

    async def start(self) -> None:
        self._spool.open()
        await self._shipping.start()

    async def stop(self) -> None:
        await self._grouped.stop()
        self._spool.close()
        await self._shipping.stop()

    async def append(self, entry: AuditEntry) -> AuditEntry:
        """Stored after what this process spooled before it, so that the trail keeps the order
        in which this process recorded them."""
        await self.caught_up()
        return await self._grouped.append(entry)

    def beside(self, entry: AuditEntry) -> Awaitable[AuditEntry]:
        """Stored in the spool at once (`DependencyUnavailable` when it cannot be); answered
        as spooled, not yet chained."""
        self._spool.write(entry)
        return _Spooled(entry)

    async def caught_up(self) -> None:
        """Returns once the store holds every entry this process spooled until now."""
        marks = self._spool.marks()
        waiting = [mark for mark in marks if mark.upto > self._taken.get(mark.spool, 0)]
        give_up = self._clock() + self.CATCH_UP
        while waiting:
            self._shipping.wake()  # again at each look: a pass may leave a line for the next
            for mark in waiting:
                if spool_path(self._spool.directory, mark.spool).exists():
                    self._taken[mark.spool] = await self._log.spooled(mark.spool)
                else:  # taken to its end and removed
                    self._taken[mark.spool] = mark.upto
            waiting = [mark for mark in waiting if mark.upto > self._taken[mark.spool]]
            if not waiting:
                self._taken = {mark.spool: self._taken.get(mark.spool, 0) for mark in marks}
                break
            if self._clock() >= give_up:
                raise DependencyUnavailable(
                    "the audit trail's shipper",
                    f"entries this process spooled are not in the store after {self.CATCH_UP} s",
                )
            await asyncio.sleep(self.POLL)

    async def append_many(
        self, entries: Sequence[AuditEntry], *, spooled: Sequence[SpoolMark] = ()
    ) -> list[AuditEntry]:
        return await self._log.append_many(entries, spooled=spooled)

    async def spooled(self, spool: str) -> int:
        return await self._log.spooled(spool)

    async def forget_spool(self, spool: str) -> None:
        await self._log.forget_spool(spool)

    async def search(
        self, app_id: str, where: AuditFilter, *, before_seq: int | None, limit: int
    ) -> list[AuditEntry]:
        """What this process recorded included."""
        await self._grouped.sent()
        await self.caught_up()
        return await self._log.search(app_id, where, before_seq=before_seq, limit=limit)

    async def run(self, app_id: str, *, from_seq: int, limit: int) -> list[AuditEntry]:
        await self._grouped.sent()
        await self.caught_up()
        return await self._log.run(app_id, from_seq=from_seq, limit=limit)
