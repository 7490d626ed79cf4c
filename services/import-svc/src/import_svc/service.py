"""Use cases of the import: run one (CLI), submit one to run in the background (HTTP), read them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from datetime import datetime, timedelta

from import_svc.conclusion import Conclusion
from import_svc.domain.csv_stream import MAX_RECORD_BYTES
from import_svc.domain.model import FileRejected, ImportOptions, ImportRecord, RowError
from import_svc.domain.validation import MAX_BLANK_LINES, MAX_BYTES, MAX_ROWS, Validation
from import_svc.intake import Intake
from import_svc.issues import INTERRUPTED, UPLOAD_CUT_OFF
from import_svc.lifecycle import Lifecycle
from import_svc.ports import EventPublisher, ImportStore, RegistryEntry, UploadSpool, UserRegistry
from import_svc.reads import ImportReads
from import_svc.runs import ImportRun, ProgressCallback
from insights_common.bus import AtOnce, ProjectionWatermark
from insights_common.clock import utc_now
from insights_common.erasure import screen, users_of
from insights_common.outage import waiting_out
from insights_contracts import AnyEvent, UserErased, UserUpserted

logger = logging.getLogger(__name__)

OUTAGE_WAIT = timedelta(minutes=10)  # an accepted import waits this long for Kafka, PostgreSQL
TIME_BUDGET = timedelta(minutes=5)  # to upload and validate one file
MAX_RUNNING_PER_APP = 3
BEHIND_AFTER = timedelta(seconds=30)  # the projection still for this long: the import says so
STALLED_AFTER = timedelta(minutes=10)  # ... and for this long: the import fails


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
        self._spool = spool
        self._owner = owner
        self._intake = Intake(
            spool=spool,
            max_rows=max_rows,
            max_bytes=max_bytes,
            max_record_bytes=max_record_bytes,
            max_blank_lines=max_blank_lines,
            time_budget=time_budget,
        )
        self._conclusion = Conclusion(
            store=store,
            registry=registry,
            publisher=publisher,
            owner=owner,
            watermark=watermark if watermark is not None else AtOnce(),
            behind_after=behind_after,
            stalled_after=stalled_after,
            clock=clock,
        )
        self._lifecycle = Lifecycle(
            store=store, owner=owner, max_running_per_app=max_running_per_app, clock=clock
        )
        self._reads = ImportReads(store)

    @property
    def max_bytes(self) -> int:
        return self._intake.max_bytes

    @property
    def time_budget(self) -> timedelta:
        return self._intake.time_budget

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
        lifecycle = self._lifecycle
        run = await lifecycle.start(app_id, filename, options, on_progress)
        try:
            async with lifecycle.beating(run):
                validation = await self._intake.validate(run, chunks, size_hint=size_hint)
                await self._conclusion.conclude(run, validation)
                await self._conclusion.until_visible(run)
        except asyncio.CancelledError:
            await lifecycle.fail(run, INTERRUPTED)
            raise
        except Exception as exc:
            await lifecycle.fail_on_error(run, exc)
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
        lifecycle, intake = self._lifecycle, self._intake
        run = await lifecycle.start(app_id, filename, options, None, admit=True)
        validator = intake.validator()
        try:
            async with lifecycle.beating(run):
                validation = await intake.within_budget(
                    validator, intake.receive(run, validator, chunks, size_hint)
                )
                if validation.file_error is not None:
                    await self._conclusion.reject(run, validation)
                    raise FileRejected(validation.file_error, import_id=run.record.id)
                await intake.validated(run, validation)
        except BaseException as exc:
            await self._spool.delete(run.record.id)
            if not run.record.finished:
                await lifecycle.fail(run, UPLOAD_CUT_OFF)
            if isinstance(exc, Exception) and not isinstance(exc, FileRejected):
                logger.info(
                    "upload of import %s ended early: %r",
                    run.record.id,
                    exc,
                    extra={"import_id": run.record.id, "app_id": run.record.app_id},
                )
            raise
        lifecycle.background(self._finish_spooled(run, validation), name=f"import {run.record.id}")
        return run.record

    async def drain(self) -> None:
        """Wait until every background import has finished."""
        await self._lifecycle.drain()

    async def shutdown(self) -> None:
        """Stop the background work. An import stopped midway keeps its upload in the spool and
        is resumed when this replica starts again (or failed by another once it is stale)."""
        await self._lifecycle.shutdown()

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
                self._lifecycle.background(self._resume(record), name=f"resume {record.id}")
            else:
                await self._lifecycle.fail(ImportRun(self._store, record, None), INTERRUPTED)
                await self._spool.delete(record.id)
                logger.warning("import %s was interrupted and could not be resumed", record.id)
        await self._lifecycle.start_sweeping()

    async def sweep(self) -> list[str]:
        """Fail the unfinished imports of any replica that stopped stamping their heartbeat."""
        return await self._lifecycle.sweep()

    async def learn_users(self, events: Sequence[AnyEvent]) -> None:
        """Keep the registry of known users in step with what the platform says about them,
        and forget the users an admin erased (their entry and their rejected rows)."""
        # Only erases and the platform's upserts concern the registry (an import writes its own
        # users with its record): the rest of the topic, an import's users above all, is passed
        # over before its markers are read.
        taken = [
            e
            for e in events
            if isinstance(e, UserErased) or (isinstance(e, UserUpserted) and e.source == "platform")
        ]
        if not taken:
            return
        screened = screen(taken, await self._registry.erased(users_of(taken)))
        if screened.erasures:
            await self._registry.erase(screened.erasures)
        entries = [
            RegistryEntry(e.app_id, e.user_id, e.phone_number, e.nickname, e.occurred_at)
            for e in screened.kept
            if isinstance(e, UserUpserted)
        ]
        if entries:
            await self._registry.merge(entries)

    # -- reading ---------------------------------------------------------------------------------

    async def get(self, app_id: str, import_id: str) -> ImportRecord | None:
        return await self._reads.get(app_id, import_id)

    async def history(
        self, app_id: str, *, before_id: str | None, limit: int
    ) -> tuple[list[ImportRecord], str | None]:
        """A page of the app's imports, newest first, and the id to continue before."""
        return await self._reads.history(app_id, before_id=before_id, limit=limit)

    async def row_errors(
        self, app_id: str, import_id: str, *, after: int, limit: int
    ) -> tuple[list[RowError], int | None] | None:
        """A page of an import's row errors in line order and the position to continue after;
        None when the app has no such import."""
        return await self._reads.row_errors(app_id, import_id, after=after, limit=limit)

    async def error_report(
        self, app_id: str, import_id: str
    ) -> AsyncGenerator[list[RowError], None] | None:
        """Every row error of an import, page by page; None when the app has no such import."""
        return await self._reads.error_report(app_id, import_id)

    # -- the import in the background ------------------------------------------------------------

    async def _finish_spooled(self, run: ImportRun, validation: Validation) -> None:
        lifecycle = self._lifecycle
        try:
            async with lifecycle.beating(run):
                # Answered 202 already: an outage of Kafka or PostgreSQL delays the import, and
                # only one longer than OUTAGE_WAIT fails it. Concluding again is safe: the
                # events have the same ids and the projection takes them once.
                await waiting_out(
                    f"import {run.record.id}",
                    lambda: self._conclusion.conclude(run, validation),
                    limit=OUTAGE_WAIT.total_seconds(),
                )
                await self._conclusion.until_visible(run)
        except asyncio.CancelledError:
            raise  # a shutdown: the upload stays in the spool and the import is resumed
        except Exception as exc:
            await lifecycle.fail_on_error(run, exc)
        await self._spool.delete(run.record.id)

    async def _resume(self, record: ImportRecord) -> None:
        """Import a spooled upload again from its first byte, after a restart.

        Event ids are the import's id and the line, and the registry is written only when an
        import completes, so a run resumed after its events were published already plans the
        same changes and publishes the same events again, which the projection takes once.
        """
        lifecycle, conclusion = self._lifecycle, self._conclusion
        run = ImportRun(self._store, record, None)
        if record.published:
            # Its users were published and its registry written: only their visibility is left.
            try:
                async with lifecycle.beating(run):
                    await conclusion.until_visible(run)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await lifecycle.fail_on_error(run, exc)
            await self._spool.delete(record.id)
            return
        chunks = self._spool.read(record.id)
        try:
            async with lifecycle.beating(run):
                validation = await self._intake.validate(run, chunks, size_hint=None)
                await conclusion.conclude(run, validation)
                await conclusion.until_visible(run)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await lifecycle.fail_on_error(run, exc)
        finally:
            await chunks.aclose()
        await self._spool.delete(record.id)
