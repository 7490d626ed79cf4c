"""Use cases of the import: run one (CLI), submit one to run in the background (HTTP), read them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

from import_svc.domain.csv_stream import MAX_RECORD_BYTES
from import_svc.domain.model import (
    Counts,
    FileIssue,
    FileRejected,
    ImportOptions,
    ImportRecord,
    ImportStatus,
    OnError,
    RowError,
    new_import_id,
)
from import_svc.domain.planning import UserChange, plan_changes
from import_svc.domain.validation import (
    MAX_BLANK_LINES,
    MAX_BYTES,
    MAX_ROWS,
    FileValidator,
    Validation,
)
from import_svc.issues import (
    INTERRUPTED,
    STALE,
    UPLOAD_CUT_OFF,
    TooManyRunning,
    over_budget,
    projection_behind,
    projection_stalled,
)
from import_svc.ports import (
    EventPublisher,
    ImportStore,
    RegistryEntry,
    UploadSpool,
    UserRegistry,
)
from import_svc.runs import (
    PROGRESS_EVERY,
    VALIDATED_SHARE,
    ImportRun,
    OwnershipLost,
    ProgressCallback,
    ProgressReporter,
    feed_rows,
)
from insights_common.bus import AtOnce, ProjectionWatermark, Written, written_records
from insights_common.clock import utc_now
from insights_common.erasure import screen, users_of
from insights_common.outage import DependencyUnavailable, waiting_out
from insights_common.service import Recurring
from insights_contracts import AnyEvent, UserUpserted

logger = logging.getLogger(__name__)

REPORT_PAGE = 5000
MAX_FILENAME = 255
HEARTBEAT_EVERY = timedelta(seconds=10)  # how often a running import says it still runs
STALE_AFTER = timedelta(minutes=2)  # an import not heard of for this long is failed
OUTAGE_WAIT = timedelta(minutes=10)  # an accepted import waits this long for Kafka, PostgreSQL
SWEEP_EVERY = timedelta(seconds=30)
TIME_BUDGET = timedelta(minutes=5)  # to upload and validate one file
MAX_RUNNING_PER_APP = 3
VISIBLE_POLL = 0.2  # seconds between two looks at the projection's watermark
BEHIND_AFTER = timedelta(seconds=30)  # the projection still for this long: the import says so
STALLED_AFTER = timedelta(minutes=10)  # ... and for this long: the import fails


def clean_filename(name: str | None) -> str:
    """The last path segment of a client's file name, without control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_FILENAME] or "upload.csv"


