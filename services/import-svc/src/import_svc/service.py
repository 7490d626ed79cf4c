"""Use cases of the import: run one (CLI), submit one to run in the background (HTTP), read them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from import_svc.domain.model import (
    Counts,
    FileIssue,
    FileRejected,
    ImportOptions,
    ImportRecord,
    OnError,
    RowError,
    new_import_id,
)
from import_svc.domain.planning import UserChange, plan_changes
from import_svc.domain.validation import (
    MAX_BYTES,
    MAX_ROWS,
    FileValidator,
    Validation,
    inspect_head,
    too_large,
)
from import_svc.ports import (
    EventPublisher,
    ImportStore,
    RegistryEntry,
    UploadSpool,
    UploadTooLarge,
    UserRegistry,
)
from insights_contracts import AnyEvent, UserUpserted

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[ImportRecord], None]

HEAD_BYTES = 64 * 1024  # what an upload's header is read from before answering
PROGRESS_EVERY = 1000  # rows between two progress reports
VALIDATED_SHARE = 0.9  # of the progress bar; publishing and storing take the rest
REPORT_PAGE = 5000
MAX_FILENAME = 255

INTERRUPTED_BY_RESTART = FileIssue("interrupted", "interrupted by a restart; upload the file again")
INTERRUPTED_BY_SHUTDOWN = FileIssue(
    "interrupted", "interrupted by a shutdown; upload the file again"
)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def clean_filename(name: str | None) -> str:
    """The last path segment of a client's file name, without control characters."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:MAX_FILENAME] or "upload.csv"


