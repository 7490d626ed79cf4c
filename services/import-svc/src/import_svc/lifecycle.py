"""A replica's running imports: each recorded as it starts, its heartbeat stamped while it runs,
failed when it stops on an error; the ones running in the background awaited or cancelled; and
other replicas' imports failed once they stop answering."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from import_svc.domain.model import FileIssue, ImportOptions, ImportRecord, new_import_id
from import_svc.issues import STALE, TooManyRunning
from import_svc.ports import ImportStore
from import_svc.runs import ImportRun, OwnershipLost, ProgressCallback
from insights_common.service import Recurring

logger = logging.getLogger(__name__)

MAX_FILENAME = 255
HEARTBEAT_EVERY = timedelta(seconds=10)  # how often a running import says it still runs
STALE_AFTER = timedelta(minutes=2)  # an import not heard of for this long is failed
SWEEP_EVERY = timedelta(seconds=30)


def clean_filename(name: str | None) -> str:
    """The last path segment of a client's file name, without control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_FILENAME] or "upload.csv"


class Lifecycle:
    """Starts, keeps alive and fails the imports `owner` (this replica) runs.

    Each running import is stamped with its owner and a heartbeat; any replica fails an import
    whose owner has stopped stamping it.
    """

    def __init__(
        self,
        *,
        store: ImportStore,
        owner: str,
        max_running_per_app: int,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._owner = owner
        self._max_running = max_running_per_app
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper = Recurring(
            self.sweep, every=SWEEP_EVERY, name="sweep stale imports", first_at_start=False
        )
        self._last_id: str | None = None

    async def start(
        self,
        app_id: str,
        filename: str | None,
        options: ImportOptions,
        on_progress: ProgressCallback | None,
        *,
        admit: bool = False,
    ) -> ImportRun:
        """Record a new import; with `admit`, only within the app's limit of running imports."""
        now = self._clock()
        self._last_id = new_import_id(now, after=self._last_id)
        record = ImportRecord(
            id=self._last_id,
            app_id=app_id,
            filename=clean_filename(filename),
            options=options,
            created_at=now,
        )
        limit = self._max_running if admit else None
        if not await self._store.create(record, owner=self._owner, at=now, max_running=limit):
            raise TooManyRunning(app_id, self._max_running)
        run = ImportRun(self._store, record, on_progress)
        await run.save(record.validating())
        return run

    def background(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every background import has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def start_sweeping(self) -> None:
        """Sweep stale imports now, then every SWEEP_EVERY."""
        await self.sweep()
        await self._sweeper.start()

    async def shutdown(self) -> None:
        """Stop sweeping and cancel the background imports."""
        await self._sweeper.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def sweep(self) -> list[str]:
        """Fail the unfinished imports of any replica that stopped stamping their heartbeat."""
        now = self._clock()
        ids = await self._store.fail_stale(STALE, before=now - STALE_AFTER, at=now)
        if ids:
            logger.warning("failed %d stale import(s): %s", len(ids), ", ".join(ids))
        return ids

    @asynccontextmanager
    async def beating(self, run: ImportRun) -> AsyncIterator[None]:
        """Stamp the import's heartbeat while the block runs."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY.total_seconds())
                try:
                    await self._store.heartbeat(run.record, owner=self._owner, at=self._clock())
                except Exception:
                    logger.exception("could not stamp the heartbeat of import %s", run.record.id)

        task = asyncio.create_task(beat(), name=f"heartbeat {run.record.id}")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def fail_on_error(self, run: ImportRun, exc: Exception) -> None:
        if isinstance(exc, OwnershipLost):
            logger.warning(
                "import %s was given up by this replica",
                run.record.id,
                extra={"import_id": run.record.id, "app_id": run.record.app_id},
            )
            return  # another replica failed it already
        logger.error(
            "import %s of app %s failed",
            run.record.id,
            run.record.app_id,
            exc_info=exc,
            extra={"import_id": run.record.id, "app_id": run.record.app_id},
        )
        issue = FileIssue(
            "internal_error",
            f"The import stopped on an internal error ({type(exc).__name__}); nothing from "
            "it was imported. Upload the file again; if it keeps failing, report the import "
            "id.",
        )
        await self.fail(run, issue)

    async def fail(self, run: ImportRun, issue: FileIssue) -> None:
        if not run.record.finished:
            await run.save(run.record.failed(issue, at=self._clock()))
