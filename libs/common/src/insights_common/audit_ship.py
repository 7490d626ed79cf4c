"""The shipper of a spool directory (`insights_common.audit_spool`): takes the entries every
process wrote there into the trail's store, chained, in groups, and removes each file once it
took all of it and nobody writes to it any more.

One shipper works on a directory at a time (it holds the directory's `.shipper` lock); another
started on the same directory waits for that lock and takes over when the first ends. The
embedded mode runs it as a task of its one process (`InProcessShipping`); the distributed mode
runs it as a process of its own beside each query process (`ShipperProcess`), so that chaining
entries and the round trips to PostgreSQL are not paid on the read path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import heapq
import logging
import mmap
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from insights_common.audit import AuditEntry, AuditLog, SpoolMark
from insights_common.audit_spool import SUFFIX, read_spool, spool_path

log = logging.getLogger(__name__)

LOCK = ".shipper"
EVERY = 0.5
"""Seconds between two looks at the spool: at most this long after its read, an entry is in
the store, unless a reader of the trail asks for a pass at once (`wake`). A pass costs about
0.2 ms however few entries it takes, and each entry 5 µs: half a second of reads in one pass
costs the machine half what a pass every 0.1 s does."""
RETRY_DELAYS = (0.5, 1.0, 2.0, 5.0)
"""Seconds before trying again after the store refused a group, growing while it refuses."""
UNREADABLE = ".unreadable"
"""The suffix of the file beside a spool's where the shipper sets aside the lines of that spool
that hold no entry, for an operator to look at."""
NEWLINE = ord("\n")
TAIL = 64 * 1024
"""Bytes past a file's last newline looked at for an entry cut short: longer than any entry."""
UNNAMED_AFTER = 60.0
"""Seconds after which a file being made (`*.new`) whose process holds no lock on it is removed:
that process died between making and naming it."""


_Found = tuple[AuditEntry, str, int]
"""An entry read from a spool file: the entry, the file's spool id, and where it ends there."""


@dataclass
class _Reading:
    fd: int
    upto: int
    """Where the store's mark says this file was taken to."""
    read_to: int
    """Where the last whole line read ends: past `upto` by lines that hold no entry."""
    hole: int = -1
    """A zero byte within a line at the last pass: zeroed by a failing disk if still there."""
    seen: int = 0
    """Where the file's last newline was at the last pass: every line before it is settled (its
    copy into the writer's map ended long since)."""
    ended: bool = False
    """Nobody holds its lock: its process left it, and nothing more will be written to it."""