class ImportService:
    def __init__(
        self,
        *,
        store: ImportStore,
        registry: UserRegistry,
        publisher: EventPublisher,
        spool: UploadSpool,
        max_rows: int = MAX_ROWS,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._store = store
        self._registry = registry
        self._publisher = publisher
        self._spool = spool
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._clock = clock
        self._tasks: set[asyncio.Task[ImportRecord]] = set()
        self._last_id: str | None = None

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

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
        """
        record = self._new_record(app_id, filename, options)
        await self._store.create(record)
        return await self._execute(record, chunks, size_hint=size_hint, on_progress=on_progress)

    async def submit(
        self,
        *,
        app_id: str,
        filename: str | None,
        chunks: AsyncIterator[bytes],
        options: ImportOptions,
    ) -> ImportRecord:
        """Spool an upload, check its header and start importing it in the background.

        Raises FileRejected for what the upload shows at once (too large, not CSV, no usable
        header); nothing is recorded then.
        """
        record = self._new_record(app_id, filename, options)
        try:
            size = await self._spool.save(record.id, chunks, max_bytes=self._max_bytes)
        except UploadTooLarge:
            raise FileRejected(too_large(self._max_bytes)) from None
        try:
            head = await self._spool.head(record.id, HEAD_BYTES)
            issue = inspect_head(head, complete=size <= HEAD_BYTES)
            if issue is not None:
                raise FileRejected(issue)
            await self._store.create(record)
        except BaseException:
            await self._spool.delete(record.id)
            raise
        task = asyncio.create_task(self._run_spooled(record, size), name=f"import {record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return record

    async def drain(self) -> None:
        """Wait until every background import has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def shutdown(self) -> None:
        """Stop background imports; each one is recorded as failed (interrupted)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def recover_interrupted(self) -> None:
        """Mark imports a crash left unfinished as failed; their valid rows were never shown."""
        ids = await self._store.fail_unfinished(INTERRUPTED_BY_RESTART, at=self._clock())
        for import_id in ids:
            await self._spool.delete(import_id)
        if ids:
            logger.warning("marked %d interrupted import(s) failed: %s", len(ids), ", ".join(ids))

    async def learn_users(self, events: Sequence[AnyEvent]) -> None:
        """Keep the registry of known users in step with what the platform says about them."""
        entries = [
            RegistryEntry(e.app_id, e.user_id, e.phone_number, e.nickname, e.occurred_at)
            for e in events
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

    def _new_record(
        self, app_id: str, filename: str | None, options: ImportOptions
    ) -> ImportRecord:
        now = self._clock()
        self._last_id = new_import_id(now, after=self._last_id)
        return ImportRecord(
            id=self._last_id,
            app_id=app_id,
            filename=clean_filename(filename),
            options=options,
            created_at=now,
        )

    async def _run_spooled(self, record: ImportRecord, size: int) -> ImportRecord:
        chunks = self._spool.read(record.id)
        try:
            return await self._execute(record, chunks, size_hint=size, on_progress=None)
        finally:
            await chunks.aclose()
            await self._spool.delete(record.id)

    async def _execute(
        self,
        record: ImportRecord,
        chunks: AsyncIterator[bytes] | Iterator[bytes],
        *,
        size_hint: int | None,
        on_progress: ProgressCallback | None,
    ) -> ImportRecord:
        run = _Run(self._store, record, on_progress)
        try:
            await run.save(record.validating())
            validator = FileValidator(max_rows=self._max_rows, max_bytes=self._max_bytes)
            reported = 0

            async def report() -> None:
                nonlocal reported
                if validator.total_rows - reported < PROGRESS_EVERY:
                    return
                reported = validator.total_rows
                share = min(validator.bytes_read / size_hint, 1.0) if size_hint else 0.0
                await run.save(
                    run.record.with_progress(total_rows=reported, progress=share * VALIDATED_SHARE)
                )

            if isinstance(chunks, AsyncIterator):
                async for chunk in chunks:
                    await asyncio.to_thread(validator.feed, chunk)
                    if validator.stopped:
                        break
                    await report()
            else:
                iterator = iter(chunks)
                while await asyncio.to_thread(_feed_rows, validator, iterator, PROGRESS_EVERY):
                    await report()
            validation = await asyncio.to_thread(validator.finish)
            await self._conclude(run, validation)
        except asyncio.CancelledError:
            await self._fail(run, INTERRUPTED_BY_SHUTDOWN)
            raise
        except Exception as exc:
            logger.exception("import %s of app %s failed", record.id, record.app_id)
            issue = FileIssue(
                "internal_error",
                f"The import stopped on an internal error ({type(exc).__name__}); nothing from "
                "it was imported. Upload the file again; if it keeps failing, report the import "
                "id.",
            )
            await self._fail(run, issue)
        return run.record

    async def _conclude(self, run: _Run, validation: Validation) -> None:
        record = run.record
        total = validation.total_rows
        warnings = validation.warnings
        if validation.file_error is not None:
            counts = Counts(total_rows=total, rejected=validation.rejected)
            record = record.rejected(
                (validation.file_error,), counts, at=self._clock(), warnings=warnings
            )
            await run.finish(record, validation.errors, ())
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

        record = record.importing(counts)
        await run.save(record)
        events = self._events(record, plan.changes)
        if events:
            # One publish: the embedded projector writes the batch in one transaction, so the
            # valid rows of a file become visible together.
            await self._publisher.publish(events)
        entries = [
            RegistryEntry(record.app_id, c.user_id, c.phone, c.kept_nickname, record.created_at)
            for c in plan.changes
        ]
        await run.finish(
            record.completed(counts, at=self._clock(), warnings=warnings), errors, entries
        )

    @staticmethod
    def _events(record: ImportRecord, changes: Sequence[UserChange]) -> list[AnyEvent]:
        source = f"import:{record.id}"
        events: list[AnyEvent] = []
        for change in changes:
            fields: dict[str, Any] = {
                "event_id": f"{record.id}:{change.line}",
                "event_type": "user.upserted",
                "schema_version": 1,
                "app_id": record.app_id,
                "occurred_at": record.created_at,
                "user_id": change.user_id,
                "phone_number": change.phone,
                "source": source,
            }
            if change.nickname is not None:
                fields["nickname"] = change.nickname
            # The rows were validated by the CSV rules already; validating again would parse
            # every phone number a second time.
            events.append(UserUpserted.model_construct(**fields))
        return events

    async def _fail(self, run: _Run, issue: FileIssue) -> None:
        if not run.record.finished:
            await run.save(run.record.failed(issue, at=self._clock()))


class _Run:
    """The latest state of one running import, stored and reported as it changes."""

    def __init__(
        self, store: ImportStore, record: ImportRecord, on_progress: ProgressCallback | None
    ) -> None:
        self._store = store
        self._on_progress = on_progress
        self.record = record

    async def save(self, record: ImportRecord) -> None:
        await self._store.update(record)
        self._stored(record)

    async def finish(
        self, record: ImportRecord, errors: Sequence[RowError], entries: Sequence[RegistryEntry]
    ) -> None:
        await self._store.finish(record, errors=errors, users=entries)
        self._stored(record)

    def _stored(self, record: ImportRecord) -> None:
        self.record = record
        if self._on_progress is not None:
            self._on_progress(record)


def _feed_rows(validator: FileValidator, chunks: Iterator[bytes], rows: int) -> bool:
    """Feed chunks until `rows` more rows were read; False once the file is done."""
    target = validator.total_rows + rows
    for chunk in chunks:
        validator.feed(chunk)
        if validator.stopped:
            return False
        if validator.total_rows >= target:
            return True
    return False
