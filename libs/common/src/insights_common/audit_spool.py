"""The process's local spool of audit entries: where an entry written beside a read is stored
before the read answers, for the trail's store to take in groups.

A spool is one file of JSON lines in a directory, named by a random id and locked (`flock`) by
the process that appends to it, so that the processes sharing a directory never take each
other's live file. A file nobody holds is a spool whose process ended before its store took all
of it: `orphans` finds it, and the trail ships what its store had not recorded (the store keeps
how far it took each spool, in the transaction that took it) before removing it.

An entry is one `os.write` to the file: in the kernel's page cache when the read answers, so it
outlives a crash of the process; not a crash of the machine before the page is written back.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from insights_common.audit import AuditEntry, SpoolMark
from insights_common.outage import DependencyUnavailable

log = logging.getLogger(__name__)

SUFFIX = ".spool"
ROTATE_BYTES = 4 * 1024 * 1024
"""A spool every entry of which was stored is replaced by a new file once it is this large."""
UNNAMED_AFTER = 60.0
"""Seconds after which a file being made (`*.new`) whose process holds no lock on it is removed:
that process died between making and naming it."""


def _line(entry: AuditEntry) -> bytes:
    # the instant in RFC 3339 with its offset, as `datetime.fromisoformat` reads it
    return orjson.dumps(entry.recorded(), option=orjson.OPT_APPEND_NEWLINE)


def _entry(line: bytes) -> AuditEntry:
    at, *said = orjson.loads(line)
    return AuditEntry(datetime.fromisoformat(at), *said)


def entries_after(data: bytes, start: int) -> list[tuple[AuditEntry, int]]:
    """The entries of a spool's bytes from `start` (the end of an entry, or 0), each with the
    offset where it ends. A last line without its newline was cut by a crash in its write: its
    read was never answered, and it is left out."""
    found = []
    at = start
    while (end := data.find(b"\n", at)) != -1:
        found.append((_entry(data[at:end]), end + 1))
        at = end + 1
    if at < len(data):
        log.warning(
            "an audit spool ends in %d bytes of an entry cut short; left out", len(data) - at
        )
    return found


@dataclass
class Orphan:
    """A spool no process holds, locked now by the one that takes it over."""

    id: str
    path: Path
    fd: int

    def entries_after(self, start: int) -> list[tuple[AuditEntry, int]]:
        """Its entries from `start` (how far the store took it), each with where it ends."""
        return entries_after(self.path.read_bytes(), start)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self.fd)

    def release(self) -> None:
        os.close(self.fd)


@dataclass
class _File:
    fd: int
    size: int = 0
    unshipped: int = 0
    """Entries written to it that the store has not taken yet."""


class AuditSpool:
    """This process's spool in `directory` (made if missing). `open` before `write`.

    Once the file written to passes ROTATE_BYTES, entries go to a new one; a file no longer
    written to is removed once the store took every entry of it (`shipped`)."""

    def __init__(self, directory: Path, *, rotate_bytes: int = ROTATE_BYTES) -> None:
        self.directory = directory
        self._rotate_bytes = rotate_bytes
        self.id = ""
        """The file written to now."""
        self._files: dict[str, _File] = {}
        self._broken: str | None = None
        self.unshipped = 0
        """Entries written that the store has not taken yet, in every file."""

    def open(self) -> None:
        """Start a new spool file, locked by this process before any other can see it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        spool_id = secrets.token_hex(12)
        making = self.directory / f"{spool_id}.new"
        fd = os.open(making, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        making.rename(self.directory / f"{spool_id}{SUFFIX}")
        self.id = spool_id
        self._files[spool_id] = _File(fd)

    def write(self, entry: AuditEntry) -> SpoolMark:
        """Append the entry; answers the file and the offset where the entry ends. A failed or
        short write (a full or failing disk) is `DependencyUnavailable`: the entry is not
        stored."""
        if self._broken is not None or self.id not in self._files:
            raise DependencyUnavailable("the audit spool", self._broken or "it is not open")
        file = self._files[self.id]
        if file.size >= self._rotate_bytes:
            self._rotate()
            file = self._files[self.id]
        line = _line(entry)
        try:
            written = os.write(file.fd, line)
        except OSError as error:
            raise DependencyUnavailable("the audit spool", str(error)) from error
        if written != len(line):
            # A cut line is taken back, so that the next entry does not continue it.
            try:
                os.ftruncate(file.fd, file.size)
            except OSError as error:
                self._broken = f"an entry was cut short and could not be taken back: {error}"
                log.error("the audit spool: %s", self._broken)
            raise DependencyUnavailable("the audit spool", "the disk took part of an entry")
        file.size += written
        file.unshipped += 1
        self.unshipped += 1
        return SpoolMark(self.id, file.size)

    def _rotate(self) -> None:
        retired = self.id
        self.open()
        if self._files[retired].unshipped == 0:
            self._remove(retired)

    def shipped(self, spool: str, entries: int) -> bool:
        """The store took `entries` more entries of `spool`; answers whether that file is now
        removed (every entry taken, and none will be written to it), for the store to forget."""
        file = self._files.get(spool)
        if file is None:
            return False
        file.unshipped -= entries
        self.unshipped -= entries
        if spool == self.id or file.unshipped > 0:
            return False
        self._remove(spool)
        return True

    def _remove(self, spool: str) -> None:
        file = self._files.pop(spool)
        (self.directory / f"{spool}{SUFFIX}").unlink(missing_ok=True)
        os.close(file.fd)

    def close(self) -> list[str]:
        """Release the files: those the store took all of are removed (their ids are answered,
        for the store to forget); the others stay, for the next process on this directory."""
        removed = []
        for spool in list(self._files):
            if self._files[spool].unshipped == 0:
                self._remove(spool)
                removed.append(spool)
            else:
                os.close(self._files.pop(spool).fd)
        self.id = ""
        self.unshipped = 0
        return removed

    def orphans(self) -> Iterator[Orphan]:
        """The directory's spools that no live process holds, each locked while it is taken."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # taken over and removed by another process meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live process's (this one's too: each open locks apart)
                continue
            if not path.exists():  # removed by the process that held it just before
                os.close(fd)
                continue
            yield Orphan(path.name.removesuffix(SUFFIX), path, fd)
        for leftover in self.directory.glob("*.new"):
            with contextlib.suppress(OSError):
                if time.time() - leftover.stat().st_mtime > UNNAMED_AFTER:
                    leftover.unlink()