class SpoolShipper:
    """Ships `directory`'s spools to `log`. `run` holds the directory until it is cancelled;
    `ship` is one pass over its files."""

    def __init__(
        self,
        log: AuditLog,
        directory: Path,
        *,
        batch: int = 500,
        every: float = EVERY,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._log = log
        self.directory = directory
        self._batch = batch
        self._every = every
        self._retry_delays = retry_delays
        self._files: dict[str, _Reading] = {}
        self._lock: int | None = None
        self._failures = 0
        self._swept = 0.0
        self._shipping = asyncio.Lock()
        self._woken = asyncio.Event()

    def try_lock(self) -> bool:
        """Take the directory's shipper lock; False while another shipper holds it."""
        if self._lock is not None:
            return True
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock = fd
        return True

    async def run(self) -> None:
        """Wait for the directory's lock, then ship every `every` seconds, pausing while the
        store refuses. Cancelled, it makes a last pass (what the processes that stopped left)
        and releases the directory."""
        waited = False
        while not self.try_lock():
            if not waited:
                log.info("another shipper takes the audit spools of %s; waiting", self.directory)
                waited = True
            await asyncio.sleep(1.0)
        try:
            pause = self._every
            while True:
                await self._rest(pause)
                pause = await self._pass()
        except asyncio.CancelledError:
            self._forget()  # a group cut short may have been stored: the store's marks say
            with contextlib.suppress(Exception):
                await self.ship()
            raise
        finally:
            self.close()

    def wake(self) -> None:
        """Pass at once (or as soon as the pass running ends) instead of at the next `every`:
        a reader of the trail waits for it. While the store refuses, the pause stays."""
        self._woken.set()

    async def _rest(self, pause: float) -> None:
        if self._failures:  # the store refuses: waking would only ask it again sooner
            await asyncio.sleep(pause)
        else:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self._woken.wait()
        self._woken.clear()

    async def _pass(self) -> float:
        """One pass; answers how long to wait before the next."""
        try:
            await self.ship()
        except Exception as error:
            delay = self._retry_delays[min(self._failures, len(self._retry_delays) - 1)]
            self._failures += 1
            self._forget()  # the store may have taken a group it did not answer for
            log.warning(
                "the audit trail's store did not take the spooled entries (%d times in a row):"
                " %s; trying again in %.1f s",
                self._failures,
                error,
                delay,
            )
            return delay
        self._failures = 0
        return self._every

    async def ship(self) -> int:
        """Take what every file holds past its mark into the store, oldest first, in groups of
        `batch`; remove the files nobody writes to once taken. Answers the entries shipped."""
        async with self._shipping:  # one pass at a time: each reads the marks the last left
            return await self._ship_all()

    async def _ship_all(self) -> int:
        found = await self._unshipped()
        shipped = 0
        group: list[_Found] = []
        for item in heapq.merge(*found, key=lambda found: found[0].at):
            group.append(item)
            if len(group) == self._batch:
                shipped += await self._ship(group)
                group = []
        if group:
            shipped += await self._ship(group)
        await self._mark_past_unreadable()
        await self._remove_ended()
        if time.monotonic() - self._swept > UNNAMED_AFTER:
            self._swept = time.monotonic()
            self._sweep_unnamed()
        return shipped

    async def _unshipped(self) -> list[list[_Found]]:
        """Each file's entries past its mark, each with its file and where it ends there."""
        found = []
        present = set()
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            spool = path.name.removesuffix(SUFFIX)
            reading = self._files.get(spool) or await self._open(spool, path)
            if reading is None:
                continue
            present.add(spool)
            if not reading.ended:  # looked at before reading: what it read is then all of it
                reading.ended = _unlocked(reading.fd)
            entries = self._read(spool, reading)
            if entries:
                found.append(entries)
        for gone in self._files.keys() - present:
            os.close(self._files.pop(gone).fd)
        return found

    def _read(self, spool: str, reading: _Reading) -> list[_Found]:
        """The entries of the file's whole lines past what was read of it, each with the file
        and where it ends there. A line that holds no entry is set aside once it is settled."""
        start = reading.read_to
        size = os.fstat(reading.fd).st_size
        if size <= start:
            return []
        with mmap.mmap(reading.fd, size, access=mmap.ACCESS_READ) as mapped:
            last = max(start, mapped.rfind(b"\n", start, self._bound(reading, mapped, size)) + 1)
            if reading.ended:
                # at most one line past the last newline: cut by a crash in its copy
                cut = mapped[last : min(size, last + TAIL)].rstrip(b"\0")
                if cut:
                    log.warning(
                        "audit spool %s ends in an entry cut short (%d bytes); left out",
                        spool,
                        len(cut),
                    )
            data = mapped[start:last]
        if not data:
            return []
        settled = None if reading.ended else max(0, reading.seen - start)
        read = read_spool(data, 0, settled=settled)
        reading.seen = last
        for line, end in read.unreadable:
            self._set_aside(spool, line, start + end)
        reading.read_to = start + read.end
        return [(entry, spool, start + end) for entry, end in read.entries]

    @staticmethod
    def _bound(reading: _Reading, mapped: mmap.mmap, size: int) -> int:
        """Where the written part of a file may end. A file nobody writes to any more is read
        to its end. A live one is read up to its first zero byte past what was read: where its
        writer got to when it follows a newline; within a line, a line being copied (its
        newline may show before the rest of it), or, when it is still there at the next pass,
        bytes a failing disk zeroed, which are read past."""
        if reading.ended:
            return size
        zero = mapped.find(b"\0", reading.read_to)
        if zero == -1 or zero == reading.hole:
            return size
        if zero > reading.read_to and mapped[zero - 1] != NEWLINE:
            reading.hole = zero  # within a line: looked at again at the next pass
        return zero

    async def _open(self, spool: str, path: Path) -> _Reading | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            upto = await self._log.spooled(spool)
        except BaseException:
            os.close(fd)
            raise
        reading = self._files[spool] = _Reading(fd, upto, upto)
        return reading

    def _set_aside(self, spool: str, line: bytes, end: int) -> None:
        """A line that holds no entry (a failing disk changed it) would stop every later entry
        of every file: it is kept in the spool's UNREADABLE file, and shipping goes on."""
        aside = self.directory / f"{spool}{UNREADABLE}"
        log.error(
            "audit spool %s: the line ending at byte %d holds no entry; set aside in %s",
            spool,
            end,
            aside,
        )
        with aside.open("ab") as kept:
            kept.write(line + b"\n")

    async def _mark_past_unreadable(self) -> None:
        """Keep in the store how far each file was read where that is past its last entry, so
        that the lines set aside are not read again and a reader waiting for this file's end
        (`SpooledTrail.caught_up`) sees it reached."""
        behind = {
            spool: reading.read_to
            for spool, reading in self._files.items()
            if reading.read_to > reading.upto
        }
        if behind:
            marks = [SpoolMark(spool, upto) for spool, upto in behind.items()]
            await self._log.append_many([], spooled=marks)
            for spool, upto in behind.items():
                self._files[spool].upto = upto

    async def _ship(self, group: list[_Found]) -> int:
        """Store the group's entries, each with its file and where it ends there."""
        upto: dict[str, int] = {}
        for _, spool, end in group:
            upto[spool] = end  # in each file's order: its last is how far this takes it
        marks = [SpoolMark(spool, end) for spool, end in upto.items()]
        await self._log.append_many([entry for entry, _, _ in group], spooled=marks)
        for spool, end in upto.items():
            self._files[spool].upto = end
        return len(group)

    async def _remove_ended(self) -> None:
        for spool, reading in list(self._files.items()):
            if not reading.ended:
                continue
            # Looked at before its last read, and every entry of that read was stored (a
            # refused group ends the pass before this): all of it was taken.
            spool_path(self.directory, spool).unlink(missing_ok=True)
            os.close(self._files.pop(spool).fd)
            try:
                await self._log.forget_spool(spool)
            except Exception as error:  # a mark left behind only takes a row
                log.warning("the audit trail's store kept the mark of spool %s: %s", spool, error)

    def _sweep_unnamed(self) -> None:
        for leftover in self.directory.glob("*.new"):
            with contextlib.suppress(OSError):
                if time.time() - leftover.stat().st_mtime > UNNAMED_AFTER:
                    leftover.unlink()

    def _forget(self) -> None:
        """Drop what is known of each file: the next pass reads the store's marks again."""
        for reading in self._files.values():
            os.close(reading.fd)
        self._files.clear()

    def close(self) -> None:
        self._forget()
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


def _unlocked(fd: int) -> bool:
    """Whether no process holds the file's lock (its writer released it, or ended); the lock,
    once taken, stays with this shipper's descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class InProcessShipping:
    """Runs a shipper as a task of this process (the embedded mode)."""

    def __init__(self, shipper: SpoolShipper) -> None:
        self._shipper = shipper
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._shipper.run(), name="audit-shipper"
        )

    def wake(self) -> None:
        self._shipper.wake()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class ShipperProcess:
    """Runs a shipper as a process of its own: `command` makes its command line for this
    process's id (`insights audit ship --parent PID`, which ends after a last pass when this
    process does). Started again when it ends before `stop`. Its stdin is a pipe from this
    process: `wake` writes a byte to it for a pass at once."""

    RESTART_AFTER = 1.0
    STOP_WITHIN = 30.0

    def __init__(self, command: Callable[[int], Sequence[str]]) -> None:
        self._command = command
        self._process: asyncio.subprocess.Process | None = None
        self._watch: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        await self._spawn()
        self._watch = asyncio.get_running_loop().create_task(self._watching(), name="audit-shipper")

    async def _spawn(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self._command(os.getpid()), stdin=asyncio.subprocess.PIPE
        )

    def wake(self) -> None:
        process = self._process
        if process is None or process.stdin is None or process.returncode is not None:
            return  # started again within RESTART_AFTER; it passes then
        with contextlib.suppress(ConnectionError, RuntimeError):  # it is ending
            process.stdin.write(b"\n")

    async def _watching(self) -> None:
        while True:
            assert self._process is not None  # noqa: S101 - started
            code = await self._process.wait()
            log.warning("the audit trail's shipper ended (exit %s); starting it again", code)
            await asyncio.sleep(self.RESTART_AFTER)
            await self._spawn()

    async def stop(self) -> None:
        """Ask it for its last pass (SIGTERM) and wait for it, at most STOP_WITHIN seconds."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), self.STOP_WITHIN)
        except TimeoutError:
            log.warning("the audit trail's shipper did not end within %.0f s", self.STOP_WITHIN)
            process.kill()
            await process.wait()