class ImportService:
    """Runs imports: validates a file as it arrives, plans its changes, publishes them at once.

    `owner` names this replica. Each running import is stamped with it and a heartbeat; when the
    replica restarts it resumes the imports it left unfinished whose upload it still holds, and
    any replica fails an import whose owner has stopped answering.
    """

    def __init__(
        self,
        *,
        store: ImportStore,
        registry: UserRegistry,
        publisher: EventPublisher,
        spool: UploadSpool,
        owner: str,
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
        max_record_bytes: int = MAX_RECORD_BYTES,
        max_blank_lines: int = MAX_BLANK_LINES,
        time_budget: timedelta = TIME_BUDGET,
        max_running_per_app: int = MAX_RUNNING_PER_APP,
        watermark: ProjectionWatermark | None = None,
        behind_after: timedelta = BEHIND_AFTER,
        stalled_after: timedelta = STALLED_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._registry = registry
        self._publisher = publisher
        self._spool = spool
        self._owner = owner
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._max_record_bytes = max_record_bytes
        self._max_blank_lines = max_blank_lines
        self._time_budget = time_budget
        self._max_running = max_running_per_app
        self._watermark = watermark if watermark is not None else AtOnce()
        self._behind_after = behind_after
        self._stalled_after = stalled_after
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper = Recurring(
            self.sweep, every=SWEEP_EVERY, name="sweep stale imports", first_at_start=False
        )
        self._last_id: str | None = None

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def time_budget(self) -> timedelta:
        return self._time_budget

    # -- running imports -------------------------------------------------------------------------

    async def run_import(
        self,
        *,
        app_id: str,
        filename: str,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        options: ImportOptions,
        on_progress: ProgressCallback | None = None,
        size_hint: int | None = None,
    ) -> ImportRecord:
        """Import a file to the end and answer its final record (the CLI's door).

        `size_hint` (the file size, when known) lets progress move while rows are validated.
        Nothing of the file is kept, so an interrupted run is failed, not resumed.
        """
        run = await self._start(app_id, filename, options, on_progress)
        try:
            async with self._beating(run):
                validation = await self._validate(run, chunks, size_hint=size_hint)
                await self._conclude(run, validation)
                await self._until_visible(run)
        except asyncio.CancelledError:
            await self._fail(run, INTERRUPTED)
            raise
        except Exception as exc:
            await self._fail_on_error(run, exc)
        return run.record

    async def submit(
        self,
        *,
        app_id: str,
        filename: str | None,
        chunks: AsyncIterator[bytes],
        options: ImportOptions,
        size_hint: int | None = None,
    ) -> ImportRecord:
        """Validate an upload as it arrives, keeping it in the spool; import it in the background.

        Raises FileRejected for a problem with the file as a whole (too large, too many rows,
        not CSV, no usable header, a row too long, too slow to arrive) as soon as it shows,
        without reading the rest; the import is then recorded as rejected. An upload cut off
        midway is recorded as failed. Raises TooManyRunning, before reading anything, when the
        app has as many imports running as it may.
        """
        run = await self._start(app_id, filename, options, None, admit=True)
        validator = self._validator()
        try:
            async with self._beating(run):
                validation = await self._within_budget(
                    validator, self._receive(run, validator, chunks, size_hint)
                )
                if validation.file_error is not None:
                    await self._reject(run, validation)
                    raise FileRejected(validation.file_error, import_id=run.record.id)
                await self._validated(run, validation)
        except BaseException as exc:
            await self._spool.delete(run.record.id)
            if not run.record.finished:
                await self._fail(run, UPLOAD_CUT_OFF)
            if isinstance(exc, Exception) and not isinstance(exc, FileRejected):
                logger.info(
                    "upload of import %s ended early: %r",
                    run.record.id,
                    exc,
                    extra={"import_id": run.record.id, "app_id": run.record.app_id},
                )
            raise
        self._background(self._finish_spooled(run, validation), name=f"import {run.record.id}")
        return run.record

    async def drain(self) -> None:
        """Wait until every background import has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop the background work. An import stopped midway keeps its upload in the spool and
        is resumed when this replica starts again (or failed by another once it is stale)."""
        await self._sweeper.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def recover(self) -> None:
        """At start: resume this replica's unfinished imports whose upload is whole in the spool,
        fail those it cannot resume, and start sweeping stale imports of other replicas."""
        for record in await self._store.unfinished(owner=self._owner):
            if record.published or await self._spool.complete(record.id):
                logger.warning(
                    "resuming import %s of app %s",
                    record.id,
                    record.app_id,
                    extra={"import_id": record.id, "app_id": record.app_id},
                )
                self._background(self._resume(record), name=f"resume {record.id}")
            else:
                await self._fail(ImportRun(self._store, record, None), INTERRUPTED)
                await self._spool.delete(record.id)
                logger.warning("import %s was interrupted and could not be resumed", record.id)
        await self.sweep()
        await self._sweeper.start()

    async def sweep(self) -> list[str]:
        """Fail the unfinished imports of any replica that stopped stamping their heartbeat."""
        now = self._clock()
        ids = await self._store.fail_stale(STALE, before=now - STALE_AFTER, at=now)
        if ids:
            logger.warning("failed %d stale import(s): %s", len(ids), ", ".join(ids))
        return ids

    async def learn_users(self, events: Sequence[AnyEvent]) -> None:
        """Keep the registry of known users in step with what the platform says about them,
        and forget the users an admin erased (their entry and their rejected rows)."""
        screened = screen(events, await self._registry.erased(users_of(events)))
        if screened.erasures:
            await self._registry.erase(screened.erasures)
        entries = [
            RegistryEntry(e.app_id, e.user_id, e.phone_number, e.nickname, e.occurred_at)
            for e in screened.kept
            if isinstance(e, UserUpserted) and e.source == "platform"
        ]
        if entries:
            await self._registry.merge(entries)

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None:
        return await self._store.get(app_id, import_id)

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> tuple[list[ImportRecord], str | None]:
        """A page of the app's imports, newest first, and the id to continue before."""
        records = await self._store.history(app_id, before_id=before_id, limit=limit + 1)
        more = len(records) > limit
        records = records[:limit]
        return records, records[-1].id if more and records else None

    async def row_errors(
        self, app_id: str, import_id: str, *, after: int, limit: int
    ) -> tuple[list[RowError], int | None] | None:
        """A page of an import's row errors in line order and the position to continue after;
        None when the app has no such import."""
        if await self._store.get(app_id, import_id) is None:
            return None
        stored = await self._store.row_errors(app_id, import_id, after_seq=after, limit=limit + 1)
        more = len(stored) > limit
        stored = stored[:limit]
        return [s.error for s in stored], stored[-1].seq if more and stored else None

    async def error_report(
        self, app_id: str, import_id: str
    ) -> AsyncGenerator[list[RowError], None] | None:
        """Every row error of an import, page by page; None when the app has no such import."""
        if await self._store.get(app_id, import_id) is None:
            return None
        return self._report_pages(app_id, import_id)

    async def _report_pages(
        self, app_id: str, import_id: str
    ) -> AsyncGenerator[list[RowError], None]:
        after = 0
        while True:
            stored = await self._store.row_errors(
                app_id, import_id, after_seq=after, limit=REPORT_PAGE
            )
            if not stored:
                return
            yield [s.error for s in stored]
            if len(stored) < REPORT_PAGE:
                return
            after = stored[-1].seq

    # -- the import itself -----------------------------------------------------------------------

    async def _start(
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

    def _background(self, work: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _validated_chunks(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes],
        size_hint: int | None,
    ) -> AsyncIterator[bytes]:
        """The upload's chunks, each validated before it is passed on; stops at a file problem."""
        reporter = ProgressReporter(run, validator, size_hint)
        async for chunk in chunks:
            await asyncio.to_thread(validator.feed, chunk)
            if validator.stopped:
                return
            yield chunk
            await reporter.report()

    def _validator(self) -> FileValidator:
        return FileValidator(
            max_rows=self._max_rows,
            max_bytes=self._max_bytes,
            max_record_bytes=self._max_record_bytes,
            max_blank_lines=self._max_blank_lines,
        )

    async def _within_budget(
        self, validator: FileValidator, reading: Coroutine[Any, Any, Validation]
    ) -> Validation:
        """What `reading` validates, or a refusal once it has taken the import's time budget."""
        budget = asyncio.timeout(self._time_budget.total_seconds())
        try:
            async with budget:
                return await reading
        except TimeoutError:
            if not budget.expired():
                raise
            logger.info("an import ran out of its time budget after %d rows", validator.total_rows)
            return Validation(
                total_rows=validator.total_rows,
                rows=[],
                errors=[],
                rejected=0,
                file_error=over_budget(self._time_budget),
                warnings=(),
            )

    async def _receive(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes],
        size_hint: int | None,
    ) -> Validation:
        """Spool an upload as it is validated."""
        await self._spool.save(
            run.record.id, self._validated_chunks(run, validator, chunks, size_hint)
        )
        return await asyncio.to_thread(validator.finish)

    async def _validate(
        self,
        run: ImportRun,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        *,
        size_hint: int | None,
    ) -> Validation:
        validator = self._validator()
        validation = await self._within_budget(
            validator, self._read(run, validator, chunks, size_hint)
        )
        if validation.file_error is None:
            await self._validated(run, validation)
        return validation

    async def _read(
        self,
        run: ImportRun,
        validator: FileValidator,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        size_hint: int | None,
    ) -> Validation:
        if isinstance(chunks, AsyncIterator):
            async for _ in self._validated_chunks(run, validator, chunks, size_hint):
                pass
        else:
            reporter = ProgressReporter(run, validator, size_hint)
            iterator = iter(chunks)
            while await asyncio.to_thread(feed_rows, validator, iterator, PROGRESS_EVERY):
                await reporter.report()
        return await asyncio.to_thread(validator.finish)

    @staticmethod
    async def _validated(run: ImportRun, validation: Validation) -> None:
        if run.record.status is ImportStatus.VALIDATING:
            await run.save(
                run.record.with_progress(total_rows=validation.total_rows, progress=VALIDATED_SHARE)
            )

    async def _finish_spooled(self, run: ImportRun, validation: Validation) -> None:
        try:
            async with self._beating(run):
                # Answered 202 already: an outage of Kafka or PostgreSQL delays the import, and
                # only one longer than OUTAGE_WAIT fails it. Concluding again is safe: the
                # events have the same ids and the projection takes them once.
                await waiting_out(
                    f"import {run.record.id}",
                    lambda: self._conclude(run, validation),
                    limit=OUTAGE_WAIT.total_seconds(),
                )
                await self._until_visible(run)
        except asyncio.CancelledError:
            raise  # a shutdown: the upload stays in the spool and the import is resumed
        except Exception as exc:
            await self._fail_on_error(run, exc)
        await self._spool.delete(run.record.id)

    async def _resume(self, record: ImportRecord) -> None:
        """Import a spooled upload again from its first byte, after a restart.

        Event ids are the import's id and the line, and the registry is written only when an
        import completes, so a run resumed after its events were published already plans the
        same changes and publishes the same events again, which the projection takes once.
        """
        run = ImportRun(self._store, record, None)
        if record.published:
            # Its users were published and its registry written: only their visibility is left.
            try:
                async with self._beating(run):
                    await self._until_visible(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._fail_on_error(run, exc)
            await self._spool.delete(record.id)
            return
        chunks = self._spool.read(record.id)
        try:
            async with self._beating(run):
                await self._conclude(run, await self._validate(run, chunks, size_hint=None))
                await self._until_visible(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail_on_error(run, exc)
        finally:
            await chunks.aclose()
        await self._spool.delete(record.id)

    async def _reject(self, run: ImportRun, validation: Validation) -> None:
        assert validation.file_error is not None  # noqa: S101 - the caller checked
        counts = Counts(total_rows=validation.total_rows, rejected=validation.rejected)
        record = run.record.rejected(
            (validation.file_error,), counts, at=self._clock(), warnings=validation.warnings
        )
        await run.finish(record, validation.errors, ())

    async def _conclude(self, run: ImportRun, validation: Validation) -> None:
        """Plan the changes and publish them; the record is then published (or final: a
        rejection or a dry run). Safe to run again until it is published."""
        record = run.record
        if record.published:
            return
        total = validation.total_rows
        warnings = validation.warnings
        if validation.file_error is not None:
            await self._reject(run, validation)
            return

        known = await self._registry.known_users(
            record.app_id, [row.user_id for row in validation.rows]
        )
        plan = plan_changes(validation.rows, known, record.options.mode)
        errors = validation.errors
        if plan.errors:
            errors = sorted(errors + plan.errors, key=lambda error: error.line)
        rejected = validation.rejected + len(plan.errors)

        if rejected and record.options.on_error is OnError.REJECT_FILE:
            issue = FileIssue(
                "rows_rejected",
                f"{rejected:,} of {total:,} rows have errors and on_error=reject_file, so nothing "
                "was imported. Fix the rows in the error report, or import with "
                "on_error=skip_rows to import the valid rows and skip the others.",
            )
            counts = Counts(total_rows=total, rejected=rejected)
            record = record.rejected((issue,), counts, at=self._clock(), warnings=warnings)
            await run.finish(record, errors, ())
            return

        counts = Counts(total, plan.created, plan.updated, plan.unchanged, rejected)
        if record.options.dry_run:
            await run.finish(
                record.completed(counts, at=self._clock(), warnings=warnings), errors, ()
            )
            return

        if record.status is not ImportStatus.IMPORTING:  # a resumed import is importing already
            record = record.importing(counts)
            await run.save(record)
        events = self._events(record, plan.changes)
        written: Written = ()
        if events:
            # Publish only while this replica still owns the import: a replica taken for stopped
            # has had its import failed by another, and publishing now would contradict that.
            if not await self._store.heartbeat(record, owner=self._owner, at=self._clock()):
                raise OwnershipLost
            # One publish, all or nothing: one Kafka transaction in the distributed mode, one
            # SQLite transaction of the projector in the embedded mode.
            written = await self._publisher.publish(events)
        entries = [
            RegistryEntry(record.app_id, c.user_id, c.phone, c.kept_nickname, record.created_at)
            for c in plan.changes
        ]
        # The row errors and the registry are kept with the published record, in one
        # transaction: a restart from here on only waits for the users to be visible.
        await run.finish(
            record.publishing_done(written, at=self._clock(), warnings=warnings), errors, entries
        )

    async def _until_visible(self, run: ImportRun) -> None:
        """Complete a published import once the projection has made all its users visible.

        Its progress moves as the projection's watermark passes its records. A projection
        standing still for `behind_after` adds a warning saying so; for `stalled_after`, the
        import fails, its users kept (they appear when the projection resumes). A watermark
        that cannot be read (Kafka down) counts as standing still.
        """
        record = run.record
        if record.status is not ImportStatus.IMPORTING or not record.published:
            return
        total = written_records(record.written)
        loop = asyncio.get_running_loop()
        best, since = -1, loop.time()
        while True:
            try:
                visible = await self._watermark.visible(run.record.written)
            except DependencyUnavailable as outage:
                logger.warning("import %s: the watermark is unreadable: %s", record.id, outage)
                visible = best
            if visible >= total:
                break
            now = loop.time()
            still = timedelta(seconds=now - since)
            if visible > best:
                best, since = visible, now
                moved = run.record.becoming_visible(visible)
                if moved.progress - run.record.progress >= 0.01:
                    await run.save(moved)
            elif still >= self._stalled_after:
                logger.error("import %s: the projection stalled", record.id)
                issue = projection_stalled(max(best, 0), total, self._stalled_after)
                await run.save(run.record.failed(issue, at=self._clock()))
                return
            elif still >= self._behind_after:
                warned = run.record.warned(projection_behind(max(best, 0), total, still))
                if warned is not run.record:
                    await run.save(warned)
            await asyncio.sleep(VISIBLE_POLL)
        await run.save(run.record.completed(run.record.counts, at=self._clock()))

    @staticmethod
    def _events(record: ImportRecord, changes: Sequence[UserChange]) -> list[AnyEvent]:
        # The rows were validated by the CSV rules already, so each event is a copy of one
        # validated prototype with the row's fields (about 3x cheaper than constructing each).
        prototype = UserUpserted(
            event_id=f"{record.id}:0",
            app_id=record.app_id,
            occurred_at=record.created_at,
            user_id="prototype",
            source=f"import:{record.id}",
        )
        prefix = f"{record.id}:"
        return [
            prototype.model_copy(
                update={
                    "event_id": f"{prefix}{change.line}",
                    "user_id": change.user_id,
                    "phone_number": change.phone,
                    "nickname": change.nickname,
                }
                if change.nickname is not None
                else {
                    "event_id": f"{prefix}{change.line}",
                    "user_id": change.user_id,
                    "phone_number": change.phone,
                }
            )
            for change in changes
        ]

    @asynccontextmanager
    async def _beating(self, run: ImportRun) -> AsyncIterator[None]:
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

    async def _fail_on_error(self, run: ImportRun, exc: Exception) -> None:
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
        await self._fail(run, issue)

    async def _fail(self, run: ImportRun, issue: FileIssue) -> None:
        if not run.record.finished:
            await run.save(run.record.failed(issue, at=self._clock()))