async def ship_until_stopped(
    shipper: SpoolShipper, *, parent: int | None = None, wakes: int | None = None
) -> None:
    """Run `shipper` until SIGTERM or SIGINT, or until the process `parent` is gone (this
    process is then adopted by another), then make a last pass. Each byte read from the pipe
    `wakes` (a file descriptor: `ShipperProcess` makes it this process's stdin) asks for a pass
    at once."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    running = loop.create_task(shipper.run(), name="audit-shipper")
    if wakes is not None:
        loop.add_reader(wakes, _woken_by, wakes, shipper, loop)

    async def orphaned() -> None:
        while os.getppid() == parent:  # noqa: ASYNC110 - no event says a parent ended
            await asyncio.sleep(1.0)
        log.info("the process the audit trail's shipper served ended")
        stopping.set()

    watching = loop.create_task(orphaned()) if parent is not None else None
    stopped = loop.create_task(stopping.wait())
    await asyncio.wait([running, stopped], return_when=asyncio.FIRST_COMPLETED)
    for task in (stopped, watching):
        if task is not None:
            task.cancel()
    if wakes is not None:
        loop.remove_reader(wakes)
    if running.done():
        running.result()  # it ended by itself: its error is this process's
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)


def _woken_by(wakes: int, shipper: SpoolShipper, loop: asyncio.AbstractEventLoop) -> None:
    try:
        asked = os.read(wakes, 4096)
    except BlockingIOError:
        return
    if asked:
        shipper.wake()
    else:  # the writer closed it: nobody wakes this process any more
        loop.remove_reader(wakes)
